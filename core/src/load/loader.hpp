// Loading desired-state files: YAML text -> Resources, with every field's file:line:column.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "nodeplane/error.hpp"
#include "nodeplane/resource.hpp"

namespace nodeplane {

struct LoadResult {
  std::vector<Resource> resources;
  std::vector<Error> errors;                 // every problem found, each with file:line
  std::vector<std::filesystem::path> files;  // the files that were read, in order
};

// Parses one file's text (multi-document). Checks the envelope of every document:
// mapping, apiVersion == nodeplane.io/v1, kind (string), metadata.name (string),
// metadata.nodes / metadata.nodeSelector, spec (mapping), no unknown top-level/metadata keys,
// no duplicate keys anywhere, no tabs, bounded alias expansion, UTF-8 text.
// Spec fields are not checked against a schema here (see validate.hpp).
LoadResult parseYaml(std::string_view text, const std::string& fileName);

// True for names the loader skips: dotfiles (incl. ..data), *~, *.swp, *.tmp, non-.yaml/.yml.
bool isIgnoredName(std::string_view fileName);

// Loads every source: a file is read whatever its name; a directory contributes its *.yaml/*.yml
// entries (not recursive, sorted by name, symlinks followed, ignored names skipped). A path that
// does not exist is an error.
LoadResult loadSources(const std::vector<std::filesystem::path>& paths);

// The whole of `path`, or an error with the reason (and `hint`) when it cannot be read or holds
// more than `limit` bytes (read no further: a huge file costs no memory).
Result<std::string> readFile(const std::filesystem::path& path, std::uintmax_t limit,
                             const std::string& hint);

// The daemon's loader. It keeps only each file's content hash between calls, never the parsed
// resources (with every field's location they are most of an idle daemon's memory, see
// bench/README.md): when anything changed, every file is parsed again.
class SourceCache {
 public:
  // The merged result of `paths` when a file changed, appeared or went away since the last
  // call, or the last call found errors (reported again until fixed); std::nullopt when every
  // file is as it was, so the caller keeps what it made of the previous result.
  std::optional<LoadResult> loadIfChanged(const std::vector<std::filesystem::path>& paths);
  std::size_t parsedLastTime() const { return parsedLastTime_; }  // files parsed by the last call

 private:
  std::vector<std::pair<std::filesystem::path, std::uint64_t>> hashes_;  // in load order
  bool loaded_ = false;
  bool lastHadErrors_ = false;
  std::size_t parsedLastTime_ = 0;
};

}  // namespace nodeplane

namespace nodeplane {
// Multi-document YAML for `export`: each element a whole document
// ({apiVersion, kind, metadata, spec}). Strings that would read back as another type are quoted,
// so parseYaml() of the output yields the same values.
std::string emitYamlDocuments(const std::vector<Json>& documents);
// Why `document` would not read back through emitYamlDocuments() and parseYaml() as the same
// kind, name and spec (text that is not UTF-8, anything the loader refuses), or nullopt.
std::optional<std::string> exportProblem(const Json& document);
}  // namespace nodeplane
