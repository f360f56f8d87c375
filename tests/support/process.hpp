// Child processes for every test tier: spawn a program (no shell) with its output going to files,
// wait for it with a deadline (pidfd + poll, no sleeping), signal it by PID. A Spawned that goes
// out of scope while its child still runs kills and reaps it, so a failed test leaves nothing.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace nodeplane::testing {

// A started child. Move-only; the owner reaps it (waitExit), or its destructor kills and reaps it.
class Spawned {
 public:
  Spawned() = default;
  ~Spawned();
  Spawned(Spawned&& other) noexcept;
  Spawned& operator=(Spawned&& other) noexcept;
  Spawned(const Spawned&) = delete;
  Spawned& operator=(const Spawned&) = delete;
  explicit operator bool() const { return pid > 0; }

  pid_t pid = -1;
  int pidfd = -1;     // -1 where pidfd_open is unavailable; waitExit then re-checks every 10 ms
  std::string error;  // why it did not start
};

// Starts argv[0] (an absolute path) with stdin from /dev/null, stdout and stderr appended to the
// given files (the same file when equal), default signal handling, an empty signal mask, and the
// test's environment without the systemd notification variables (the child must not talk to the
// test's own service manager) plus `env` ("NAME=value" entries, added last).
Spawned spawnLogged(const std::vector<std::string>& argv, const std::filesystem::path& out,
                    const std::filesystem::path& err, const std::vector<std::string>& env = {});

// spawnLogged with stdout and stderr both to `log`.
Spawned spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env,
              const std::filesystem::path& log);

// Takes over a child the test forked itself (to set it up before exec).
Spawned adoptChild(pid_t pid);

// Waits until the child exits or `timeout` passes. Returns its wait status (for WIFEXITED etc.)
// once reaped, nullopt while it still runs.
std::optional<int> waitExit(Spawned& s, std::chrono::milliseconds timeout);

// Waits for the child; its exit code (128 + signal), or -1 after killing it when it outlives
// `timeout`.
int waitExitCode(Spawned& s, std::chrono::milliseconds timeout);

// True while the child has not exited (an exited child not yet reaped counts as gone).
bool running(const Spawned& s);

bool sendSignal(const Spawned& s, int sig);

// SIGKILL and reap; for teardown after a failed test.
void killAndReap(Spawned& s);

// What a child writes to `fd` until it closes it (its exec, its exit) or `limit` passes; with
// `stopAtNewline`, up to the first complete line (a readiness line such as a bus address).
std::string readUntilClosed(int fd, std::chrono::milliseconds limit, bool stopAtNewline = false);

// An exit code from a wait status: the code, or 128 + the signal.
int exitCode(int status);
std::string describeStatus(int status);

struct CliResult {
  int code = -1;    // exit code, or 128 + signal; -1 when it did not start or was killed
  std::string out;  // stdout
  std::string err;  // stderr (and why it did not start or was killed)
};

// Runs `argv` (argv[0] a path) to completion, with the test's environment plus `env`, and
// collects its output. A child still running after `timeout` is killed: code -1.
CliResult run(const std::vector<std::string>& argv, const std::vector<std::string>& env = {},
              std::chrono::milliseconds timeout = std::chrono::seconds(120));

// `/bin/sh -c command`.
CliResult sh(const std::string& command);

struct ForkResult {
  bool ok = false;    // the child ran `body` to the end and exited 0
  std::string text;   // what `body` returned
  std::string error;  // why not ok
};

// Runs `setup`, then `body`, in a forked child and hands back the string `body` returns. `setup`
// returns why the child cannot go on ("" when it can); an exception in `body` is reported
// ("child threw ..."), as is a crash or running past `timeout`.
ForkResult runForked(const std::function<std::string()>& setup,
                     const std::function<std::string()>& body,
                     std::chrono::milliseconds timeout = std::chrono::seconds(30));

// runForked() as an unprivileged user. When the test runs as
// root, the child first becomes nobody (uid and gid 65534, no supplementary groups), so file
// permissions apply to it as to any user: a test of "permission denied" then runs as root too.
ForkResult runUnprivileged(const std::function<std::string()>& body,
                           std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace nodeplane::testing
