// What a daemon pass observes: every plugin after a full resync or a file change; between them
// only the plugins whose event sources fired (Engine::observeAfresh), the others' last
// observation reused.
#include <spdlog/spdlog.h>

#include "engine.hpp"

namespace nodeplane {

Observation Engine::observeForPass(const Plan* ran, Observation* last) {
  if (!keep_) return observe();
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
  if (passEverything_) return observe();

  std::set<std::string> fresh = passAfresh_;
  if (ran)
    for (const auto& e : ran->entries) fresh.insert(e.plugin);
  std::set<std::string> kinds;
  std::string afresh, reused;
  for (const auto& p : plugins_.plugins()) {
    bool failed = false;  // a plugin whose last observe failed is asked again
    for (const auto& ks : p->kinds()) failed = failed || base.failed.count(ks.kind) != 0;
    if (failed) fresh.insert(p->name());
    std::string& list = fresh.count(p->name()) ? afresh : reused;
    list += (list.empty() ? "" : ", ") + p->name();
    if (fresh.count(p->name()))
      for (const auto& ks : p->kinds()) kinds.insert(ks.kind);
  }
  spdlog::debug("observing afresh: {}; reusing the last observation of: {}",
                afresh.empty() ? "none" : afresh, reused.empty() ? "none" : reused);
  Observation out = kinds.empty() ? Observation{} : observe(kinds);
  for (auto it = base.objects.begin(); it != base.objects.end();) {
    auto next = std::next(it);
    if (!kinds.count(it->first.kind)) out.objects.insert(base.objects.extract(it));
    it = next;
  }
  for (const auto& k : base.kinds)
    if (!kinds.count(k)) out.kinds.insert(k);
  for (auto& [k, e] : base.failed)
    if (!kinds.count(k)) out.failed.emplace(k, std::move(e));
  for (auto& [plugin, names] : base.taken)
    if (!fresh.count(plugin)) out.taken.emplace(plugin, std::move(names));
  return out;
}

}  // namespace nodeplane
