// The plugin's event source: Docker's /events stream, container events only.
#include "container_spec.hpp"
#include "docker_plugin.hpp"
#include "engine.hpp"
#include "engine_events.hpp"

namespace nodeplane::docker {
namespace {

// Every container, not only those labelled ours: a hand-made container that takes or frees a
// desired name matters too. Events that cannot change what observe() sees are left out.
Json eventFilters() {
  return {{"type", {"container"}},
          {"event", {"create", "start", "die", "stop", "destroy", "rename"}}};
}

// The socket: start()'s, or (events opened without start(), as in a test) the configured one.
std::string socketOf(const std::string& started, const HostServices& services) {
  if (!started.empty()) return started;
  const Json& config = services.config();
  if (config.is_object() && config.contains("socket") && config["socket"].is_string())
    return config["socket"].get<std::string>();
  return services.context().dockerSocket;
}

std::string withoutSlash(std::string name) {
  if (!name.empty() && name.front() == '/') name.erase(0, 1);
  return name;
}

}  // namespace

Touched containerEventTouches(const std::vector<Json>& events) {
  Touched t;
  for (const auto& e : events) {
    if (!e.is_object() || e.value("Type", "") != "container") continue;
    const Json& attributes =
        e.contains("Actor") && e["Actor"].is_object() && e["Actor"].contains("Attributes")
            ? e["Actor"]["Attributes"]
            : Json::object();
    if (!attributes.is_object()) continue;
    std::string name = withoutSlash(attributes.value("name", ""));
    if (name.empty()) {  // an event without its container's name: all of them
      t.kinds.insert(kKind);
      continue;
    }
    t.resources.insert(ResourceId{kKind, name});
    if (e.value("Action", "") == "rename") {
      std::string old = withoutSlash(attributes.value("oldName", ""));
      if (!old.empty()) t.resources.insert(ResourceId{kKind, old});
    }
  }
  return t;
}

Result<std::vector<EventSource>> DockerPlugin::openEvents() {
  const std::string socket = socketOf(socket_, services_);
  std::string version = engine_ ? engine_->apiVersion() : std::string();
  if (version.empty()) {
    Engine engine(socket);
    if (auto ok = engine.connect(); !ok) return std::unexpected(ok.error());
    version = engine.apiVersion();
  }
  auto stream = std::make_unique<EventStream>();
  if (auto ok = stream->open(socket, version, eventFilters()); !ok)
    return std::unexpected(ok.error());
  std::vector<EventSource> out = {{"docker events at " + socket, stream->fd()}};
  events_ = std::move(stream);
  return out;
}

Result<Touched> DockerPlugin::drainEvents(int) {
  if (!events_) return fail(ErrorKind::kRetryable, "the Docker event stream is not open");
  auto events = events_->drain();
  if (!events) return std::unexpected(events.error());
  return containerEventTouches(*events);
}

void DockerPlugin::closeEvents() { events_.reset(); }

}  // namespace nodeplane::docker
