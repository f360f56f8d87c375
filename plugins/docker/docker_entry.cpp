// libnodeplane-docker.so: the light front (no libcurl); the runtime is docker_runtime_entry.cpp.
#include "docker_front.hpp"

NODEPLANE_PLUGIN(nodeplane::docker::DockerFront)
