// Running the real nodeplane binary from integration tests, and reading links back.
#pragma once

#include <fcntl.h>
#include <net/if.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "../support/files.hpp"

namespace nodeplane::testing {

struct CliResult {
  int code = -1;    // exit code, or 128 + signal
  std::string out;  // stdout
  std::string err;  // stderr
};

// Starts `argv` (argv[0] a path) with the current environment plus `env`, stdout to `out` and
// stderr to `err` (the same file when equal). Returns the pid, or -1.
inline pid_t spawnTo(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                     const std::filesystem::path& out, const std::filesystem::path& err) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (err == out)
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
  else
    posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> envStore;
  for (char** e = environ; *e; ++e) envStore.emplace_back(*e);
  envStore.insert(envStore.end(), env.begin(), env.end());
  std::vector<char*> envp;
  for (auto& e : envStore) envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_t pid = -1;
  if (posix_spawn(&pid, args[0], &fa, nullptr, args.data(), envp.data()) != 0) pid = -1;
  posix_spawn_file_actions_destroy(&fa);
  return pid;
}

// Starts `argv` in the background with stdout+stderr to `log`.
inline pid_t spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                   const std::filesystem::path& log) {
  return spawnTo(argv, env, log, log);
}

// Runs `argv` to completion and collects its output.
inline CliResult run(const std::vector<std::string>& argv,
                     const std::vector<std::string>& env = {}) {
  TempDir io;
  CliResult r;
  pid_t pid = spawnTo(argv, env, io / "out", io / "err");
  if (pid < 0) return r;
  int status = 0;
  ::waitpid(pid, &status, 0);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = slurp(io / "out");
  r.err = slurp(io / "err");
  return r;
}

// Waits for `pid` to exit; returns its exit code (128 + signal), or -1 after killing it (by
// PID) when it outlives `limit`.
inline int waitExit(pid_t pid, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (r < 0) return -1;
    struct timespec ts {
      0, 10 * 1000 * 1000
    };  // polling a child's exit: no event to wait on
    ::nanosleep(&ts, nullptr);
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  return -1;
}

inline CliResult sh(const std::string& command) { return run({"/bin/sh", "-c", command}); }

inline bool linkExists(const std::string& name) { return ::if_nametoindex(name.c_str()) != 0; }

// `ip -d -j link show dev NAME` as JSON (null when absent).
inline nlohmann::json linkInfo(const std::string& name) {
  auto r = run({"/usr/sbin/ip", "-d", "-j", "link", "show", "dev", name});
  if (r.code != 0) return nullptr;
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  return j.is_array() && !j.empty() ? j[0] : nlohmann::json();
}

}  // namespace nodeplane::testing
