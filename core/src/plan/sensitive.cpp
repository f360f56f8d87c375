#include "sensitive.hpp"

#include <map>

#include "nodeplane/digest.hpp"
#include "nodeplane/text.hpp"

namespace nodeplane {
namespace {

void collect(const std::vector<FieldSchema>& fields, const std::string& prefix,
             std::vector<std::string>& out) {
  for (const auto& f : fields) {
    const std::string path = prefix.empty() ? f.name : prefix + "." + f.name;
    if (f.sensitive)
      out.push_back(path);
    else if (f.type == FieldType::kObject)
      collect(f.fields, path, out);
  }
}

// The value at a dotted path of `spec`, or null when it is not set.
Json* at(Json& spec, const std::string& path) {
  Json* v = &spec;
  std::size_t start = 0;
  for (;;) {
    const auto dot = path.find('.', start);
    const std::string key = path.substr(start, dot == std::string::npos ? dot : dot - start);
    if (!v->is_object()) return nullptr;
    auto it = v->find(key);
    if (it == v->end()) return nullptr;
    v = &*it;
    if (dot == std::string::npos) return v;
    start = dot + 1;
  }
}

}  // namespace

std::vector<std::string> sensitivePaths(const std::vector<FieldSchema>& fields) {
  std::vector<std::string> out;
  collect(fields, "", out);
  return out;
}

namespace {}  // namespace

Json sensitiveHash(const ResourceId& id, const std::string& path, const Json& value) {
  return Json{{"sensitive", "sha256:" + sha256Hex("nodeplane-sensitive-v1\n" + id.str() + "\n" +
                                                  path + "\n" + jsonText(value))}};
}

bool matchesObservedDigest(const Json& desired, const Json& observed) {
  if (!observed.is_object() || observed.size() != 1 || !observed.contains("sha256") ||
      !observed["sha256"].is_string())
    return false;
  return observed == observedDigest(desired);
}

std::string firstSensitiveValue(Json spec, const std::vector<std::string>& paths) {
  for (const auto& p : paths) {
    const Json* v = at(spec, p);
    if (!v || v->is_null()) continue;
    if ((v->is_object() || v->is_array() || v->is_string()) && v->empty()) continue;
    return p;
  }
  return "";
}

Json redactSensitive(Json spec, const ResourceId& id, const std::vector<std::string>& paths) {
  for (const auto& p : paths)
    if (Json* v = at(spec, p); v && !v->is_null()) *v = sensitiveHash(id, p, *v);
  return spec;
}

std::vector<Error> resolveSensitive(Plan& plan, const std::vector<Resource>* desired,
                                    const std::string& file) {
  std::vector<Error> out;
  std::map<ResourceId, const Resource*> byId;
  if (desired)
    for (const auto& r : *desired) byId[r.id] = &r;
  for (std::size_t i = 0; i < plan.entries.size(); ++i) {
    auto& e = plan.entries[i];
    if (e.sensitive.empty() || e.change.action == Action::kDelete ||
        e.change.action == Action::kRelease)
      continue;
    Error err;
    err.kind = ErrorKind::kInvalidInput;
    err.resource = e.change.id.str();
    err.where.file = file;
    const std::string step = "changes[" + std::to_string(i) + "]: ";
    auto r = byId.find(e.change.id);
    if (r == byId.end()) {
      err.message = step + "the plan holds its sensitive values only as hashes, and " +
                    (desired ? "the desired files given with -f do not define it"
                             : "no desired files were given to take them from");
      err.hint = "apply it with the desired files it was made from: `nodeplane apply --plan " +
                 file + " -f PATH...`";
      out.push_back(std::move(err));
      continue;
    }
    Json real = r->second->spec;
    for (const auto& p : e.sensitive) {
      Json* held = at(e.change.desired, p);
      Json* value = at(real, p);
      const bool heldSet = held && !held->is_null();
      const bool valueSet = value && !value->is_null();
      if (!heldSet && !valueSet) continue;
      if (heldSet && valueSet && *held == sensitiveHash(e.change.id, p, *value)) {
        *held = *value;
        continue;
      }
      err.field = "spec." + p;
      err.message = step + "the sensitive value of spec." + p +
                    " in the desired files is not the one the plan was made with";
      err.hint = "make a new plan from the files as they are now (`nodeplane --output json diff`)";
      out.push_back(err);
    }
  }
  return out;
}

}  // namespace nodeplane
