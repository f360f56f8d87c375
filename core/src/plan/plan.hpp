// Planning: desired resources + what the host has + what nodeplane owns -> an ordered list of
// changes. Pure: no plugin is called here, so it is unit-tested with made-up observations.
#pragma once

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "claims.hpp"
#include "diff.hpp"
#include "graph.hpp"
#include "nodeplane/plugin.hpp"

namespace nodeplane {

// Everything observed in one pass, specs already normalised.
struct Observation {
  std::map<ResourceId, ObservedObject> objects;
  std::set<std::string> kinds;          // kinds observed successfully
  std::map<std::string, Error> failed;  // kind -> why it could not be observed
  // plugin -> name -> what has that name but is none of the plugin's kinds ("veth", "loopback")
  std::map<std::string, std::map<std::string, std::string>> taken;
  // Stable hash of what was observed plus what the state store owns: a saved plan is only
  // applied to a host that still hashes the same.
  std::string fingerprint(const std::set<ResourceId>& owned) const;
};

struct PlanEntry {
  Change change;
  std::string plugin;
  std::string source;               // "file:line" of the desired resource, if any
  std::optional<ResourceId> owner;  // for expanded children
  std::vector<std::size_t> after;   // indices of entries that must succeed first
  // Those of `after` that are order only (KindSchema::appliedAfter: a Vgpu after every SriovPf):
  // they must end first, but their failure, or their being held, does not hold this step back.
  // Kept in a saved plan.
  std::vector<ResourceId> orderOnly;
  // metadata.deletionPolicy of the desired resource (create, update, replace): recorded in the
  // state store with the object, for the prune that comes when its file is gone.
  DeletionPolicy deletionPolicy = DeletionPolicy::kDefault;
  // Paths of the kind's sensitive fields: planToJson() writes a hash in place of their values in
  // desired and observed (see sensitive.hpp).
  std::vector<std::string> sensitive;
  // The desired resource's metadata.dependsOn (and what expand() set): recorded with its
  // ownership, so its delete is ordered when it is pruned later.
  std::vector<ResourceId> dependsOn;
  // Who uses the object when the plan was made, if that stops this change (Plugin::busyFor on
  // ObservedObject::busy: update, replace, delete): the step will wait until the object is
  // free. Shown by `diff`; the executor asks again when the step runs.
  std::string waitsFor;
};

// What the state store recorded of an owned object, for the order of deletes.
struct Recorded {
  std::optional<ResourceId> owner;
  std::vector<ResourceId> dependsOn;
};

struct Plan {
  // Deletes first (dependents before what they use, owners before their children), then the
  // rest, dependencies first. A step runs after every step in its `after`: a create after the
  // delete or update that releases what it claims; the delete of a child after the update or
  // replace of its owner.
  std::vector<PlanEntry> entries;
  std::vector<Error> errors;  // conflicts and unobservable kinds: those resources are skipped
  std::vector<ResourceId> inSync;
  std::vector<ResourceId> claim;   // carry nodeplane's mark but are missing from the state store
  std::vector<ResourceId> forget;  // owned in the state store, gone from the host, not desired
  // Set by whoever saves the plan (Observation::fingerprint): hashing every observed spec is
  // too dear for each daemon pass.
  std::string fingerprint;

  std::size_t count(Action a) const;
  bool hasChanges() const { return !entries.empty(); }
};

struct PlanInput {
  const std::vector<Resource>& desired;  // normalised, validated
  const Graph& graph;
  const Observation& observed;
  const std::set<ResourceId>& owned;  // from the state store
  SchemaLookup schema;
  std::function<std::string(const std::string& kind)> pluginOf;
  bool prune = true;
  // What pruning does to an owned object (OwnedObject::pruneAs): kOrphan releases it; those
  // absent (or all, when null) are deleted.
  const std::map<ResourceId, DeletionPolicy>* pruneAs = nullptr;
  // Parallel to `desired`: what each resource claims (Desired::claims); null: nothing.
  const std::vector<std::vector<DesiredClaim>>* claims = nullptr;
  // Owner and dependsOn of owned objects, as the state store recorded them; null: none.
  const std::map<ResourceId, Recorded>* recorded = nullptr;
};

Plan makePlan(const PlanInput& in);

// `+ Bridge/br0 create`, `~ Bridge/br0 update mtu: 1500 -> 1400`, ... and a summary line.
std::string renderPlanText(const Plan& plan);
Json planToJson(const Plan& plan);
// planToJson() plus "digest", a hash over everything else in it: what `--output json diff`
// prints and `apply --plan` reads back. planFromJson refuses a plan whose content does not match
// its digest. (It detects edits; whoever recomputes it is stopped by the executor's ownership
// check, not by the digest.)
Json savedPlanJson(const Plan& plan);
std::string planDigest(const Json& plan);
// {kind, message, text, resource?, field?, file?, line?, column?, hint?}
Json errorToJson(const Error& e);
Result<Plan> planFromJson(const Json& j);
// "mtu: 1500 -> 1400, up: false -> true"
std::string describeFields(const std::vector<FieldChange>& fields);

}  // namespace nodeplane
