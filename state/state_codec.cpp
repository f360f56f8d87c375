#include "state_codec.hpp"

#include <string_view>

#include "json_fields.hpp"

namespace nodeplane::state::detail {

namespace {

Json idJson(const ResourceId& id) { return Json{{"kind", id.kind}, {"name", id.name}}; }

Error corrupt(const std::filesystem::path& path, const std::string& what) {
  Error e;
  e.kind = ErrorKind::kTerminal;
  e.message = "state file " + path.string() + " is unusable: " + what +
              "; it was not treated as empty, since nodeplane would then forget what it owns";
  const auto bak = path.string() + ".bak";
  e.hint = "restore the previous version from " + bak +
           " if it is good, or move the file aside, knowing that nodeplane will then recognise "
           "its objects only by the marks on them (labels, unit names, interface aliases) and "
           "forget what it must undo";
  return e;
}

// nlohmann's "[json.exception.parse_error.101] parse error at line 1, column 5: ..." without the
// bracketed id.
std::string parseMessage(const std::exception& ex) {
  std::string_view m = ex.what();
  if (m.starts_with("[json.exception.")) {
    if (auto close = m.find("] "); close != std::string_view::npos) m.remove_prefix(close + 2);
  }
  return std::string(m);
}

// The document with each element of its arrays on a line of its own: still readable and
// greppable, a third smaller than an indented dump (2.8 MB for 10 000 resources indented), and
// the store rewrites it after every pass that changed something.
std::string dumpOnePerLine(const Json& doc) {
  std::string out = "{";
  bool first = true;
  for (const auto& [key, value] : doc.items()) {
    out += first ? "\n" : ",\n";
    first = false;
    out += Json(key).dump() + ": ";
    if (!value.is_array() || value.empty()) {
      out += value.dump();
      continue;
    }
    out += "[";
    for (std::size_t i = 0; i < value.size(); ++i) out += (i ? ",\n  " : "\n  ") + value[i].dump();
    out += "\n]";
  }
  return out + "\n}\n";
}

}  // namespace

Result<std::string> encodeState(const std::map<ResourceId, OwnedObject>& owned,
                                const std::map<ResourceId, ResourceResult>& results) {
  try {
    Json o = Json::array();
    for (const auto& [id, obj] : owned) {
      Json j = {{"kind", id.kind},
                {"name", id.name},
                {"plugin", obj.plugin},
                {"undo", obj.undo.is_null() ? Json::object() : obj.undo},
                {"since", obj.since}};
      if (obj.owner) j["owner"] = idJson(*obj.owner);
      if (obj.adopted) j["adopted"] = true;
      if (obj.deletionPolicy != DeletionPolicy::kDefault)
        j["deletionPolicy"] = obj.deletionPolicy == DeletionPolicy::kDelete ? "Delete" : "Orphan";
      if (!obj.dependsOn.empty()) {
        j["dependsOn"] = Json::array();
        for (const auto& d : obj.dependsOn) j["dependsOn"].push_back(idJson(d));
      }
      o.push_back(std::move(j));
    }
    Json r = Json::array();
    for (const auto& [id, res] : results) {
      r.push_back({{"kind", id.kind},
                   {"name", id.name},
                   {"outcome", res.outcome},
                   {"message", res.message},
                   {"at", res.at}});
    }
    Json doc = {{"version", kStateVersion}, {"owned", std::move(o)}, {"results", std::move(r)}};
    return dumpOnePerLine(doc);
  } catch (const std::exception& ex) {
    Error e;
    e.kind = ErrorKind::kTerminal;
    e.message = std::string("cannot encode the state: ") + ex.what();
    return std::unexpected(e);
  }
}

Result<StateData> decodeState(std::string_view text, const std::filesystem::path& path) {
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    return std::unexpected(corrupt(path, "the file is empty (a crash or a full disk?)"));
  }
  Json doc;
  try {
    doc = Json::parse(text);
  } catch (const std::exception& ex) {
    return std::unexpected(corrupt(path, "not valid JSON (truncated?): " + parseMessage(ex)));
  }
  try {
    FieldReader r;
    if (!r.object(doc, "")) return std::unexpected(corrupt(path, "the top level " + r.problem()));
    auto v = doc.find("version");
    if (v == doc.end()) return std::unexpected(corrupt(path, "no \"version\" field"));
    if (!v->is_number_integer() || v->get<std::int64_t>() != kStateVersion) {
      return std::unexpected(corrupt(path, "version " + v->dump() +
                                               " is not one this nodeplane reads (it reads " +
                                               std::to_string(kStateVersion) + ")"));
    }
    r.onlyKeys(doc, {"version", "owned", "results"}, "");

    StateData out;
    auto list = [&](const char* key) -> const Json* {
      auto it = doc.find(key);
      if (it == doc.end()) {
        r.fail(std::string(key) + ": missing");
        return nullptr;
      }
      if (!it->is_array()) {
        r.fail(std::string(key) + ": expected an array, found " + it->type_name());
        return nullptr;
      }
      return &*it;
    };

    if (const Json* owned = list("owned")) {
      for (size_t i = 0; i < owned->size() && r.ok(); ++i) {
        const Json& j = (*owned)[i];
        const auto p = "owned[" + std::to_string(i) + "]";
        if (!r.object(j, p)) break;
        r.onlyKeys(j,
                   {"kind", "name", "plugin", "owner", "dependsOn", "undo", "since", "adopted",
                    "deletionPolicy"},
                   p);
        OwnedObject o;
        o.id = {r.str(j, "kind", p, true), r.str(j, "name", p, true)};
        o.plugin = r.str(j, "plugin", p, true);
        o.owner = r.optionalId(j, "owner", p);
        if (auto d = j.find("dependsOn"); d != j.end()) {
          const auto dp = p + ".dependsOn";
          if (!d->is_array()) {
            r.fail(dp + ": expected an array, found " + d->type_name());
          } else {
            for (std::size_t k = 0; k < d->size() && r.ok(); ++k) {
              const auto kp = dp + "[" + std::to_string(k) + "]";
              if (!r.object((*d)[k], kp)) break;
              r.onlyKeys((*d)[k], {"kind", "name"}, kp);
              o.dependsOn.push_back(
                  {r.str((*d)[k], "kind", kp, true), r.str((*d)[k], "name", kp, true)});
            }
          }
        }
        if (auto u = j.find("undo"); u != j.end()) o.undo = *u;
        o.since = r.str(j, "since", p);
        if (auto a = j.find("adopted"); a != j.end()) {
          if (a->is_boolean())
            o.adopted = a->get<bool>();
          else
            r.fail(p + ".adopted: expected a boolean, found " + a->type_name());
        }
        if (j.contains("deletionPolicy")) {
          const auto policy = r.str(j, "deletionPolicy", p);
          if (policy == "Delete")
            o.deletionPolicy = DeletionPolicy::kDelete;
          else if (policy == "Orphan")
            o.deletionPolicy = DeletionPolicy::kOrphan;
          else if (r.ok())
            r.fail(p + ".deletionPolicy: expected \"Delete\" or \"Orphan\", found \"" + policy +
                   "\"");
        }
        if (r.ok() && out.owned.count(o.id)) r.fail(p + ": " + o.id.str() + " listed twice");
        if (r.ok()) out.owned.emplace(o.id, std::move(o));
      }
    }
    if (const Json* results = list("results"); results && r.ok()) {
      for (size_t i = 0; i < results->size() && r.ok(); ++i) {
        const Json& j = (*results)[i];
        const auto p = "results[" + std::to_string(i) + "]";
        if (!r.object(j, p)) break;
        r.onlyKeys(j, {"kind", "name", "outcome", "message", "at"}, p);
        ResourceResult res;
        res.id = {r.str(j, "kind", p, true), r.str(j, "name", p, true)};
        res.outcome = r.str(j, "outcome", p, true);
        res.message = r.str(j, "message", p);
        res.at = r.str(j, "at", p);
        if (r.ok() && out.results.count(res.id)) r.fail(p + ": " + res.id.str() + " listed twice");
        if (r.ok()) out.results.emplace(res.id, std::move(res));
      }
    }
    if (!r.ok()) return std::unexpected(corrupt(path, r.problem()));
    return out;
  } catch (const std::exception& ex) {
    // Not expected after the type checks above; kept so nothing escapes the store.
    return std::unexpected(corrupt(path, ex.what()));
  }
}

}  // namespace nodeplane::state::detail
