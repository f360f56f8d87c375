// validate, diff, apply, run: the commands that read desired state.
#include <spdlog/spdlog.h>

#include <fstream>
#include <iostream>
#include <mutex>
#include <set>
#include <sstream>

#include "context.hpp"
#include "daemon.hpp"
#include "nodeplane/text.hpp"
#include "sensitive.hpp"

namespace nodeplane::cli {
namespace {

std::vector<std::filesystem::path> toPaths(const std::vector<std::string>& in) {
  return {in.begin(), in.end()};
}

// Loads and validates; on any error prints every one and returns nullopt.
std::optional<Desired> prepared(Context& ctx, Engine& engine, const std::vector<std::string>& paths,
                                int& exitCode) {
  Desired d = engine.prepare(loadSources(toPaths(paths)));
  if (!d.ok()) {
    exitCode =
        reportErrors(ctx, d.errors,
                     fmt::format("{} error(s) in the desired state: nothing was applied or pruned",
                                 d.errors.size()));
    return std::nullopt;
  }
  return d;
}

Result<state::Lock> takeLock(Context& ctx) {
  auto quick = state::Lock::acquire(ctx.stateDir(), std::nullopt);
  // Only a lock held by another process is worth waiting for; an unwritable state dir is not.
  if (quick || quick.error().kind != ErrorKind::kRetryable) return quick;
  if (!ctx.json())
    std::cerr << printable(quick.error().message) << "; waiting up to "
              << ctx.config().lockTimeout.count() << " s\n";
  return state::Lock::acquire(ctx.stateDir(), std::chrono::duration_cast<std::chrono::milliseconds>(
                                                  ctx.config().lockTimeout));
}

}  // namespace

int cmdValidate(Context& ctx, const std::vector<std::string>& paths) {
  auto engine = ctx.engine();
  if (!engine) return reportErrors(ctx, engine.error(), "");
  Desired d = (*engine)->prepare(loadSources(toPaths(paths)));
  if (!d.ok()) return reportErrors(ctx, d.errors, fmt::format("{} error(s)", d.errors.size()));
  if (ctx.json()) {
    Json files = Json::array();
    for (const auto& f : d.files) files.push_back(f.string());
    printJson({{"ok", true},
               {"files", files},
               {"resources", d.resources.size()},
               {"skippedForNode", d.skippedForNode}});
  } else {
    std::cout << fmt::format("valid: {} resource(s) in {} file(s)", d.resources.size(),
                             d.files.size());
    if (d.skippedForNode) std::cout << fmt::format(", {} for other nodes", d.skippedForNode);
    std::cout << "\n";
  }
  return kOk;
}

int cmdDiff(Context& ctx, const std::vector<std::string>& paths, bool prune) {
  auto engine = ctx.engine();
  if (!engine) return reportErrors(ctx, engine.error(), "");
  int code = kOk;
  auto desired = prepared(ctx, **engine, paths, code);
  if (!desired) return code;
  auto store = state::Store::openReadOnly(ctx.stateDir());  // diff only reads: creates nothing
  if (!store) return reportErrors(ctx, {store.error()}, "");
  (*engine)->useAgentOf(*store);
  Observation obs = (*engine)->observeInUse(*desired, *store);
  Plan plan = (*engine)->plan(*desired, obs, *store, prune);
  if (ctx.json()) {
    std::set<ResourceId> owned;  // what `apply --plan` will check the host against
    for (const auto& [id, _] : store->owned()) owned.insert(id);
    plan.fingerprint = obs.fingerprint(owned);
  }
  if (ctx.json())
    printJson(savedPlanJson(plan));
  else
    std::cout << renderPlanText(plan);
  if (!plan.errors.empty()) return kError;
  return plan.hasChanges() ? kChangesPending : kOk;
}

int cmdApply(Context& ctx, const std::vector<std::string>& paths, bool prune,
             const std::string& planFile, bool allowEmpty) {
  auto engine = ctx.engine();
  if (!engine) return reportErrors(ctx, engine.error(), "");
  auto lock = takeLock(ctx);
  if (!lock) return reportErrors(ctx, {lock.error()}, "");
  auto store = state::Store::open(ctx.stateDir());
  if (!store) return reportErrors(ctx, {store.error()}, "nothing was applied");
  if (!store->pending().empty()) {
    spdlog::warn("a previous apply was interrupted; finishing it from the journal");
    if (auto r = (*engine)->recover(*store); !r)
      return reportErrors(ctx, {r.error()}, "recovery failed: nothing was applied");
    else if (!ctx.json())
      std::cerr << "recovered " << *r << " journal entries of an interrupted apply\n";
  }
  std::set<std::string> printed;
  std::mutex printing;  // step lines and progress lines come from several threads
  StepCallback print = [&](const PlanEntry& e, const StepResult& r) {
    if (ctx.json() || r.outcome == StepOutcome::kCancelled) return;  // summed up at the end
    std::lock_guard guard(printing);
    if (r.outcome == StepOutcome::kOk && r.cls == Outcome::kInProgress)
      std::cout << printable(e.change.id.str()) << " " << toString(e.change.action)
                << " in progress" << (r.waitingFor.empty() ? "" : ": waiting for ")
                << printable(r.waitingFor) << "\n";
    else if (r.outcome == StepOutcome::kOk)
      std::cout << printable(e.change.id.str()) << " " << pastTense(e.change.action) << "\n";
    else
      std::cout << "! " << printable(r.error.str()) << "\n";
    printed.insert(r.error.str());
    std::cout.flush();
  };

  // What a long step says it is doing (also logged).
  if (!ctx.json())
    (*engine)->setStepProgress([&](const ResourceId& id, std::string_view message) {
      std::lock_guard guard(printing);
      std::cout << printable(id.str()) << ": " << printable(std::string(message)) << std::endl;
    });
  ApplyReport report;
  if (!planFile.empty()) {
    // A plan of 10 000 resources is a few MB: far more is not a plan nodeplane wrote.
    constexpr std::uintmax_t kMaxPlanBytes = 64u << 20;
    auto text = readFile(planFile, kMaxPlanBytes, "is it a plan `nodeplane diff` wrote?");
    if (!text) return reportErrors(ctx, {text.error()}, "nothing was applied");
    Json j;
    try {
      j = Json::parse(*text);
    } catch (const std::exception& e) {
      return reportErrors(
          ctx, {fail(ErrorKind::kInvalidInput, planFile + ": not JSON: " + e.what()).error()}, "");
    }
    auto plan = planFromJson(j);
    if (!plan) {
      Error e = plan.error();
      e.message = planFile + ": " + e.message;
      return reportErrors(ctx, {e}, "nothing was applied");
    }
    // Sensitive values are only hashes in a saved plan: the desired files give them back.
    std::optional<Desired> desired;
    if (!paths.empty()) {
      int code = kOk;
      desired = prepared(ctx, **engine, paths, code);
      if (!desired) return code;
    }
    if (auto errs = resolveSensitive(*plan, desired ? &desired->resources : nullptr, planFile);
        !errs.empty())
      return reportErrors(
          ctx, errs,
          fmt::format("{} error(s) in the saved plan: nothing was applied", errs.size()));
    if (auto errs = (*engine)->checkSaved(*plan, planFile); !errs.empty())
      return reportErrors(
          ctx, errs,
          fmt::format("{} error(s) in the saved plan: nothing was applied", errs.size()));
    auto r = (*engine)->applySaved(*plan, *store, print, planFile);
    if (!r) return reportErrors(ctx, {r.error()}, "");
    report = std::move(*r);
  } else {
    int code = kOk;
    auto desired = prepared(ctx, **engine, paths, code);
    if (!desired) return code;
    // An empty source is more often a broken checkout or a half-written file than an intent.
    if (prune && !allowEmpty && desired->resources.empty()) {
      if (auto doomed = (*engine)->deletesOfEmptyDesired(*desired, *store); !doomed.empty())
        return reportErrors(
            ctx,
            {fail(ErrorKind::kInvalidInput,
                  fmt::format("the desired state is empty ({} file(s), no resource for this "
                              "node): refusing to delete the {} object(s) nodeplane owns ({})",
                              desired->files.size(), doomed.size(), listIds(doomed)),
                  {}, "pass --allow-empty to delete them, or --no-prune to keep them")
                 .error()},
            "nothing was applied or pruned");
    }
    report = (*engine)->converge(*desired, *store, prune, print);
  }

  if (ctx.json()) {
    Json errs = Json::array();
    for (const auto& e : report.errors) errs.push_back(errorToJson(e));
    printJson({{"ok", report.ok()},
               {"created", report.created},
               {"updated", report.updated},
               {"replaced", report.replaced},
               {"deleted", report.deleted},
               {"released", report.released},
               {"failed", report.failed},
               {"skipped", report.skipped},
               {"inSync", report.plan.inSync.size()},
               {"errors", errs}});
  } else {
    for (const auto& e : report.plan.errors) {
      std::cout << "! " << printable(e.str()) << "\n";
      printed.insert(e.str());
    }
    std::cout << fmt::format(
        "Apply {}: {} created, {} updated, {} replaced, {} deleted, {}{} failed, {} skipped, {} "
        "in sync.\n",
        report.ok() ? "complete" : "incomplete", report.created, report.updated, report.replaced,
        report.deleted,
        report.released ? fmt::format("{} released (left in place), ", report.released) : "",
        report.failed, report.skipped, report.plan.inSync.size());
    for (const auto& e : report.errors)  // what the step lines above did not say
      if (!printed.count(e.str())) std::cout << "! " << printable(e.str()) << "\n";
  }
  return report.ok() ? kOk : kError;
}

int cmdRun(Context& ctx, const std::vector<std::string>& paths, bool prune) {
  auto engine = ctx.engine();
  if (!engine) return reportErrors(ctx, engine.error(), "");
  DaemonOptions opt;
  opt.sources = toPaths(paths);
  opt.stateDir = ctx.stateDir();
  opt.resync = ctx.config().resync;
  opt.debounce = ctx.config().debounce;
  opt.lockTimeout = ctx.config().lockTimeout;
  opt.prune = prune;
  opt.allowEmpty = ctx.config().allowEmpty;
  for (const auto& p : opt.sources) {
    std::error_code ec;
    if (!std::filesystem::exists(p, ec))
      return reportErrors(
          ctx, {fail(ErrorKind::kInvalidInput, p.string() + " does not exist").error()}, "");
  }
  return runDaemon(**engine, opt);
}

}  // namespace nodeplane::cli
