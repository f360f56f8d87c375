// parseYaml: one file's text -> Resources, checking the envelope of every document.
#include "loader.hpp"

#include <algorithm>
#include <utility>

#include "validate.hpp"
#include "yaml_events.hpp"
#include "yaml_scalar.hpp"

namespace nodeplane {
namespace {

constexpr std::size_t kMaxFileBytes = 16 * 1024 * 1024;

const std::vector<std::string> kTopLevelKeys = {"apiVersion", "kind", "metadata", "spec"};
const std::vector<std::string> kMetadataKeys = {"name",  "nodes",          "nodeSelector",
                                                "adopt", "deletionPolicy", "dependsOn"};

std::string quote(const std::string& s) { return "\"" + s + "\""; }

// Checks one document's envelope; fills `r` and returns true when it is a usable resource.
class EnvelopeChecker {
 public:
  EnvelopeChecker(yaml::Document& doc, std::vector<Error>& errors) : doc_(doc), errors_(errors) {}

  bool check(Resource& r) {
    Json& v = doc_.value;
    if (!v.is_object()) {
      std::string what = v.is_array() ? "a list" : describeValue(v);
      add(doc_.where, "",
          "document " + std::to_string(doc_.index) + " is not a mapping (found " + what + ")",
          "a document is a mapping with apiVersion, kind, metadata and spec");
      return false;
    }
    // The resource id first, so every other error of the document can name it.
    const Json* kind = find(v, "kind");
    const Json* metadata = find(v, "metadata");
    const Json* name = metadata && metadata->is_object() ? find(*metadata, "name") : nullptr;
    bool kindOk = kind && kind->is_string() && !kind->get_ref<const std::string&>().empty();
    bool nameOk = name && name->is_string() && !name->get_ref<const std::string&>().empty();
    if (kindOk && nameOk) {
      resource_ = kind->get<std::string>() + "/" + name->get<std::string>();
    }
    for (auto& e : doc_.errors) e.resource = resource_;

    r.where = doc_.where;
    if (auto it = doc_.locations.find("kind"); it != doc_.locations.end()) r.where = it->second;

    bool ok = kindOk && nameOk;
    for (const auto& [key, value] : v.items()) {
      if (std::find(kTopLevelKeys.begin(), kTopLevelKeys.end(), key) == kTopLevelKeys.end()) {
        unknownKey(key, key, kTopLevelKeys);
      }
    }
    ok = apiVersion(find(v, "apiVersion")) && ok;
    if (!kind) {
      add(doc_.where, "kind", "missing kind", "every document needs kind: (e.g. Bridge)");
    } else if (!kindOk) {
      add(at("kind"), "kind", "kind must be a non-empty string, got " + describeValue(*kind));
    }
    ok = checkMetadata(metadata, nameOk, r) && ok;
    ok = checkSpec(v, r) && ok;
    if (!ok) return false;
    r.id = ResourceId{kind->get<std::string>(), name->get<std::string>()};
    return true;
  }

 private:
  static const Json* find(const Json& obj, const char* key) {
    auto it = obj.find(key);
    return it == obj.end() ? nullptr : &*it;
  }

  SourceLocation at(const std::string& path) const {
    std::string p = path;
    while (!p.empty()) {
      if (auto it = doc_.locations.find(p); it != doc_.locations.end()) return it->second;
      auto cut = p.find_last_of(".[");
      if (cut == std::string::npos) break;
      p.resize(cut);
    }
    return doc_.where;
  }

  void add(SourceLocation where, std::string field, std::string message, std::string hint = {}) {
    Error e;
    e.kind = ErrorKind::kInvalidInput;
    e.resource = resource_;
    e.where = std::move(where);
    e.field = std::move(field);
    e.message = std::move(message);
    e.hint = std::move(hint);
    errors_.push_back(std::move(e));
  }

  void unknownKey(const std::string& path, const std::string& key,
                  const std::vector<std::string>& known) {
    std::string list;
    for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
    std::string close = closestName(key, known);
    add(at(path), path, "unknown field " + quote(key) + " (known: " + list + ")",
        close.empty() ? "" : "did you mean " + quote(close) + "?");
  }

  bool apiVersion(const Json* v) {
    std::string want(kApiVersion);
    if (!v) {
      add(doc_.where, "apiVersion", "missing apiVersion (expected " + quote(want) + ")",
          "add apiVersion: " + want);
      return false;
    }
    if (v->is_string() && v->get_ref<const std::string&>() == want) return true;
    add(at("apiVersion"), "apiVersion",
        "apiVersion is " + describeValue(*v) + ", expected " + quote(want));
    return false;
  }

  bool checkMetadata(const Json* m, bool nameOk, Resource& r) {
    if (!m) {
      add(doc_.where, "metadata.name", "missing metadata.name",
          "add metadata: {name: ...} to the document");
      return false;
    }
    if (!m->is_object()) {
      add(at("metadata"), "metadata", "metadata must be a mapping, got " + describeValue(*m));
      return false;
    }
    bool ok = nameOk;
    for (const auto& [key, value] : m->items()) {
      std::string path = "metadata." + key;
      if (key == "name") {
        if (!nameOk) {
          add(at(path), path,
              "metadata.name must be a non-empty string, got " + describeValue(value));
        }
      } else if (key == "nodes") {
        ok = stringList(value, path, r.nodes) && ok;
      } else if (key == "nodeSelector") {
        ok = stringMap(value, path, r.nodeSelector) && ok;
      } else if (key == "adopt") {
        if (value.is_boolean()) {
          r.adopt = value.get<bool>();
        } else {
          add(at(path), path, "expected true or false, got " + describeValue(value),
              value.is_string() ? "write it without quotes" : "");
          ok = false;
        }
      } else if (key == "deletionPolicy") {
        if (value == "Delete") {
          r.deletionPolicy = DeletionPolicy::kDelete;
        } else if (value == "Orphan") {
          r.deletionPolicy = DeletionPolicy::kOrphan;
        } else {
          std::string close =
              value.is_string() ? closestName(value.get<std::string>(), {"Delete", "Orphan"}) : "";
          add(at(path), path,
              describeValue(value) +
                  " is not a deletion policy (expected Delete or Orphan: what happens to the "
                  "object when its resource leaves the desired state)",
              close.empty() ? "" : "did you mean " + quote(close) + "?");
          ok = false;
        }
      } else if (key == "dependsOn") {
        ok = dependsOn(value, path, r.dependsOn) && ok;
      } else {
        unknownKey(path, key, kMetadataKeys);
      }
    }
    if (!m->contains("name")) {
      add(at("metadata"), "metadata.name", "missing metadata.name");
    }
    return ok;
  }

  bool stringList(const Json& v, const std::string& path, std::vector<std::string>& out) {
    if (!v.is_array()) {
      add(at(path), path, "expected a list of strings, got " + describeValue(v));
      return false;
    }
    bool ok = true;
    for (std::size_t i = 0; i < v.size(); ++i) {
      std::string p = path + "[" + std::to_string(i) + "]";
      if (!v[i].is_string()) {
        add(at(p), p, "expected a string, got " + describeValue(v[i]));
        ok = false;
      } else {
        out.push_back(v[i].get<std::string>());
      }
    }
    return ok;
  }

  // metadata.dependsOn: [Kind/name, ...]. Whether each names a defined resource is the graph's
  // to say (graph.cpp), once every file is read.
  bool dependsOn(const Json& v, const std::string& path, std::vector<ResourceId>& out) {
    std::vector<std::string> names;
    if (!stringList(v, path, names)) return false;
    bool ok = true;
    for (std::size_t i = 0; i < names.size(); ++i) {
      const std::string& s = names[i];
      const auto slash = s.find('/');
      if (slash == std::string::npos || slash == 0 || slash + 1 == s.size() ||
          s.find('/', slash + 1) != std::string::npos) {
        std::string p = path + "[" + std::to_string(i) + "]";
        add(at(p), p, "expected Kind/name (e.g. Bridge/br0), got " + quote(s));
        ok = false;
        continue;
      }
      out.push_back({s.substr(0, slash), s.substr(slash + 1)});
    }
    return ok;
  }

  bool stringMap(const Json& v, const std::string& path, std::map<std::string, std::string>& out) {
    if (!v.is_object()) {
      add(at(path), path, "expected a mapping of strings to strings, got " + describeValue(v));
      return false;
    }
    bool ok = true;
    for (const auto& [key, value] : v.items()) {
      std::string p = path + "." + key;
      if (!value.is_string()) {
        add(at(p), p, "expected a string, got " + describeValue(value),
            value.is_primitive() ? "quote the value" : "");
        ok = false;
      } else {
        out.emplace(key, value.get<std::string>());
      }
    }
    return ok;
  }

  bool checkSpec(Json& v, Resource& r) {
    auto it = v.find("spec");
    if (it == v.end() || it->is_null()) return true;  // absent or `spec:` alone: empty
    if (!it->is_object()) {
      add(at("spec"), "spec", "spec must be a mapping, got " + describeValue(*it));
      return false;
    }
    r.spec = std::move(*it);
    return true;
  }

  yaml::Document& doc_;
  std::vector<Error>& errors_;
  std::string resource_;
};

}  // namespace

LoadResult parseYaml(std::string_view text, const std::string& fileName) {
  LoadResult out;
  auto fileError = [&](int line, int column, std::string message, std::string hint = {}) {
    Error e;
    e.kind = ErrorKind::kInvalidInput;
    e.where = SourceLocation{fileName, line, column};
    e.message = std::move(message);
    e.hint = std::move(hint);
    out.errors.push_back(std::move(e));
  };
  if (text.size() > kMaxFileBytes) {
    fileError(0, 0,
              "file is " + std::to_string(text.size()) + " bytes, more than the limit of " +
                  std::to_string(kMaxFileBytes) + " (16 MiB)",
              "split it into several files");
    return out;
  }
  if (auto p = yaml::checkEncoding(text); !p.message.empty()) {
    fileError(p.line, p.column, p.message);
    return out;
  }
  // yaml-cpp misreads tab indentation or blames another line: report every such line and stop.
  if (auto tabs = yaml::findTabIndentation(text); !tabs.empty()) {
    for (auto& t : tabs) fileError(t.line, t.column, t.message, "indent with spaces");
    return out;
  }

  yaml::Stream stream = yaml::parseStream(text, fileName);
  for (auto& doc : stream.documents) {
    if (doc.value.is_null() && doc.errors.empty()) continue;  // empty document, e.g. a trailing ---
    Resource r;
    std::vector<Error> envelope;
    bool ok = EnvelopeChecker(doc, envelope).check(r);
    for (auto& e : doc.errors) out.errors.push_back(std::move(e));
    for (auto& e : envelope) out.errors.push_back(std::move(e));
    if (!ok) continue;
    r.locations = std::move(doc.locations);
    out.resources.push_back(std::move(r));
  }
  for (auto& e : stream.errors) out.errors.push_back(std::move(e));
  std::stable_sort(out.errors.begin(), out.errors.end(), [](const Error& a, const Error& b) {
    return std::pair(a.where.line, a.where.column) < std::pair(b.where.line, b.where.column);
  });
  return out;
}

}  // namespace nodeplane
