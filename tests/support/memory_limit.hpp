// Running a piece of code under a memory limit: in a forked child (runForked) whose address space
// may grow by at most `headroom` bytes (RLIMIT_AS). An allocation past the limit throws
// std::bad_alloc there, which comes back as "... child threw std::bad_alloc", as a crash does.
#pragma once

#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>

#include "support/process.hpp"

namespace nodeplane::testing {

// Bytes of address space this process has mapped now.
inline std::size_t addressSpaceBytes() {
  std::size_t pages = 0;
  std::ifstream("/proc/self/statm") >> pages;
  return pages * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

// What `f` returned, or why it did not return (it threw, crashed, or ran for more than a minute).
inline std::string withMemoryLimit(std::size_t headroom, const std::function<std::string()>& f) {
  const std::size_t limit = addressSpaceBytes() + headroom;
  auto limitMemory = [limit]() -> std::string {
    rlimit rl{limit, limit};
    if (::setrlimit(RLIMIT_AS, &rl) != 0) return std::string("setrlimit: ") + std::strerror(errno);
    return "";
  };
  ForkResult r = runForked(limitMemory, f, std::chrono::minutes(1));
  return r.ok ? r.text : r.error;
}

}  // namespace nodeplane::testing
