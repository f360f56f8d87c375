// Runs a plan as a DAG: a step starts once every step it waits for has succeeded; a failed step
// skips everything that depends on it, independent steps go on. Deletes run before the rest (a
// name freed by a delete may be reused by a create). At most maxParallel(plugin) steps of one
// plugin run at once.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "plan.hpp"

namespace nodeplane {

enum class StepOutcome { kPending, kOk, kFailed, kSkipped };

struct StepResult {
  StepOutcome outcome = StepOutcome::kPending;
  Error error;  // kFailed: what went wrong; kSkipped: which step it waited for
};

struct ExecutorHooks {
  std::function<Result<void>(const PlanEntry&)> apply;
  std::function<unsigned(const std::string& plugin)> maxParallel;
  // Called (serialised) after each step ends, in completion order.
  std::function<void(std::size_t index, const StepResult&)> onStep;
};

std::vector<StepResult> executePlan(const Plan& plan, const ExecutorHooks& hooks);

}  // namespace nodeplane
