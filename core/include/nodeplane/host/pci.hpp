// PCI inventory read from sysfs under an injectable root: the GPUs of the host, their IOMMU groups
// and what shares those groups. Shared by `check` and the docker, qemu and vgpu plugins.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "nodeplane/error.hpp"

namespace nodeplane::host {

struct PciFunction {
  std::string address;    // "0000:01:00.0"
  std::string vendor;     // "10de" (lower-case hex, no 0x)
  std::string device;     // "2236"
  std::string classCode;  // "030000"
  std::string driver;     // "nvidia", "vfio-pci", "" when unbound
  int numaNode = -1;      // -1 when unknown
  std::optional<int> iommuGroup;
  bool isBridge() const { return classCode.rfind("0604", 0) == 0; }
  bool isDisplay() const { return classCode.rfind("03", 0) == 0; }
};

struct Gpu {
  PciFunction function;
  std::vector<PciFunction> companions;  // other functions of the same slot in its IOMMU group
  std::vector<PciFunction> groupPeers;  // other non-bridge devices in the group, not of the slot
};

// One function from DEVICES/<address> under sysfsRoot/bus/pci/devices.
Result<PciFunction> readPciFunction(const std::filesystem::path& sysfsRoot,
                                    const std::string& address);
// Every function under sysfsRoot/bus/pci/devices, sorted by address.
Result<std::vector<PciFunction>> readPciFunctions(const std::filesystem::path& sysfsRoot);
// The addresses in sysfsRoot/kernel/iommu_groups/<group>/devices, sorted.
Result<std::vector<std::string>> readIommuGroup(const std::filesystem::path& sysfsRoot, int group);
// Every display-class function (class 0x03xxxx) with its companions and group peers.
Result<std::vector<Gpu>> readGpuInventory(const std::filesystem::path& sysfsRoot);

// "0000:01:00.0" -> true; anything else (paths, short forms) -> false.
bool isPciAddress(const std::string& s);

}  // namespace nodeplane::host
