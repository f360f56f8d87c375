#include "daemon_events.hpp"

#include <poll.h>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace nodeplane {
namespace {

constexpr std::chrono::milliseconds kFirstRetry{200};

std::string describe(const Touched& t) {
  if (t.everything) return "everything";
  std::string out;
  std::size_t n = 0;
  for (const auto& k : t.kinds) out += (out.empty() ? "" : ", ") + k + " (all)";
  for (const auto& id : t.resources) {
    if (++n > 3) {
      out += fmt::format(" and {} more", t.resources.size() - 3);
      break;
    }
    out += (out.empty() ? "" : ", ") + id.str();
  }
  return out;
}

}  // namespace

EventSources::EventSources(PluginHost& plugins, std::chrono::milliseconds maxBackoff)
    : plugins_(plugins), maxBackoff_(std::max(maxBackoff, kFirstRetry)) {}

EventSources::~EventSources() { closeAll(); }

std::set<std::string> EventSources::openStarted(Clock::time_point now) {
  std::set<std::string> out;
  for (const auto& p : plugins_.plugins()) {
    // Only plugins a pass started (in use); each once: a broken source is re-opened by
    // reopenDue(), with backoff.
    if (!p->started() || opened_.count(p.get())) continue;
    opened_.insert(p.get());
    if (open(p.get(), now)) {
      out.insert(p->name());
    } else {
      Down& d = down_[p.get()];
      d.delay = kFirstRetry;
      d.retryAt = now + d.delay;
    }
  }
  return out;
}

bool EventSources::open(PluginHandle* plugin, Clock::time_point now) {
  auto sources = plugin->openEvents();
  if (!sources) {
    auto it = down_.find(plugin);
    if (it == down_.end())
      spdlog::warn(
          "plugin {}: cannot open its event sources: {}; retrying with backoff (meanwhile its "
          "changes are seen at the resync)",
          plugin->name(), sources.error().str());
    else
      spdlog::debug("plugin {}: re-opening its event sources failed (attempt {}): {}",
                    plugin->name(), it->second.attempts, sources.error().str());
    return false;
  }
  for (auto& s : *sources) {
    spdlog::info("watching {} (plugin {})", s.name, plugin->name());
    watched_.push_back({plugin, std::move(s)});
  }
  (void)now;
  return true;
}

void EventSources::broke(PluginHandle* plugin, const std::string& why, Clock::time_point now) {
  spdlog::warn(
      "plugin {}: {}; closing its event sources and re-opening them with backoff (meanwhile its "
      "changes are seen at the resync)",
      plugin->name(), why);
  std::erase_if(watched_, [&](const Watched& w) { return w.plugin == plugin; });
  plugin->closeEvents();
  Down& d = down_[plugin];
  d.attempts = 0;
  d.delay = kFirstRetry;
  d.retryAt = now + d.delay;
}

bool EventSources::ready(PluginHandle* plugin, int fd, short revents, Clock::time_point now) {
  auto it = std::find_if(watched_.begin(), watched_.end(),
                         [&](const Watched& w) { return w.plugin == plugin && w.source.fd == fd; });
  if (it == watched_.end()) return false;  // closed since poll() returned
  const std::string name = it->source.name;
  bool pass = false;
  if (revents & (POLLIN | POLLERR)) {
    auto touched = plugin->drainEvents(fd);
    if (!touched) {
      broke(plugin, "event source \"" + name + "\" broke: " + touched.error().str(), now);
      return true;  // what it would have said is lost
    }
    pass = needsPass(*touched);
    if (!touched->empty())
      spdlog::debug("plugin {}: {}: {}{}", plugin->name(), name, describe(*touched),
                    pass ? "" : " (none desired or owned: no pass)");
  }
  if (revents & (POLLERR | POLLHUP | POLLNVAL)) {
    // The read may have taken the error away (a netlink socket that overflowed reports POLLERR
    // until recv() returns ENOBUFS, which the plugin reads as "everything"): ask again.
    pollfd again{fd, POLLIN, 0};
    revents = ::poll(&again, 1, 0) < 0 ? POLLNVAL : again.revents;
  }
  if (revents & (POLLERR | POLLHUP | POLLNVAL)) {
    broke(plugin,
          "event source \"" + name + "\" broke (" +
              ((revents & POLLNVAL)  ? "not an open descriptor"
               : (revents & POLLERR) ? "error"
                                     : "hung up") +
              ")",
          now);
    return true;
  }
  return pass;
}

std::set<std::string> EventSources::reopenDue(Clock::time_point now) {
  std::set<std::string> out;
  for (auto it = down_.begin(); it != down_.end();) {
    Down& d = it->second;
    if (d.retryAt > now) {
      ++it;
      continue;
    }
    ++d.attempts;
    PluginHandle* plugin = it->first;
    plugin->closeEvents();  // whatever a failed open left
    if (open(plugin, now)) {
      spdlog::info("plugin {}: event sources re-opened", plugin->name());
      out.insert(plugin->name());
      it = down_.erase(it);
      continue;
    }
    d.delay = std::min(d.delay * 2, maxBackoff_);
    d.retryAt = now + d.delay;
    ++it;
  }
  return out;
}

std::optional<EventSources::Clock::time_point> EventSources::nextReopen() const {
  std::optional<Clock::time_point> t;
  for (const auto& [plugin, d] : down_)
    if (!t || d.retryAt < *t) t = d.retryAt;
  return t;
}

void EventSources::closeAll() {
  std::set<PluginHandle*> open;
  for (const auto& w : watched_) open.insert(w.plugin);
  watched_.clear();
  for (PluginHandle* p : open) p->closeEvents();
  down_.clear();
  opened_.clear();
}

bool EventSources::needsPass(const Touched& t) const {
  if (t.everything || !t.kinds.empty()) return true;
  if (!relevant_) return !t.resources.empty();
  return std::any_of(t.resources.begin(), t.resources.end(),
                     [&](const ResourceId& id) { return relevant_->count(id) != 0; });
}

}  // namespace nodeplane
