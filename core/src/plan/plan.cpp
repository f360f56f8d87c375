#include "plan.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <queue>
#include <set>

#include "nodeplane/text.hpp"
#include "sensitive.hpp"

namespace nodeplane {
namespace {

std::string valueText(const Json& v) {
  if (v.is_null()) return "(unset)";
  if (v.is_string()) return v.get<std::string>();
  return jsonText(v);
}

std::uint64_t fnv1a(std::string_view s, std::uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

const char* marker(Action a) {
  switch (a) {
    case Action::kCreate:
      return "+";
    case Action::kUpdate:
      return "~";
    case Action::kReplace:
      return "-/+";
    case Action::kDelete:
      return "-";
    case Action::kRelease:
      return "~-";
  }
  return "?";
}

}  // namespace

static const std::vector<FieldSchema> kNoFields;
static constexpr const char* lostMark =
    "recorded as owned in the state store, but the object no longer carries nodeplane's mark "
    "(changed or re-created by hand?), so nodeplane leaves it alone";
// The store records the object, but its mark names another agent id: most often this state
// directory's agent-id file was removed or replaced (a new id was made), not another agent.
static std::string otherIdOnOwned(const std::string& other) {
  return "recorded as owned in this agent's state store, but it carries the mark of agent id " +
         other +
         ", not this agent's: was the agent-id file in the state directory replaced or removed? "
         "nodeplane leaves it alone";
}
static constexpr const char* otherIdHint =
    "if it is this agent's, put back the agent-id file that held that id; otherwise remove it from "
    "this agent's desired state";

std::string Observation::fingerprint(const std::set<ResourceId>& owned) const {
  std::uint64_t h = fnv1a("nodeplane-observation-v1");
  for (const auto& [id, o] : objects) {
    h = fnv1a(id.str(), h);
    h = fnv1a(o.marked ? "1" : o.legacyMark ? "L" : "0", h);
    h = fnv1a(o.markedByOther, h);
    h = fnv1a(jsonText(o.spec), h);
  }
  for (const auto& id : owned) h = fnv1a("owned:" + id.str(), h);
  return fmt::format("{:016x}", h);
}

std::size_t Plan::count(Action a) const {
  return std::count_if(entries.begin(), entries.end(),
                       [a](const PlanEntry& e) { return e.change.action == a; });
}

namespace {

// A create of `id` would collide with something of the same name in its plugin's name space
// that nodeplane does not own (or owns and keeps): `lo`, a veth, a Tap where a Bridge is wanted.
std::optional<Error> nameTaken(const PlanInput& in, const ResourceId& id,
                               const std::set<ResourceId>& desiredIds) {
  const std::string plugin = in.pluginOf(id.kind);
  Error e;
  e.kind = ErrorKind::kConflict;
  e.resource = id.str();
  e.message = "exists, not managed by nodeplane";
  if (auto p = in.observed.taken.find(plugin); p != in.observed.taken.end())
    if (auto t = p->second.find(id.name); t != p->second.end()) {
      e.message += " (a " + t->second + " interface, not a " + id.kind + ")";
      e.hint = "pick another name; it cannot be adopted as a " + id.kind;
      return e;
    }
  for (const auto& kind : in.observed.kinds) {
    if (kind == id.kind || in.pluginOf(kind) != plugin) continue;
    const ResourceId other{kind, id.name};
    auto o = in.observed.objects.find(other);
    if (o == in.observed.objects.end()) continue;
    if (o->second.marked) {
      if (in.prune && !desiredIds.count(other)) continue;  // ours, and deleted first
      e.message = "the name is taken by " + other.str() + ", which nodeplane keeps";
      e.hint = desiredIds.count(other) ? "give one of them another name"
                                       : "pick another name, or let it be pruned (no --no-prune)";
      return e;
    }
    e.message += " (a " + kind + ", not a " + id.kind + ")";
    e.hint = "pick another name; it cannot be adopted as a " + id.kind;
    return e;
  }
  return std::nullopt;
}

// Keeps the entries of `plan` but `drop` and what waits for them (each of those gets an error
// naming what it waited for); `after` renumbered.
void dropEntries(Plan& plan, std::set<std::size_t> drop) {
  if (drop.empty()) return;
  auto& entries = plan.entries;
  for (bool changed = true; changed;) {
    changed = false;
    for (std::size_t i = 0; i < entries.size(); ++i) {
      if (drop.count(i)) continue;
      for (std::size_t a : entries[i].after)
        if (drop.count(a)) {
          Error e;
          e.kind = ErrorKind::kConflict;
          e.resource = entries[i].change.id.str();
          e.message = std::string("not planned: its ") + toString(entries[i].change.action) +
                      " waits for " + entries[a].change.id.str() + ", which cannot be planned";
          plan.errors.push_back(std::move(e));
          drop.insert(i);
          changed = true;
          break;
        }
    }
  }
  std::vector<std::size_t> remap(entries.size(), 0);
  std::vector<PlanEntry> kept;
  for (std::size_t i = 0; i < entries.size(); ++i)
    if (!drop.count(i)) {
      remap[i] = kept.size();
      kept.push_back(std::move(entries[i]));
    }
  for (auto& e : kept)
    for (auto& a : e.after) a = remap[a];
  entries = std::move(kept);
}

// Orders the whole plan so every step comes after what it waits for (the earliest first among
// those ready: deletes stay in front unless they wait for another step). Steps that wait on
// each other are an error and are dropped, with what waits for them.
void sortSteps(Plan& plan) {
  auto& entries = plan.entries;
  const std::size_t n = entries.size();
  std::vector<std::size_t> waits(n, 0);
  std::vector<std::vector<std::size_t>> unblocks(n);
  for (std::size_t i = 0; i < n; ++i) {
    auto& after = entries[i].after;
    std::sort(after.begin(), after.end());
    after.erase(std::unique(after.begin(), after.end()), after.end());
    for (std::size_t a : after) {
      ++waits[i];
      unblocks[a].push_back(i);
    }
  }
  std::priority_queue<std::size_t, std::vector<std::size_t>, std::greater<>> ready;
  for (std::size_t i = 0; i < n; ++i)
    if (!waits[i]) ready.push(i);
  std::vector<std::size_t> order;
  while (!ready.empty()) {
    std::size_t i = ready.top();
    ready.pop();
    order.push_back(i);
    for (std::size_t next : unblocks[i])
      if (--waits[next] == 0) ready.push(next);
  }
  if (order.size() < n) {  // a cycle: name it from one of its steps
    std::set<std::size_t> left;
    for (std::size_t i = 0; i < n; ++i)
      if (waits[i]) left.insert(i);
    std::size_t at = *left.begin();
    std::vector<std::size_t> path;
    std::set<std::size_t> onPath;
    while (!onPath.count(at)) {  // walk back along unfinished waits until a step repeats
      path.push_back(at);
      onPath.insert(at);
      for (std::size_t a : entries[at].after)
        if (left.count(a)) {
          at = a;
          break;
        }
    }
    std::string cycle;
    std::set<std::size_t> drop;  // the cycle; what waits for it is dropped with it
    bool on = false;
    for (std::size_t s : path) {
      if (s == at) on = true;
      if (on) drop.insert(s);
      if (on)
        cycle +=
            entries[s].change.id.str() + " " + toString(entries[s].change.action) + " waits for ";
    }
    cycle += entries[at].change.id.str() + " " + toString(entries[at].change.action);
    Error e;
    e.kind = ErrorKind::kConflict;
    e.resource = entries[at].change.id.str();
    e.message = "these steps wait on each other, so none can run: " + cycle;
    e.hint =
        "a device is released before it is taken and an owner stops before its children: apply "
        "the change in two steps (first remove what holds it)";
    plan.errors.push_back(std::move(e));
    dropEntries(plan, drop);
    sortSteps(plan);
    return;
  }
  std::vector<std::size_t> pos(n);
  for (std::size_t k = 0; k < n; ++k) pos[order[k]] = k;
  std::vector<PlanEntry> sorted;
  sorted.reserve(n);
  for (std::size_t k : order) {
    PlanEntry e = std::move(entries[k]);
    for (auto& a : e.after) a = pos[a];
    std::sort(e.after.begin(), e.after.end());
    sorted.push_back(std::move(e));
  }
  entries = std::move(sorted);
}

// The order of release and take, once every step is in `plan`:
// - the delete of a child waits for the update or replace of its owner when the owner stays
//   (the VM lets go of a device before the device is released), as does the delete of what a
//   kept object used (referenced or depended on) before its update;
// - a step that claims what an observed object holds waits for the delete of that object, or
//   for the update or replace that drops the claim; a holder that keeps it is a conflict;
// - a create waits for the delete of an object of another kind of the same name and plugin.
void orderReleases(const PlanInput& in, Plan& plan) {
  auto& entries = plan.entries;
  std::map<ResourceId, std::size_t> stepOf;
  for (std::size_t i = 0; i < entries.size(); ++i) stepOf[entries[i].change.id] = i;
  std::map<ResourceId, std::size_t> desiredIndex;
  for (std::size_t i = 0; i < in.desired.size(); ++i) desiredIndex.emplace(in.desired[i].id, i);
  auto isDelete = [&](std::size_t i) { return entries[i].change.action == Action::kDelete; };
  auto changesInPlace = [&](const ResourceId& id) -> std::optional<std::size_t> {
    auto it = stepOf.find(id);
    if (it == stepOf.end()) return std::nullopt;
    const Action a = entries[it->second].change.action;
    if (a == Action::kUpdate || a == Action::kReplace) return it->second;
    return std::nullopt;
  };

  // Deletes of what kept objects let go of.
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (!isDelete(i) || !in.recorded) continue;
    auto rec = in.recorded->find(entries[i].change.id);
    if (rec == in.recorded->end() || !rec->second.owner) continue;
    if (auto owner = changesInPlace(*rec->second.owner)) entries[i].after.push_back(*owner);
  }
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const Action a = entries[i].change.action;
    if (a != Action::kUpdate && a != Action::kReplace) continue;
    std::vector<ResourceId> used;
    if (const KindSchema* ks = in.schema(entries[i].change.id.kind))
      for (const auto& ref : referencesOf(entries[i].change.observed, ks->spec))
        used.push_back(ref.target);
    if (in.recorded)
      if (auto rec = in.recorded->find(entries[i].change.id); rec != in.recorded->end())
        used.insert(used.end(), rec->second.dependsOn.begin(), rec->second.dependsOn.end());
    for (const auto& u : used)
      if (auto d = stepOf.find(u); d != stepOf.end() && isDelete(d->second))
        entries[d->second].after.push_back(i);
  }

  // Claims against what observed objects hold.
  std::set<std::size_t> conflicted;
  if (in.claims) {
    std::map<std::pair<std::string, std::string>,
             std::vector<std::pair<const ObservedObject*, Claim>>>
        holders;
    for (const auto& [id, o] : in.observed.objects)
      for (const auto& h : o.holds) holders[claimKey(h)].push_back({&o, h});
    auto stillClaims = [&](const ResourceId& id, const std::pair<std::string, std::string>& key) {
      auto d = desiredIndex.find(id);
      if (d == desiredIndex.end() || d->second >= in.claims->size()) return false;
      for (const auto& c : (*in.claims)[d->second])
        if (claimKey(c.claim) == key) return true;
      return false;
    };
    for (std::size_t i = 0; i < entries.size() && !holders.empty(); ++i) {
      if (isDelete(i)) continue;
      auto d = desiredIndex.find(entries[i].change.id);
      if (d == desiredIndex.end() || d->second >= in.claims->size()) continue;
      const Resource& r = in.desired[d->second];
      for (const auto& c : (*in.claims)[d->second]) {
        const auto key = claimKey(c.claim);
        auto h = holders.find(key);
        if (h == holders.end()) continue;
        for (const auto& [holder, held] : h->second) {
          if (holder->id == r.id || (!c.claim.exclusive && !held.exclusive)) continue;
          if (r.owner == holder->id) continue;  // its owner (the VM holding its own device)
          if (in.recorded)
            if (auto rec = in.recorded->find(holder->id);
                rec != in.recorded->end() && rec->second.owner == r.id)
              continue;  // its child
          std::string why;
          if (auto step = stepOf.find(holder->id); step != stepOf.end() && isDelete(step->second)) {
            entries[i].after.push_back(step->second);  // released by its delete
            continue;
          }
          if (desiredIndex.count(holder->id)) {
            if (stillClaims(holder->id, key)) continue;  // desired against desired: validation's
            if (auto step = changesInPlace(holder->id)) {
              entries[i].after.push_back(*step);  // released by its update or replace
              continue;
            }
            why = "which keeps it (its desired state does not claim it, but it is in sync)";
          } else if (auto step = stepOf.find(holder->id);
                     step != stepOf.end() &&
                     entries[step->second].change.action == Action::kRelease) {
            why = "which is released, not deleted, and keeps it (deletionPolicy Orphan)";
          } else if (holder->marked) {
            why = "which nodeplane keeps (pruning is off)";
          } else {
            why = "which nodeplane does not manage";
          }
          plan.errors.push_back(r.error(ErrorKind::kConflict, "",
                                        "claims " + c.str() +
                                            (c.claim.exclusive ? " exclusively" : "") +
                                            ", but it is held by " + holder->id.str() + ", " + why,
                                        "release it there first, or claim another one"));
          conflicted.insert(i);
          break;
        }
        if (conflicted.count(i)) break;
      }
    }
  }

  // A name freed by a delete, taken by a create of another kind.
  std::map<std::pair<std::string, std::string>, std::vector<std::size_t>> deletedNames;
  for (std::size_t i = 0; i < entries.size(); ++i)
    if (isDelete(i)) deletedNames[{entries[i].plugin, entries[i].change.id.name}].push_back(i);
  for (std::size_t i = 0; i < entries.size() && !deletedNames.empty(); ++i) {
    if (entries[i].change.action != Action::kCreate) continue;
    if (auto it = deletedNames.find({entries[i].plugin, entries[i].change.id.name});
        it != deletedNames.end())
      entries[i].after.insert(entries[i].after.end(), it->second.begin(), it->second.end());
  }

  dropEntries(plan, conflicted);
  sortSteps(plan);
}

}  // namespace

Plan makePlan(const PlanInput& in) {
  Plan plan;
  // Ours: carries this agent's mark, or the legacy mark (no agent id) on an object our store
  // records. Another agent's mark, or a legacy one we have no record of, is never ours.
  auto ours = [&](const ResourceId& id, const ObservedObject& o) {
    return o.marked || (o.legacyMark && in.owned.count(id));
  };
  std::map<std::string, std::vector<std::string>> sensitiveOf;  // kind -> its sensitive paths
  auto sensitive = [&](const std::string& kind) -> const std::vector<std::string>& {
    auto it = sensitiveOf.find(kind);
    if (it == sensitiveOf.end()) {
      const KindSchema* ks = in.schema(kind);
      it = sensitiveOf.emplace(kind, ks ? sensitivePaths(ks->spec) : std::vector<std::string>{})
               .first;
    }
    return it->second;
  };
  std::map<ResourceId, std::size_t> entryOf;  // resource -> index in `changes`
  std::vector<PlanEntry> changes;
  std::set<ResourceId> desiredIds;
  for (const auto& r : in.desired) desiredIds.insert(r.id);

  // Creates, updates, replaces: dependencies first.
  for (std::size_t i : in.graph.order) {
    const Resource& r = in.desired[i];
    if (auto f = in.observed.failed.find(r.id.kind); f != in.observed.failed.end()) {
      Error e = f->second;
      e.resource = r.id.str();
      e.where = r.where;
      plan.errors.push_back(e);
      continue;
    }
    const KindSchema* ks = in.schema(r.id.kind);
    PlanEntry entry;
    auto obs = in.observed.objects.find(r.id);
    if (obs == in.observed.objects.end()) {
      if (auto taken = nameTaken(in, r.id, desiredIds)) {
        plan.errors.push_back(std::move(*taken));
        plan.errors.back().where = r.where;
        continue;
      }
      entry.change.action = Action::kCreate;
    } else {
      // Ours = carries the mark (a marked object missing from the state store is claimed
      // first, so the store records it before any step acts on it). A record without the mark
      // is not enough: the object may have been replaced by hand.
      const ObservedObject& o = obs->second;
      const bool owned = ours(r.id, o);
      if (!o.markedByOther.empty() && in.owned.count(r.id)) {
        plan.errors.push_back(
            r.error(ErrorKind::kConflict, "", otherIdOnOwned(o.markedByOther), otherIdHint));
        continue;
      }
      if (!o.markedByOther.empty()) {  // adopt or not: another agent's object is never taken
        plan.errors.push_back(
            r.error(ErrorKind::kConflict, "",
                    "exists, managed by another nodeplane agent (agent id " + o.markedByOther + ")",
                    "each agent changes only its own objects: pick another name, or remove it from "
                    "that agent's desired state"));
        continue;
      }
      if (!owned && !r.adopt) {
        plan.errors.push_back(
            o.legacyMark
                ? r.error(ErrorKind::kConflict, "",
                          "exists, carrying a nodeplane mark without an agent id (an older "
                          "nodeplane's) that this agent's state store does not record",
                          "if it is this agent's (its state was lost), set `metadata.adopt: "
                          "true` to take it back; if another agent's, pick another name")
            : in.owned.count(r.id)
                ? r.error(ErrorKind::kConflict, "", lostMark,
                          "set `metadata.adopt: true` to manage it again, or remove it")
                : r.error(ErrorKind::kConflict, "", "exists, not managed by nodeplane",
                          "set `metadata.adopt: true` to let nodeplane take it over, or pick "
                          "another name"));
        continue;
      }
      if (owned && in.owned.count(r.id) == 0) plan.claim.push_back(r.id);
      entry.change.fields = diffSpec(r.spec, obs->second.spec, ks ? ks->spec : kNoFields);
      entry.change.adopt = !owned;
      entry.change.uid = o.uid;
      // A legacy mark on an object we own: an update writes this agent's mark over it.
      const bool remark = owned && !o.marked;
      const bool replace = std::any_of(entry.change.fields.begin(), entry.change.fields.end(),
                                       [](const FieldChange& c) { return c.forcesReplace; });
      if (replace) {
        entry.change.action = Action::kReplace;
      } else if (!entry.change.fields.empty() || entry.change.adopt || remark) {
        entry.change.action = Action::kUpdate;
      } else {  // in sync: the common case of a daemon pass, so nothing is copied
        plan.inSync.push_back(r.id);
        continue;
      }
      entry.change.observed = obs->second.spec;
      entry.waitsFor = obs->second.busy;
    }
    entry.plugin = in.pluginOf(r.id.kind);
    entry.source = r.where.str();
    entry.owner = r.owner;
    entry.dependsOn = r.dependsOn;
    entry.change.id = r.id;
    entry.change.desired = r.spec;
    entry.deletionPolicy = r.deletionPolicy;
    entry.sensitive = sensitive(r.id.kind);
    for (std::size_t d : in.graph.deps[i])
      if (auto it = entryOf.find(in.desired[d].id); it != entryOf.end())
        entry.after.push_back(it->second);
    entryOf[r.id] = changes.size();
    changes.push_back(std::move(entry));
  }

  // Deletes: owned objects nobody desires any more, dependents before what they use.
  std::vector<PlanEntry> deletes;
  std::map<ResourceId, std::size_t> deleteOf;
  if (in.prune) {
    for (const auto& [id, o] : in.observed.objects) {
      if (desiredIds.count(id)) continue;
      if (!ours(id, o)) {
        if (in.owned.count(id)) {
          Error e;
          e.kind = ErrorKind::kConflict;
          e.resource = id.str();
          e.message = o.markedByOther.empty() ? std::string(lostMark) + "; not deleted"
                                              : otherIdOnOwned(o.markedByOther) + "; not deleted";
          e.hint = o.markedByOther.empty() ? "remove it by hand if it should go" : otherIdHint;
          plan.errors.push_back(std::move(e));
        }
        continue;
      }
      if (in.owned.count(id) == 0) plan.claim.push_back(id);
      PlanEntry e;
      e.plugin = in.pluginOf(id.kind);
      const bool orphan =
          in.pruneAs && in.pruneAs->count(id) && in.pruneAs->at(id) == DeletionPolicy::kOrphan;
      e.change.action = orphan ? Action::kRelease : Action::kDelete;
      e.change.id = id;
      e.change.uid = o.uid;
      e.change.observed = o.spec;
      if (!orphan) e.waitsFor = o.busy;
      e.sensitive = sensitive(id.kind);
      deleteOf[id] = deletes.size();
      deletes.push_back(std::move(e));
    }
    // An object that refers to another, or depends on it, or owns it, must go first: the
    // other's delete waits for it.
    auto recorded = [&](const ResourceId& id) -> const Recorded* {
      if (!in.recorded) return nullptr;
      auto it = in.recorded->find(id);
      return it == in.recorded->end() ? nullptr : &it->second;
    };
    auto uses = [&](std::size_t i) {  // what deletes[i] uses: referenced or depended on
      std::vector<ResourceId> out;
      if (const KindSchema* ks = in.schema(deletes[i].change.id.kind))
        for (const auto& ref : referencesOf(deletes[i].change.observed, ks->spec))
          out.push_back(ref.target);
      if (const Recorded* rec = recorded(deletes[i].change.id))
        out.insert(out.end(), rec->dependsOn.begin(), rec->dependsOn.end());
      return out;
    };
    for (std::size_t i = 0; i < deletes.size(); ++i)
      for (const auto& target : uses(i))
        if (auto it = deleteOf.find(target); it != deleteOf.end() && it->second != i)
          deletes[it->second].after.push_back(i);
    // Owners before their children (stop the VM before releasing its devices), unless the
    // child uses its owner.
    for (std::size_t i = 0; i < deletes.size(); ++i) {
      const Recorded* rec = recorded(deletes[i].change.id);
      if (!rec || !rec->owner) continue;
      auto owner = deleteOf.find(*rec->owner);
      if (owner == deleteOf.end() || owner->second == i) continue;
      const auto used = uses(i);
      if (std::find(used.begin(), used.end(), *rec->owner) != used.end()) continue;
      deletes[i].after.push_back(owner->second);
    }
    // Topological order of the deletes (a cycle is found below, over the whole plan).
    std::vector<std::size_t> order, state(deletes.size(), 0);
    std::function<void(std::size_t)> visit = [&](std::size_t i) {
      if (state[i]) return;
      state[i] = 1;
      for (std::size_t a : deletes[i].after) visit(a);
      order.push_back(i);
    };
    for (std::size_t i = 0; i < deletes.size(); ++i) visit(i);
    std::vector<std::size_t> newIndex(deletes.size());
    for (std::size_t k = 0; k < order.size(); ++k) newIndex[order[k]] = k;
    for (std::size_t k : order) {
      PlanEntry e = deletes[k];
      for (auto& a : e.after) a = newIndex[a];
      plan.entries.push_back(std::move(e));
    }
  }
  for (const auto& id : in.owned)
    if (!in.observed.objects.count(id) && !desiredIds.count(id) && in.observed.kinds.count(id.kind))
      plan.forget.push_back(id);

  // Kind-level order (KindSchema::appliedAfter): a Vgpu's step after every SriovPf step.
  for (std::size_t i = 0; i < changes.size(); ++i) {
    const KindSchema* ks = in.schema(changes[i].change.id.kind);
    if (!ks || ks->appliedAfter.empty()) continue;
    for (std::size_t j = 0; j < changes.size(); ++j)
      if (j != i &&
          std::find(ks->appliedAfter.begin(), ks->appliedAfter.end(), changes[j].change.id.kind) !=
              ks->appliedAfter.end() &&
          std::find(changes[i].after.begin(), changes[i].after.end(), j) ==
              changes[i].after.end()) {
        changes[i].after.push_back(j);
        changes[i].orderOnly.push_back(changes[j].change.id);
      }
  }
  const std::size_t offset = plan.entries.size();
  for (auto& e : changes) {
    for (auto& a : e.after) a += offset;
    plan.entries.push_back(std::move(e));
  }
  orderReleases(in, plan);
  return plan;
}

std::string describeFields(const std::vector<FieldChange>& fields) {
  std::string out;
  for (const auto& f : fields) {
    if (!out.empty()) out += ", ";
    if (f.sensitive)
      out += f.path + ": (sensitive value changed)";
    else
      out += fmt::format("{}: {} -> {}", f.path, valueText(f.from), valueText(f.to));
  }
  return out;
}

std::string renderPlanText(const Plan& plan) {
  std::string out;
  for (const auto& e : plan.entries) {
    const auto& c = e.change;
    // An update that restarts the object (a VM's memory) says so.
    const char* verb = c.action == Action::kUpdate && restarts(c) ? "restart" : toString(c.action);
    std::string line = fmt::format("{} {} {}", marker(c.action), c.id.str(), verb);
    if (c.adopt) line += " (adopt)";
    if (c.action == Action::kUpdate && !c.adopt && c.fields.empty())
      line += " (re-mark: a mark without agent id gets this agent's)";
    if (c.action == Action::kRelease) line += " (the mark is removed, the object stays)";
    std::vector<FieldChange> shown = c.fields;
    if (c.action == Action::kReplace)  // lead with what forces the replace
      std::stable_partition(shown.begin(), shown.end(),
                            [](const FieldChange& f) { return f.forcesReplace; });
    if (!shown.empty())  // a restart says what restarts it: "restart (memoryMiB: 1 -> 2)"
      line += std::strcmp(verb, "restart") == 0 ? " (" + describeFields(shown) + ")"
                                                : " " + describeFields(shown);
    if (!e.waitsFor.empty()) line += " [waits: " + e.waitsFor + "]";
    out += printable(line) + "\n";  // names and values come from files and the host
  }
  for (const auto& err : plan.errors) out += "! " + printable(err.str()) + "\n";
  if (plan.entries.empty() && plan.errors.empty()) {
    out += fmt::format("No changes: the host matches the desired state ({} resources).\n",
                       plan.inSync.size());
  } else {
    const auto released = plan.count(Action::kRelease);
    out += fmt::format(
        "Plan: {} to create, {} to update, {} to replace, {} to delete, {}{} in sync{}.\n",
        plan.count(Action::kCreate), plan.count(Action::kUpdate), plan.count(Action::kReplace),
        plan.count(Action::kDelete),
        released ? fmt::format("{} to release (left in place), ", released) : std::string(),
        plan.inSync.size(),
        plan.errors.empty() ? "" : fmt::format(", {} error(s)", plan.errors.size()));
  }
  return out;
}

namespace {

Json idJson(const ResourceId& id) { return {{"kind", id.kind}, {"name", id.name}}; }

}  // namespace

Json errorToJson(const Error& e) {
  Json j = {{"kind", toString(e.kind)}, {"message", e.message}, {"text", e.str()}};
  if (!e.resource.empty()) j["resource"] = e.resource;
  if (!e.field.empty()) j["field"] = e.field;
  if (!e.where.empty()) {
    j["file"] = e.where.file;
    j["line"] = e.where.line;
    j["column"] = e.where.column;
  }
  if (!e.hint.empty()) j["hint"] = e.hint;
  return j;
}

std::string planDigest(const Json& plan) {
  Json body = plan;
  if (body.is_object()) body.erase("digest");
  // jsonText, not dump(): text from the host need not be UTF-8, and dump() throws on it.
  return fmt::format("{:016x}", fnv1a(jsonText(body), fnv1a("nodeplane-plan-v1")));
}

Json planToJson(const Plan& plan) {
  Json changes = Json::array();
  for (const auto& e : plan.entries) {
    Json fields = Json::array();
    for (const auto& f : e.change.fields) {
      fields.push_back(
          {{"path", f.path}, {"from", f.from}, {"to", f.to}, {"forcesReplace", f.forcesReplace}});
      if (f.sensitive) fields.back()["sensitive"] = true;
      if (f.forcesRestart) fields.back()["forcesRestart"] = true;
    }
    const auto& id = e.change.id;
    Json c = {
        {"action", toString(e.change.action)},
        {"kind", e.change.id.kind},
        {"name", e.change.id.name},
        {"plugin", e.plugin},
        {"desired", e.sensitive.empty() ? e.change.desired
                                        : redactSensitive(e.change.desired, id, e.sensitive)},
        {"observed", e.sensitive.empty() ? e.change.observed
                                         : redactSensitive(e.change.observed, id, e.sensitive)},
        {"fields", fields},
        {"adopt", e.change.adopt},
        {"after", e.after}};
    if (!e.source.empty()) c["source"] = e.source;
    if (!e.waitsFor.empty()) c["waitsFor"] = e.waitsFor;
    if (e.owner) c["owner"] = idJson(*e.owner);
    if (!e.change.uid.empty()) c["uid"] = e.change.uid;
    if (!e.sensitive.empty()) c["sensitive"] = e.sensitive;
    if (e.deletionPolicy != DeletionPolicy::kDefault)
      c["deletionPolicy"] = e.deletionPolicy == DeletionPolicy::kDelete ? "Delete" : "Orphan";
    if (!e.dependsOn.empty()) {
      c["dependsOn"] = Json::array();
      for (const auto& d : e.dependsOn) c["dependsOn"].push_back(idJson(d));
    }
    if (!e.orderOnly.empty()) {
      c["orderOnly"] = Json::array();
      for (const auto& d : e.orderOnly) c["orderOnly"].push_back(idJson(d));
    }
    changes.push_back(c);
  }
  Json errors = Json::array();
  for (const auto& e : plan.errors) errors.push_back(errorToJson(e));
  Json inSync = Json::array(), claim = Json::array(), forget = Json::array();
  for (const auto& id : plan.inSync) inSync.push_back(idJson(id));
  for (const auto& id : plan.claim) claim.push_back(idJson(id));
  for (const auto& id : plan.forget) forget.push_back(idJson(id));
  Json out = {{"apiVersion", std::string(kApiVersion)},
              {"kind", "Plan"},
              {"fingerprint", plan.fingerprint},
              {"summary",
               {{"create", plan.count(Action::kCreate)},
                {"update", plan.count(Action::kUpdate)},
                {"replace", plan.count(Action::kReplace)},
                {"delete", plan.count(Action::kDelete)},
                {"release", plan.count(Action::kRelease)},
                {"inSync", plan.inSync.size()},
                {"errors", plan.errors.size()}}},
              {"changes", changes},
              {"errors", errors},
              {"inSync", inSync},
              {"claim", claim},
              {"forget", forget}};
  return out;
}

Json savedPlanJson(const Plan& plan) {
  Json out = planToJson(plan);
  out["digest"] = planDigest(out);
  return out;
}

Result<Plan> planFromJson(const Json& j) {
  try {
    if (j.value("apiVersion", "") != kApiVersion || j.value("kind", "") != "Plan")
      return fail(ErrorKind::kInvalidInput,
                  "not a nodeplane plan (expected apiVersion nodeplane.io/v1, kind Plan)", {},
                  "save one with `nodeplane --output json diff -f ... > plan.json`");
    if (!j.contains("digest") || !j["digest"].is_string())
      return fail(ErrorKind::kInvalidInput, "the plan has no digest, so edits cannot be detected",
                  {}, "save it again with `nodeplane --output json diff -f ... > plan.json`");
    if (j["digest"] != planDigest(j))
      return fail(ErrorKind::kInvalidInput,
                  "the plan was edited after it was made (its digest does not match its content)",
                  {}, "review and save a new plan with `nodeplane --output json diff`");
    if (!j.at("errors").empty())
      return fail(ErrorKind::kInvalidInput, "the plan has errors; fix them and run diff again");
    Plan p;
    p.fingerprint = j.at("fingerprint").get<std::string>();
    auto ids = [](const Json& a) {
      std::vector<ResourceId> out;
      for (const auto& x : a) out.push_back({x.at("kind"), x.at("name")});
      return out;
    };
    p.inSync = ids(j.at("inSync"));
    p.claim = ids(j.at("claim"));
    p.forget = ids(j.at("forget"));
    const auto& changes = j.at("changes");
    for (const auto& c : changes) {
      PlanEntry e;
      const std::string action = c.at("action");
      if (action == "create")
        e.change.action = Action::kCreate;
      else if (action == "update")
        e.change.action = Action::kUpdate;
      else if (action == "replace")
        e.change.action = Action::kReplace;
      else if (action == "delete")
        e.change.action = Action::kDelete;
      else if (action == "release")
        e.change.action = Action::kRelease;
      else
        return fail(ErrorKind::kInvalidInput, "unknown action \"" + action + "\" in plan");
      e.change.id = {c.at("kind"), c.at("name")};
      e.plugin = c.at("plugin");
      e.change.desired = c.at("desired");
      e.change.observed = c.at("observed");
      e.change.adopt = c.at("adopt");
      for (const auto& f : c.at("fields"))
        e.change.fields.push_back({f.at("path"), f.at("from"), f.at("to"), f.at("forcesReplace"),
                                   f.value("sensitive", false), f.value("forcesRestart", false)});
      e.sensitive = c.value("sensitive", std::vector<std::string>{});
      e.after = c.at("after").get<std::vector<std::size_t>>();
      for (auto a : e.after)
        if (a >= changes.size())
          return fail(ErrorKind::kInvalidInput, "plan entry refers to a missing step");
      e.source = c.value("source", "");
      e.waitsFor = c.value("waitsFor", "");
      if (c.contains("owner")) e.owner = ResourceId{c["owner"].at("kind"), c["owner"].at("name")};
      e.change.uid = c.value("uid", "");
      if (const std::string policy = c.value("deletionPolicy", ""); policy == "Delete")
        e.deletionPolicy = DeletionPolicy::kDelete;
      else if (policy == "Orphan")
        e.deletionPolicy = DeletionPolicy::kOrphan;
      else if (!policy.empty())
        return fail(ErrorKind::kInvalidInput,
                    "unknown deletionPolicy \"" + policy + "\" in plan (Delete or Orphan)");
      if (c.contains("dependsOn"))
        for (const auto& d : c.at("dependsOn")) e.dependsOn.push_back({d.at("kind"), d.at("name")});
      if (c.contains("orderOnly"))
        for (const auto& d : c.at("orderOnly")) e.orderOnly.push_back({d.at("kind"), d.at("name")});
      p.entries.push_back(std::move(e));
    }
    // The steps must form a DAG: a cycle (or a step waiting on itself) would never run.
    std::vector<std::size_t> waits(p.entries.size());
    std::vector<std::vector<std::size_t>> unblocks(p.entries.size());
    for (std::size_t i = 0; i < p.entries.size(); ++i)
      for (auto a : p.entries[i].after) {
        ++waits[i];
        unblocks[a].push_back(i);
      }
    std::vector<std::size_t> ready;
    for (std::size_t i = 0; i < waits.size(); ++i)
      if (!waits[i]) ready.push_back(i);
    for (std::size_t n = 0; n < ready.size(); ++n)
      for (auto next : unblocks[ready[n]])
        if (--waits[next] == 0) ready.push_back(next);
    for (std::size_t i = 0; i < waits.size(); ++i)
      if (waits[i])
        return fail(ErrorKind::kInvalidInput,
                    "plan entry changes[" + std::to_string(i) + "] (" +
                        p.entries[i].change.id.str() +
                        ") waits on itself through its \"after\" steps, so it would never run");
    return p;
  } catch (const std::exception& e) {
    return fail(ErrorKind::kInvalidInput, std::string("malformed plan: ") + e.what());
  }
}

}  // namespace nodeplane
