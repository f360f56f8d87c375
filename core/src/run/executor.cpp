#include "executor.hpp"

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

namespace nodeplane {
namespace {

void cancel(StepResult& r, const PlanEntry& e, bool stopRequested = false) {
  r.outcome = StepOutcome::kCancelled;
  r.error.kind = stopRequested ? ErrorKind::kRetryable : ErrorKind::kTerminal;
  r.error.resource = e.change.id.str();
  r.error.message = stopRequested ? "not tried: the daemon is stopping"
                                  : "not tried: the apply stopped at the first permission failure";
}

class Run {
 public:
  Run(const Plan& plan, const ExecutorHooks& hooks, std::vector<std::size_t> steps, bool& stopped)
      : plan_(plan), hooks_(hooks), steps_(std::move(steps)), stopped_(stopped) {}

  void execute(std::vector<StepResult>& results) {
    results_ = &results;
    unsigned workers = 0;
    std::map<std::string, unsigned> seen;
    for (std::size_t i : steps_) seen.emplace(plan_.entries[i].plugin, 0);
    for (const auto& [plugin, _] : seen) workers += std::max(1u, hooks_.maxParallel(plugin));
    workers = std::min<unsigned>({workers, 16u, static_cast<unsigned>(steps_.size())});
    if (workers <= 1) {
      worker();
      return;
    }
    std::vector<std::jthread> pool;
    for (unsigned w = 0; w < workers; ++w) pool.emplace_back([this] { worker(); });
  }

 private:
  // Next runnable step, or nullopt when none can start now. Marks skips on the way.
  std::optional<std::size_t> pick() {
    for (std::size_t i : steps_) {
      auto& r = (*results_)[i];
      if (r.outcome != StepOutcome::kPending || running_.count(i)) continue;
      const PlanEntry& e = plan_.entries[i];
      bool ready = true;
      for (std::size_t a : e.after) {
        const auto& dep = (*results_)[a];
        if (dep.outcome == StepOutcome::kFailed || dep.outcome == StepOutcome::kSkipped) {
          const auto& depId = plan_.entries[a].change.id;
          if (std::find(e.orderOnly.begin(), e.orderOnly.end(), depId) != e.orderOnly.end())
            continue;  // it ended: the order is kept, its failure is its own
          r.outcome = StepOutcome::kSkipped;
          r.error.kind = ErrorKind::kRetryable;
          r.error.resource = e.change.id.str();
          r.error.message =
              "skipped: depends on " + plan_.entries[a].change.id.str() +
              (dep.outcome == StepOutcome::kFailed ? ", which failed" : ", which was skipped");
          if (hooks_.onStep) hooks_.onStep(i, r);
          --left_;
          return pick();  // a skip may unblock nothing but can finish the run
        }
        if (dep.outcome != StepOutcome::kOk) ready = false;
      }
      if (!ready) continue;
      if (busy_[e.plugin] >= std::max(1u, hooks_.maxParallel(e.plugin))) continue;
      return i;
    }
    return std::nullopt;
  }

  void worker() {
    std::unique_lock lock(mu_);
    for (;;) {
      if (left_ == 0) {
        cv_.notify_all();
        return;
      }
      const bool stopRequested = hooks_.stop.stop_requested();
      if (stopped_ || stopRequested) {  // no new step starts; those running finish on their own
        for (std::size_t i : steps_)
          if (auto& r = (*results_)[i]; r.outcome == StepOutcome::kPending && !running_.count(i)) {
            cancel(r, plan_.entries[i], stopRequested && !stopped_);
            --left_;
            if (hooks_.onStep) hooks_.onStep(i, r);
          }
        if (left_ == 0) continue;
        cv_.wait(lock);
        continue;
      }
      auto next = pick();
      if (!next) {
        if (left_ == 0) continue;
        if (running_.empty()) {  // nothing running and nothing runnable: cannot happen in a DAG
          for (std::size_t i : steps_)
            if ((*results_)[i].outcome == StepOutcome::kPending) {
              (*results_)[i].outcome = StepOutcome::kSkipped;
              (*results_)[i].error.message = "skipped: waits on a step outside this phase";
              --left_;
            }
          continue;
        }
        cv_.wait(lock);
        continue;
      }
      const std::size_t i = *next;
      const PlanEntry& e = plan_.entries[i];
      running_.insert(i);
      ++busy_[e.plugin];
      lock.unlock();
      Outcome done = hooks_.apply(e);
      lock.lock();
      running_.erase(i);
      --busy_[e.plugin];
      auto& r = (*results_)[i];
      r.cls = done.cls;
      if (done.ok()) {
        r.outcome = StepOutcome::kOk;
        r.recheckAfter = done.recheckAfter;
        r.waitingFor = std::move(done.waitingFor);
      } else if (stopped_ && isPermissionDenied(done.error)) {
        cancel(r, e);  // the same refusal again: said once already
      } else {
        r.outcome = StepOutcome::kFailed;
        r.error = std::move(done.error);
        if (r.error.resource.empty()) r.error.resource = e.change.id.str();
        if (isPermissionDenied(r.error)) stopped_ = true;
      }
      --left_;
      if (hooks_.onStep) hooks_.onStep(i, r);
      cv_.notify_all();
    }
  }

  const Plan& plan_;
  const ExecutorHooks& hooks_;
  std::vector<std::size_t> steps_;
  std::vector<StepResult>* results_ = nullptr;
  std::mutex mu_;
  std::condition_variable cv_;
  std::set<std::size_t> running_;
  std::map<std::string, unsigned> busy_;
  std::size_t left_ = steps_.size();
  bool& stopped_;  // shared by the phases of one plan
};

}  // namespace

OwnershipCheck checkOwnership(const PlanEntry& step, bool recordedOwned, const ObservedObject* now,
                              const Error* observeFailed) {
  const Change& c = step.change;
  OwnershipCheck out;
  // Not ours: a conflict, until a file or the host changes. The plan is stale (the object
  // appeared, went or was made again since it was made): retryable, since a new plan from a fresh
  // observation is all it takes (the daemon's next pass; a terminal hold would wait for a change
  // that already happened).
  auto refuse = [&](std::string why, std::string hint, ErrorKind kind = ErrorKind::kConflict) {
    out.verdict = OwnershipCheck::kRefuse;
    out.error.kind = kind;
    out.error.resource = c.id.str();
    out.error.message =
        std::string("refused to ") + toString(c.action) + " it: " + why + "; nothing was changed";
    out.error.hint = std::move(hint);
    return out;
  };
  if (observeFailed) {
    if (c.action == Action::kCreate) return out;  // the plugin refuses a name already taken
    return refuse("its ownership cannot be checked (" + observeFailed->message + ")",
                  "a later pass retries", ErrorKind::kRetryable);
  }
  if (c.action == Action::kCreate) {
    if (now)
      return refuse("it already exists", "run `nodeplane diff` again", ErrorKind::kRetryable);
    return out;
  }
  const bool removes = c.action == Action::kDelete || c.action == Action::kRelease;
  if (!now) {
    if (removes && recordedOwned) {  // ours, and already gone
      out.verdict = OwnershipCheck::kAlreadyGone;
      return out;
    }
    if (removes)  // whatever has that name now is not ours
      return refuse(
          "nodeplane does not own it (not recorded in the state store, not on the "
          "host as a " +
              c.id.kind + ")",
          "nodeplane changes only what it created or adopted");
    return refuse("it is not on the host as a " + c.id.kind, "run `nodeplane diff` again",
                  ErrorKind::kRetryable);
  }
  if (!c.uid.empty() && now->uid != c.uid)
    return refuse("it is not the object the plan was made against (uid " + c.uid + " then, " +
                      (now->uid.empty() ? std::string("none") : now->uid) +
                      " now: removed and made again since)",
                  "run `nodeplane diff` again and review the new plan", ErrorKind::kRetryable);
  if (!now->markedByOther.empty())
    return refuse(
        "it carries the mark of another nodeplane agent (agent id " + now->markedByOther + ")",
        "each agent changes only its own objects");
  if (c.adopt && !removes) return out;
  const bool marked = now->marked || (now->legacyMark && recordedOwned);
  if (!recordedOwned || !marked)
    return refuse(std::string("nodeplane does not own it (") +
                      (!recordedOwned && !marked ? "not recorded in the state store, no mark"
                       : !recordedOwned          ? "not recorded in the state store"
                                                 : "it does not carry nodeplane's mark") +
                      ")",
                  "nodeplane changes only what it created or adopted");
  return out;
}

std::vector<StepResult> executePlan(const Plan& plan, const ExecutorHooks& hooks) {
  std::vector<StepResult> results(plan.entries.size());
  // A delete that waits for another kind of step (the child of a VM that is updated) runs with
  // the rest (as does one that waits for a later entry, which a saved plan may have).
  std::vector<bool> first(plan.entries.size(), false);
  for (std::size_t i = 0; i < plan.entries.size(); ++i) {
    const auto& e = plan.entries[i];
    first[i] = (e.change.action == Action::kDelete || e.change.action == Action::kRelease) &&
               std::all_of(e.after.begin(), e.after.end(),
                           [&](std::size_t a) { return a < i && first[a]; });
  }
  std::vector<std::size_t> deletes, rest;
  for (std::size_t i = 0; i < plan.entries.size(); ++i) (first[i] ? deletes : rest).push_back(i);
  bool stopped = false;
  Run(plan, hooks, deletes, stopped).execute(results);
  Run(plan, hooks, rest, stopped).execute(results);
  return results;
}

bool isPermissionDenied(const Error& e) {
  if (e.kind == ErrorKind::kConflict || e.kind == ErrorKind::kInvalidInput) return false;
  // EPERM only: the kernel's answer to a missing capability. EACCES ("Permission denied") is also
  // what it says to requests no privilege fixes (an IPv6 address where IPv6 is disabled): that
  // fails its own resource and stops nothing else.
  return e.message.find(std::strerror(EPERM)) != std::string::npos;
}

}  // namespace nodeplane
