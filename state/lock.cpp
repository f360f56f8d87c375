// Lock: flock(2) on DIR/lock, with the holder's pid written into the file for the error message.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <thread>

#include "file_io.hpp"
#include "store.hpp"

namespace nodeplane::state {

namespace {

namespace fs = std::filesystem;
using detail::sysError;

// The pid the holder wrote, 0 when none could be read (it may be between flock and write).
long holderPid(int fd) {
  char buf[32];
  ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return 0;
  long pid = 0;
  auto [p, ec] = std::from_chars(buf, buf + n, pid);
  return ec == std::errc() && pid > 0 ? pid : 0;
}

Error busy(const fs::path& path, long pid, std::optional<std::chrono::milliseconds> waited) {
  Error e;
  e.kind = ErrorKind::kRetryable;
  std::string who = pid > 0 ? "another nodeplane (pid " + std::to_string(pid) + ")"
                            : "another nodeplane (pid unknown)";
  e.message = who + " holds " + path.string();
  if (waited) e.message += " (waited " + std::to_string(waited->count()) + " ms)";
  e.message += "; wait for it to finish or stop it";
  return e;
}

// flock(LOCK_EX|LOCK_NB): true when taken, false when held elsewhere.
Result<bool> tryLock(int fd, const fs::path& path) {
  for (;;) {
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0) return true;
    if (errno == EINTR) continue;
    if (errno == EWOULDBLOCK) return false;
    return std::unexpected(sysError("lock", path, errno));
  }
}

}  // namespace

Result<Lock> Lock::acquire(const fs::path& stateDir, std::optional<std::chrono::milliseconds> wait,
                           const OnBusy& onBusy) {
  if (auto d = detail::ensureDir(stateDir); !d) return std::unexpected(d.error());
  const fs::path path = stateDir / "lock";
  auto fd = detail::openFile(path, O_RDWR | O_CREAT | O_NOFOLLOW, 0600);
  if (!fd) return std::unexpected(fd.error());
  // An older file may have been made with a wider mode, or the umask may have narrowed this one.
  if (::fchmod(fd->get(), 0600) != 0) return std::unexpected(sysError("chmod", path, errno));

  auto taken = tryLock(fd->get(), path);
  if (!taken) return std::unexpected(taken.error());
  if (!*taken) {
    if (!wait) return std::unexpected(busy(path, holderPid(fd->get()), std::nullopt));
    if (onBusy) onBusy(holderPid(fd->get()));
    // Polling, not a blocking flock: a blocking call cannot be given a deadline without signals.
    const auto start = std::chrono::steady_clock::now();
    const auto deadline = start + *wait;
    auto pause = std::chrono::milliseconds(5);
    for (;;) {
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline) return std::unexpected(busy(path, holderPid(fd->get()), *wait));
      std::this_thread::sleep_for(
          std::min<std::chrono::steady_clock::duration>(pause, deadline - now));
      pause = std::min(pause * 2, std::chrono::milliseconds(100));
      taken = tryLock(fd->get(), path);
      if (!taken) return std::unexpected(taken.error());
      if (*taken) break;
    }
  }

  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd->get(), 0) != 0) return std::unexpected(sysError("truncate", path, errno));
  if (::pwrite(fd->get(), pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    return std::unexpected(sysError("write", path, errno));
  }
  return Lock(fd->release());
}

Lock::Lock(Lock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }

Lock& Lock::operator=(Lock&& o) noexcept {
  if (this != &o) {
    Lock old(std::move(*this));  // released at the end of this scope
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

Lock::~Lock() {
  if (fd_ < 0) return;
  // Clear the pid first, so a stale one is never reported; closing drops the flock.
  (void)::ftruncate(fd_, 0);
  ::close(fd_);
}

}  // namespace nodeplane::state
