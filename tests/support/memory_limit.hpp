// Running a piece of code under a memory limit: in a forked child whose address space may grow
// by at most `headroom` bytes (RLIMIT_AS). An allocation past the limit throws std::bad_alloc
// there, which the parent reports ("child threw std::bad_alloc"), as it does a crash.
#pragma once

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
#include <exception>
#include <fstream>
#include <functional>
#include <string>

namespace nodeplane::testing {

// Bytes of address space this process has mapped now.
inline std::size_t addressSpaceBytes() {
  std::size_t pages = 0;
  std::ifstream("/proc/self/statm") >> pages;
  return pages * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

// What `f` returned, or "child threw ...", "child killed by signal N", "child exited with N".
inline std::string withMemoryLimit(std::size_t headroom, const std::function<std::string()>& f) {
  int fds[2];
  if (::pipe(fds) != 0) return "pipe failed";
  const std::size_t limit = addressSpaceBytes() + headroom;
  pid_t pid = ::fork();
  if (pid < 0) return "fork failed";
  if (pid == 0) {
    ::close(fds[0]);
    rlimit rl{limit, limit};
    ::setrlimit(RLIMIT_AS, &rl);
    std::string out;
    try {  // never back into the test framework: this process must end here
      out = f();
    } catch (const std::exception& e) {
      out = std::string("child threw ") + e.what();
    } catch (...) {
      out = "child threw";
    }
    for (std::size_t done = 0; done < out.size();) {
      ssize_t n = ::write(fds[1], out.data() + done, out.size() - done);
      if (n <= 0) ::_exit(3);
      done += static_cast<std::size_t>(n);
    }
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) out.append(buf, n);
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (WIFSIGNALED(status)) return "child killed by signal " + std::to_string(WTERMSIG(status));
  if (WEXITSTATUS(status) != 0) return "child exited with " + std::to_string(WEXITSTATUS(status));
  return out;
}

}  // namespace nodeplane::testing
