// STUB: replaced by the engine helper. `nodeplane check` items of the docker plugin.
#include "docker_plugin.hpp"

namespace nodeplane::docker {

std::vector<CheckItem> DockerPlugin::check() { return {}; }

}  // namespace nodeplane::docker
