#include "executor.hpp"

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

namespace nodeplane {
namespace {

class Run {
 public:
  Run(const Plan& plan, const ExecutorHooks& hooks, std::vector<std::size_t> steps)
      : plan_(plan), hooks_(hooks), steps_(std::move(steps)) {}

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
      Result<void> done = hooks_.apply(e);
      lock.lock();
      running_.erase(i);
      --busy_[e.plugin];
      auto& r = (*results_)[i];
      if (done) {
        r.outcome = StepOutcome::kOk;
      } else {
        r.outcome = StepOutcome::kFailed;
        r.error = done.error();
        if (r.error.resource.empty()) r.error.resource = e.change.id.str();
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
};

}  // namespace

std::vector<StepResult> executePlan(const Plan& plan, const ExecutorHooks& hooks) {
  std::vector<StepResult> results(plan.entries.size());
  std::vector<std::size_t> deletes, rest;
  for (std::size_t i = 0; i < plan.entries.size(); ++i)
    (plan.entries[i].change.action == Action::kDelete ? deletes : rest).push_back(i);
  Run(plan, hooks, deletes).execute(results);
  Run(plan, hooks, rest).execute(results);
  return results;
}

}  // namespace nodeplane
