// Lock: flock(2) on DIR/lock, with the holder's pid written into the file for the error message,
// and the path checked after the flock to still name the locked file.
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

// DIR/lock, created 0600. A directory that cannot be written is said to be so.
Result<detail::UniqueFd> openLockFile(const fs::path& stateDir, const fs::path& path) {
  int fd;
  do {
    fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return std::unexpected(detail::writeError("open", path, stateDir, errno));
  detail::UniqueFd out(fd);
  // An older file may have been made with a wider mode, or the umask may have narrowed this one.
  if (::fchmod(fd, 0600) != 0)
    return std::unexpected(detail::writeError("chmod", path, stateDir, errno));
  return out;
}

// Whether `path` still names the file open as `fd`: it may have been removed or replaced while
// this process waited for the lock, and a lock on a file nobody else can open excludes nobody.
Result<bool> stillNamed(int fd, const fs::path& path) {
  struct stat held {
  }, named{};
  if (::fstat(fd, &held) != 0) return std::unexpected(sysError("stat", path, errno));
  if (::lstat(path.c_str(), &named) != 0) {
    if (errno == ENOENT) return false;
    return std::unexpected(sysError("stat", path, errno));
  }
  return held.st_dev == named.st_dev && held.st_ino == named.st_ino;
}

// How often a lock file that vanishes under us is opened again before giving up (each time
// someone removed or replaced DIR/lock between our open and our flock).
constexpr int kMaxReopen = 20;

}  // namespace

Result<Lock> Lock::acquire(const fs::path& stateDir, std::optional<std::chrono::milliseconds> wait,
                           const OnBusy& onBusy, std::stop_token stop) {
  if (auto d = detail::ensureDir(stateDir); !d) return std::unexpected(d.error());
  const fs::path path = stateDir / "lock";
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + wait.value_or(std::chrono::milliseconds(0));
  bool toldBusy = false;
  for (int attempt = 0; attempt < kMaxReopen; ++attempt) {
    auto fd = openLockFile(stateDir, path);
    if (!fd) return std::unexpected(fd.error());
    auto taken = tryLock(fd->get(), path);
    if (!taken) return std::unexpected(taken.error());
    if (!*taken) {
      if (!wait) return std::unexpected(busy(path, holderPid(fd->get()), std::nullopt));
      if (onBusy && !toldBusy) onBusy(holderPid(fd->get()));
      toldBusy = true;
      // Polling, not a blocking flock: a blocking call cannot be given a deadline without signals.
      auto pause = std::chrono::milliseconds(5);
      for (;;) {
        const auto now = std::chrono::steady_clock::now();
        if (now >= deadline) return std::unexpected(busy(path, holderPid(fd->get()), *wait));
        if (stop.stop_requested())
          return fail(ErrorKind::kRetryable, "stopped while waiting for " + path.string() +
                                                 " (held by pid " +
                                                 std::to_string(holderPid(fd->get())) + ")");
        std::this_thread::sleep_for(
            std::min<std::chrono::steady_clock::duration>(pause, deadline - now));
        pause = std::min(pause * 2, std::chrono::milliseconds(100));
        taken = tryLock(fd->get(), path);
        if (!taken) return std::unexpected(taken.error());
        if (*taken) break;
      }
    }
    auto same = stillNamed(fd->get(), path);
    if (!same) return std::unexpected(same.error());
    if (!*same) continue;  // locked a file that is gone: take the one there now

    const std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd->get(), 0) != 0) return std::unexpected(sysError("truncate", path, errno));
    if (::pwrite(fd->get(), pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
      return std::unexpected(sysError("write", path, errno));
    }
    return Lock(fd->release());
  }
  return fail(ErrorKind::kRetryable,
              path.string() + " was removed or replaced " + std::to_string(kMaxReopen) +
                  " times while this process took the lock; something is deleting it",
              {}, "find what removes files in " + stateDir.string());
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
