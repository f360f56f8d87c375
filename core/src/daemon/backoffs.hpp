// The daemon's per-resource holds and retry backoffs (see Backoffs), apart from its event loop so
// that their rules are tested on their own (tests/unit/backoffs_test.cpp).
#pragma once

#include <spdlog/spdlog.h>

#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "engine.hpp"

namespace nodeplane::daemon {

using Clock = std::chrono::steady_clock;

// What a resource looks like on the host, as a hash (0: absent): a terminal failure waits for it
// to change. Who uses it is left out for a step refused because it is in use: that hold ends when
// nobody does, not each time another process takes its place.
inline std::size_t observedHash(const Observation& obs, const ResourceId& id,
                                bool withUsers = true) {
  auto it = obs.objects.find(id);
  if (it == obs.objects.end()) return 0;
  const auto& o = it->second;
  return std::hash<std::string>{}(o.spec.dump(-1, ' ', false, Json::error_handler_t::replace) +
                                  (o.marked ? "+" : "-") + o.uid + "/" + o.markedByOther + "/" +
                                  (withUsers ? o.busy : std::string())) |
         1;
}

// Per-resource retry backoff, by outcome class. A resource whose change failed retryably is not
// tried again before its time (capped exponential backoff), whatever wakes the daemon (the
// netlink events of its own rollback included); one that failed terminally (a conflict, input
// the host refuses) is not tried again at all until its desired spec or its object on the host
// changes. The others still converge meanwhile. A changed desired spec is a new attempt, at once.
class Backoffs {
 public:
  explicit Backoffs(std::chrono::milliseconds cap) : cap_(cap) {}

  // The event sources of the plugin of `kinds` were re-opened (its backend is back: dockerd
  // restarted): the retryable backoffs of its resources end, so what failed while it was away
  // (a container that stopped with dockerd) is repaired now, not when the backoff ends.
  void endRetryable(const std::set<std::string>& kinds) {
    for (auto it = entries_.begin(); it != entries_.end();) {
      if (it->second.terminal || !kinds.count(it->first.kind)) {
        ++it;
        continue;
      }
      spdlog::info("{}: its plugin's event sources are back: its backoff ends", it->first.str());
      it = entries_.erase(it);
    }
  }

  // The kinds of the resources held by a terminal failure: what held() needs observed.
  std::set<std::string> terminalKinds() const {
    std::set<std::string> out;
    for (const auto& [id, e] : entries_)
      if (e.terminal) out.insert(id.kind);
    return out;
  }

  // The resources to leave alone in a pass at `now`; `observed` covers terminalKinds().
  std::set<ResourceId> held(const Desired& desired, Clock::time_point now,
                            const Observation& observed) {
    auto specs = specHashes(desired);
    std::set<ResourceId> out;
    for (auto it = entries_.begin(); it != entries_.end();) {
      if (specs[it->first] != it->second.spec) {
        spdlog::info("{}: {}: its {} ends", it->first.str(),
                     specs[it->first] ? "its desired spec changed" : "no longer desired",
                     it->second.terminal ? "hold" : "backoff");
        it = entries_.erase(it);
        continue;
      }
      if (it->second.terminal && observed.kinds.count(it->first.kind) &&
          observedHash(observed, it->first, !it->second.busy) != it->second.observed) {
        spdlog::info("{}: it changed on the host: its hold ends", it->first.str());
        it = entries_.erase(it);
        continue;
      }
      // Held because it was in use, and nobody uses it now (its user may have gone between the
      // refusal and the observation after the pass, which then looked the same as now).
      if (it->second.terminal && it->second.busy && observed.kinds.count(it->first.kind)) {
        const auto o = observed.objects.find(it->first);
        if (o == observed.objects.end() || o->second.busy.empty()) {
          spdlog::info("{}: no longer in use: its hold ends", it->first.str());
          it = entries_.erase(it);
          continue;
        }
      }
      if (it->second.terminal || it->second.notBefore > now) out.insert(it->first);
      ++it;
    }
    return out;
  }

  // After a pass: `failed` were tried and failed, `terminal` among them terminally (`inUse`
  // among those because their object was in use: Error::inUse); the rest of what was not held
  // is fine now.
  // `observed`: the host after the pass.
  void update(const std::set<ResourceId>& failed, const std::set<ResourceId>& terminal,
              const std::set<ResourceId>& inUse, const std::set<ResourceId>& held,
              const Desired& desired, const Observation& observed, Clock::time_point now) {
    for (auto it = entries_.begin(); it != entries_.end();)
      it = failed.count(it->first) || held.count(it->first) ? std::next(it) : entries_.erase(it);
    if (failed.empty()) return;
    auto specs = specHashes(desired, &failed);
    for (const auto& id : failed) {
      Entry& e = entries_[id];
      ++e.failures;
      e.spec = specs[id];
      e.terminal = terminal.count(id) != 0;
      e.busy = e.terminal && inUse.count(id) != 0;
      if (e.terminal) {
        e.observed = observedHash(observed, id, !e.busy);
        if (e.busy) {
          spdlog::info(
              "{}: attempt {} refused: in use; tried again once nobody uses it (looked "
              "at again every few seconds, then less often)",
              id.str(), e.failures);
          continue;
        }
        spdlog::info(
            "{}: attempt {} failed terminally; not tried again until its desired spec or the "
            "object on the host changes",
            id.str(), e.failures);
        continue;
      }
      e.delay = e.failures == 1 || e.delay.count() == 0 ? std::chrono::milliseconds(1000)
                                                        : std::min(e.delay * 2, cap_);
      e.notBefore = now + e.delay;
      spdlog::info(
          "{}: attempt {} failed; next attempt in {} ms, not sooner whatever wakes the daemon",
          id.str(), e.failures, e.delay.count());
    }
  }

  // The resources held because their object was in use: their user may go without an event, so
  // they are looked at again on a timer.
  std::set<ResourceId> inUse() const {
    std::set<ResourceId> out;
    for (const auto& [id, e] : entries_)
      if (e.terminal && e.busy) out.insert(id);
    return out;
  }

  // When the next retry is due (terminal holds have none).
  std::optional<Clock::time_point> next() const {
    std::optional<Clock::time_point> t;
    for (const auto& [id, e] : entries_)
      if (!e.terminal && (!t || e.notBefore < *t)) t = e.notBefore;
    return t;
  }

 private:
  struct Entry {
    unsigned failures = 0;
    std::chrono::milliseconds delay{0};
    Clock::time_point notBefore;
    std::size_t spec = 0;  // hash of the desired spec it failed with (0: not desired)
    bool terminal = false;
    std::size_t observed = 0;  // terminal: observedHash() after the failure
    bool busy = false;         // terminal, refused because the object was in use (Error::inUse)
  };

  // Hashes of the desired specs of the resources in backoff (or of `only`).
  std::map<ResourceId, std::size_t> specHashes(const Desired& desired,
                                               const std::set<ResourceId>* only = nullptr) const {
    std::map<ResourceId, std::size_t> out;
    if (entries_.empty() && !only) return out;
    for (const auto& r : desired.resources)
      if (only ? only->count(r.id) != 0 : entries_.count(r.id) != 0)
        out[r.id] = std::hash<std::string>{}(r.spec.dump()) | 1;
    return out;
  }

  std::chrono::milliseconds cap_;
  std::map<ResourceId, Entry> entries_;
};

}  // namespace nodeplane::daemon
