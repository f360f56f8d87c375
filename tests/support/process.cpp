#include "process.hpp"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <exception>
#include <string_view>
#include <utility>

#include "files.hpp"

extern char** environ;

namespace nodeplane::testing {

Spawned::~Spawned() { killAndReap(*this); }

Spawned::Spawned(Spawned&& other) noexcept
    : pid(std::exchange(other.pid, -1)),
      pidfd(std::exchange(other.pidfd, -1)),
      error(std::move(other.error)) {}

Spawned& Spawned::operator=(Spawned&& other) noexcept {
  if (this != &other) {
    killAndReap(*this);
    pid = std::exchange(other.pid, -1);
    pidfd = std::exchange(other.pidfd, -1);
    error = std::move(other.error);
  }
  return *this;
}

namespace {

// The child is unreaped, so its PID cannot have been reused. (The syscall, not glibc 2.36's
// pidfd_open(): its header lacks extern "C" and the C++ declaration does not link.)
int openPidfd(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

void forget(Spawned& s) {
  if (s.pidfd >= 0) ::close(s.pidfd);
  s.pidfd = -1;
  s.pid = -1;
}

}  // namespace

Spawned spawnLogged(const std::vector<std::string>& argv, const std::filesystem::path& out,
                    const std::filesystem::path& err, const std::vector<std::string>& extraEnv) {
  Spawned s;
  if (argv.empty()) {
    s.error = "spawn: empty argv";
    return s;
  }
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
  for (const auto& e : extraEnv) env.push_back(const_cast<char*>(e.c_str()));
  env.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, out.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                   0600);
  if (err == out)
    posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
  else
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
    s.error = "posix_spawn " + argv[0] + ": " + ::strerror(rc);
    return s;
  }
  s.pid = pid;
  s.pidfd = openPidfd(pid);
  return s;
}

Spawned spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env,
              const std::filesystem::path& log) {
  return spawnLogged(argv, log, log, env);
}

Spawned adoptChild(pid_t pid) {
  Spawned s;
  if (pid <= 0) {
    s.error = "no child";
    return s;
  }
  s.pid = pid;
  s.pidfd = openPidfd(pid);
  return s;
}

std::optional<int> waitExit(Spawned& s, std::chrono::milliseconds timeout) {
  if (s.pid <= 0) return std::nullopt;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(s.pid, &status, WNOHANG);
    if (r == s.pid) {
      forget(s);
      return status;
    }
    if (r < 0 && errno != EINTR) {  // not our child (reaped elsewhere): nothing left to wait for
      forget(s);
      return std::nullopt;
    }
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

int waitExitCode(Spawned& s, std::chrono::milliseconds timeout) {
  if (auto st = waitExit(s, timeout)) return exitCode(*st);
  killAndReap(s);
  return -1;
}

bool running(const Spawned& s) {
  if (s.pid <= 0) return false;
  siginfo_t info{};
  if (::waitid(P_PID, static_cast<id_t>(s.pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0)
    return false;
  return info.si_pid == 0;
}

bool sendSignal(const Spawned& s, int sig) { return s.pid > 0 && ::kill(s.pid, sig) == 0; }

void killAndReap(Spawned& s) {
  if (s.pid <= 0) return;
  ::kill(s.pid, SIGKILL);
  if (!waitExit(s, std::chrono::seconds(10))) forget(s);
}

int exitCode(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string describeStatus(int status) {
  if (WIFEXITED(status)) return "exit code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("killed by signal ") + ::strsignal(WTERMSIG(status));
  return "wait status " + std::to_string(status);
}

CliResult run(const std::vector<std::string>& argv, const std::vector<std::string>& env,
              std::chrono::milliseconds timeout) {
  TempDir io;
  CliResult r;
  Spawned child = spawnLogged(argv, io / "out", io / "err", env);
  if (!child) {
    r.err = child.error;
    return r;
  }
  auto status = waitExit(child, timeout);
  r.out = slurp(io / "out");
  r.err = slurp(io / "err");
  if (status) {
    r.code = exitCode(*status);
  } else {
    killAndReap(child);
    r.err += "\n(killed: still running after " + std::to_string(timeout.count()) + " ms)";
  }
  return r;
}

CliResult sh(const std::string& command) { return run({"/bin/sh", "-c", command}); }

ForkResult runForked(const std::function<std::string()>& setup,
                     const std::function<std::string()>& body, std::chrono::milliseconds timeout) {
  ForkResult r;
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    r.error = std::string("pipe2: ") + ::strerror(errno);
    return r;
  }
  pid_t pid = ::fork();
  if (pid < 0) {
    r.error = std::string("fork: ") + ::strerror(errno);
    ::close(fds[0]);
    ::close(fds[1]);
    return r;
  }
  if (pid == 0) {  // never back into the test framework: this process ends here
    ::close(fds[0]);
    auto send = [&](const std::string& text) {
      for (std::size_t done = 0; done < text.size();) {
        ssize_t n = ::write(fds[1], text.data() + done, text.size() - done);
        if (n <= 0) break;
        done += static_cast<std::size_t>(n);
      }
    };
    if (setup) {
      if (std::string problem = setup(); !problem.empty()) {
        send(problem);
        ::_exit(2);
      }
    }
    try {
      send(body());
    } catch (const std::exception& e) {
      send(std::string("child threw ") + e.what());
      ::_exit(3);
    } catch (...) {
      send("child threw");
      ::_exit(3);
    }
    ::_exit(0);
  }
  ::close(fds[1]);
  Spawned child = adoptChild(pid);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fds[0], POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    char buf[4096];
    ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n <= 0) break;  // end of file: the child exited
    r.text.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  auto status = waitExit(child, std::max(std::chrono::milliseconds(0),
                                         std::chrono::duration_cast<std::chrono::milliseconds>(
                                             deadline - std::chrono::steady_clock::now())));
  if (!status) {
    r.error = "the child still ran after " + std::to_string(timeout.count()) + " ms";
  } else if (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0) {
    r.error = describeStatus(*status) + (r.text.empty() ? "" : ": " + r.text);
  } else {
    r.ok = true;
  }
  return r;
}

ForkResult runUnprivileged(const std::function<std::string()>& body,
                           std::chrono::milliseconds timeout) {
  auto becomeNobody = []() -> std::string {
    if (::geteuid() == 0 &&
        (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0))
      return std::string("cannot become nobody (uid 65534): ") + ::strerror(errno);
    return "";
  };
  return runForked(becomeNobody, body, timeout);
}

std::string readUntilClosed(int fd, std::chrono::milliseconds limit, bool stopAtNewline) {
  std::string text;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    char buf[512];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    text.append(buf, static_cast<std::size_t>(n));
    if (stopAtNewline && text.find('\n') != std::string::npos) break;
  }
  return text;
}

}  // namespace nodeplane::testing
