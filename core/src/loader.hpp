// Loading desired-state files: YAML text -> Resources, with every field's file:line:column.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
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

// The daemon's loader: re-parses only files whose content hash changed since the last call.
class SourceCache {
 public:
  // The merged result, rebuilt only when a file changed, appeared or went away.
  const LoadResult& load(const std::vector<std::filesystem::path>& paths);
  std::size_t parsedLastTime() const { return parsedLastTime_; }  // files actually re-parsed
  // False when the last load() found every file as it was: the caller may reuse what it made of
  // the previous result (the daemon keeps its validated desired state).
  bool changedLastTime() const { return changedLastTime_; }

 private:
  struct Entry {
    std::uint64_t hash = 0;
    LoadResult result;
  };
  std::map<std::filesystem::path, Entry> entries_;
  std::optional<LoadResult> merged_;
  std::size_t parsedLastTime_ = 0;
  bool changedLastTime_ = true;
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
