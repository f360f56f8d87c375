// The ABI entry of libnodeplane-net.so; the logic lives in the nodeplane_net library.
#include "net_plugin.hpp"

NODEPLANE_PLUGIN(nodeplane::net::NetPlugin)
