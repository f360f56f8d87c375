// What the Vgpu kind reads of one GPU now: its PF, its VFs (present, and where absent ones will
// appear), the driver model, the vGPUs on it, and its table of types (live, or the one kept from
// when the GPU was empty). Fresh reads on every call: sysfs is the truth, the table record only
// fills what the shrinking creatable list hides.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "nodeplane/error.hpp"
#include "pf.hpp"
#include "vgpu_types.hpp"

namespace nodeplane::vgpu {

// One place a vGPU lives: a VF (SR-IOV model, mdev on Ampere's VFs) or the PF itself (mdev on
// Pascal/Turing, no SR-IOV).
struct Slot {
  std::string address;   // the VF (or PF) PCI address
  int vf = -1;           // its index on the PF; -1 for the PF itself
  bool present = false;  // in sysfs now
  long currentType = 0;  // SR-IOV: current_vgpu_type (0: none); mdev: the type of its first mdev
  std::vector<std::string> mdevs;  // mdev model: the UUIDs of the mdevs on it
};

struct GpuState {
  std::string address;  // the PF
  Pf pf;
  Model model = Model::kUnknown;
  bool mdevOnPf = false;  // mdev_supported_types on the PF: no VFs involved
  int vfOffset = 0, vfStride = 0;
  std::vector<Slot> slots;  // VF k at slots[k] (every possible VF, present or not); or the PF
  TypeTable live;           // what sysfs lists now (complete for mdev, or an empty SR-IOV GPU)
  bool empty() const;       // no vGPU on it
  const Slot* slotOf(const std::string& address) const;
};

// The GPU whose PF is `address` (an error that says why when it is not an SR-IOV PF or an mdev
// parent). The VF addresses of absent VFs come from sriov_offset / sriov_stride.
Result<GpuState> readGpu(const std::filesystem::path& sysfsRoot, const std::string& address);

// "0000:41:00.0" + routing-id offset -> "0000:41:00.4"; "" when it leaves the domain's buses.
std::string offsetAddress(const std::string& address, int offset);

// The table to resolve profiles with: the live one when complete (kept in <recordDir>/<gpu>.json
// when `remember`), else the kept one, else the live partial one.
TypeTable typeTableOf(const GpuState& gpu, const std::filesystem::path& recordDir, bool remember);
// The kept table alone (a GPU whose VFs are gone after a reboot).
std::optional<TypeTable> keptTypeTable(const std::filesystem::path& recordDir,
                                       const std::string& gpu);

// The vGPU types creatable on `slot` now: SR-IOV its creatable_vgpu_types; mdev the types whose
// available_instances > 0 on it.
std::vector<VgpuType> creatableOn(const std::filesystem::path& sysfsRoot, const GpuState& gpu,
                                  const Slot& slot);

// Whether an mdev-model GPU has MIG mode on, from sysfs alone: a vGPU on it says (MIG-backed
// types exist only under MIG, time-sliced ones only without, note §5 [C S6]); an empty GPU offers
// no time-sliced type on a free VF only under MIG (available_instances 0 "if MIG state doesn't
// match the type class", §7.2). False when it cannot tell (no free VF).
bool mdevMigMode(const std::filesystem::path& sysfsRoot, const GpuState& gpu);

// The sysfs directory of a slot: <sysfsRoot>/bus/pci/devices/<address>.
std::filesystem::path slotDir(const std::filesystem::path& sysfsRoot, const std::string& address);

// Small sysfs reads: the file without its trailing newline / spaces; nullopt when unreadable.
std::optional<std::string> readAttr(const std::filesystem::path& file);
// current_vgpu_type of a VF; nullopt when it cannot be read (the VF is gone).
std::optional<long> readCurrentType(const std::filesystem::path& sysfsRoot, const std::string& vf);

}  // namespace nodeplane::vgpu
