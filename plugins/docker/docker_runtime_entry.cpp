// runtime/libnodeplane-docker-runtime.so: DockerPlugin, loaded by DockerFront when first needed.
#include "docker_plugin.hpp"

NODEPLANE_PLUGIN(nodeplane::docker::DockerPlugin)
