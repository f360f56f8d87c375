#include "docker_plugin.hpp"

NODEPLANE_PLUGIN(nodeplane::docker::DockerPlugin)
