// check, status, export, plugins: the commands that only look.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "check.hpp"
#include "context.hpp"
#include "nodeplane/text.hpp"
#include "sensitive.hpp"

namespace nodeplane::cli {

int cmdCheck(Context& ctx) {
  // Every plugin's own items; what keeps the plugins from loading is a failed item itself.
  auto plugins = ctx.plugins();
  CheckReport report = runChecks(ctx.host(), plugins ? *plugins : nullptr);
  if (!plugins)
    for (const auto& e : plugins.error()) {
      report.items.push_back({"plugins", false, true, e.str()});
      report.plugin.push_back("");
    }
  if (ctx.json())
    printJson(checkToJson(report));
  else
    std::cout << printableLines(renderCheckText(report));
  return report.ok() ? kOk : kError;
}

namespace {

// What the owned objects are doing now (ObservedObject::detail and busy: a VM's unit and guest
// state, the VM that holds a vGPU), observed best effort: a kind that cannot be observed (its
// plugin cannot start here) is said on stderr and left out; the recorded results still show.
std::map<ResourceId, std::string> liveDetails(Context& ctx, const state::Store& store) {
  std::set<std::string> kinds;
  for (const auto& [id, o] : store.owned()) kinds.insert(id.kind);
  if (kinds.empty()) return {};
  auto engine = ctx.engine();
  if (!engine) {
    for (const auto& e : engine.error()) spdlog::warn("status: not observed: {}", e.str());
    return {};
  }
  std::set<std::string> served;
  for (const auto& k : kinds)
    if ((*engine)->plugins().forKind(k)) served.insert(k);
  if (served.empty()) return {};
  (*engine)->useAgentOf(store);
  const Observation obs = (*engine)->observe(served);
  for (const auto& [k, e] : obs.failed)
    spdlog::warn("status: kind {} not observed: {}", k, e.str());
  std::map<ResourceId, std::string> out;
  for (const auto& [id, o] : obs.objects) {
    if (!store.owns(id) || (o.detail.empty() && o.busy.empty())) continue;
    out[id] = o.detail.empty() ? o.busy : o.busy.empty() ? o.detail : o.detail + "; " + o.busy;
  }
  return out;
}

}  // namespace

int cmdStatus(Context& ctx) {
  // Only reads: an absent state dir is "nothing recorded", and none is created.
  auto store = state::Store::openReadOnly(ctx.stateDir());
  if (!store) return reportErrors(ctx, {store.error()}, "");
  const auto& pending = store->pending();
  const auto live = liveDetails(ctx, *store);
  if (ctx.json()) {
    Json items = Json::array();
    for (const auto& [id, r] : store->results()) {
      Json j = {{"kind", id.kind},      {"name", id.name}, {"outcome", r.outcome},
                {"message", r.message}, {"at", r.at},      {"owned", store->owns(id)}};
      if (auto it = live.find(id); it != live.end()) j["now"] = it->second;
      items.push_back(j);
    }
    Json owned = Json::array();
    for (const auto& [id, o] : store->owned()) {
      owned.push_back(
          {{"kind", id.kind}, {"name", id.name}, {"plugin", o.plugin}, {"since", o.since}});
      if (auto it = live.find(id); it != live.end()) owned.back()["now"] = it->second;
    }
    Json journal = Json::array();
    for (const auto& p : pending)
      journal.push_back({{"seq", p.entry.seq},
                         {"action", p.entry.action},
                         {"kind", p.entry.id.kind},
                         {"name", p.entry.id.name},
                         {"plugin", p.entry.plugin},
                         {"done", p.done}});
    printJson({{"resources", items},
               {"owned", owned},
               {"interruptedApply", !pending.empty()},
               {"interrupted", journal}});
    return kOk;
  }
  if (store->results().empty() && store->owned().empty() && pending.empty()) {
    std::cout << "No reconcile recorded in " << printable(ctx.stateDir().string()) << ".\n";
    return kOk;
  }
  // One row per result, and one per owned object that has none (recorded by an adopt or a
  // recovery that could not tell the outcome).
  std::vector<std::array<std::string, 4>> rows;
  for (const auto& [id, r] : store->results())
    rows.push_back(
        {printable(id.str()), printable(r.outcome), printable(r.at), printable(r.message)});
  for (const auto& [id, o] : store->owned())
    if (!store->results().count(id))
      rows.push_back({printable(id.str()), "owned", printable(o.since), "no result recorded"});
  std::sort(rows.begin(), rows.end());
  std::size_t w = 8;
  for (const auto& r : rows) w = std::max(w, r[0].size());
  if (!rows.empty()) {
    std::cout << fmt::format("{:<{}}  {:<11}  {:<20}  {}\n", "RESOURCE", w, "RESULT", "AT",
                             "MESSAGE");
    for (const auto& r : rows)
      std::cout << fmt::format("{:<{}}  {:<11}  {:<20}  {}\n", r[0], w, r[1], r[2], r[3]);
  }
  if (!live.empty()) {  // what the owned objects are doing now
    std::size_t lw = 8;
    for (const auto& [id, d] : live) lw = std::max(lw, printable(id.str()).size());
    std::cout << "\n" << fmt::format("{:<{}}  {}\n", "OWNED", lw, "NOW");
    for (const auto& [id, d] : live)
      std::cout << fmt::format("{:<{}}  {}\n", printable(id.str()), lw, printable(d));
  }
  if (!pending.empty()) {
    if (!rows.empty()) std::cout << "\n";
    std::cout << "An apply was interrupted; the next apply or run finishes it. Its journal ("
              << printable((ctx.stateDir() / "journal.jsonl").string()) << "):\n";
    std::size_t iw = 8;
    for (const auto& p : pending) iw = std::max(iw, printable(p.entry.id.str()).size());
    std::cout << fmt::format("  {:<7}  {:<{}}  {}\n", "STEP", "RESOURCE", iw, "STATE");
    for (const auto& p : pending)
      std::cout << fmt::format("  {:<7}  {:<{}}  {}\n", printable(p.entry.action),
                               printable(p.entry.id.str()), iw, p.done ? "done" : "not done");
    if (rows.empty()) std::cout << "Nothing else was recorded before it stopped.\n";
  }
  return kOk;
}

int cmdExport(Context& ctx, const std::string& kind) {
  auto engine = ctx.engine();
  if (!engine) return reportErrors(ctx, engine.error(), "");
  if (!kind.empty() && !(*engine)->plugins().forKind(kind))
    return reportErrors(
        ctx, {fail(ErrorKind::kInvalidInput, "unknown kind \"" + kind + "\"").error()}, "");
  auto store = state::Store::openReadOnly(ctx.stateDir());
  if (!store) return reportErrors(ctx, {store.error()}, "");
  (*engine)->useAgentOf(*store);
  Observation obs = kind.empty() ? (*engine)->observe() : (*engine)->observe({kind});
  std::vector<Error> errors;
  for (const auto& [k, e] : obs.failed) {
    // Every kind, not one asked for: a plugin that cannot start (no dockerd on a net-only host)
    // leaves its kinds out, said on stderr; what could be observed is exported.
    PluginHandle* p = (*engine)->plugins().forKind(k);
    if (kind.empty() && p && !p->started()) {
      spdlog::warn("kind {} not exported: {}", k, e.str());
      continue;
    }
    errors.push_back(e);
  }
  if (!errors.empty()) return reportErrors(ctx, errors, "could not observe every kind");
  std::vector<Json> docs;
  std::vector<Error> refused;  // objects the output could not carry: reported, never half-written
  auto refuse = [&](const std::string& resource, const std::string& why) {
    refused.push_back(fail(ErrorKind::kInvalidInput, "not exported: " + why).error());
    refused.back().resource = resource;
  };
  for (const auto& [id, o] : obs.objects) {
    // Another agent's object belongs to that agent's desired state: this one may not take it.
    if (!o.markedByOther.empty()) continue;
    Json spec = Json::object();
    for (const auto& [k, v] : o.spec.items())
      if (!v.is_null()) spec[k] = v;
    // The planner's rule: ours when it carries the mark; a record in the store without the mark
    // is not enough (re-created or changed by hand). Applying the export must not be refused.
    Json metadata = {{"name", id.name}};
    if (!o.marked && !(o.legacyMark && store->owns(id))) metadata["adopt"] = true;
    Json doc = {{"apiVersion", std::string(kApiVersion)},
                {"kind", id.kind},
                {"metadata", metadata},
                {"spec", spec}};
    // A sensitive value (a password) never leaves the process in text: not even here.
    std::string secret;
    if (const KindSchema* ks = (*engine)->plugins().schema(id.kind))
      secret = firstSensitiveValue(spec, sensitivePaths(ks->spec));
    if (!secret.empty())
      refuse(id.str(), "spec." + secret +
                           " is sensitive, and export never writes a sensitive value (write this "
                           "object's file by hand)");
    else if (!o.incomplete.empty())
      refuse(id.str(), o.incomplete);
    else if (auto problem = exportProblem(doc))
      refuse(id.str(), *problem);
    else
      docs.push_back(std::move(doc));
  }
  // What export writes must validate as a whole (names the kernel allows but nodeplane refuses,
  // references to an object refused above): drop what does not, until the rest does.
  for (;;) {
    LoadResult back;
    for (const auto& d : docs) {
      auto one = parseYaml(emitYamlDocuments({d}), "export");
      back.resources.insert(back.resources.end(), one.resources.begin(), one.resources.end());
    }
    Desired desired = (*engine)->prepare(std::move(back));
    std::set<std::string> bad;
    for (const auto& e : desired.errors)
      if (!e.resource.empty() && bad.insert(e.resource).second)
        refuse(e.resource, (e.field.empty() ? "" : e.field + ": ") + e.message);
    if (bad.empty()) {  // nothing left to drop: what remains is not about one object
      refused.insert(refused.end(), desired.errors.begin(), desired.errors.end());
      break;
    }
    std::erase_if(docs, [&](const Json& d) {
      return bad.count(d["kind"].get<std::string>() + "/" +
                       d["metadata"]["name"].get<std::string>()) != 0;
    });
  }
  if (ctx.json())
    printJson(docs);
  else {
    std::string yaml = emitYamlDocuments(docs);
    if (!yaml.empty() && yaml.back() != '\n') yaml += '\n';
    std::cout << yaml;
  }
  if (refused.empty()) return kOk;
  for (const auto& e : refused) std::cerr << "error: " << printable(e.str()) << "\n";
  return kError;
}

int cmdPlugins(Context& ctx) {
  auto host = ctx.plugins();
  if (!host) return reportErrors(ctx, host.error(), "");
  const auto& plugins = (*host)->plugins();
  const auto& refused = (*host)->refused();
  if (ctx.json()) {
    Json loaded = Json::array(), bad = Json::array();
    for (const auto& p : plugins) {
      Json kinds = Json::array();
      for (const auto& k : p->kinds())
        kinds.push_back(
            {{"kind", k.kind}, {"description", k.description}, {"schema", toJsonSchema(k.spec)}});
      loaded.push_back({{"name", p->name()}, {"file", p->file().string()}, {"kinds", kinds}});
    }
    for (const auto& r : refused) bad.push_back({{"file", r.file.string()}, {"reason", r.reason}});
    printJson({{"pluginDir", ctx.pluginDir().string()},
               {"abiVersion", kAbiVersion},
               {"plugins", loaded},
               {"refused", bad}});
  } else {
    std::cout << "plugin directory: " << printable(ctx.pluginDir().string()) << " (ABI "
              << kAbiVersion << ")\n";
    for (const auto& p : plugins) {
      std::string kinds;
      for (const auto& k : p->kinds()) kinds += (kinds.empty() ? "" : ", ") + k.kind;
      std::cout << fmt::format("  {:<10} {}  [{}]\n", printable(p->name()), printable(kinds),
                               printable(p->file().string()));
    }
    for (const auto& r : refused)
      std::cout << fmt::format("  REFUSED    {}: {}\n", printable(r.file.string()),
                               printable(r.reason));
  }
  return refused.empty() ? kOk : kError;
}

}  // namespace nodeplane::cli
