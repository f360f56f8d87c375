#include "engine.hpp"

#include <fmt/format.h>
#include <fnmatch.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <thread>

#include "validate.hpp"

namespace nodeplane {

bool selectedForNode(const Resource& r, const std::string& hostname,
                     const std::map<std::string, std::string>& labels) {
  if (!r.nodes.empty()) {
    bool any = std::any_of(r.nodes.begin(), r.nodes.end(), [&](const std::string& glob) {
      return ::fnmatch(glob.c_str(), hostname.c_str(), 0) == 0;
    });
    if (!any) return false;
  }
  for (const auto& [k, v] : r.nodeSelector) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  return true;
}

namespace {

// Counts step outcomes into `report`; failed and skipped resources go into `gaveUp`.
void tally(ApplyReport& report, const Plan& plan, const std::vector<StepResult>& results,
           std::set<ResourceId>& gaveUp) {
  std::size_t cancelled = 0, interrupted = 0;
  const Error* denied = nullptr;  // the permission failure that stopped the run
  for (std::size_t i = 0; i < results.size(); ++i) {
    const auto& r = results[i];
    if (r.outcome == StepOutcome::kOk) {
      switch (plan.entries[i].change.action) {
        case Action::kCreate:
          ++report.created;
          break;
        case Action::kUpdate:
          ++report.updated;
          break;
        case Action::kReplace:
          ++report.replaced;
          break;
        case Action::kDelete:
          ++report.deleted;
          break;
        case Action::kRelease:
          ++report.released;
          break;
      }
    } else if (r.outcome == StepOutcome::kCancelled && r.error.kind == ErrorKind::kRetryable) {
      ++interrupted;  // a stop was requested: not a failure of the resource
      gaveUp.insert(plan.entries[i].change.id);
    } else if (r.outcome == StepOutcome::kCancelled) {
      ++cancelled;
      ++report.skipped;
      gaveUp.insert(plan.entries[i].change.id);
    } else if (r.outcome != StepOutcome::kPending) {
      if (!denied && r.outcome == StepOutcome::kFailed && isPermissionDenied(r.error))
        denied = &r.error;
      ++(r.outcome == StepOutcome::kSkipped ? report.skipped : report.failed);
      report.errors.push_back(r.error);
      gaveUp.insert(plan.entries[i].change.id);
    }
  }
  if (cancelled) {  // one line for all of them, not one per step
    Error e;
    e.kind = ErrorKind::kTerminal;
    e.message = fmt::format(
        "apply stopped: the host denied permission, so the other {} step(s) were not tried",
        cancelled);
    // What privilege is missing is the plugin's to say (the net plugin: CAP_NET_ADMIN).
    e.hint =
        (denied && !denied->hint.empty() ? denied->hint + ": " : std::string()) + "run it as root";
    report.errors.push_back(std::move(e));
    report.stopped = true;
  }
  if (interrupted) {
    Error e;
    e.kind = ErrorKind::kRetryable;
    e.message =
        fmt::format("apply interrupted: stopping, so {} step(s) were not tried", interrupted);
    e.hint = "the next apply or daemon pass does them";
    report.errors.push_back(std::move(e));
    report.interrupted = true;
  }
}

// True when `field` is `parent` or a field under it ("spec.a" covers "spec.a.b" and "spec.a[2]").
bool isUnder(const std::string& field, const std::string& parent) {
  return !parent.empty() && field.starts_with(parent) &&
         (field.size() == parent.size() || field[parent.size()] == '.' ||
          field[parent.size()] == '[');
}

// True when `e` adds nothing to `errors`: one of them is on the same resource, at its field or
// above it.
bool repeats(const Error& e, const std::vector<Error>& errors) {
  return std::any_of(errors.begin(), errors.end(), [&](const Error& x) {
    return x.resource == e.resource && isUnder(e.field, x.field);
  });
}

// Every error of one resource, as a desired-state file or a saved plan has it checked: the
// schema's, then the plugin's own rules (those on a field the schema already refused, or on a
// field under it, add nothing).
std::vector<Error> validateResource(const Resource& r, PluginHandle& plugin) {
  auto errs = validateAgainstSchema(r, *plugin.schema(r.id.kind));
  for (auto& e : plugin.validate(r)) {
    if (!repeats(e, errs)) errs.push_back(std::move(e));
  }
  return errs;
}

// Every error that needs a field's line is found above; what comes after (plan, apply) names
// only the document. The per-field locations are the largest part of a resource (a map node,
// a path and a file name per field), and the daemon keeps its desired state for as long as no
// file changes.
void dropFieldLocations(std::vector<Resource>& resources) {
  for (auto& r : resources) r.locations.clear();
}

bool byLocation(const Error& a, const Error& b) {
  return std::tie(a.where.file, a.where.line, a.where.column) <
         std::tie(b.where.file, b.where.line, b.where.column);
}

// The entries of `plan` but those of `drop` and, transitively, those that wait for one of them;
// `after` renumbered. Only the entries are kept: this is what gets executed.
Plan withoutEntries(const Plan& plan, const std::set<ResourceId>& drop) {
  std::vector<bool> dropped(plan.entries.size(), false);
  for (bool changed = true; changed;) {
    changed = false;
    for (std::size_t i = 0; i < plan.entries.size(); ++i) {
      if (dropped[i]) continue;
      const auto& e = plan.entries[i];
      if (drop.count(e.change.id) ||
          std::any_of(e.after.begin(), e.after.end(), [&](std::size_t a) { return dropped[a]; }))
        dropped[i] = changed = true;
    }
  }
  Plan kept;
  std::map<std::size_t, std::size_t> remap;
  for (std::size_t i = 0; i < plan.entries.size(); ++i)
    if (!dropped[i]) {
      remap[i] = kept.entries.size();
      kept.entries.push_back(plan.entries[i]);
    }
  for (auto& e : kept.entries)
    for (auto& a : e.after) a = remap.at(a);
  return kept;
}

}  // namespace

Desired Engine::prepare(LoadResult loaded) const {
  Desired out;
  out.files = std::move(loaded.files);
  out.errors = std::move(loaded.errors);
  const auto kindList = [&] {
    std::string s;
    for (const auto& k : plugins_.kindNames()) s += (s.empty() ? "" : ", ") + k;
    return s.empty() ? std::string("none: no plugin loaded") : s;
  }();

  // Select for this node first: one resource may have a variant per node (metadata.nodes,
  // metadata.nodeSelector). Two selected definitions of one kind/name are an error.
  std::vector<Resource> pending;
  std::map<ResourceId, SourceLocation> firstSeen;
  for (auto& r : loaded.resources) {
    if (!selectedForNode(r, host_.hostname, host_.labels)) {
      ++out.skippedForNode;
      continue;
    }
    if (auto [it, fresh] = firstSeen.emplace(r.id, r.locate("metadata.name")); !fresh) {
      out.errors.push_back(r.error(ErrorKind::kInvalidInput, "metadata.name",
                                   "defined more than once; also defined at " + it->second.str(),
                                   "each kind/name must appear once among the resources selected "
                                   "for this node (metadata.nodes, metadata.nodeSelector)"));
      continue;
    }
    pending.push_back(std::move(r));
  }

  // Validate (schema, then the plugin's own rules), expand children, validate them too.
  std::vector<Resource> invalid;  // refused above: still defined, for the reference checks
  for (std::size_t i = 0; i < pending.size(); ++i) {
    Resource& r = pending[i];
    PluginHandle* plugin = plugins_.forKind(r.id.kind);
    if (!plugin) {
      std::string hint;
      for (const auto& ref : plugins_.refused())
        hint += (hint.empty() ? "" : "; ") + ref.file.filename().string() +
                " was refused: " + ref.reason;
      out.errors.push_back(r.error(ErrorKind::kInvalidInput, "kind",
                                   "unknown kind \"" + r.id.kind + "\" (known: " + kindList + ")",
                                   hint));
      continue;
    }
    auto errs = validateResource(r, *plugin);
    if (!errs.empty()) {
      out.errors.insert(out.errors.end(), errs.begin(), errs.end());
      invalid.push_back(std::move(r));
      continue;
    }
    std::vector<Resource> children;
    if (!r.owner) {  // children do not expand again
      auto made = plugin->expand(r);
      if (!made) {
        Error e = made.error();
        e.resource = r.id.str();
        if (e.where.empty()) e.where = r.where;
        out.errors.push_back(e);
        continue;
      }
      children = std::move(*made);
      for (auto& c : children) {
        c.owner = r.id;
        if (c.where.empty()) c.where = r.where;
      }
    }
    out.resources.push_back(std::move(r));
    // Validated when the loop reaches them. (After the move above: this may reallocate `r`.)
    for (auto& c : children) pending.push_back(std::move(c));
  }

  // Names must be unique (children may collide with written resources) and claims exclusive.
  std::map<ResourceId, const Resource*> seen;
  std::map<std::string, std::pair<const Resource*, bool>> claimed;  // claim -> holder, exclusive
  for (const auto& r : out.resources) {
    if (auto [it, fresh] = seen.emplace(r.id, &r); !fresh) {
      out.errors.push_back(r.error(ErrorKind::kInvalidInput, "metadata.name",
                                   r.id.str() + " is defined twice",
                                   "also defined at " + it->second->where.str()));
      continue;
    }
    auto claims = plugins_.forKind(r.id.kind)->claims(r);
    if (!claims) {
      out.errors.push_back(r.error(ErrorKind::kInvalidInput, "", claims.error().message));
      continue;
    }
    for (const auto& c : *claims) {
      auto [it, fresh] = claimed.emplace(c.str(), std::pair{&r, c.exclusive});
      if (!fresh && (c.exclusive || it->second.second))
        out.errors.push_back(r.error(ErrorKind::kInvalidInput, "",
                                     "claims " + c.str() + ", already claimed by " +
                                         it->second.first->id.str() + " at " +
                                         it->second.first->where.str()));
    }
  }

  const SchemaLookup schemaOf = [&](const std::string& k) { return plugins_.schema(k); };
  if (invalid.empty()) {
    out.graph = buildGraph(out.resources, schemaOf, out.errors);
  } else {
    // References among all resources of a known kind, valid or not: a reference to an invalid
    // resource is not "not defined", and an invalid one's own dangling references are listed.
    std::vector<Resource> all = out.resources;
    all.insert(all.end(), invalid.begin(), invalid.end());
    std::vector<Error> graphErrors;
    buildGraph(all, schemaOf, graphErrors);
    for (auto& e : graphErrors) {
      if (!repeats(e, out.errors)) out.errors.push_back(std::move(e));
    }
    std::vector<Error> ignored;  // the same errors again
    out.graph = buildGraph(out.resources, schemaOf, ignored);
  }

  if (out.errors.empty()) {
    for (auto& r : out.resources) {
      auto n = plugins_.forKind(r.id.kind)->normalize(r.id.kind, r.spec);
      if (!n) {
        out.errors.push_back(r.error(ErrorKind::kInvalidInput, "spec", n.error().message));
        continue;
      }
      r.spec = std::move(*n);
    }
  }
  std::stable_sort(out.errors.begin(), out.errors.end(), byLocation);
  dropFieldLocations(out.resources);
  return out;
}

Observation Engine::observe(const std::set<std::string>& only) {
  Observation obs;
  for (const auto& p : plugins_.plugins()) {
    std::vector<std::string> kinds;
    for (const auto& ks : p->kinds())
      if (only.empty() || only.count(ks.kind)) kinds.push_back(ks.kind);
    if (kinds.empty()) continue;
    auto objs = p->observe(kinds);  // one call per plugin and pass
    if (!objs) {
      for (const auto& k : kinds) obs.failed[k] = objs.error();
      continue;
    }
    obs.kinds.insert(kinds.begin(), kinds.end());
    for (auto& o : *objs) {
      if (o.id.kind.empty()) {  // a name taken by something that is none of its kinds
        const auto t = o.spec.is_object() ? o.spec.find("type") : o.spec.end();
        obs.taken[p->name()][o.id.name] =
            t != o.spec.end() && t->is_string() ? t->get<std::string>() : "object";
        continue;
      }
      if (!obs.kinds.count(o.id.kind)) continue;  // a kind that was not asked for
      if (auto n = p->normalize(o.id.kind, o.spec)) o.spec = std::move(*n);
      obs.objects[o.id] = std::move(o);
    }
  }
  return obs;
}

std::set<ResourceId> Engine::ownedIds(const state::Store& store) const {
  std::set<ResourceId> out;
  for (const auto& [id, _] : store.owned()) out.insert(id);
  return out;
}

Plan Engine::plan(const Desired& desired, const Observation& observed, const state::Store& store,
                  bool prune) const {
  const auto owned = ownedIds(store);
  PlanInput in{desired.resources,
               desired.graph,
               observed,
               owned,
               [&](const std::string& k) { return plugins_.schema(k); },
               [&](const std::string& k) {
                 auto* p = plugins_.forKind(k);
                 return p ? p->name() : std::string();
               },
               prune};
  Plan p = makePlan(in);
  auto unserved = unservedOwned(store);
  p.errors.insert(p.errors.end(), unserved.begin(), unserved.end());
  return p;
}

namespace {

// The ApplyContext of one step.
class StepContext final : public ApplyContext {
 public:
  StepContext(HostServices& host, std::stop_token stop) : host_(host), stop_(std::move(stop)) {}
  std::stop_token stopToken() const override { return stop_; }
  std::chrono::steady_clock::time_point deadline() const override {
    return std::chrono::steady_clock::time_point::max();
  }
  void progress(std::string_view message) override { spdlog::info("{}", message); }
  Result<void> recordUndo(const Json&) override {
    return fail(ErrorKind::kTerminal, "undo records are not kept yet");
  }
  const Json& undo() const override { return undo_; }
  HostServices& host() override { return host_; }

 private:
  HostServices& host_;
  std::stop_token stop_;
  Json undo_ = Json::object();
};

}  // namespace

std::vector<StepResult> Engine::execute(const Plan& plan, state::Store& store,
                                        const StepCallback& onStep) {
  std::vector<state::JournalEntry> intents;
  std::vector<std::uint64_t> seqs;
  for (const auto& e : plan.entries) {
    state::JournalEntry j;
    j.seq = store.nextSeq();
    j.action =
        e.change.adopt && e.change.action == Action::kUpdate ? "adopt" : toString(e.change.action);
    j.id = e.change.id;
    j.plugin = e.plugin;
    seqs.push_back(j.seq);
    intents.push_back(std::move(j));
  }
  if (!intents.empty()) {
    if (auto ok = store.journalIntent(intents); !ok) {
      std::vector<StepResult> failed(plan.entries.size());
      for (auto& f : failed) {
        f.outcome = StepOutcome::kFailed;
        f.error = ok.error();
      }
      return failed;
    }
  }
  // Test hook for the crash-recovery test: die by SIGKILL after N steps of this process.
  static const long crashAfter = [] {
    const char* v = std::getenv("NODEPLANE_TEST_CRASH_AFTER_STEPS");
    return v ? std::atol(v) : -1L;
  }();
  // Test hook for the daemon's responsiveness tests: each step takes this much longer.
  static const long stepDelayMs = [] {
    const char* v = std::getenv("NODEPLANE_TEST_STEP_DELAY_MS");
    return v ? std::atol(v) : 0L;
  }();

  // Ownership is checked again when the steps run, against the host as it is now and the store
  // as it is now (claims recorded), whatever made the plan. Snapshots: steps run in parallel.
  std::set<std::string> kinds;
  std::map<ResourceId, bool> recorded;
  for (const auto& e : plan.entries) {
    kinds.insert(e.change.id.kind);
    recorded[e.change.id] = store.owns(e.change.id);
  }
  const Observation now = observe(kinds);

  ExecutorHooks hooks;
  hooks.maxParallel = [&](const std::string& name) {
    for (const auto& p : plugins_.plugins())
      if (p->name() == name) return p->maxParallel();
    return 1u;
  };
  hooks.apply = [&](const PlanEntry& e) -> Result<void> {
    PluginHandle* p = plugins_.forKind(e.change.id.kind);
    if (!p || p->name() != e.plugin)
      return fail(ErrorKind::kTerminal,
                  "no loaded plugin " + e.plugin + " serves kind " + e.change.id.kind);
    const auto obj = now.objects.find(e.change.id);
    const auto failed = now.failed.find(e.change.id.kind);
    const auto check = checkOwnership(e, recorded.at(e.change.id),
                                      obj == now.objects.end() ? nullptr : &obj->second,
                                      failed == now.failed.end() ? nullptr : &failed->second);
    if (check.verdict == OwnershipCheck::kRefuse) return std::unexpected(check.error);
    if (check.verdict == OwnershipCheck::kAlreadyGone) return {};
    if (stepDelayMs > 0) std::this_thread::sleep_for(std::chrono::milliseconds(stepDelayMs));
    StepContext context(p->services(), stop_);
    Outcome r = p->apply(e.change, context);
    if (crashAfter >= 0 && static_cast<long>(++stepsRun_) >= crashAfter) ::raise(SIGKILL);
    if (!r.ok()) return std::unexpected(r.error);
    return {};
  };
  hooks.stop = stop_;
  std::size_t ended = 0;
  hooks.onStep = [&](std::size_t i, const StepResult& r) {
    const PlanEntry& e = plan.entries[i];
    if (progress_) progress_(++ended, plan.entries.size());
    const auto at = state::nowRfc3339();
    if (r.outcome == StepOutcome::kOk) {
      (void)store.journalDone(seqs[i]);
      if (e.change.action == Action::kDelete) {
        store.forget(e.change.id);
        store.clearResult(e.change.id);
      } else {
        if (!store.owns(e.change.id)) {
          state::OwnedObject o;
          o.id = e.change.id;
          o.plugin = e.plugin;
          o.owner = e.owner;
          o.since = at;
          store.setOwned(std::move(o));
        }
        const char* outcome = pastTense(e.change.action);
        store.setResult({e.change.id, outcome, describeFields(e.change.fields), at});
      }
    } else {
      store.setResult({e.change.id, r.outcome == StepOutcome::kFailed ? "failed" : "skipped",
                       r.error.message, at});
    }
    if (onStep) onStep(e, r);
  };
  return executePlan(plan, hooks);
}

void Engine::record(const Plan& plan, state::Store& store, bool inSyncResults) const {
  const auto at = state::nowRfc3339();
  for (const auto& id : plan.claim) {
    state::OwnedObject o;
    o.id = id;
    auto* p = plugins_.forKind(id.kind);
    o.plugin = p ? p->name() : "";
    o.since = at;
    store.setOwned(std::move(o));
  }
  for (const auto& id : plan.forget) {
    store.forget(id);
    store.clearResult(id);
  }
  if (inSyncResults)
    for (const auto& id : plan.inSync) store.setResult({id, "in-sync", "", at});
  for (const auto& e : plan.errors) {
    auto slash = e.resource.find('/');
    if (slash == std::string::npos) continue;
    ResourceId id{e.resource.substr(0, slash), e.resource.substr(slash + 1)};
    store.setResult({id, e.kind == ErrorKind::kConflict ? "conflict" : "failed", e.str(), at});
  }
}

ApplyReport Engine::converge(const Desired& desired, state::Store& store, bool prune,
                             const StepCallback& onStep, const std::set<ResourceId>& hold) {
  ApplyReport report;
  Observation obs = observeForPass(nullptr, nullptr);
  Plan plan = this->plan(desired, obs, store, prune);
  report.plan = plan;
  report.errors = plan.errors;
  record(plan, store, true);
  if (!hold.empty()) plan = withoutEntries(plan, hold);
  std::set<ResourceId> gaveUp = hold;  // held, failed or skipped: not retried in this apply
  constexpr int kRounds = 3;
  for (int round = 0; round < kRounds && plan.hasChanges(); ++round) {
    tally(report, plan, execute(plan, store, onStep), gaveUp);
    if (report.stopped || report.interrupted || stop_.stop_requested()) break;
    // Verify: observe again; what still differs (and did not fail) gets another round.
    obs = observeForPass(&plan, &obs);
    Plan next = this->plan(desired, obs, store, prune);
    record(next, store, /*inSyncResults=*/false);  // keep "created" etc. of this apply
    Plan retry = withoutEntries(next, gaveUp);
    if (round + 1 == kRounds) {
      for (const auto& e : retry.entries) {
        Error err;
        err.kind = ErrorKind::kRetryable;
        err.resource = e.change.id.str();
        err.message = std::string("did not converge after ") + std::to_string(kRounds) +
                      " rounds: still needs " + toString(e.change.action) +
                      (e.change.fields.empty() ? "" : " " + describeFields(e.change.fields));
        report.errors.push_back(err);
        store.setResult({e.change.id, "failed", err.message, state::nowRfc3339()});
      }
    }
    plan = std::move(retry);
  }
  // What the next pass reuses; nothing when the steps stopped before a verify, or when there is
  // one plugin (a pass after its events observes it afresh anyway: the idle daemon stays small).
  if (keep_) {
    if (report.stopped || report.interrupted || stop_.stop_requested() ||
        plugins_.plugins().size() < 2)
      kept_.reset();
    else
      kept_ = std::move(obs);
  }
  if (auto ok = store.commit(); !ok)
    report.errors.push_back(ok.error());
  else if (auto cleared = store.clearJournal(); !cleared)
    report.errors.push_back(cleared.error());
  return report;
}

std::vector<Error> Engine::checkSaved(const Plan& saved, const std::string& file) const {
  std::vector<Error> out;
  std::set<ResourceId> seen;
  for (std::size_t i = 0; i < saved.entries.size(); ++i) {
    const PlanEntry& e = saved.entries[i];
    Resource r;
    r.id = e.change.id;
    r.where.file = file;
    auto bad = [&](std::string field, std::string message) {
      out.push_back(r.error(ErrorKind::kInvalidInput, std::move(field),
                            "changes[" + std::to_string(i) + "]: " + message));
    };
    if (!seen.insert(r.id).second) {
      bad("", "a second step for the same resource");
      continue;
    }
    PluginHandle* plugin = plugins_.forKind(r.id.kind);
    if (!plugin) {
      bad("kind", "unknown kind \"" + r.id.kind + "\" (no loaded plugin serves it)");
      continue;
    }
    if (plugin->name() != e.plugin) {
      bad("plugin", "kind " + r.id.kind + " is served by plugin " + plugin->name() + ", not \"" +
                        e.plugin + "\"");
      continue;
    }
    if (e.change.action == Action::kDelete) continue;  // nothing desired to check
    if (!e.change.desired.is_object()) {
      bad("spec", "the desired spec is not a mapping");
      continue;
    }
    r.spec = e.change.desired;
    for (auto& err : validateResource(r, *plugin)) {  // as for a desired-state file
      if (err.where.empty()) err.where = r.where;
      err.message = "changes[" + std::to_string(i) + "]: " + err.message;
      out.push_back(std::move(err));
    }
  }
  return out;
}

std::vector<Error> Engine::unservedOwned(const state::Store& store) const {
  std::map<std::string, std::vector<const state::OwnedObject*>> byKind;
  for (const auto& [id, o] : store.owned())
    if (!plugins_.forKind(id.kind)) byKind[id.kind].push_back(&o);
  std::vector<Error> out;
  for (const auto& [kind, objects] : byKind) {
    std::string names, plugin;
    for (std::size_t i = 0; i < objects.size(); ++i) {
      if (i == 3) {
        names += fmt::format(" and {} more", objects.size() - 3);
        break;
      }
      names += (i ? ", " : "") + objects[i]->id.str();
      if (plugin.empty()) plugin = objects[i]->plugin;
    }
    // The library the store says served it; refused, or not there.
    const std::string lib = "libnodeplane-" + plugin + ".so";
    std::string why;
    for (const auto& ref : plugins_.refused())
      if (plugin.empty() || ref.file.filename() == lib)
        why += (why.empty() ? "" : "; ") + ref.file.filename().string() +
               " was refused: " + ref.reason;
    if (why.empty())
      why = plugin.empty() ? "no plugin for it is in the plugin directory"
                           : lib + " is not in the plugin directory";
    why = "no loaded plugin serves kind " + kind + " (" + why + ")";
    Error e;
    e.kind = ErrorKind::kTerminal;
    e.resource = kind;
    e.message = fmt::format("nodeplane owns {} object(s) of this kind ({}) but {}", objects.size(),
                            names, why);
    e.hint = "install or fix the plugin; nothing of this kind is changed or pruned until then";
    out.push_back(std::move(e));
  }
  return out;
}

Result<ApplyReport> Engine::applySaved(const Plan& saved, state::Store& store,
                                       const StepCallback& onStep, const std::string& file) {
  if (auto errs = checkSaved(saved, file); !errs.empty()) return std::unexpected(errs.front());
  if (auto errs = unservedOwned(store); !errs.empty()) return std::unexpected(errs.front());
  Observation obs = observe();
  const auto now = obs.fingerprint(ownedIds(store));
  if (now != saved.fingerprint)
    return fail(ErrorKind::kConflict,
                "the host changed since this plan was made (fingerprint " + saved.fingerprint +
                    ", now " + now + "); nothing was applied",
                {}, "run `nodeplane diff` again and review the new plan");
  // What the plan records without a step must match the host too.
  for (const auto& id : saved.claim)
    if (auto it = obs.objects.find(id); it == obs.objects.end() || !it->second.marked)
      return fail(ErrorKind::kConflict,
                  "the plan claims " + id.str() +
                      ", which does not carry nodeplane's mark; nothing was applied");
  for (const auto& id : saved.forget)
    if (obs.objects.count(id) || !store.owns(id))
      return fail(ErrorKind::kConflict, "the plan forgets " + id.str() +
                                            ", which is not an owned object gone from the host; "
                                            "nothing was applied");
  ApplyReport report;
  report.plan = saved;
  record(saved, store, true);
  std::set<ResourceId> gaveUp;
  tally(report, saved, execute(saved, store, onStep), gaveUp);
  if (auto ok = store.commit(); !ok)
    report.errors.push_back(ok.error());
  else if (auto cleared = store.clearJournal(); !cleared)
    report.errors.push_back(cleared.error());
  return report;
}

Result<std::size_t> Engine::recover(state::Store& store) {
  const auto pending = store.pending();
  if (pending.empty()) return 0;
  std::set<std::string> kinds;
  for (const auto& p : pending) kinds.insert(p.entry.id.kind);
  Observation obs = observe(kinds);
  const auto at = state::nowRfc3339();
  for (const auto& p : pending) {
    const auto& id = p.entry.id;
    if (!obs.kinds.count(id.kind)) continue;  // cannot tell: leave the store as it is
    auto it = obs.objects.find(id);
    const bool present = it != obs.objects.end();
    if (p.entry.action == "delete") {
      if (!present) {
        store.forget(id);
        store.clearResult(id);
      }
      continue;
    }
    // create / replace / update / adopt: ours if it is there and carries our mark.
    if (present && (it->second.marked || p.done) && !store.owns(id)) {
      state::OwnedObject o;
      o.id = id;
      o.plugin = p.entry.plugin;
      o.undo = p.entry.undo;
      o.since = at;
      store.setOwned(std::move(o));
    }
    store.setResult(
        {id, p.done ? "updated" : "interrupted", "recovered from an interrupted apply", at});
  }
  if (auto ok = store.commit(); !ok) return std::unexpected(ok.error());
  if (auto ok = store.clearJournal(); !ok) return std::unexpected(ok.error());
  return pending.size();
}

std::string listIds(const std::vector<ResourceId>& ids, std::size_t max) {
  std::string s;
  for (std::size_t i = 0; i < ids.size() && i < max; ++i) s += (i ? ", " : "") + ids[i].str();
  if (ids.size() > max) s += fmt::format(", ... ({} in all)", ids.size());
  return s;
}

std::vector<ResourceId> Engine::deletesOfEmptyDesired(const Desired& desired,
                                                      const state::Store& store) {
  std::vector<ResourceId> out;
  if (!desired.resources.empty()) return out;
  Plan plan = this->plan(desired, observe(), store, /*prune=*/true);
  for (const auto& e : plan.entries)
    if (e.change.action == Action::kDelete) out.push_back(e.change.id);
  return out;
}

}  // namespace nodeplane
