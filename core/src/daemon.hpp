// `nodeplane run`: the level-triggered daemon. Watchers (inotify on the desired directory,
// netlink link/address events, signals, the resync timer) only schedule a pass; a pass re-reads
// desired and observed state from scratch. Idle, it sleeps in poll() with no timeout: no wakeups
// but the resync timer (and the systemd watchdog, when asked for).
#pragma once

#include <chrono>
#include <filesystem>
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
  bool watchNetlink = true;
};

// Returns the process exit code: 0 after SIGTERM/SIGINT, 1 if it could not start.
int runDaemon(Engine& engine, const DaemonOptions& options);

}  // namespace nodeplane
