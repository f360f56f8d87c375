#include "file_io.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <system_error>

namespace nodeplane::state::detail {

namespace fs = std::filesystem;

Error sysError(std::string_view what, const fs::path& path, int err) {
  Error e;
  e.kind = ErrorKind::kTerminal;
  e.message = "cannot " + std::string(what) + " " + path.string() + ": " +
              std::error_code(err, std::generic_category()).message();
  return e;
}

Error writeError(std::string_view what, const fs::path& path, const fs::path& stateDir, int err) {
  if (err != EROFS && err != EACCES && err != EPERM) return sysError(what, path, err);
  Error e;
  e.kind = ErrorKind::kTerminal;
  e.message = "state dir " + stateDir.string() +
              " is not writable: " + std::error_code(err, std::generic_category()).message();
  e.hint = err == EROFS ? "mount it read-write or pass --state-dir DIR"
                        : "run as root (or the owner of the state dir) or pass --state-dir DIR";
  return e;
}

UniqueFd& UniqueFd::operator=(UniqueFd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.release();
  }
  return *this;
}

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) ::close(fd_);
}

int UniqueFd::release() {
  int fd = fd_;
  fd_ = -1;
  return fd;
}

Result<void> UniqueFd::close(const fs::path& path) {
  int fd = release();
  // Linux closes the descriptor even when close(2) fails, so it is never retried.
  if (fd >= 0 && ::close(fd) != 0 && errno != EINTR) {
    return std::unexpected(sysError("close", path, errno));
  }
  return {};
}

Result<UniqueFd> openFile(const fs::path& path, int flags, unsigned mode) {
  int fd;
  do {
    fd = ::open(path.c_str(), flags | O_CLOEXEC, static_cast<mode_t>(mode));
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return std::unexpected(sysError("open", path, errno));
  return UniqueFd(fd);
}

Result<std::optional<std::string>> readFile(const fs::path& path) {
  int fd;
  do {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<std::string>();
    return std::unexpected(sysError("open", path, errno));
  }
  UniqueFd owner(fd);
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::unexpected(sysError("read", path, errno));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return std::optional<std::string>(std::move(out));
}

Result<void> writeAll(int fd, std::string_view data, const fs::path& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::unexpected(sysError("write", path, errno));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

Result<void> fsyncDir(const fs::path& dir) {
  auto fd = openFile(dir, O_RDONLY | O_DIRECTORY);
  if (!fd) return std::unexpected(fd.error());
  if (::fsync(fd->get()) != 0) return std::unexpected(sysError("fsync", dir, errno));
  return {};
}

Result<void> ensureDir(const fs::path& dir) {
  struct stat st;
  if (::stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) {
      Error e;
      e.message = "state directory " + dir.string() + " exists and is not a directory";
      return std::unexpected(e);
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
      char mode[8];
      std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
      Error e;
      e.message = "state directory " + dir.string() + " is writable by its group or others (mode " +
                  mode + "): whoever can write it can change what nodeplane believes it owns";
      e.hint = "chmod 700 " + dir.string();
      return std::unexpected(e);
    }
    return {};
  }
  if (errno != ENOENT) return std::unexpected(sysError("stat", dir, errno));
  if (dir.has_parent_path() && dir.parent_path() != dir) {
    std::error_code ec;
    fs::create_directories(dir.parent_path(), ec);
    if (ec)
      return std::unexpected(writeError("create directory", dir.parent_path(), dir, ec.value()));
  }
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return std::unexpected(writeError("create directory", dir, dir, errno));
  }
  // mkdir's mode is masked by the umask; the store wants exactly 0700.
  if (::chmod(dir.c_str(), 0700) != 0) return std::unexpected(sysError("chmod", dir, errno));
  return {};
}

Result<void> replaceFile(const fs::path& dir, const std::string& name, std::string_view data) {
  const fs::path target = dir / name;
  const fs::path tmp = dir / ("." + name + ".tmp-" + std::to_string(::getpid()));
  auto written = [&]() -> Result<void> {
    auto fd = openFile(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0600);
    if (!fd) return std::unexpected(fd.error());
    // A stale temp file of ours may have another mode; the umask may have narrowed this one.
    if (::fchmod(fd->get(), 0600) != 0) return std::unexpected(sysError("chmod", tmp, errno));
    if (auto w = writeAll(fd->get(), data, tmp); !w) return w;
    if (::fsync(fd->get()) != 0) return std::unexpected(sysError("fsync", tmp, errno));
    if (auto c = fd->close(tmp); !c) return c;
    if (::rename(tmp.c_str(), target.c_str()) != 0) {
      return std::unexpected(sysError("rename " + tmp.string() + " to", target, errno));
    }
    return {};
  }();
  if (!written) ::unlink(tmp.c_str());
  return written;
}

}  // namespace nodeplane::state::detail
