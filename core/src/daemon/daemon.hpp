// `nodeplane run`: the level-triggered daemon. Watchers (inotify on the desired directory, the
// plugins' event sources, signals, the resync timer) only schedule a pass; a pass re-reads the
// desired state when a file changed and observes every plugin, except after events alone: then
// it observes afresh only the plugins whose sources fired, until the next full resync. Idle, it
// sleeps in poll() with no timeout: no wakeups but the resync timer (and the systemd watchdog, when
// asked for).
//
// What a pass never does: retry a resource before its backoff ends (whatever woke the daemon,
// its own rollback's netlink events included), act on a file that just became empty before it
// settled, prune everything because the desired state became empty (unless allowEmpty), or let
// an exception end the process.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "engine.hpp"

namespace nodeplane {

struct DaemonOptions {
  std::vector<std::filesystem::path> sources;
  std::filesystem::path stateDir;
  std::chrono::seconds resync{60};
  std::chrono::milliseconds debounce{250};
  std::chrono::seconds lockTimeout{60};
  bool prune = true;
  bool allowEmpty = false;  // agent config `allowEmpty`
  // Poll the plugins' event sources (Plugin::openEvents).
  bool watchEvents = true;
  // Events run a pass once quiet for `debounce`, but no later than this after the first of them
  // (0: 4 x debounce, at least 1 s).
  std::chrono::milliseconds maxWait{0};
  // A file that had resources and has none now may be half-written (truncated, then written):
  // the pass waits this long for it to change again before acting on it.
  std::chrono::milliseconds settle{2000};
  // A change held because its object is in use (ObservedObject::busy) is looked at again this
  // long after (then twice as long each time, up to 30 s or the resync): its user may go without
  // an event (a process that closes a VFIO node). Only the plugins of those objects are observed
  // afresh.
  std::chrono::milliseconds busyRecheck{5000};
};

// Returns the process exit code: 0 after SIGTERM/SIGINT, 1 if it could not start.
int runDaemon(Engine& engine, const DaemonOptions& options);

}  // namespace nodeplane
