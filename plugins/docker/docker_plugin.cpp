// The docker plugin's life: start/stop (the Engine client), the spec side through
// container_spec.hpp with the pass's GPU inventory, observe (one list call), and the list of
// containers this agent released. apply() is in docker_apply.cpp.
#include "docker_plugin.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <fstream>
#include <sstream>

#include "container_spec.hpp"
#include "engine.hpp"
#include "engine_events.hpp"
#include "nodeplane/plugin_util.hpp"

namespace nodeplane::docker {
DockerPlugin::DockerPlugin(HostServices& services) : services_(services) {}

DockerPlugin::~DockerPlugin() = default;

std::vector<KindSchema> DockerPlugin::kinds() const { return {containerKind()}; }

std::vector<FieldSchema> DockerPlugin::configSchema() const { return dockerConfigSchema(); }

Result<void> DockerPlugin::start() {
  return catchAll("starting the docker plugin", [&]() -> Result<void> {
    const Json& section = services_.config();
    socket_ = services_.context().dockerSocket;
    if (section.is_object())
      if (auto it = section.find("socket"); it != section.end() && it->is_string())
        socket_ = it->get<std::string>();
    auto engine = std::make_unique<Engine>(socket_);
    if (auto r = engine->connect(); !r) return r;
    engine_ = std::move(engine);
    std::lock_guard lock(releasedMu_);
    releasedLoaded_ = false;
    return loadReleased();
  });
}

void DockerPlugin::stop() {
  events_.reset();
  engine_.reset();
}

std::vector<Error> DockerPlugin::validate(const Resource& r) const {
  return validateOnHost(r, services_);
}

std::vector<Claim> DockerPlugin::claims(const Resource& r) const {
  return claimsOnHost(r, services_);
}

Json DockerPlugin::normalize(const std::string&, const Json& spec) const {
  return normalizeOnHost(spec, services_);
}

Result<std::vector<ObservedObject>> DockerPlugin::observe(const std::vector<std::string>& kinds) {
  return catchAll("observing containers", [&]() -> Result<std::vector<ObservedObject>> {
    std::vector<ObservedObject> out;
    bool wanted = false;
    for (const auto& k : kinds) {
      if (k != kKind)
        return fail(ErrorKind::kTerminal, "the docker plugin does not handle kind " + k);
      wanted = true;
    }
    if (!wanted) return out;
    if (!engine_)
      return fail(ErrorKind::kTerminal,
                  "the docker plugin was not started (start() connects to dockerd)");
    auto list = engine_->call("GET", "/containers/json?all=1");
    if (!list) {
      Error e = list.error();
      e.message = "listing containers: " + e.message;
      return std::unexpected(std::move(e));
    }
    if (!list->is_array())
      return fail(ErrorKind::kRetryable, "listing containers: dockerd answered " + list->dump());
    const std::string agent = services_.agentId();
    std::set<std::string> seen;
    std::lock_guard lock(releasedMu_);
    if (auto r = loadReleased(); !r) return std::unexpected(r.error());
    auto gpus = services_.gpus();  // what gpus: all holds
    const std::vector<host::Gpu> inventory = gpus ? *gpus : std::vector<host::Gpu>{};
    for (const Json& entry : *list) {
      ObservedObject o = observedFromListEntry(entry, agent, inventory);
      if (o.id.name.empty()) continue;
      seen.insert(o.uid);
      if (released_.count(o.uid)) {  // released by this agent: no longer ours
        o.marked = false;
        o.legacyMark = false;
      }
      out.push_back(std::move(o));
    }
    // Released containers that are gone (removed by hand) leave the list at its next write:
    // observe() writes nothing (diff and status only read the state directory).
    lastSeen_ = std::move(seen);
    observedOnce_ = true;
    return out;
  });
}

std::filesystem::path DockerPlugin::releasedFile() const {
  return services_.context().stateDir / "docker" / "released.json";
}

Result<void> DockerPlugin::loadReleased() {
  if (releasedLoaded_) return {};
  released_.clear();
  const auto path = releasedFile();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    releasedLoaded_ = true;
    return {};
  }
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  Json j = Json::parse(text.str(), nullptr, false);
  if (!in || j.is_discarded() || !j.is_object() || !j.contains("released") ||
      !j["released"].is_array())
    return fail(ErrorKind::kTerminal,
                "cannot read " + path.string() + ": expected {\"released\": [container ids]}", {},
                "it lists the containers this agent released; fix or remove it");
  for (const Json& id : j["released"])
    if (id.is_string()) released_.insert(id.get<std::string>());
  releasedLoaded_ = true;
  return {};
}

bool DockerPlugin::isReleased(const std::string& uid) {
  std::lock_guard lock(releasedMu_);
  if (!loadReleased()) return false;
  return released_.count(uid) != 0;
}

Result<void> DockerPlugin::setReleased(const std::string& uid, bool released) {
  std::lock_guard lock(releasedMu_);
  if (auto r = loadReleased(); !r) return r;
  std::set<std::string> next;
  for (const auto& id : released_)
    if (!observedOnce_ || lastSeen_.count(id)) next.insert(id);
  if (released)
    next.insert(uid);
  else
    next.erase(uid);
  if (next == released_) return {};
  Json ids = Json::array();
  for (const auto& id : next) ids.push_back(id);
  if (auto r = writeFileAtomically(releasedFile(), Json{{"released", ids}}.dump() + "\n"); !r)
    return r;
  released_ = std::move(next);
  return {};
}

}  // namespace nodeplane::docker
