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
  // Called (serialised) after each step of execute() ends: steps ended so far, steps in all.
  using Progress = std::function<void(std::size_t done, std::size_t total)>;
  void setProgress(Progress progress) { progress_ = std::move(progress); }

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
  // Every kind of every loaded plugin (or only `kinds`), normalised.
  Observation observe(const std::set<std::string>& kinds = {});
  Plan plan(const Desired& desired, const Observation& observed, const state::Store& store,
            bool prune) const;
  // The deletes that `desired`, being empty, would make (none when it is not empty): what `run`
  // (unless allowEmpty) and `apply` (unless --allow-empty) refuse to do.
  std::vector<ResourceId> deletesOfEmptyDesired(const Desired& desired, const state::Store& store);

  // Runs the steps of `plan` (journaled), records ownership and results in `store` (no commit).
  std::vector<StepResult> execute(const Plan& plan, state::Store& store,
                                  const StepCallback& onStep);

  // Plan, execute, verify by re-observing (up to 3 rounds for steps that succeeded but did not
  // take), then commit the store and clear the journal. Changes of `hold` (the daemon's
  // resources in backoff), and those that wait for them, are planned (report.plan) but not run.
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

  // Finishes what an interrupted apply left in the journal: steps done or visibly done on the
  // host (object present and marked) are recorded as owned, vanished deletes are forgotten.
  // Returns the number of journal entries looked at.
  Result<std::size_t> recover(state::Store& store);

 private:
  std::set<ResourceId> ownedIds(const state::Store& store) const;
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
  bool keep_ = false, everything_ = true, passEverything_ = true;
  std::set<std::string> afresh_, passAfresh_;
  std::optional<Observation> kept_;
};

// "Bridge/a, Bridge/b, ... (12 in all)"
std::string listIds(const std::vector<ResourceId>& ids, std::size_t max = 5);

}  // namespace nodeplane
