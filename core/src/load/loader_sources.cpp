// Finding and reading desired-state files: directories, ignored names, symlinks, and the
// content-hash cache of the daemon.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <set>
#include <system_error>
#include <utility>

#include "loader.hpp"

namespace fs = std::filesystem;

namespace nodeplane {
namespace {

constexpr std::uintmax_t kMaxFileBytes = 16 * 1024 * 1024;

Error fileError(const fs::path& path, std::string message, std::string hint = {}) {
  Error e;
  e.kind = ErrorKind::kInvalidInput;
  e.where.file = path.string();
  e.message = std::move(message);
  e.hint = std::move(hint);
  return e;
}

// The files named by `paths`, in load order; problems with the paths themselves go to `errors`.
std::vector<fs::path> collectFiles(const std::vector<fs::path>& paths, std::vector<Error>& errors) {
  std::vector<fs::path> files;
  std::set<fs::path> seen;  // canonical paths: a file named twice (or via a symlink) loads once
  auto addFile = [&](const fs::path& p) {
    std::error_code ec;
    fs::path canonical = fs::canonical(p, ec);
    if (ec) canonical = p;
    if (seen.insert(canonical).second) files.push_back(p);
  };
  for (const auto& path : paths) {
    std::error_code ec;
    fs::file_status st = fs::status(path, ec);  // follows symlinks
    if (!fs::exists(st)) {
      if (fs::is_symlink(fs::symlink_status(path, ec))) {
        errors.push_back(fileError(path, "broken symbolic link"));
      } else {
        errors.push_back(fileError(path, "no such file or directory"));
      }
      continue;
    }
    if (fs::is_directory(st)) {
      std::vector<fs::path> entries;
      fs::directory_iterator it(path, ec), end;
      if (ec) {
        errors.push_back(fileError(path, "cannot list directory: " + ec.message()));
        continue;
      }
      for (; it != end; it.increment(ec)) {
        if (ec) break;
        if (isIgnoredName(it->path().filename().string())) continue;
        entries.push_back(it->path());
      }
      if (ec) errors.push_back(fileError(path, "cannot list directory: " + ec.message()));
      std::sort(entries.begin(), entries.end());
      for (const auto& e : entries) {
        std::error_code eec;
        fs::file_status est = fs::status(e, eec);
        if (fs::is_regular_file(est)) {
          addFile(e);
        } else if (!fs::exists(est)) {
          errors.push_back(fileError(e, "broken symbolic link"));
        } else if (!fs::is_directory(est)) {
          // Skipped, the resources it stands for would be pruned: fail closed instead.
          errors.push_back(
              fileError(e, "not a regular file (a FIFO, socket or device cannot be read)"));
        }
        // Directories with a .yaml name are not sources (not recursive).
      }
      continue;
    }
    if (!fs::is_regular_file(st)) {
      errors.push_back(fileError(path, "not a regular file or directory"));
      continue;
    }
    addFile(path);
  }
  return files;
}

// Appends `part` to `all`. A kind/name defined twice is not an error here: each definition may
// be for other nodes; Engine::prepare checks duplicates among those selected for this node.
void merge(LoadResult& all, LoadResult part) {
  for (auto& e : part.errors) all.errors.push_back(std::move(e));
  for (auto& r : part.resources) all.resources.push_back(std::move(r));
}

// Every source file and its text, in load order; files that cannot be read go to `errors`.
std::vector<std::pair<fs::path, std::string>> readSources(const std::vector<fs::path>& paths,
                                                          std::vector<Error>& errors) {
  std::vector<std::pair<fs::path, std::string>> out;
  for (const auto& file : collectFiles(paths, errors)) {
    auto text = readFile(file, kMaxFileBytes, "split it into several files");
    if (!text) {
      errors.push_back(std::move(text.error()));
      continue;
    }
    out.emplace_back(file, std::move(*text));
  }
  return out;
}

// Parses and merges `texts`, freeing each text once parsed.
LoadResult parseAll(std::vector<std::pair<fs::path, std::string>> texts,
                    std::vector<Error> errors) {
  LoadResult all;
  all.errors = std::move(errors);
  for (auto& [file, text] : texts) {
    all.files.push_back(file);
    merge(all, parseYaml(text, file.string()));
    std::string().swap(text);
  }
  return all;
}

}  // namespace

bool isIgnoredName(std::string_view fileName) {
  if (auto slash = fileName.find_last_of('/'); slash != std::string_view::npos) {
    fileName.remove_prefix(slash + 1);
  }
  if (fileName.empty() || fileName.front() == '.' || fileName.back() == '~') return true;
  if (fileName.ends_with(".swp") || fileName.ends_with(".tmp")) return true;
  return !(fileName.ends_with(".yaml") || fileName.ends_with(".yml"));
}

Result<std::string> readFile(const fs::path& path, std::uintmax_t limit, const std::string& hint) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return std::unexpected(fileError(path, std::string("cannot read: ") + std::strerror(errno)));
  }
  std::string text;
  char buf[65536];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<std::size_t>(in.gcount()));
    if (text.size() > limit) {
      return std::unexpected(fileError(path,
                                       "file is larger than the limit of " + std::to_string(limit) +
                                           " bytes (" + std::to_string(limit >> 20) + " MiB)",
                                       hint));
    }
  }
  if (in.bad()) return std::unexpected(fileError(path, "read error"));
  return text;
}

LoadResult loadSources(const std::vector<fs::path>& paths) {
  std::vector<Error> errors;
  auto texts = readSources(paths, errors);
  return parseAll(std::move(texts), std::move(errors));
}

std::optional<LoadResult> SourceCache::loadIfChanged(const std::vector<fs::path>& paths) {
  parsedLastTime_ = 0;
  std::vector<Error> errors;
  auto texts = readSources(paths, errors);
  std::vector<std::pair<fs::path, std::uint64_t>> hashes;
  for (const auto& [file, text] : texts)
    hashes.emplace_back(file, std::hash<std::string_view>{}(text));
  // Errors are reported again on every pass until the files are fixed.
  if (loaded_ && errors.empty() && !lastHadErrors_ && hashes == hashes_) return std::nullopt;
  hashes_ = std::move(hashes);
  parsedLastTime_ = texts.size();
  LoadResult all = parseAll(std::move(texts), std::move(errors));
  loaded_ = true;
  lastHadErrors_ = !all.errors.empty();
  return all;
}

}  // namespace nodeplane
