// The vgpu plugin's settings: the agent config's `vgpu:` section, read once at construction (it
// is checked against vgpuConfigSchema() before the plugin is used).
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "nodeplane/plugin.hpp"

namespace nodeplane::vgpu {

struct VgpuConfig {
  // NVIDIA's script that enables a GPU's VFs (`sriov-manage -e <address>`), run with argv only.
  std::filesystem::path sriovManage = "/usr/lib/nvidia/sriov-manage";
  // NVIDIA's nvidia-smi (a path, or a name looked up on PATH): `nvidia-smi mig -lgi -i <gpu>`
  // counts a MIG GPU's GPU instances when a Vgpu asks for a MIG-backed profile. Run only then.
  std::filesystem::path nvidiaSmi = "nvidia-smi";
  // GPUs (PCI address, inventory index or UUID) the operator has put in mixed-size mode
  // (`nvidia-smi vgpu -shm 1`): vGPUs of different framebuffer sizes may share them. Every other
  // GPU holds one size only (the driver's default equal-size mode).
  std::vector<std::string> mixedSize;
  // Each sysfs write, and each wait for VFs to appear or a type to read back.
  std::chrono::milliseconds writeTimeout{10000};
  // From HostContext: <stateDir>/vgpu holds the records (ownership, resolved type ids).
  std::filesystem::path stateDir = "/var/lib/nodeplane/vgpu";
};

std::vector<FieldSchema> vgpuConfigSchema();  // the `vgpu:` section
// Defaults filled from `host`, then its `vgpu:` section.
VgpuConfig readVgpuConfig(const HostContext& host);

}  // namespace nodeplane::vgpu
