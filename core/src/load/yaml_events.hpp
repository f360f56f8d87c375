// YAML text -> JSON documents, built directly from yaml-cpp's parser events (no YAML::Node tree),
// with the file:line:column of every field path and the checks yaml-cpp does not do: duplicate
// keys, merge keys (`<<`), bounded alias expansion, key length and nesting depth, non-string keys,
// unsupported tags.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "nodeplane/error.hpp"
#include "nodeplane/resource.hpp"

namespace nodeplane::yaml {

struct Limits {
  // Bytes (estimated: each node, key and string counted) that alias expansion and anchors may
  // copy, per file. nlohmann::json values cannot share a subtree, so every alias is a copy, and so
  // is every anchor (kept for the aliases that may follow).
  std::size_t maxAliasBytes = 64 * 1024 * 1024;
  // Bytes (estimated the same way) of everything parsed from one file: values, field locations,
  // copies. A 16 MiB flow list of 1-digit numbers made 5.6 M values and as many locations (2 GB).
  std::size_t maxBytes = 256 * 1024 * 1024;
  std::size_t maxKeyBytes = 1024;  // one mapping key
  int maxDepth = 64;               // nesting of mappings and sequences
};

struct Document {
  int index = 0;                                    // 1-based position in the stream
  Json value;                                       // null for an empty document
  SourceLocation where;                             // start of the document's root node
  std::map<std::string, SourceLocation> locations;  // "metadata.name", "spec.addresses[1]", ...
  std::vector<Error> errors;  // duplicate keys, non-string keys, tags (the document is usable)
};

struct Stream {
  std::vector<Document> documents;  // every document that parsed
  std::vector<Error> errors;        // syntax errors and limits: each loses the rest of its document
};

// Parses every document of `text`. After a syntax error (yaml-cpp cannot go on) parsing resumes
// at the next `---` line; a large text is parsed in parts on several threads, cut at `---` lines.
// Does not check encoding or tabs (see yaml_scalar.hpp).
Stream parseStream(std::string_view text, const std::string& fileName, const Limits& limits = {});

}  // namespace nodeplane::yaml
