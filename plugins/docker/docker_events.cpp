// STUB: replaced by the engine helper. The plugin's event source: Docker's /events stream.
#include "docker_plugin.hpp"
#include "engine_events.hpp"

namespace nodeplane::docker {

Result<std::vector<EventSource>> DockerPlugin::openEvents() { return std::vector<EventSource>{}; }
Result<Touched> DockerPlugin::drainEvents(int) { return Touched{}; }
void DockerPlugin::closeEvents() {}

}  // namespace nodeplane::docker
