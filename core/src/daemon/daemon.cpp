#include "daemon.hpp"

#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "backoffs.hpp"
#include "daemon_events.hpp"

namespace nodeplane {
namespace {

// The processes (other than this one) that have `file` open for writing now: a copy still
// streaming into it. /proc/<pid>/fd links to the file, /proc/<pid>/fdinfo/<fd> "flags:" says how
// it was opened. Processes that go or cannot be read while scanning are skipped.
std::vector<pid_t> writersOf(const std::string& file) {
  std::vector<pid_t> out;
  std::error_code ec;
  const std::filesystem::path target = std::filesystem::canonical(file, ec);
  if (ec) return out;
  const pid_t self = ::getpid();
  for (std::filesystem::directory_iterator p("/proc", ec), end; !ec && p != end; p.increment(ec)) {
    const std::string name = p->path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(name.substr(0, 9)));
    if (pid == self) continue;
    std::error_code fec;
    for (std::filesystem::directory_iterator fd(p->path() / "fd", fec); !fec && fd != end;
         fd.increment(fec)) {
      std::error_code lec;
      if (std::filesystem::read_symlink(fd->path(), lec) != target || lec) continue;
      std::ifstream info(p->path() / "fdinfo" / fd->path().filename());
      std::string key;
      unsigned long flags = 0;
      while (info >> key)
        if (key == "flags:" && (info >> std::oct >> flags)) break;
      if ((flags & O_ACCMODE) != O_RDONLY) {
        out.push_back(pid);
        break;
      }
    }
  }
  return out;
}

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      if (fd_ >= 0) ::close(fd_);
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_;
};

void arm(int timerFd, std::chrono::milliseconds after, std::chrono::milliseconds every = {}) {
  itimerspec its{};
  auto ms = std::max<long long>(after.count(), 1);
  its.it_value.tv_sec = ms / 1000;
  its.it_value.tv_nsec = (ms % 1000) * 1000000;
  its.it_interval.tv_sec = every.count() / 1000;
  its.it_interval.tv_nsec = (every.count() % 1000) * 1000000;
  ::timerfd_settime(timerFd, 0, &its, nullptr);
}

void disarm(int timerFd) {
  itimerspec none{};
  ::timerfd_settime(timerFd, 0, &none, nullptr);
}

void drain(int fd) {
  char buf[16384];
  while (::read(fd, buf, sizeof buf) > 0) {
  }
}

std::filesystem::path parentOf(const std::filesystem::path& p) {
  return p.parent_path().empty() ? "." : p.parent_path();
}

// Directories to watch: each directory source, and the parent of each file source. A directory
// source that is a symbolic link (git-sync and deploy tools swap such a link to a new directory
// per revision) also gets its parent watched, where the swap shows as IN_MOVED_TO/IN_CREATE.
std::set<std::filesystem::path> watchDirs(const std::vector<std::filesystem::path>& sources) {
  std::set<std::filesystem::path> dirs;
  for (const auto& s : sources) {
    std::error_code ec;
    if (std::filesystem::is_directory(s, ec)) {
      dirs.insert(s);
      if (std::filesystem::is_symlink(std::filesystem::symlink_status(s, ec)))
        dirs.insert(parentOf(s));
    } else {
      dirs.insert(parentOf(s));
    }
  }
  return dirs;
}

// Test hook for the exception barrier: the first N loads of this process throw once the files are
// read, as a validation that runs out of memory would.
void throwIfTestSaysSo() {
  static const long n = [] {
    const char* v = std::getenv("NODEPLANE_TEST_PASS_THROWS");
    return v ? std::atol(v) : 0L;
  }();
  static long loads = 0;
  if (++loads <= n)
    throw std::runtime_error("NODEPLANE_TEST_PASS_THROWS: pass " + std::to_string(loads));
}

// The desired state, loaded and validated again when a file changed (the first call always
// does). Runs on a thread of its own: the parse makes many small objects that die together
// (every field's source location, YAML events), and there they live in another malloc arena,
// not between what the daemon keeps.
struct Loaded {
  Desired desired;
  std::map<std::string, std::size_t> resourcesIn;  // per file, as written (before selection)
};

std::optional<Loaded> loadAndPrepare(SourceCache& cache, const Engine& engine,
                                     const std::vector<std::filesystem::path>& sources) {
  auto work = [&]() -> std::optional<Loaded> {
    auto loaded = cache.loadIfChanged(sources);
    if (!loaded) return std::nullopt;
    throwIfTestSaysSo();
    std::map<std::string, std::size_t> counts;
    for (const auto& f : loaded->files) counts[f.string()] = 0;
    for (const auto& r : loaded->resources) ++counts[r.where.file];
    return Loaded{engine.prepare(std::move(*loaded)), std::move(counts)};
  };
  std::future<std::optional<Loaded>> job;
  try {
    job = std::async(std::launch::async, work);
  } catch (const std::system_error&) {  // no thread to be had: here, then
    return work();
  }
  return job.get();
}

// A copy of `made` made on this thread, once the parse's garbage is given back: it lies packed
// in a few pages. Kept as it was made, it would be scattered among the freed nodes of the parse
// and keep most heap pages of an idle daemon resident (bench/README.md, idle daemon).
Desired keepPacked(Desired made) {
  ::malloc_trim(0);
  return Desired(made);
}

// inotify watches inodes, not paths: once a watched path names another directory (a swapped
// symlink, a directory deleted and made again) the old watch sees nothing of it. Re-adding every
// path after each batch of events moves the watch to what the path names now (the kernel returns
// the same descriptor when it is the same inode) and drops watches nobody names any more.
class Watches {
 public:
  explicit Watches(int inotifyFd) : fd_(inotifyFd) {}

  // False if a path cannot be watched (logged at `level`); the others are watched regardless.
  bool refresh(const std::vector<std::filesystem::path>& sources, spdlog::level::level_enum level) {
    constexpr std::uint32_t kDirEvents = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE |
                                         IN_DELETE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF;
    bool ok = true;
    std::map<std::filesystem::path, int> next;
    for (const auto& dir : watchDirs(sources)) {
      int wd = ::inotify_add_watch(fd_, dir.c_str(), kDirEvents);
      if (wd < 0) {
        spdlog::log(level, "cannot watch {}: {}", dir.string(), std::strerror(errno));
        ok = false;
        continue;
      }
      auto old = byPath_.find(dir);
      if (old == byPath_.end())
        spdlog::info("watching {}", dir.string());
      else if (old->second != wd)
        spdlog::info("watching {} (it names another directory now)", dir.string());
      next[dir] = wd;
    }
    std::set<int> kept;
    for (const auto& [dir, wd] : next) kept.insert(wd);
    for (const auto& [dir, wd] : byPath_)
      if (!kept.count(wd)) ::inotify_rm_watch(fd_, wd);  // EINVAL if already gone: harmless
    byPath_ = std::move(next);
    return ok;
  }

 private:
  int fd_;
  std::map<std::filesystem::path, int> byPath_;
};

using daemon::Backoffs;
using daemon::Clock;

std::chrono::milliseconds until(Clock::time_point t, Clock::time_point now) {
  return std::max(std::chrono::ceil<std::chrono::milliseconds>(t - now),
                  std::chrono::milliseconds(1));
}

std::optional<ResourceId> idOf(const std::string& text) {
  auto slash = text.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == text.size()) return std::nullopt;
  return ResourceId{text.substr(0, slash), text.substr(slash + 1)};
}

// How a pass ended: `failed` (nothing resource-specific: the lock, the store, an exception)
// retries the whole pass with backoff; `again` asks for another pass that soon (a file settling,
// a resource's retry). Neither: wait for a change.
struct PassOutcome {
  bool failed = false;
  std::optional<std::chrono::milliseconds> again;
  std::set<ResourceId> inUse;  // changes held while their object is in use
};

}  // namespace

int runDaemon(Engine& engine, const DaemonOptions& opt) {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  if (::sigprocmask(SIG_BLOCK, &mask, nullptr) != 0) {
    spdlog::error("sigprocmask: {}", std::strerror(errno));
    return 1;
  }
  Fd sigFd(::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
  Fd inFd(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
  Fd passTimer(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
  Fd resyncTimer(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
  Fd watchdogTimer(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
  Fd passDone(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));  // the pass thread ended
  Fd eventTimer(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));   // debounce
  Fd reopenTimer(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));  // sources
  Fd busyTimer(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));    // in use
  if (!sigFd || !inFd || !passTimer || !resyncTimer || !watchdogTimer || !passDone || !eventTimer ||
      !reopenTimer || !busyTimer) {
    spdlog::error("cannot set up the event loop: {}", std::strerror(errno));
    return 1;
  }
  Watches watches(inFd.get());
  if (!watches.refresh(opt.sources, spdlog::level::err)) return 1;

  // The plugins' event sources (the net plugin's link and address events: a link deleted by
  // hand is repaired at once). Opened after the pass that started their plugin (passEnded), and
  // that plugin observed afresh by the next pass, so nothing falls between.
  EventSources events(engine.plugins(),
                      std::min<std::chrono::milliseconds>(opt.resync, std::chrono::seconds(60)));
  // Between full passes (resync, files, SIGHUP, retries) a pass after events observes afresh only
  // the plugins whose sources fired, and reuses the others' last observation.
  engine.keepObservations();
  bool wantFull = true;                         // the next pass observes every plugin
  std::set<std::string> touchedPlugins;         // else: these afresh
  std::set<std::string> reopenedKinds;          // of plugins whose event sources were re-opened
  std::set<std::string> passReopened;           // the same, handed to the pass that starts next
  std::optional<Clock::time_point> firstEvent;  // of those the next pass answers
  const auto maxWait = opt.maxWait.count() ? std::max(opt.maxWait, opt.debounce)
                                           : std::max<std::chrono::milliseconds>(
                                                 opt.debounce * 4, std::chrono::seconds(1));

  std::uint64_t watchdogUsec = 0;
  if (sd_watchdog_enabled(0, &watchdogUsec) > 0 && watchdogUsec > 0) {
    auto half = std::chrono::milliseconds(watchdogUsec / 2000);
    arm(watchdogTimer.get(), half, half);
  }
  arm(resyncTimer.get(), opt.resync, opt.resync);

  SourceCache cache;
  std::optional<Desired> desiredCache;  // validated desired state, while no file changes
  std::optional<Loaded> pending;        // a changed desired state not acted on yet (settling)
  auto backoff = std::chrono::milliseconds(0);  // of the whole pass
  Clock::time_point notBefore{};                // no pass before this (whole-pass backoff)
  Backoffs backoffs(opt.resync);
  std::map<std::string, std::size_t> resourcesIn;         // per file, at the last pass that acted
  std::map<std::string, Clock::time_point> emptiedSince;  // files seen emptied, not settled yet
  std::string settleLogged;  // the last "waiting to settle" line: said once, not every recheck
  std::map<ResourceId, Clock::time_point> inProgressSince;  // steps "in progress", pass after pass
  std::optional<std::set<ResourceId>> relevant;  // desired or owned, after the last converge
  std::string waitingLogged;   // the last "waiting: …" summary: said again only when it changes
  std::set<ResourceId> inUse;  // changes held while their object is in use (busyTimer)
  std::chrono::milliseconds inUseDelay{0};  // the busyTimer's period now (doubles, see passEnded)

  // A pass runs on a thread of its own (below): these are the pass's, the poll thread leaves them
  // alone while one runs.
  std::stop_source stopping;  // SIGTERM/SIGINT: the executor starts no new step
  engine.setStop(stopping.get_token());
  auto lastProgress = Clock::time_point{};
  engine.setProgress([&](std::string_view phase, std::size_t done, std::size_t total) {
    const auto now = Clock::now();
    if (done != total && now - lastProgress < std::chrono::milliseconds(200)) return;
    lastProgress = now;
    sd_notifyf(0, "STATUS=%.*s %zu of %zu", static_cast<int>(phase.size()), phase.data(), done,
               total);
  });
  // What a long step says it is doing (logged by the engine) is the daemon's status meanwhile.
  engine.setStepProgress([](const ResourceId& id, std::string_view message) {
    sd_notifyf(0, "STATUS=%s: %.*s", id.str().c_str(), static_cast<int>(message.size()),
               message.data());
  });
  // A step "in progress" (a VM booting) is not waited for: a re-check pass looks again.
  engine.setWaitInProgress(false);
  struct Unhook {
    Engine& engine;
    ~Unhook() {
      engine.setProgress({});
      engine.setStepProgress({});
      engine.setWaitInProgress(true);
      engine.setStop({});
    }
  } unhook{engine};

  auto pass = [&]() -> PassOutcome {
    sd_notify(0, "STATUS=waiting for the state lock");
    auto lock = state::Lock::acquire(
        opt.stateDir, opt.lockTimeout,
        [&](long pid) {
          spdlog::info("waiting up to {} s for the state lock held by pid {}",
                       std::chrono::duration_cast<std::chrono::seconds>(opt.lockTimeout).count(),
                       pid);
          if (pid > 0) sd_notifyf(0, "STATUS=waiting for the state lock held by pid %ld", pid);
        },
        stopping.get_token());
    if (!lock && stopping.stop_requested()) return {};  // told to stop while waiting
    if (!lock) {
      spdlog::error("{}", lock.error().str());
      return {.failed = true};
    }
    auto store = state::Store::open(opt.stateDir);
    if (!store) {
      spdlog::error("{}", store.error().str());
      sd_notifyf(0, "STATUS=state store unreadable: %s", store.error().message.c_str());
      return {.failed = true};
    }
    if (stopping.stop_requested()) return {};
    sd_notify(0, "STATUS=reconciling");
    if (!store->pending().empty()) {
      spdlog::warn("a previous apply was interrupted; finishing it from the journal");
      if (auto r = engine.recover(*store); !r) {
        // The journal is kept: changing anything now could drop what it still needs.
        spdlog::error("recovery: {}; nothing else is done until it succeeds", r.error().str());
        sd_notifyf(0, "STATUS=recovery of an interrupted apply failed: %s",
                   r.error().message.c_str());
        return {.failed = true};
      }
    }
    // Parsed again only when a file changed (the first call always parses), or when the desired
    // state was made with the host inventory and that changed (expandReadsHost, IOMMU groups);
    // held back while a file that had resources and has none now settles.
    engine.newPass();
    if (desiredCache && engine.stale(*desiredCache)) {
      spdlog::info("the host's PCI inventory changed: expanding the desired state again");
      cache = SourceCache();
    }
    if (auto fresh = loadAndPrepare(cache, engine, opt.sources)) pending = std::move(fresh);
    const auto now = Clock::now();
    if (pending) {
      // A file that lost resources (has none, or only its first documents) is often a write in
      // progress (truncated, then written): wait for it to change again, up to opt.settle,
      // before acting on it.
      std::map<std::string, Clock::time_point> emptied;
      std::chrono::milliseconds settleLeft{0};
      std::string settling, files;
      for (const auto& [file, n] : pending->resourcesIn) {
        auto before = resourcesIn.find(file);
        if (before == resourcesIn.end() || n >= before->second) continue;
        auto since = emptiedSince.count(file) ? emptiedSince.at(file) : now;
        emptied[file] = since;
        // A writer that still has it open (a slow copy) is waited for past the settle time, up
        // to a minute: until it closes the file, what the file says is not final.
        if (auto writers = writersOf(file);
            !writers.empty() && now - since < std::max<std::chrono::milliseconds>(
                                                  opt.settle * 30, std::chrono::seconds(60))) {
          settleLeft = std::max(settleLeft, std::min<std::chrono::milliseconds>(
                                                opt.settle, std::chrono::milliseconds(500)));
          files += (files.empty() ? "" : ", ") + file;
          settling += (settling.empty() ? "" : ", ") + file +
                      fmt::format(
                          " had {} resources and has {} now, and pid {} still has it "
                          "open for writing",
                          before->second, n, writers.front());
          continue;
        }
        if (now - since < opt.settle) {
          settleLeft = std::max(settleLeft, until(since + opt.settle, now));
          files += (files.empty() ? "" : ", ") + file;
          settling += (settling.empty() ? "" : ", ") + file +
                      (n == 0 ? std::string(" had resources and has none now")
                              : fmt::format(" had {} resources and has {} now", before->second, n));
        }
      }
      emptiedSince = std::move(emptied);
      if (!settling.empty()) {
        spdlog::log(settling == settleLogged ? spdlog::level::debug : spdlog::level::info,
                    "{} (a write in progress?): waiting {} ms for it to settle before acting on it",
                    settling, settleLeft.count());
        settleLogged = settling;
        sd_notifyf(0, "STATUS=waiting for %s to settle", files.c_str());
        return {.again = settleLeft};
      }
      settleLogged.clear();
      resourcesIn = std::move(pending->resourcesIn);
      desiredCache.reset();  // never two desired states in memory at once
      desiredCache = keepPacked(std::move(pending->desired));
      pending.reset();
    }
    const Desired& desired = *desiredCache;
    if (!desired.ok()) {
      for (const auto& e : desired.errors) spdlog::error("{}", e.str());
      spdlog::error("desired state is invalid ({} error(s)): nothing applied, nothing pruned",
                    desired.errors.size());
      sd_notifyf(0, "STATUS=invalid desired state: %zu error%s; host left as it is",
                 desired.errors.size(), desired.errors.size() == 1 ? "" : "s");
      return {};  // not retryable: wait for the files to change
    }
    if (opt.prune && !opt.allowEmpty && desired.resources.empty()) {
      if (auto doomed = engine.deletesOfEmptyDesired(desired, *store); !doomed.empty()) {
        spdlog::error(
            "the desired state is empty ({} file(s), no resource for this node): refusing to "
            "delete the {} object(s) nodeplane owns ({}); nothing was changed. Waiting for a "
            "change: write the resources back, or set `allowEmpty: true` in the agent config to "
            "let an empty desired state delete them",
            desired.files.size(), doomed.size(), listIds(doomed));
        sd_notifyf(0,
                   "STATUS=desired state is empty; refusing to delete %zu owned object(s) "
                   "(allowEmpty is off)",
                   doomed.size());
        return {};
      }
    }

    backoffs.endRetryable(std::exchange(passReopened, {}));
    const auto terminalKinds = backoffs.terminalKinds();
    const std::set<ResourceId> held = backoffs.held(
        desired, now, terminalKinds.empty() ? Observation{} : engine.observe(terminalKinds));
    std::set<ResourceId> failed, skipped, tried, terminal, inUse;
    auto report = engine.converge(
        desired, *store, opt.prune,
        [&](const PlanEntry& e, const StepResult& r) {
          tried.insert(e.change.id);
          if (r.outcome == StepOutcome::kOk) {
            spdlog::info("{} {}", e.change.id.str(), toString(e.change.action));
            return;
          }
          if (r.outcome == StepOutcome::kCancelled) return;  // one line for all of them, below
          spdlog::error("{}", r.error.str());
          (r.outcome == StepOutcome::kSkipped ? skipped : failed).insert(e.change.id);
          if (r.outcome == StepOutcome::kFailed && r.cls == Outcome::kTerminal) {
            terminal.insert(e.change.id);
            if (r.error.inUse) inUse.insert(e.change.id);
          }
        },
        held);
    {  // what an event must touch to need a pass (EventSources::setRelevant)
      std::set<ResourceId> ids;
      for (const auto& r : desired.resources) ids.insert(r.id);
      for (const auto& [id, _] : store->owned()) ids.insert(id);
      relevant = std::move(ids);
    }
    for (const auto& e : report.plan.errors)
      if (auto id = idOf(e.resource); !id || !held.count(*id)) spdlog::error("{}", e.str());
    bool failedWhole = false;  // an error no resource's backoff accounts for
    bool unserved = false;     // owned objects of a kind no plugin serves: no retry fixes that
    for (const auto& e : report.errors) {
      auto id = idOf(e.resource);
      if (id) {
        if (!held.count(*id) && !skipped.count(*id)) failed.insert(*id);
        // A plan's conflict or invalid input: only a file or the host changing helps.
        if (!held.count(*id) &&
            (e.kind == ErrorKind::kConflict || e.kind == ErrorKind::kInvalidInput))
          terminal.insert(*id);
      } else if (!e.resource.empty()) {  // a kind (Engine::unservedOwned)
        unserved = true;
      } else {
        failedWhole = true;
      }
    }
    // report.errors begins with the plan's errors, logged above; the rest came from the steps.
    for (std::size_t i = report.plan.errors.size(); i < report.errors.size(); ++i)
      if (!idOf(report.errors[i].resource)) spdlog::error("{}", report.errors[i].str());
    // A step in progress for longer than its kind's verify timeout (or the default step
    // timeout) did not converge: a retryable failure from then on.
    std::map<ResourceId, Clock::time_point> stillInProgress;
    std::vector<ApplyReport::InProgress> recheck;
    for (const auto& p : report.inProgress) {
      const auto since = inProgressSince.count(p.id) ? inProgressSince.at(p.id) : now;
      const auto limit = stepTimeout(engine.plugins().schema(p.id.kind));
      if (Clock::now() - since >= limit) {
        spdlog::error("{}: did not converge within {:g} s: still in progress{}", p.id.str(),
                      static_cast<double>(limit.count()) / 1000.0,
                      p.waitingFor.empty() ? "" : ", waiting for " + p.waitingFor);
        failed.insert(p.id);
        continue;
      }
      stillInProgress[p.id] = since;
      recheck.push_back(p);
      spdlog::info("{}: in progress{}; looking again in {} ms", p.id.str(),
                   p.waitingFor.empty() ? "" : ", waiting for " + p.waitingFor,
                   p.recheckAfter.count());
    }
    inProgressSince = std::move(stillInProgress);
    report.inProgress = std::move(recheck);
    backoffs.update(failed, terminal, inUse, held, desired, report.observed, Clock::now());

    std::vector<ResourceId> waiting;  // changes held back by a backoff (theirs or a dependency's)
    for (const auto& e : report.plan.entries)
      if (!tried.count(e.change.id)) waiting.push_back(e.change.id);
    for (const auto& e : report.plan.errors)
      if (auto id = idOf(e.resource); id && held.count(*id)) waiting.push_back(*id);
    const std::size_t acted = report.created + report.updated + report.replaced + report.deleted +
                              report.failed + report.skipped;
    std::string summary =
        fmt::format("{} resources: {} created, {} updated, {} replaced, {} deleted, {} failed",
                    desired.resources.size(), report.created, report.updated, report.replaced,
                    report.deleted, report.failed + report.skipped);
    if (!waiting.empty()) summary += fmt::format(", {} held back", waiting.size());
    if (!report.inProgress.empty())
      summary += fmt::format(", {} in progress", report.inProgress.size());
    const bool unheldErrors = !failed.empty() || failedWhole || unserved;
    if (acted || unheldErrors)
      spdlog::info("reconciled: {}", summary);
    else if (!waiting.empty())  // a hold looked at again (busyRecheck): said once
      spdlog::log(summary == waitingLogged ? spdlog::level::debug : spdlog::level::info,
                  "waiting: {}", summary);
    else
      spdlog::debug("in sync: {}", summary);
    waitingLogged = !acted && !unheldErrors && !waiting.empty() ? summary : std::string();
    sd_notifyf(0, "STATUS=%s%s",
               unheldErrors                 ? "errors; "
               : !report.inProgress.empty() ? "in progress; "
               : waiting.empty()            ? "in sync; "
                                            : "waiting to retry; ",
               summary.c_str());
    PassOutcome out{.failed = failedWhole};
    if (auto next = backoffs.next()) out.again = until(*next, Clock::now());  // the next retry
    for (const auto& p : report.inProgress)                                   // the re-check pass
      out.again = std::min(out.again.value_or(p.recheckAfter),
                           std::max(p.recheckAfter, std::chrono::milliseconds(1)));
    return out;
  };

  // The exception barrier: whatever a pass throws (a bad file, bad_alloc, a plugin) is an error
  // of that pass, retried with backoff; the daemon keeps running. What threw may have been the
  // validation of files the cache has already noted as read: the next pass reads them all again,
  // or it would keep the old desired state (or, on the first pass, have none). Runs on the pass
  // thread.
  auto guardedPass = [&]() -> PassOutcome {
    PassOutcome out;
    try {
      out = pass();
    } catch (const std::exception& e) {
      spdlog::error("reconcile pass failed: {}; the host may be partly converged", e.what());
      sd_notifyf(0, "STATUS=reconcile pass failed: %s", e.what());
      out.failed = true;
      cache = SourceCache();
    } catch (...) {
      spdlog::error("reconcile pass failed: unknown exception; the host may be partly converged");
      sd_notifyf(0, "STATUS=reconcile pass failed: unknown exception");
      out.failed = true;
      cache = SourceCache();
    }
    out.inUse = backoffs.inUse();  // whichever way the pass ended: the holds it keeps
    ::malloc_trim(0);              // give the pass's garbage back: an idle agent should stay small
    const auto heap = ::mallinfo2();
    spdlog::debug("heap after the pass: {} kB in use, {} kB mapped", heap.uordblks / 1024,
                  (heap.arena + heap.hblkhd) / 1024);
    return out;
  };

  // One pass at a time, off the poll thread: signals, the watchdog and events are served while it
  // runs. An event or timer during a pass marks `dirty`: one more pass follows, debounced.
  std::jthread passThread;
  PassOutcome passOut;  // written by the pass thread, read after passDone
  bool passing = false, dirty = false;
  auto startPass = [&] {
    if (passing) {
      dirty = true;
      return;
    }
    drain(passTimer.get());
    disarm(eventTimer.get());
    drain(eventTimer.get());
    firstEvent.reset();
    if (std::exchange(wantFull, false))
      engine.observeEverything();
    else
      engine.observeAfresh(touchedPlugins);
    touchedPlugins.clear();
    passReopened.merge(reopenedKinds);  // the pass is not running: its state is ours here
    reopenedKinds.clear();
    passing = true;
    auto run = [&] {
      passOut = guardedPass();
      const std::uint64_t one = 1;
      (void)!::write(passDone.get(), &one, sizeof one);
    };
    try {
      passThread = std::jthread(run);
    } catch (const std::system_error&) {  // no thread to be had: here, then
      run();
    }
  };
  // Back on the poll thread once the pass ended: when the next one is due.
  auto passEnded = [&] {
    drain(passDone.get());
    if (passThread.joinable()) passThread.join();
    passing = false;
    if (relevant) events.setRelevant(*std::exchange(relevant, std::nullopt));
    if (stopping.stop_requested()) return;  // exiting: no next pass to plan
    const PassOutcome out = passOut;
    const auto now = Clock::now();
    if (opt.watchEvents)
      for (const auto& name : events.openStarted(now)) {  // started by this pass: what fell
        touchedPlugins.insert(name);                      // between its observation and now
        dirty = true;
      }
    std::optional<Clock::time_point> next;
    if (out.failed) {  // retry the whole pass with backoff, capped by the resync period
      backoff = std::min<std::chrono::milliseconds>(
          backoff.count() ? backoff * 2 : std::chrono::milliseconds(1000), opt.resync);
      notBefore = now + backoff;
      next = notBefore;
      spdlog::info("retrying in {} ms", backoff.count());
    } else {
      backoff = std::chrono::milliseconds(0);
      notBefore = {};
      if (out.again) next = now + *out.again;
    }
    if (next) {
      wantFull = true;  // a retry or a file settling: everything afresh
      arm(passTimer.get(), until(*next, now));
    }
    // Held changes whose user may go without an event: their plugins are observed again after
    // busyRecheck, then twice as long each time nothing ended, up to 30 s (or the resync, if
    // sooner): a change is made at most half a minute after its user let go, and a VM that holds
    // a vGPU for weeks costs a look at the vgpu plugin twice a minute.
    const std::chrono::milliseconds cap =
        std::min<std::chrono::milliseconds>(opt.resync, std::chrono::seconds(30));
    inUseDelay = out.inUse.empty()    ? std::chrono::milliseconds(0)
                 : out.inUse != inUse ? std::min<std::chrono::milliseconds>(opt.busyRecheck, cap)
                                      : std::min<std::chrono::milliseconds>(inUseDelay * 2, cap);
    inUse = out.inUse;
    if (inUse.empty())
      disarm(busyTimer.get());
    else
      arm(busyTimer.get(), inUseDelay);
    if (std::exchange(dirty, false)) {  // what happened during the pass: never before its backoff
      firstEvent = now;
      arm(eventTimer.get(), std::max(opt.debounce, until(notBefore, now)));
    }
  };
  // Events (a file written, a plugin's source) run a pass once they have been quiet for
  // opt.debounce, but no later than maxWait after the first of them (churn cannot hold a pass
  // off), and never before the whole-pass backoff ends.
  auto eventSeen = [&](Clock::time_point now) {
    if (passing) {
      dirty = true;  // one more pass follows this one
      return;
    }
    if (!firstEvent) firstEvent = now;
    const auto due = std::max(std::min(now + opt.debounce, *firstEvent + maxWait), notBefore);
    arm(eventTimer.get(), until(due, now));
  };

  spdlog::info("nodeplane run: resync every {} s", opt.resync.count());
  // Loaded and watching: systemd may go on (the first pass can take minutes).
  sd_notify(0, "READY=1");
  startPass();

  enum {
    kSig,
    kInotify,
    kPassTimer,
    kResync,
    kWatchdog,
    kPassDone,
    kEventTimer,
    kReopen,
    kBusy,
    kFixed
  };
  std::vector<pollfd> all;
  for (;;) {
    all.assign({{sigFd.get(), POLLIN, 0},
                {inFd.get(), POLLIN, 0},
                {passTimer.get(), POLLIN, 0},
                {resyncTimer.get(), POLLIN, 0},
                {watchdogTimer.get(), POLLIN, 0},
                {passDone.get(), POLLIN, 0},
                {eventTimer.get(), POLLIN, 0},
                {reopenTimer.get(), POLLIN, 0},
                {busyTimer.get(), POLLIN, 0}});
    const auto watched = events.watched();  // a read may close sources: a copy
    for (const auto& w : watched) all.push_back({w.source.fd, POLLIN, 0});
    if (::poll(all.data(), all.size(), -1) < 0) {
      if (errno == EINTR) continue;
      spdlog::error("poll: {}", std::strerror(errno));
      return 1;
    }
    if (all[kSig].revents & POLLIN) {
      signalfd_siginfo si{};
      while (::read(sigFd.get(), &si, sizeof si) == sizeof si) {
        if (si.ssi_signo == SIGHUP) {
          spdlog::info("SIGHUP: reconciling");
          arm(passTimer.get(), std::chrono::milliseconds(1));
          continue;
        }
        if (stopping.stop_requested()) continue;
        spdlog::info("signal {}: stopping{}", si.ssi_signo,
                     passing ? " once the steps running now end" : "");
        sd_notify(0, "STOPPING=1");
        stopping.request_stop();
      }
    }
    if (all[kPassDone].revents & POLLIN) passEnded();
    if (stopping.stop_requested() && !passing) return 0;
    if (all[kWatchdog].revents & POLLIN) {
      drain(watchdogTimer.get());
      sd_notify(0, "WATCHDOG=1");
    }
    const auto now = Clock::now();
    bool event = false;
    if (all[kInotify].revents & POLLIN) {
      drain(inFd.get());
      watches.refresh(opt.sources, spdlog::level::warn);  // follow swapped links and dirs
      wantFull = true;
      event = true;
    }
    for (std::size_t i = 0; i < watched.size(); ++i) {
      const short revents = all[kFixed + i].revents;
      if (!revents) continue;
      PluginHandle* plugin = watched[i].plugin;
      if (events.ready(plugin, watched[i].source.fd, revents, now)) {
        touchedPlugins.insert(plugin->name());
        event = true;
      }
    }
    if (all[kReopen].revents & POLLIN) {
      drain(reopenTimer.get());
      for (const auto& name : events.reopenDue(now)) {  // what they missed: observe them afresh
        touchedPlugins.insert(name);
        for (const auto& p : engine.plugins().plugins())
          if (p->name() == name)
            for (const auto& ks : p->kinds()) reopenedKinds.insert(ks.kind);
        event = true;
      }
    }
    if (all[kBusy].revents & POLLIN) {  // held changes of objects in use: is the user gone?
      drain(busyTimer.get());
      for (const auto& p : engine.plugins().plugins())
        for (const auto& ks : p->kinds())
          for (const auto& id : inUse)
            if (id.kind == ks.kind) touchedPlugins.insert(p->name());
      event = true;
    }
    if (auto next = events.nextReopen())
      arm(reopenTimer.get(), until(*next, now));
    else
      disarm(reopenTimer.get());
    if (stopping.stop_requested()) {  // waiting for the pass to end: no other starts
      drain(passTimer.get());
      drain(resyncTimer.get());
      drain(eventTimer.get());
      drain(busyTimer.get());
      continue;
    }
    if (event) eventSeen(now);
    if (all[kResync].revents & POLLIN) {
      drain(resyncTimer.get());
      wantFull = true;
      startPass();
      continue;
    }
    if (all[kPassTimer].revents & POLLIN) {
      drain(passTimer.get());
      wantFull = true;  // SIGHUP, a retry, a file settling
      startPass();
      continue;
    }
    if (all[kEventTimer].revents & POLLIN) {
      drain(eventTimer.get());
      startPass();
    }
  }
}

}  // namespace nodeplane
