// The dependency graph of the desired resources, built from the schema's `references` fields
// (a Vxlan's or Tap's `bridge:` names a Bridge), from Resource::dependsOn (metadata.dependsOn,
// and what expand() set), and from owners: an owner depends on the children it expanded to,
// unless a child uses its owner.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "nodeplane/error.hpp"
#include "nodeplane/resource.hpp"
#include "nodeplane/schema.hpp"

namespace nodeplane {

using SchemaLookup = std::function<const KindSchema*(const std::string& kind)>;

struct Reference {
  std::string field;  // "bridge", "network.bridge", "vgpus[1]"
  ResourceId target;
};

// Every reference a spec makes, by its kind's schema.
std::vector<Reference> referencesOf(const Json& spec, const std::vector<FieldSchema>& fields);

struct Graph {
  std::vector<std::vector<std::size_t>> deps;  // deps[i]: indices resource i depends on
  std::vector<std::size_t> order;              // dependencies first; empty if there is a cycle
};

// Builds the graph over `resources`. Appends an error for every reference or dependsOn entry to a
// resource that is not in the set and for every cycle (each with file:line and field path).
Graph buildGraph(const std::vector<Resource>& resources, const SchemaLookup& schema,
                 std::vector<Error>& errors);

}  // namespace nodeplane
