#include "vgpu_plugin.hpp"

NODEPLANE_PLUGIN(nodeplane::vgpu::VgpuPlugin)
