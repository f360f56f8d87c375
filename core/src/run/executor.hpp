// Runs a plan as a DAG: a step starts once every step it waits for has succeeded; a failed step
// skips everything that depends on it, independent steps go on. Deletes and releases run before the
// rest (a name freed by a delete may be reused by a create). At most maxParallel(plugin) steps of
// one plugin run at once.
#pragma once

#include <chrono>
#include <functional>
#include <stop_token>
#include <string>
#include <vector>

#include "plan.hpp"

namespace nodeplane {

// kCancelled: not tried because the run stopped at a permission failure (see executePlan), or
// because a stop was requested (error.kind kRetryable).
enum class StepOutcome { kPending, kOk, kFailed, kSkipped, kCancelled };

struct StepResult {
  StepOutcome outcome = StepOutcome::kPending;
  Error error;  // kFailed: what went wrong; kSkipped: which step it waited for
  // How the plugin classified it (kOk: kDone or kInProgress; kFailed: kRetryable or kTerminal).
  Outcome::Class cls = Outcome::kDone;
  std::chrono::milliseconds recheckAfter{0};  // kInProgress: look again after this
  std::string waitingFor;                     // kInProgress: "the guest to reach running"
};

struct ExecutorHooks {
  // kDone and kInProgress end the step kOk (what waits for it may start); the others kFailed.
  std::function<Outcome(const PlanEntry&)> apply;
  std::function<unsigned(const std::string& plugin)> maxParallel;
  // Called (serialised) after each step ends, in completion order.
  std::function<void(std::size_t index, const StepResult&)> onStep;
  // Once a stop is requested (the daemon got SIGTERM) no new step starts: steps running finish,
  // the others end kCancelled, "not tried: the daemon is stopping".
  std::stop_token stop;
};

// The first step that fails because the host denied permission (isPermissionDenied) stops the
// run: steps not started yet, and steps that fail the same way meanwhile, end kCancelled. Trying
// each one would only repeat the same refusal.
std::vector<StepResult> executePlan(const Plan& plan, const ExecutorHooks& hooks);

// The host refused for lack of privilege: EPERM ("Operation not permitted") in the message.
bool isPermissionDenied(const Error& e);

// The last line of defence, whatever planned the step (the planner, a saved plan, a journal):
// a delete, replace or update acts only on an object nodeplane owns when the step runs, that is
// recorded in the state store AND carrying nodeplane's mark as observed just before the steps
// run (a legacy mark without agent id counts when the store records it), and that is still the
// object the plan was made against (Change::uid, when set, equals the observed uid). Adopting
// (an update or replace with Change::adopt) never takes an object another agent marked. A
// release is checked like a delete. A create must not find the object there already.
struct OwnershipCheck {
  enum Verdict { kRun, kRefuse, kAlreadyGone } verdict = kRun;
  Error error;  // kRefuse: why
};
// `now`: the object as observed (null when absent); `observeFailed`: why its kind could not be
// observed (null when it was).
OwnershipCheck checkOwnership(const PlanEntry& step, bool recordedOwned, const ObservedObject* now,
                              const Error* observeFailed);

}  // namespace nodeplane
