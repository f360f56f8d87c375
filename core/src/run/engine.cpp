#include "engine.hpp"

#include <fmt/format.h>
#include <fnmatch.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <mutex>
#include <thread>

#include "apply_context.hpp"
#include "claims.hpp"
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

// The entries of `plan` but those of `drop` and, transitively, those that wait for one of them
// (not those that only come after one: PlanEntry::orderOnly); `after` renumbered. Only the
// entries are kept: this is what gets executed.
Plan withoutEntries(const Plan& plan, const std::set<ResourceId>& drop) {
  std::vector<bool> dropped(plan.entries.size(), false);
  for (bool changed = true; changed;) {
    changed = false;
    for (std::size_t i = 0; i < plan.entries.size(); ++i) {
      if (dropped[i]) continue;
      const auto& e = plan.entries[i];
      auto waitsFor = [&](std::size_t a) {
        return dropped[a] && std::find(e.orderOnly.begin(), e.orderOnly.end(),
                                       plan.entries[a].change.id) == e.orderOnly.end();
      };
      if (drop.count(e.change.id) || std::any_of(e.after.begin(), e.after.end(), waitsFor))
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
  for (auto& e : kept.entries) {
    std::vector<std::size_t> after;
    for (std::size_t a : e.after)
      if (auto it = remap.find(a); it != remap.end()) after.push_back(it->second);
    e.after = std::move(after);  // an order-only step that was dropped: nothing to wait for
  }
  return kept;
}

Action actionFromJournal(const std::string& a) {
  if (a == "delete") return Action::kDelete;
  if (a == "replace") return Action::kReplace;
  if (a == "update" || a == "adopt") return Action::kUpdate;
  if (a == "release") return Action::kRelease;
  return Action::kCreate;
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

  // What only the whole set shows, per plugin (the vGPUs on one GPU fit it together).
  for (const auto& p : plugins_.plugins()) {
    std::vector<const Resource*> mine;
    for (const auto& r : out.resources)
      if (plugins_.forKind(r.id.kind) == p.get()) mine.push_back(&r);
    for (auto& e : p->validateSet(mine))
      if (!repeats(e, out.errors)) out.errors.push_back(std::move(e));
  }

  // Names must be unique (children may collide with written resources) and claims exclusive.
  std::map<ResourceId, const Resource*> seen;
  std::vector<bool> twice(out.resources.size(), false);
  for (std::size_t i = 0; i < out.resources.size(); ++i) {
    const Resource& r = out.resources[i];
    if (auto [it, fresh] = seen.emplace(r.id, &r); !fresh) {
      out.errors.push_back(r.error(ErrorKind::kInvalidInput, "metadata.name",
                                   r.id.str() + " is defined twice",
                                   "also defined at " + it->second->where.str()));
      twice[i] = true;
    }
  }
  auto claims = collectClaims(out.resources, claimSources(), out.errors);
  for (std::size_t i = 0; i < twice.size(); ++i)
    if (twice[i]) claims.of[i].clear();  // said above
  checkDesiredClaims(out.resources, claims.of, out.errors);
  out.claims = std::move(claims.of);
  out.readsHost = claims.readHost || expansionReadsHost(out.resources);
  if (out.readsHost) out.inventory = inventoryFingerprint();

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
  // A pass starts here: plugins see the host inventory as it is now, once for the whole pass.
  if (auto* shared = plugins_.shared()) shared->newPass();
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

void Engine::useAgentOf(const state::Store& store) {
  if (auto* shared = plugins_.shared()) shared->setAgentId(store.agentId());
}

std::set<ResourceId> Engine::ownedIds(const state::Store& store) const {
  std::set<ResourceId> out;
  for (const auto& [id, _] : store.owned()) out.insert(id);
  return out;
}

Plan Engine::plan(const Desired& desired, const Observation& observed, const state::Store& store,
                  bool prune) const {
  const auto owned = ownedIds(store);
  std::map<ResourceId, DeletionPolicy> pruneAs;
  for (const auto& [id, o] : store.owned())
    if (o.pruneAs() == DeletionPolicy::kOrphan) pruneAs.emplace(id, DeletionPolicy::kOrphan);
  std::map<ResourceId, Recorded> recorded;
  for (const auto& [id, o] : store.owned())
    if (o.owner || !o.dependsOn.empty()) recorded[id] = {o.owner, o.dependsOn};
  PlanInput in{desired.resources,
               desired.graph,
               observed,
               owned,
               [&](const std::string& k) { return plugins_.schema(k); },
               [&](const std::string& k) {
                 auto* p = plugins_.forKind(k);
                 return p ? p->name() : std::string();
               },
               prune,
               &pruneAs};
  if (desired.claims.size() == desired.resources.size()) in.claims = &desired.claims;
  in.recorded = &recorded;
  Plan p = makePlan(in);
  // A change of an object in use waits, unless its plugin says that change leaves the user alone.
  for (auto& e : p.entries) {
    if (e.waitsFor.empty()) continue;
    const auto obj = observed.objects.find(e.change.id);
    if (const auto* plugin = plugins_.forKind(e.change.id.kind);
        plugin && obj != observed.objects.end())
      e.waitsFor = plugin->busyFor(e.change, obj->second);
  }
  auto unserved = unservedOwned(store);
  p.errors.insert(p.errors.end(), unserved.begin(), unserved.end());
  return p;
}

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
    j.deletionPolicy = e.deletionPolicy;
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
  std::map<ResourceId, Json> undoOf;  // the undo record kept for each object: undo()
  for (const auto& e : plan.entries) {
    kinds.insert(e.change.id.kind);
    auto it = store.owned().find(e.change.id);
    recorded[e.change.id] = it != store.owned().end();
    undoOf[e.change.id] = it != store.owned().end() ? it->second.undo : Json::object();
  }
  // What each step recorded with recordUndo(), by plan index: written by the step's own thread,
  // read in onStep on that thread once the step ended.
  std::vector<std::optional<Json>> undoRecorded(plan.entries.size());
  const Observation now = observe(kinds);

  ExecutorHooks hooks;
  hooks.maxParallel = [&](const std::string& name) {
    for (const auto& p : plugins_.plugins())
      if (p->name() == name) return p->maxParallel();
    return 1u;
  };
  hooks.apply = [&](const PlanEntry& e) -> Outcome {
    PluginHandle* p = plugins_.forKind(e.change.id.kind);
    if (!p || p->name() != e.plugin)
      return Outcome::from(fail(ErrorKind::kTerminal, "no loaded plugin " + e.plugin +
                                                          " serves kind " + e.change.id.kind));
    const auto obj = now.objects.find(e.change.id);
    const auto failed = now.failed.find(e.change.id.kind);
    const auto check = checkOwnership(e, recorded.at(e.change.id),
                                      obj == now.objects.end() ? nullptr : &obj->second,
                                      failed == now.failed.end() ? nullptr : &failed->second);
    if (check.verdict == OwnershipCheck::kRefuse) return Outcome::failed(check.error);
    if (check.verdict == OwnershipCheck::kAlreadyGone) return Outcome::done();
    // In use now (a vGPU a running VM holds): not touched. A conflict, so the daemon holds the
    // step until the object is free (Error::inUse).
    if (obj != now.objects.end() && !obj->second.busy.empty() &&
        !p->busyFor(e.change, obj->second).empty()) {
      // Busy before the steps began: look again, since a step before this one may have freed
      // it (the Vgpus deleted before the SriovPf whose VFs they were on), and ask the plugin
      // whether this change, now, disturbs who holds it.
      std::string busy;
      if (auto again = p->observe({e.change.id.kind})) {
        for (const auto& o : *again)
          if (o.id == e.change.id) busy = p->busyFor(e.change, o);
      } else {  // cannot look again: as it was
        busy = p->busyFor(e.change, obj->second);
      }
      if (!busy.empty()) {
        Error refused = inUse(busy + ": not " + pastTense(e.change.action) + " until it is free",
                              "the daemon makes it once that stops using it; an apply must be "
                              "run again")
                            .error();
        refused.resource = e.change.id.str();
        return Outcome::failed(std::move(refused));
      }
    }
    if (stepDelayMs > 0) std::this_thread::sleep_for(std::chrono::milliseconds(stepDelayMs));
    const std::size_t index = static_cast<std::size_t>(&e - plan.entries.data());
    StepContext context(p->services(), stop_, stepTimeout(p->schema(e.change.id.kind)), e.change.id,
                        undoOf.at(e.change.id), &store, seqs[index], stepProgress_);
    Outcome r = p->apply(e.change, context);
    undoRecorded[index] = context.recorded();
    if (crashAfter >= 0 && static_cast<long>(++stepsRun_) >= crashAfter) ::raise(SIGKILL);
    return r;
  };
  hooks.stop = stop_;
  std::size_t deletes = 0, deletesEnded = 0, restEnded = 0;
  for (const auto& e : plan.entries) deletes += e.change.action == Action::kDelete;
  hooks.onStep = [&](std::size_t i, const StepResult& r) {
    const PlanEntry& e = plan.entries[i];
    if (progress_) {
      if (e.change.action == Action::kDelete)
        progress_("pruning", ++deletesEnded, deletes);
      else
        progress_("applying", ++restEnded, plan.entries.size() - deletes);
    }
    const auto at = state::nowRfc3339();
    if (r.outcome == StepOutcome::kOk) {
      (void)store.journalDone(seqs[i]);
      if (e.change.action == Action::kDelete || e.change.action == Action::kRelease) {
        store.forget(e.change.id);
        store.clearResult(e.change.id);
      } else {
        auto& undo = undoRecorded[i];
        auto known = store.owned().find(e.change.id);
        if (known == store.owned().end() || e.change.adopt ||
            known->second.deletionPolicy != e.deletionPolicy || undo) {
          state::OwnedObject o =
              known == store.owned().end() ? state::OwnedObject{} : known->second;
          o.id = e.change.id;
          o.plugin = e.plugin;
          o.owner = e.owner;
          if (e.change.adopt) o.adopted = true;
          o.deletionPolicy = e.deletionPolicy;
          if (undo) o.undo = std::move(*undo);  // the step's last record replaces the one kept
          o.dependsOn = e.dependsOn;
          store.setOwned(std::move(o));
        } else if (const auto& o = store.owned().at(e.change.id);
                   o.owner != e.owner || o.dependsOn != e.dependsOn) {
          state::OwnedObject changed = o;
          changed.owner = e.owner;
          changed.dependsOn = e.dependsOn;
          store.setOwned(std::move(changed));
        }
        if (r.cls == Outcome::kInProgress)
          store.setResult({e.change.id, "in-progress", r.waitingFor, at});
        else
          store.setResult(
              {e.change.id, pastTense(e.change.action), describeFields(e.change.fields), at});
      }
    } else {
      store.setResult({e.change.id, r.outcome == StepOutcome::kFailed ? "failed" : "skipped",
                       r.error.message, at});
      if (undoRecorded[i]) {  // it may have changed the host: recovery decides, not this apply
        spdlog::warn(
            "{}: the step saved an undo record and did not end; the journal keeps it for the "
            "plugin's recover() at the next apply or pass",
            e.change.id.str());
        unresolved_ = true;
      }
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

namespace {

// A step done (or in progress) whose result is verified by observing, not by doing it again: a
// kind with a verify timeout, or a step that said it is in progress.
struct Watch {
  std::chrono::steady_clock::time_point deadline, nextCheck;
  std::chrono::milliseconds interval{0}, timeout{0};
  Action action = Action::kCreate;
  std::string waitingFor;  // in progress: what it waits for
};

std::string seconds(std::chrono::milliseconds ms) {
  return fmt::format("{:g}", static_cast<double>(ms.count()) / 1000.0);
}

std::string stillNeeds(const Change& c) {
  return std::string("still needs ") + toString(c.action) +
         (c.fields.empty() ? "" : " " + describeFields(c.fields));
}

}  // namespace

Result<void> Engine::clearJournal(state::Store& store) {
  if (std::exchange(unresolved_, false)) return {};  // kept whole for recover()
  return store.clearJournal();
}

ApplyReport Engine::converge(const Desired& desired, state::Store& store, bool prune,
                             const StepCallback& onStep, const std::set<ResourceId>& hold) {
  using Clock = std::chrono::steady_clock;
  ApplyReport report;
  useAgentOf(store);
  inUse_.clear();
  for (const auto& r : desired.resources) inUse_.insert(r.id.kind);
  inUse_ = kindsInUse(inUse_, store);
  // A deletionPolicy changed in a file of an object that is in sync: the store must know it
  // before the file goes away.
  for (const auto& r : desired.resources)
    if (auto o = store.owned().find(r.id);
        o != store.owned().end() && o->second.deletionPolicy != r.deletionPolicy) {
      state::OwnedObject changed = o->second;
      changed.deletionPolicy = r.deletionPolicy;
      store.setOwned(std::move(changed));
    }
  Observation obs = observeForPass(nullptr, nullptr);
  Plan plan = this->plan(desired, obs, store, prune);
  report.plan = plan;
  report.errors = plan.errors;
  record(plan, store, true);
  recordRelations(desired, store);
  if (!hold.empty()) plan = withoutEntries(plan, hold);
  std::set<ResourceId> gaveUp = hold;  // held, failed or skipped: not retried in this apply
  auto failAt = [&](const ResourceId& id, std::string message) {
    Error err;
    err.kind = ErrorKind::kRetryable;
    err.resource = id.str();
    err.message = std::move(message);
    store.setResult({id, "failed", err.message, state::nowRfc3339()});
    report.errors.push_back(std::move(err));
    gaveUp.insert(id);
  };
  // Kinds without a verify policy (0/0: the net plugin's) are observed again at once and what
  // did not take is done again, up to kRounds rounds.
  constexpr int kRounds = 3;
  for (int round = 0; round < kRounds && plan.hasChanges(); ++round) {
    const auto results = execute(plan, store, onStep);
    tally(report, plan, results, gaveUp);
    if (report.stopped || report.interrupted || stop_.stop_requested()) break;
    const auto ended = Clock::now();
    std::map<ResourceId, Watch> watch;
    for (std::size_t i = 0; i < results.size(); ++i) {
      const auto& r = results[i];
      const Change& c = plan.entries[i].change;
      if (r.outcome != StepOutcome::kOk) continue;
      const KindSchema* schema = plugins_.schema(c.id.kind);
      const VerifyPolicy policy = schema ? schema->verify : VerifyPolicy{};
      if (r.cls == Outcome::kInProgress) {
        if (!waitInProgress_) {  // the daemon: a later pass looks again
          report.inProgress.push_back({c.id, r.recheckAfter, r.waitingFor});
          gaveUp.insert(c.id);
          continue;
        }
        Watch w;
        w.interval = std::max(r.recheckAfter, std::chrono::milliseconds(1));
        w.timeout = stepTimeout(schema);
        w.waitingFor = r.waitingFor;
        w.action = c.action;
        w.deadline = ended + w.timeout;
        w.nextCheck = ended + r.recheckAfter;
        watch[c.id] = std::move(w);
      } else if (policy.timeout.count() > 0) {
        Watch w;
        w.interval = policy.interval.count() > 0 ? policy.interval : std::chrono::milliseconds(100);
        w.timeout = policy.timeout;
        w.action = c.action;
        w.deadline = ended + w.timeout;
        w.nextCheck = ended;
        watch[c.id] = std::move(w);
      }
    }
    // Verify: observe again; watched steps until they match or their time is up, the others
    // once. What still differs (and did not fail) gets another round.
    Plan next;
    for (;;) {
      obs = observeForPass(&plan, &obs);
      next = this->plan(desired, obs, store, prune);
      record(next, store, /*inSyncResults=*/false);  // keep "created" etc. of this apply
      std::map<ResourceId, const Change*> differs;
      for (const auto& e : next.entries) differs[e.change.id] = &e.change;
      const auto now = Clock::now();
      for (auto it = watch.begin(); it != watch.end();) {
        const auto d = differs.find(it->first);
        if (d == differs.end()) {  // converged
          if (!it->second.waitingFor.empty())
            store.setResult({it->first, pastTense(it->second.action), "", state::nowRfc3339()});
          it = watch.erase(it);
        } else if (now >= it->second.deadline) {
          failAt(it->first, "did not converge within " + seconds(it->second.timeout) +
                                " s: " + stillNeeds(*d->second) +
                                (it->second.waitingFor.empty()
                                     ? std::string()
                                     : " (it was waiting for " + it->second.waitingFor + ")"));
          it = watch.erase(it);
        } else {
          if (it->second.nextCheck <= now) it->second.nextCheck = now + it->second.interval;
          ++it;
        }
      }
      if (watch.empty() || stop_.stop_requested()) break;
      auto wake = Clock::time_point::max();
      for (const auto& [id, w] : watch) wake = std::min({wake, w.nextCheck, w.deadline});
      // The wait ends early when a stop is requested (the daemon got SIGTERM).
      std::mutex mu;
      std::condition_variable_any cv;
      std::unique_lock lock(mu);
      cv.wait_until(lock, stop_, wake, [] { return false; });
      if (stop_.stop_requested()) break;
    }
    Plan retry = withoutEntries(next, gaveUp);
    if (round + 1 == kRounds) {
      for (const auto& e : retry.entries)
        failAt(e.change.id, "did not converge after " + std::to_string(kRounds) +
                                " rounds: " + stillNeeds(e.change));
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
      kept_ = obs;
  }
  report.observed = std::move(obs);
  if (auto ok = store.commit(); !ok)
    report.errors.push_back(ok.error());
  else if (auto cleared = clearJournal(store); !cleared)
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
    if (e.change.action == Action::kDelete || e.change.action == Action::kRelease)
      continue;  // nothing desired to check
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
  useAgentOf(store);
  // The plugins the diff that saved it observed (observeInUse): those of its steps, of what it
  // found in sync, claims or forgets, and of what the store owns.
  std::set<std::string> kinds;
  for (const auto& e : saved.entries) kinds.insert(e.change.id.kind);
  for (const auto* ids : {&saved.inSync, &saved.claim, &saved.forget})
    for (const auto& id : *ids) kinds.insert(id.kind);
  kinds = kindsInUse(kinds, store);
  Observation obs = kinds.empty() ? Observation{} : observe(kinds);
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
  else if (auto cleared = clearJournal(store); !cleared)
    report.errors.push_back(cleared.error());
  return report;
}

Result<std::size_t> Engine::recover(state::Store& store) {
  const auto pending = store.pending();
  if (pending.empty()) return 0;
  std::set<std::string> kinds;
  for (const auto& p : pending) kinds.insert(p.entry.id.kind);
  useAgentOf(store);
  // Steps that saved an undo record and did not end: only their plugin can tell whether to
  // finish or undo them. An entry whose plugin fails (or is missing) is not settled: the journal
  // is kept, and the next start (or daemon pass) tries again.
  std::vector<Error> unsettled;
  for (const auto& p : pending) {
    const auto& undo = p.entry.undo;
    if (p.done || !undo.is_object() || undo.empty()) continue;
    const auto& id = p.entry.id;
    PluginHandle* plugin = plugins_.forKind(id.kind);
    Result<void> ok;
    if (!plugin) {
      ok = fail(ErrorKind::kTerminal, "no loaded plugin serves kind " + id.kind +
                                          " to finish or undo it (" + p.entry.plugin + ")");
    } else {
      Interrupted entry;
      entry.action = actionFromJournal(p.entry.action);
      entry.id = id;
      entry.undo = undo;
      StepContext context(plugin->services(), stop_, stepTimeout(plugin->schema(id.kind)), id, undo,
                          &store, p.entry.seq, stepProgress_);
      ok = plugin->recover(entry, context);
    }
    if (!ok) {
      Error e = ok.error();
      e.resource = id.str();
      e.message = "the interrupted " + p.entry.action + " (undo record " + undo.dump() +
                  ") was not recovered: " + e.message;
      if (e.hint.empty())
        e.hint = "the journal keeps it; the next apply or daemon pass tries again";
      unsettled.push_back(std::move(e));
    }
  }
  Observation obs = observe(kinds);
  const auto at = state::nowRfc3339();
  for (const auto& p : pending) {
    const auto& id = p.entry.id;
    if (!obs.kinds.count(id.kind)) continue;  // cannot tell: leave the store as it is
    auto it = obs.objects.find(id);
    const bool present = it != obs.objects.end();
    if (p.entry.action == "release") {  // done once the mark is off (or the object gone)
      if (!present || !it->second.marked) {
        store.forget(id);
        store.clearResult(id);
      }
      continue;
    }
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
      // Taken over, not made: a prune releases it (recorded as made, it would be deleted).
      o.adopted = p.entry.action == "adopt";
      o.deletionPolicy = p.entry.deletionPolicy;
      store.setOwned(std::move(o));
    }
    store.setResult(
        {id, p.done ? "updated" : "interrupted", "recovered from an interrupted apply", at});
  }
  if (auto ok = store.commit(); !ok) return std::unexpected(ok.error());
  if (!unsettled.empty()) {  // kept, every entry: the next recovery looks at them all again
    for (const auto& e : unsettled) spdlog::error("{}", e.str());
    Error e = unsettled.front();
    if (unsettled.size() > 1)
      e.message += fmt::format(" (and {} more: see the log)", unsettled.size() - 1);
    return std::unexpected(e);
  }
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
  useAgentOf(store);
  Plan plan = this->plan(desired, observeInUse(desired, store), store, /*prune=*/true);
  for (const auto& e : plan.entries)
    if (e.change.action == Action::kDelete) out.push_back(e.change.id);
  return out;
}

}  // namespace nodeplane
