// Child processes for the integration tests: spawn a program (no shell) with its stdout and
// stderr going to files, wait for it with a deadline (pidfd + poll, no sleeping), signal it by PID.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

extern char** environ;

namespace nodeplane::testing {

// A started child. Not copyable; the owner reaps it (waitExit) or kills it (killAndReap).
struct Spawned {
  pid_t pid = -1;
  int pidfd = -1;     // -1 where pidfd_open is unavailable; waitExit then polls waitpid
  std::string error;  // why it did not start
  explicit operator bool() const { return pid > 0; }
};

// Starts argv[0] (an absolute path) with stdout and stderr appended to the given files, an
// environment without the systemd notification variables (the child must not talk to the
// test's own service manager), and default signal handling and an empty signal mask.
inline Spawned spawnLogged(const std::vector<std::string>& argv, const std::filesystem::path& out,
                           const std::filesystem::path& err) {
  Spawned s;
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> env;
  for (char** e = environ; e && *e; ++e) {
    std::string_view v(*e);
    if (v.starts_with("NOTIFY_SOCKET=") || v.starts_with("WATCHDOG_USEC=") ||
        v.starts_with("WATCHDOG_PID=") || v.starts_with("LISTEN_FDS=") ||
        v.starts_with("LISTEN_PID="))
      continue;
    env.push_back(*e);
  }
  env.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, out.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                   0600);
  posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, err.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                   0600);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGTERM);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGHUP);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, args[0], &fa, &attr, args.data(), env.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    s.error = std::string("posix_spawn ") + argv[0] + ": " + std::strerror(rc);
    return s;
  }
  s.pid = pid;
  // The child is unreaped, so its PID cannot have been reused. (The syscall, not glibc 2.36's
  // pidfd_open(): its header lacks extern "C" and the C++ declaration does not link.)
  s.pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  return s;
}

// Waits until the child exits or `timeout` passes. Returns its wait status (for WIFEXITED etc.)
// once reaped, nullopt while it still runs. The child's pidfd is closed once it is reaped.
inline std::optional<int> waitExit(Spawned& s, std::chrono::milliseconds timeout) {
  if (s.pid <= 0) return std::nullopt;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(s.pid, &status, WNOHANG);
    if (r == s.pid) {
      if (s.pidfd >= 0) ::close(s.pidfd);
      s.pidfd = -1;
      s.pid = -1;
      return status;
    }
    if (r < 0 && errno != EINTR) return std::nullopt;  // not our child (already reaped)
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    if (s.pidfd >= 0) {
      pollfd p{s.pidfd, POLLIN, 0};  // readable when the child has exited
      ::poll(&p, 1, static_cast<int>(left.count()));
    } else {
      pollfd none{-1, 0, 0};  // no pidfd: re-check waitpid every 10 ms until the deadline
      ::poll(&none, 1, static_cast<int>(std::min<long long>(left.count(), 10)));
    }
  }
}

// True while the child has not exited (it may be a zombie not yet reaped: that counts as gone).
inline bool running(const Spawned& s) {
  if (s.pid <= 0) return false;
  siginfo_t info{};
  if (::waitid(P_PID, static_cast<id_t>(s.pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0)
    return false;
  return info.si_pid == 0;
}

inline bool sendSignal(const Spawned& s, int sig) { return s.pid > 0 && ::kill(s.pid, sig) == 0; }

// SIGKILL and reap; for teardown after a failed test.
inline void killAndReap(Spawned& s) {
  if (s.pid <= 0) return;
  ::kill(s.pid, SIGKILL);
  waitExit(s, std::chrono::seconds(10));
}

inline std::string describeStatus(int status) {
  if (WIFEXITED(status)) return "exit code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("killed by signal ") + strsignal(WTERMSIG(status));
  return "wait status " + std::to_string(status);
}

}  // namespace nodeplane::testing
