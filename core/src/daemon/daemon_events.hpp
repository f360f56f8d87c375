// The daemon's view of the plugins' event sources (Plugin::openEvents): which descriptors to
// poll, which plugin a read concerns, whether what it touched needs a pass, and re-opening a
// source that broke, with backoff, said once.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "plugin_host.hpp"

namespace nodeplane {

class EventSources {
 public:
  using Clock = std::chrono::steady_clock;

  // `maxBackoff`: the longest wait between two attempts to re-open a broken source.
  EventSources(PluginHost& plugins, std::chrono::milliseconds maxBackoff);
  ~EventSources();  // closes every source
  EventSources(const EventSources&) = delete;
  EventSources& operator=(const EventSources&) = delete;

  // Opens the sources of every plugin a pass has started (only plugins in use are: a host
  // without containers never dials dockerd) and whose sources were not opened yet, after each
  // pass: a plugin that started late (dockerd came up after nodeplane) gets its sources then.
  // Returns the plugins opened now: what happened between their observation and now is unseen,
  // so a pass should observe them afresh. One whose sources cannot be opened is retried with
  // backoff.
  std::set<std::string> openStarted(Clock::time_point now);
  void closeAll();

  struct Watched {
    PluginHandle* plugin;
    EventSource source;
  };
  const std::vector<Watched>& watched() const { return watched_; }

  // Reads what poll() reported on `fd` of `plugin` (`revents`). Returns true when what it read
  // needs a pass that observes the plugin afresh. A drain error or POLLERR/POLLHUP/POLLNVAL
  // closes the plugin's sources (logged once) and schedules their re-opening.
  bool ready(PluginHandle* plugin, int fd, short revents, Clock::time_point now);
  // Re-opens the sources whose backoff ended; returns the plugins re-opened (what they missed
  // meanwhile is unknown: observe them afresh).
  std::set<std::string> reopenDue(Clock::time_point now);
  std::optional<Clock::time_point> nextReopen() const;

  // The objects desired or owned, after each pass: a Touched naming only other objects (a
  // bridge made by hand) needs no pass. Until the first call every touched object counts.
  void setRelevant(std::set<ResourceId> ids) { relevant_ = std::move(ids); }

 private:
  struct Down {
    unsigned attempts = 0;
    std::chrono::milliseconds delay{0};
    Clock::time_point retryAt;
  };
  bool open(PluginHandle* plugin, Clock::time_point now);
  void broke(PluginHandle* plugin, const std::string& why, Clock::time_point now);
  bool needsPass(const Touched& t) const;

  PluginHost& plugins_;
  std::chrono::milliseconds maxBackoff_;
  std::vector<Watched> watched_;
  std::map<PluginHandle*, Down> down_;  // plugins whose sources are closed, waiting to re-open
  std::set<PluginHandle*> opened_;      // openStarted() has opened (or tried) their sources
  std::optional<std::set<ResourceId>> relevant_;
};

}  // namespace nodeplane
