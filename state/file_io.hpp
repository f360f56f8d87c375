// Small POSIX file helpers for the state store: every failure becomes an Error naming the path
// and the system's reason.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "nodeplane/error.hpp"

namespace nodeplane::state::detail {

// "cannot <what> <path>: <strerror(err)>"
Error sysError(std::string_view what, const std::filesystem::path& path, int err);

// Owns a file descriptor.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd();

  int get() const { return fd_; }
  int release();
  // Closes now, reporting the error close(2) gives (a late write error on some filesystems).
  Result<void> close(const std::filesystem::path& path);

 private:
  int fd_ = -1;
};

// "state dir <dir> is not writable: <strerror(err)>" for EROFS, EACCES and EPERM (nothing a wait
// or a retry can fix); sysError(what, path, err) for any other err.
Error writeError(std::string_view what, const std::filesystem::path& path,
                 const std::filesystem::path& stateDir, int err);

// Opens with O_CLOEXEC added; mode is used only with O_CREAT.
Result<UniqueFd> openFile(const std::filesystem::path& path, int flags, unsigned mode = 0600);

// The whole file, or nullopt when it does not exist.
Result<std::optional<std::string>> readFile(const std::filesystem::path& path);

Result<void> writeAll(int fd, std::string_view data, const std::filesystem::path& path);

// fsync(2) on a directory, so renames and creations in it survive a crash.
Result<void> fsyncDir(const std::filesystem::path& dir);

// Creates `dir` (and missing parents) when absent; the directory itself mode 0700.
Result<void> ensureDir(const std::filesystem::path& dir);

// Writes `data` to a temporary file in `dir`, fsyncs it and renames it over dir/name (mode 0600).
// The directory is not fsync'd: the caller does that once after all its renames.
Result<void> replaceFile(const std::filesystem::path& dir, const std::string& name,
                         std::string_view data);

}  // namespace nodeplane::state::detail
