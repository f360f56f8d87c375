#include "nodeplane/host/tool.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

extern char** environ;

namespace nodeplane::host {
namespace {

std::string joined(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) s += (s.empty() ? "" : " ") + a;
  return s;
}

bool executable(const std::filesystem::path& p) {
  std::error_code ec;
  return std::filesystem::is_regular_file(p, ec) && ::access(p.c_str(), X_OK) == 0;
}

// Closes a file descriptor when it goes out of scope.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  void reset() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

int exitCodeOf(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// The last line(s) a tool wrote, for an error message.
std::string tail(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  if (s.size() > 800) s = "…" + s.substr(s.size() - 800);
  return s;
}

}  // namespace

Result<std::filesystem::path> findProgram(const std::string& name) {
  if (name.empty()) return fail(ErrorKind::kTerminal, "no program name given");
  if (name.find('/') != std::string::npos) {
    if (executable(name)) return std::filesystem::path(name);
    return fail(ErrorKind::kTerminal, name + " is not an executable file");
  }
  const char* env = std::getenv("PATH");
  const std::string path = env && *env ? env : "/usr/local/bin:/usr/bin:/bin";
  std::size_t start = 0;
  for (;;) {
    auto colon = path.find(':', start);
    std::string dir =
        path.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
    if (!dir.empty() && dir.front() == '/')
      if (auto p = std::filesystem::path(dir) / name; executable(p)) return p;
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  return fail(ErrorKind::kTerminal, name + " not found on PATH (" + path + ")");
}

Result<ToolOutput> runTool(const std::vector<std::string>& argv,
                           std::chrono::milliseconds timeout) {
  if (argv.empty()) return fail(ErrorKind::kTerminal, "no command to run");
  auto program = findProgram(argv[0]);
  if (!program) return std::unexpected(program.error());
  const auto deadline = std::chrono::steady_clock::now() + timeout;

  int outPipe[2], errPipe[2];
  if (::pipe2(outPipe, O_CLOEXEC) != 0)
    return fail(ErrorKind::kRetryable, std::string("pipe: ") + std::strerror(errno));
  Fd outRead{outPipe[0]}, outWrite{outPipe[1]};
  if (::pipe2(errPipe, O_CLOEXEC) != 0)
    return fail(ErrorKind::kRetryable, std::string("pipe: ") + std::strerror(errno));
  Fd errRead{errPipe[0]}, errWrite{errPipe[1]};

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, outWrite.fd, 1);
  posix_spawn_file_actions_adddup2(&actions, errWrite.fd, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  std::vector<std::string> args = argv;
  args[0] = program->string();
  std::vector<char*> cargs;
  for (auto& a : args) cargs.push_back(a.data());
  cargs.push_back(nullptr);
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, args[0].c_str(), &actions, &attr, cargs.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0)
    return fail(ErrorKind::kTerminal, "cannot run " + args[0] + ": " + std::strerror(rc));
  outWrite.reset();
  errWrite.reset();

  ToolOutput result;
  bool timedOut = false;
  Fd pidfd{static_cast<int>(::syscall(SYS_pidfd_open, pid, 0))};
  bool exited = false;
  int status = 0;
  while (!exited) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timedOut = true;
      break;
    }
    pollfd fds[3];
    nfds_t n = 0;
    if (outRead.fd >= 0) fds[n++] = {outRead.fd, POLLIN, 0};
    if (errRead.fd >= 0) fds[n++] = {errRead.fd, POLLIN, 0};
    if (outRead.fd < 0 && errRead.fd < 0) {
      if (pidfd.fd >= 0) {
        fds[n++] = {pidfd.fd, POLLIN, 0};
      } else {  // no pidfd (old kernel): the pipes are closed, so it is ending; wait for it
        if (::waitpid(pid, &status, 0) == pid) exited = true;
        break;
      }
    }
    int ready = ::poll(fds, n, static_cast<int>(std::min<long long>(left.count(), 1 << 30)));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) break;
    for (nfds_t i = 0; i < n; ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      if (fds[i].fd == pidfd.fd) {
        if (::waitpid(pid, &status, 0) == pid) exited = true;
        continue;
      }
      char buf[4096];
      ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
      if (got < 0 && errno == EINTR) continue;
      Fd& which = fds[i].fd == outRead.fd ? outRead : errRead;
      if (got <= 0) {
        which.reset();
        continue;
      }
      (fds[i].fd == outRead.fd ? result.out : result.err).append(buf, static_cast<size_t>(got));
    }
  }
  if (!exited) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    if (timedOut)
      return fail(ErrorKind::kRetryable, joined(argv) + " did not finish within " +
                                             std::to_string(timeout.count()) + " ms: killed");
    return fail(ErrorKind::kRetryable, "lost track of " + joined(argv) + ": killed");
  }
  result.exitCode = exitCodeOf(status);
  return result;
}

Result<ToolOutput> runToolOk(const std::vector<std::string>& argv,
                             std::chrono::milliseconds timeout) {
  auto r = runTool(argv, timeout);
  if (!r) return r;
  if (r->exitCode != 0)
    return fail(ErrorKind::kTerminal, joined(argv) + " failed (exit code " +
                                          std::to_string(r->exitCode) +
                                          "): " + tail(r->err.empty() ? r->out : r->err));
  return r;
}

}  // namespace nodeplane::host
