// One reconcile pass, as DESIGN.md §1 draws it:
//   load -> select -> validate -> expand -> graph -> observe -> diff/plan -> execute -> verify
//   -> state commit.
// The CLI (diff, apply, validate) and the daemon (run) are thin layers over this.
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <set>
#include <stop_token>
#include <string>
#include <vector>

#include "apply_context.hpp"
#include "claims.hpp"
#include "executor.hpp"
#include "graph.hpp"
#include "loader.hpp"
#include "plan.hpp"
#include "plugin_host.hpp"
#include "store.hpp"

namespace nodeplane {

struct Desired {
  std::vector<Resource> resources;  // selected for this node, validated, expanded, normalised
  Graph graph;
  std::vector<Error> errors;  // any error: nothing may be applied or pruned
  std::vector<std::filesystem::path> files;
  std::size_t skippedForNode = 0;  // documents meant for other nodes
  // What each resource takes (claims.hpp), parallel to `resources`, PCI claims widened.
  std::vector<std::vector<DesiredClaim>> claims;
  // Made with the host's inventory (an expansion of a kind with expandReadsHost, or a claim
  // widened to an IOMMU group): `inventory` is the fingerprint of the inventory it was made
  // with, and a desired state made with another one is stale (Engine::stale).
  bool readsHost = false;
  std::string inventory;
  bool ok() const { return errors.empty(); }
};

// metadata.nodes (hostname globs) and metadata.nodeSelector (labels) against this node.
bool selectedForNode(const Resource& r, const std::string& hostname,
                     const std::map<std::string, std::string>& labels);

struct StepReport {
  const PlanEntry* entry = nullptr;
  StepResult result;
};

struct ApplyReport {
  Plan plan;                  // the plan of the first round (what `diff` would have shown)
  std::vector<Error> errors;  // plan errors, failed steps, resources that did not converge
  std::size_t created = 0, updated = 0, replaced = 0, deleted = 0, released = 0, failed = 0,
              skipped = 0;
  bool stopped = false;      // at a permission failure: the rest was not tried
  bool interrupted = false;  // a stop was requested (setStop): the rest was not tried
  // Steps that said "in progress" and were not waited for (setWaitInProgress(false)): a later
  // pass looks again after recheckAfter.
  struct InProgress {
    ResourceId id;
    std::chrono::milliseconds recheckAfter{0};
    std::string waitingFor;
  };
  std::vector<InProgress> inProgress;
  Observation observed;  // converge(): the host as last observed (after verifying)
  bool ok() const { return errors.empty(); }
};

using StepCallback = std::function<void(const PlanEntry&, const StepResult&)>;

class Engine {
 public:
  Engine(PluginHost& plugins, HostContext host) : plugins_(plugins), host_(std::move(host)) {}

  const HostContext& host() const { return host_; }
  PluginHost& plugins() { return plugins_; }

  // Once `stop` is requested, execute() starts no new step (those running finish) and converge()
  // verifies no more: it commits what was done and returns (report.interrupted).
  void setStop(std::stop_token stop) { stop_ = std::move(stop); }
  // Called (serialised) after each step of execute() ends, per phase: "pruning" (the deletes,
  // which run first) or "applying" (the rest), steps of that phase ended so far and in all.
  using Progress = std::function<void(std::string_view phase, std::size_t done, std::size_t total)>;
  void setProgress(Progress progress) { progress_ = std::move(progress); }
  // Called (from the step's thread) with what a running step reports (ApplyContext::progress),
  // after it is logged.
  void setStepProgress(StepProgress progress) { stepProgress_ = std::move(progress); }
  // converge() waits for steps that answer "in progress" (observing them every recheckAfter, up
  // to the kind's verify timeout) unless this is off: the daemon schedules a re-check pass.
  void setWaitInProgress(bool wait) { waitInProgress_ = wait; }

  // The daemon, between full resyncs (off unless keepObservations() was called): converge()
  // keeps what it observed last (when more than one plugin is loaded), and the next converge()
  // observes afresh only the plugins named by observeAfresh() since (plus those it runs steps of,
  // and those whose observe failed), reusing the kept observation of the others.
  // observeEverything(), or nothing kept (the first pass, an interrupted one), makes it observe
  // every plugin. Never used by the executor's own check before the steps run, which always looks
  // at the host as it is.
  void keepObservations() { keep_ = true; }
  void observeAfresh(const std::set<std::string>& plugins) {
    afresh_.insert(plugins.begin(), plugins.end());
  }
  void observeEverything() { everything_ = true; }

  Desired prepare(LoadResult loaded) const;
  // Hands the store's agent id to the plugins (their ownership marks carry it). converge(),
  // applySaved(), recover() and deletesOfEmptyDesired() do it themselves; call it before an
  // observe() whose result is planned against `store` (diff, export).
  void useAgentOf(const state::Store& store);
  // `desired` was made with the host's inventory (Desired::readsHost) and the inventory has
  // changed since: it must be prepared again, not reused. Call newPass() first, so the
  // inventory is read afresh.
  bool stale(const Desired& desired) const;
  // Forgets the inventory snapshot of the last pass (HostServices reads it again when asked), and
  // lets a plugin whose start() failed be started again.
  void newPass();
  // Every kind of every loaded plugin (or only `kinds`), normalised.
  Observation observe(const std::set<std::string>& kinds = {});
  // What a plan needs observed: every kind of each plugin one of whose kinds is in `kinds` or
  // has an object owned in `store`. A plugin with neither is not observed, so never started (a
  // host without dockerd, whose files name no Container, never asks the docker plugin).
  std::set<std::string> kindsInUse(const std::set<std::string>& kinds,
                                   const state::Store& store) const;
  // observe() of the kinds `desired` and `store` use (kindsInUse): what diff plans against.
  Observation observeInUse(const Desired& desired, const state::Store& store);
  Plan plan(const Desired& desired, const Observation& observed, const state::Store& store,
            bool prune) const;
  // The deletes that `desired`, being empty, would make (none when it is not empty): what `run`
  // (unless allowEmpty) and `apply` (unless --allow-empty) refuse to do.
  std::vector<ResourceId> deletesOfEmptyDesired(const Desired& desired, const state::Store& store);

  // Runs the steps of `plan` (journaled), records ownership and results in `store` (no commit).
  std::vector<StepResult> execute(const Plan& plan, state::Store& store,
                                  const StepCallback& onStep);

  // Plan, execute, verify, then commit the store and clear the journal. Verify: a step of a kind
  // with a verify policy (KindSchema::verify) or one in progress is observed every interval until
  // it matches or its timeout passed ("did not converge within N s: still needs ..."); other
  // kinds are observed at once, and what did not take is done again (up to 3 rounds). Changes of
  // `hold` (the daemon's resources in backoff), and those that wait for them, are planned
  // (report.plan) but not run.
  ApplyReport converge(const Desired& desired, state::Store& store, bool prune,
                       const StepCallback& onStep, const std::set<ResourceId>& hold = {});

  // Every problem of a saved plan (read from `file`), checked as a desired-state file is:
  // known kind and plugin, schema and the plugin's own validation of every desired spec, one
  // step per resource.
  std::vector<Error> checkSaved(const Plan& saved, const std::string& file) const;
  // One error per kind that the state store owns objects of but no loaded plugin serves (missing
  // or refused library): nothing of that kind can be observed, changed or pruned.
  std::vector<Error> unservedOwned(const state::Store& store) const;

  // Executes a saved plan once, if it passes checkSaved() and the host still has the fingerprint
  // it was made against.
  Result<ApplyReport> applySaved(const Plan& saved, state::Store& store, const StepCallback& onStep,
                                 const std::string& file = "plan");

  // Finishes what an interrupted apply left in the journal: a step that saved an undo record and
  // did not end goes to its plugin's recover() first (finish or undo it); then steps done or
  // visibly done on the host (object present and marked) are recorded as owned, vanished
  // deletes are forgotten. Returns the number of journal entries looked at. When a plugin's
  // recover() fails, the store is committed but the journal is kept whole (no entry is dropped
  // unresolved) and the error is returned: the next recovery looks at every entry again.
  Result<std::size_t> recover(state::Store& store);

 private:
  std::set<ResourceId> ownedIds(const state::Store& store) const;
  // Empties the journal after a commit, unless a step saved an undo record and did not end
  // (unresolved_): then it is kept whole, and the next recover() hands that step to its plugin.
  Result<void> clearJournal(state::Store& store);
  ClaimSources claimSources() const;
  // Records the owner and dependsOn of every desired object nodeplane owns (a file may add a
  // dependsOn to a resource in sync), for the order of its delete when it is pruned.
  void recordRelations(const Desired& desired, state::Store& store) const;
  bool expansionReadsHost(const std::vector<Resource>& resources) const;
  // A hash of the host's PCI inventory (the pass's snapshot), "" when it cannot be read.
  std::string inventoryFingerprint() const;
  // converge()'s observation (engine_observe.cpp): `ran` is null for the first of a converge()
  // (the kept observation is reused), else the plan whose steps just ran (their plugins are
  // observed afresh to verify them) and `last` what the converge() observed before (reused).
  Observation observeForPass(const Plan* ran, Observation* last);
  void record(const Plan& plan, state::Store& store, bool inSyncResults) const;

  PluginHost& plugins_;
  HostContext host_;
  std::size_t stepsRun_ = 0;  // for the crash-test hook
  std::stop_token stop_;
  Progress progress_;
  StepProgress stepProgress_;
  bool waitInProgress_ = true;
  bool unresolved_ = false;  // see clearJournal()
  bool keep_ = false, everything_ = true, passEverything_ = true;
  std::set<std::string> afresh_, passAfresh_;
  std::optional<Observation> kept_;
  std::set<std::string> inUse_;  // converge(): kindsInUse() of its desired state and store
};

// "Bridge/a, Bridge/b, ... (12 in all)"
std::string listIds(const std::vector<ResourceId>& ids, std::size_t max = 5);

}  // namespace nodeplane
