// What a pass observes: only plugins in use (a kind desired, or an object owned); in the daemon,
// every one of them after a full resync or a file change, between them only the plugins whose
// event sources fired (Engine::observeAfresh), the others' last observation reused.
#include <spdlog/spdlog.h>

#include "engine.hpp"

namespace nodeplane {

std::set<std::string> Engine::kindsInUse(const std::set<std::string>& kinds,
                                         const state::Store& store) const {
  std::set<std::string> used = kinds;
  for (const auto& [id, _] : store.owned()) used.insert(id.kind);
  std::set<std::string> out;
  for (const auto& p : plugins_.plugins()) {
    bool inUse = false;
    for (const auto& ks : p->kinds()) inUse = inUse || used.count(ks.kind) != 0;
    if (inUse)
      for (const auto& ks : p->kinds()) out.insert(ks.kind);
  }
  return out;
}

Observation Engine::observeInUse(const Desired& desired, const state::Store& store) {
  std::set<std::string> kinds;
  for (const auto& r : desired.resources) kinds.insert(r.id.kind);
  kinds = kindsInUse(kinds, store);
  return kinds.empty() ? Observation{} : observe(kinds);  // observe({}) is every kind
}

Observation Engine::observeForPass(const Plan* ran, Observation* last) {
  const auto observeAll = [&] { return inUse_.empty() ? Observation{} : observe(inUse_); };
  if (!keep_) return observeAll();
  if (!ran) {  // the first observation of a converge(): the scope asked for since the last one
    passEverything_ = everything_ || !kept_;
    passAfresh_ = std::move(afresh_);
    everything_ = false;
    afresh_.clear();
  }
  Observation base;
  if (ran && last)
    base = std::move(*last);
  else if (kept_)
    base = std::move(*kept_);
  kept_.reset();  // converge() keeps what it ends with
  if (passEverything_) return observeAll();

  std::set<std::string> fresh = passAfresh_;
  if (ran)
    for (const auto& e : ran->entries) fresh.insert(e.plugin);
  std::set<std::string> kinds;
  std::string afresh, reused;
  for (const auto& p : plugins_.plugins()) {
    bool inUse = false, failed = false, missing = false;
    for (const auto& ks : p->kinds()) {
      if (!inUse_.count(ks.kind)) continue;
      inUse = true;
      failed = failed || base.failed.count(ks.kind) != 0;  // its last observe failed: ask again
      missing = missing || (!base.kinds.count(ks.kind) && !base.failed.count(ks.kind));
    }
    if (!inUse) {  // nothing desired, nothing owned: not observed, and nothing of it reused
      fresh.erase(p->name());
      continue;
    }
    if (failed || missing) fresh.insert(p->name());  // missing: in use since the last pass
    std::string& list = fresh.count(p->name()) ? afresh : reused;
    list += (list.empty() ? "" : ", ") + p->name();
    if (fresh.count(p->name()))
      for (const auto& ks : p->kinds()) kinds.insert(ks.kind);
  }
  spdlog::debug("observing afresh: {}; reusing the last observation of: {}",
                afresh.empty() ? "none" : afresh, reused.empty() ? "none" : reused);
  Observation out = kinds.empty() ? Observation{} : observe(kinds);
  const auto reuse = [&](const std::string& k) { return !kinds.count(k) && inUse_.count(k); };
  for (auto it = base.objects.begin(); it != base.objects.end();) {
    auto next = std::next(it);
    if (reuse(it->first.kind)) out.objects.insert(base.objects.extract(it));
    it = next;
  }
  for (const auto& k : base.kinds)
    if (reuse(k)) out.kinds.insert(k);
  for (auto& [k, e] : base.failed)
    if (reuse(k)) out.failed.emplace(k, std::move(e));
  for (auto& [plugin, names] : base.taken)
    if (!fresh.count(plugin)) out.taken.emplace(plugin, std::move(names));
  return out;
}

}  // namespace nodeplane
