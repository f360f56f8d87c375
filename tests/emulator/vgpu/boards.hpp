// The boards the emulator knows: each one's PCI ids, framebuffer and vGPU type table, as the
// research note gives them (/work/shared/research/nvidia-vgpu-sysfs.md §4, §7.1, §7.2).
#pragma once

#include <string>
#include <vector>

namespace nodeplane::vgpuemu {

struct VgpuType {
  int id = 0;
  std::string name;  // short name, "L40S-24Q"; sysfs shows "NVIDIA " + name
  int sizeMiB = 0;   // framebuffer of one instance
  int maxInstances = 0;
  bool migBacked = false;   // needs a free MIG GPU instance of profile `gi` (one vGPU each)
  std::string gi;           // MIG-backed: its GPU instance profile, "1g.5gb"
  int giProfileId = -1;     // nvidia-smi's id of that profile (19 for 1g.5gb on an A100 40GB)
  std::string description;  // mdev model: the type directory's `description`
};

struct Board {
  std::string name;             // "L40S"
  std::string device;           // PCI device id, "26b9"
  std::string subsystemDevice;  // "1851"
  int fbMiB = 0;
  int migSlices = 0;            // MIG compute slices (7 on an A100); 0: no MIG
  std::vector<VgpuType> types;  // sorted by id
  const VgpuType* find(int id) const;
};

// nullptr for a board the emulator does not know.
const Board* findBoard(const std::string& name);
// "L40S, A100": for error messages.
std::string knownBoards();

}  // namespace nodeplane::vgpuemu
