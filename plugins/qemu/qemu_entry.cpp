#include "qemu_plugin.hpp"

NODEPLANE_PLUGIN(nodeplane::qemu::QemuPlugin)
