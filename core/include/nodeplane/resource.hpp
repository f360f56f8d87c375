// A desired resource as the core hands it to plugins: kind, name, spec (as JSON, only the fields
// the file set) and where every field came from.
#pragma once

#include <compare>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "nodeplane/error.hpp"

namespace nodeplane {

using Json = nlohmann::json;

inline constexpr std::string_view kApiVersion = "nodeplane.io/v1";

struct ResourceId {
  std::string kind;
  std::string name;

  std::string str() const { return kind + "/" + name; }
  auto operator<=>(const ResourceId&) const = default;
  bool operator==(const ResourceId&) const = default;
};

// What happens to an owned object when its resource leaves the desired state.
enum class DeletionPolicy {
  kDefault,  // Delete for what nodeplane created, Orphan for what it adopted
  kDelete,   // delete it from the host
  kOrphan,   // remove the ownership mark, leave it in place
};

struct Resource {
  ResourceId id;
  Json spec = Json::object();  // only the fields the source set; unset = don't care
  SourceLocation where;        // the document (its `kind:` line)
  // Field path ("spec.mtu", "spec.addresses[1]", "metadata.name") -> where it was written.
  std::map<std::string, SourceLocation> locations;
  std::vector<std::string> nodes;                   // metadata.nodes (hostname globs)
  std::map<std::string, std::string> nodeSelector;  // metadata.nodeSelector
  std::optional<ResourceId> owner;                  // set on children made by expand()
  bool adopt = false;                               // metadata.adopt: take over an unmarked object
  DeletionPolicy deletionPolicy = DeletionPolicy::kDefault;  // metadata.deletionPolicy
  // metadata.dependsOn, and what expand() says: applied after these, deleted before them.
  std::vector<ResourceId> dependsOn;

  // The most precise known location of `path`: the path itself, else its nearest parent, else
  // the document.
  SourceLocation locate(std::string_view path) const {
    std::string p(path);
    while (!p.empty()) {
      if (auto it = locations.find(p); it != locations.end()) return it->second;
      auto cut = p.find_last_of(".[");
      if (cut == std::string::npos) break;
      p.resize(cut);
    }
    return where;
  }

  // An error about this resource, located at `field` when known.
  Error error(ErrorKind kind, std::string field, std::string message, std::string hint = {}) const {
    Error e;
    e.kind = kind;
    e.resource = id.str();
    e.where = locate(field);
    e.field = std::move(field);
    e.message = std::move(message);
    e.hint = std::move(hint);
    return e;
  }
};

}  // namespace nodeplane
