#include "diff.hpp"

#include <string>

#include "sensitive.hpp"

namespace nodeplane {
namespace {

void diffInto(const Json& desired, const Json& observed, const std::vector<FieldSchema>& fields,
              const std::string& prefix, bool parentForcesReplace, bool parentForcesRestart,
              std::vector<FieldChange>& out) {
  for (const auto& f : fields) {
    if (!f.compared) continue;
    auto d = desired.find(f.name);
    if (d == desired.end() || d->is_null()) continue;  // unset: don't care
    const std::string path = prefix.empty() ? f.name : prefix + "." + f.name;
    const Json o = observed.is_object() && observed.contains(f.name) ? observed.at(f.name) : Json();
    const bool replace = parentForcesReplace || f.forcesReplace;
    const bool restart = parentForcesRestart || f.forcesRestart;
    if (f.type == FieldType::kObject && d->is_object() && !f.fields.empty() && !f.sensitive) {
      diffInto(*d, o.is_object() ? o : Json::object(), f.fields, path, replace, restart, out);
      continue;
    }
    if (*d == o) continue;
    if (f.sensitive && matchesObservedDigest(*d, o)) continue;
    if (f.sensitive)
      out.push_back(
          {path, Json(), Json(), replace, true, restart});  // what differs, never the values
    else
      out.push_back({path, o, *d, replace, false, restart});
  }
}

}  // namespace

std::vector<FieldChange> diffSpec(const Json& desired, const Json& observed,
                                  const std::vector<FieldSchema>& fields) {
  std::vector<FieldChange> out;
  diffInto(desired, observed, fields, "", false, false, out);
  return out;
}

}  // namespace nodeplane
