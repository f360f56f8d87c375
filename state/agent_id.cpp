#include "agent_id.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <optional>
#include <random>

#include "file_io.hpp"

namespace nodeplane::state::detail {
namespace {

namespace fs = std::filesystem;

// 16 lowercase hex digits: short enough for an interface alias or a label.
bool wellFormed(const std::string& id) {
  return id.size() == 16 && id.find_first_not_of("0123456789abcdef") == std::string::npos;
}

Result<std::optional<std::string>> readId(const fs::path& path) {
  auto text = readFile(path);
  if (!text) return std::unexpected(text.error());
  if (!*text) return std::optional<std::string>{};
  std::string id = **text;
  while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
  if (!wellFormed(id)) {
    Error e;
    e.kind = ErrorKind::kTerminal;
    e.message = "agent id file " + path.string() +
                " does not hold an agent id (16 hexadecimal digits); it was not replaced, since "
                "the objects this agent marked carry the id it held";
    e.hint =
        "restore the file, or remove it to start over as a new agent (whose marks the old "
        "objects then do not carry)";
    return std::unexpected(e);
  }
  return std::optional<std::string>{id};
}

}  // namespace

Result<std::string> agentId(const fs::path& dir, bool create) {
  const fs::path path = dir / kAgentIdFile;
  auto have = readId(path);
  if (!have) return std::unexpected(have.error());
  if (*have) return **have;
  if (!create) return std::string();

  std::random_device rd;
  const std::uint64_t n = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016" PRIx64, n);
  const std::string id = buf;
  const fs::path tmp = dir / (".agent-id.tmp-" + std::to_string(::getpid()));
  auto made = [&]() -> Result<void> {
    auto fd = openFile(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0600);
    if (!fd) return std::unexpected(fd.error());
    if (::fchmod(fd->get(), 0600) != 0) return std::unexpected(sysError("chmod", tmp, errno));
    if (auto w = writeAll(fd->get(), id + "\n", tmp); !w) return w;
    if (::fsync(fd->get()) != 0) return std::unexpected(sysError("fsync", tmp, errno));
    if (auto c = fd->close(tmp); !c) return c;
    // link(2), not rename(2): it fails when another process made the file first.
    if (::link(tmp.c_str(), path.c_str()) != 0 && errno != EEXIST)
      return std::unexpected(writeError("create", path, dir, errno));
    return fsyncDir(dir);
  }();
  ::unlink(tmp.c_str());
  if (!made) return std::unexpected(made.error());
  auto now = readId(path);  // ours, or the one another process linked first
  if (!now) return std::unexpected(now.error());
  if (!*now) return fail(ErrorKind::kTerminal, "agent id file " + path.string() + " vanished");
  return **now;
}

}  // namespace nodeplane::state::detail
