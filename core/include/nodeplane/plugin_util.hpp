// Small pieces every plugin needs on its side of the boundary: a guard that turns a throw into an
// error (no exception may leave a plugin), and a durable write for the records a plugin keeps in
// its own folder of the state directory (what it bound, what it released).
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

#include "nodeplane/error.hpp"

namespace nodeplane {

// Runs f(); a throw (a bad JSON access, an allocation) becomes a terminal error naming `what`.
// F returns a Result<…> (or anything an Error converts to).
template <class F>
auto catchAll(std::string_view what, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::exception& e) {
    return fail(ErrorKind::kTerminal, std::string(what) + ": internal error: " + e.what());
  } catch (...) {
    return fail(ErrorKind::kTerminal, std::string(what) + ": internal error");
  }
}

// Writes `text` to `path` atomically and durably: a temp file beside it (mode 0600), fsync,
// rename, fsync of the directory. A crash leaves the old file or the new one, never a torn one.
inline Result<void> writeFileAtomically(const std::filesystem::path& path, std::string_view text) {
  auto err = [](const std::string& what, int e) {
    return fail(ErrorKind::kTerminal, what + ": " + std::strerror(e));
  };
  std::error_code ec;
  std::filesystem::create_directories(path.parent_path(), ec);
  if (ec)
    return fail(ErrorKind::kTerminal,
                "cannot create " + path.parent_path().string() + ": " + ec.message());
  const std::filesystem::path tmp = path.string() + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return err("cannot write " + tmp.string(), errno);
  std::size_t off = 0;
  while (off < text.size()) {
    ssize_t n = ::write(fd, text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      ::close(fd);
      return err("cannot write " + tmp.string(), e);
    }
    off += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    int e = errno;
    ::close(fd);
    return err("cannot sync " + tmp.string(), e);
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    return err("cannot rename " + tmp.string() + " to " + path.string(), errno);
  if (int dir = ::open(path.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
  return {};
}

}  // namespace nodeplane
