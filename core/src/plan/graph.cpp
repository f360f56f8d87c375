#include "graph.hpp"

#include <map>

namespace nodeplane {
namespace {

void collect(const Json& spec, const std::vector<FieldSchema>& fields, const std::string& prefix,
             std::vector<Reference>& out) {
  if (!spec.is_object()) return;
  for (const auto& f : fields) {
    auto it = spec.find(f.name);
    if (it == spec.end() || it->is_null()) continue;
    const std::string path = prefix.empty() ? f.name : prefix + "." + f.name;
    if (!f.references.empty()) {
      if (it->is_string()) out.push_back({path, {f.references, it->get<std::string>()}});
      if (it->is_array()) {
        for (std::size_t i = 0; i < it->size(); ++i)
          if ((*it)[i].is_string())
            out.push_back({path + "[" + std::to_string(i) + "]",
                           {f.references, (*it)[i].get<std::string>()}});
      }
    }
    if (f.type == FieldType::kObject) collect(*it, f.fields, path, out);
    if (f.type == FieldType::kObjectList && it->is_array())
      for (std::size_t i = 0; i < it->size(); ++i)
        collect((*it)[i], f.fields, path + "[" + std::to_string(i) + "]", out);
  }
}

}  // namespace

std::vector<Reference> referencesOf(const Json& spec, const std::vector<FieldSchema>& fields) {
  std::vector<Reference> out;
  collect(spec, fields, "", out);
  return out;
}

Graph buildGraph(const std::vector<Resource>& resources, const SchemaLookup& schema,
                 std::vector<Error>& errors) {
  Graph g;
  g.deps.resize(resources.size());
  std::map<ResourceId, std::size_t> index;
  for (std::size_t i = 0; i < resources.size(); ++i) index.emplace(resources[i].id, i);

  for (std::size_t i = 0; i < resources.size(); ++i) {
    const auto& r = resources[i];
    const KindSchema* ks = schema(r.id.kind);
    if (!ks) continue;
    for (const auto& ref : referencesOf(r.spec, ks->spec)) {
      auto it = index.find(ref.target);
      if (it == index.end()) {
        errors.push_back(r.error(
            ErrorKind::kInvalidInput, "spec." + ref.field,
            ref.target.kind + " \"" + ref.target.name + "\" is not defined in the desired state",
            "define " + ref.target.str() + " or fix the name"));
        continue;
      }
      if (it->second == i) {
        errors.push_back(r.error(ErrorKind::kInvalidInput, "spec." + ref.field,
                                 "dependency cycle: " + r.id.str() + " refers to itself"));
        continue;
      }
      g.deps[i].push_back(it->second);
    }
    // metadata.dependsOn, and what expand() set: edges like references.
    for (std::size_t k = 0; k < r.dependsOn.size(); ++k) {
      const ResourceId& target = r.dependsOn[k];
      const std::string field = "metadata.dependsOn[" + std::to_string(k) + "]";
      auto it = index.find(target);
      if (it == index.end()) {
        errors.push_back(
            r.error(ErrorKind::kInvalidInput, field,
                    target.kind + " \"" + target.name + "\" is not defined in the desired state",
                    "define " + target.str() + " or fix the name"));
        continue;
      }
      if (it->second == i) {
        errors.push_back(r.error(ErrorKind::kInvalidInput, field,
                                 "dependency cycle: " + r.id.str() + " depends on itself"));
        continue;
      }
      g.deps[i].push_back(it->second);
    }
  }

  // An owner (a VM) is applied after the children it expanded to (its devices, its tap) and
  // deleted before them, unless a child uses its owner (then the child's own edge stands).
  auto reaches = [&](std::size_t from, std::size_t to) {
    std::vector<bool> seen(resources.size(), false);
    std::vector<std::size_t> todo{from};
    while (!todo.empty()) {
      std::size_t n = todo.back();
      todo.pop_back();
      if (n == to) return true;
      if (seen[n]) continue;
      seen[n] = true;
      for (std::size_t d : g.deps[n]) todo.push_back(d);
    }
    return false;
  };
  for (std::size_t i = 0; i < resources.size(); ++i) {
    if (!resources[i].owner) continue;
    auto it = index.find(*resources[i].owner);
    if (it == index.end() || it->second == i || reaches(i, it->second)) continue;
    g.deps[it->second].push_back(i);
  }

  // Depth-first topological sort; a back edge is a cycle, reported once with its path.
  enum class Mark { kNone, kActive, kDone };
  std::vector<Mark> mark(resources.size(), Mark::kNone);
  std::vector<std::size_t> stack;
  bool cyclic = false;
  std::function<void(std::size_t)> visit = [&](std::size_t i) {
    mark[i] = Mark::kActive;
    stack.push_back(i);
    for (std::size_t d : g.deps[i]) {
      if (mark[d] == Mark::kActive) {
        std::string path;
        bool on = false;
        for (std::size_t s : stack) {
          if (s == d) on = true;
          if (on) path += resources[s].id.str() + " -> ";
        }
        path += resources[d].id.str();
        errors.push_back(
            resources[d].error(ErrorKind::kInvalidInput, "", "dependency cycle: " + path));
        cyclic = true;
      } else if (mark[d] == Mark::kNone) {
        visit(d);
      }
    }
    stack.pop_back();
    mark[i] = Mark::kDone;
    g.order.push_back(i);
  };
  for (std::size_t i = 0; i < resources.size(); ++i)
    if (mark[i] == Mark::kNone) visit(i);
  if (cyclic) g.order.clear();
  return g;
}

}  // namespace nodeplane
