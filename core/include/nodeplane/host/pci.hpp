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
  // SR-IOV: the PF of a virtual function (its `physfn` link), "" for any other function; for a
  // PF, sriov_totalvfs and sriov_numvfs (0 when the function has no SR-IOV capability).
  std::string physfn;
  int totalVfs = 0;
  int numVfs = 0;
  bool isVirtualFunction() const { return !physfn.empty(); }
  bool isBridge() const { return classCode.rfind("0604", 0) == 0; }
  bool isDisplay() const { return classCode.rfind("03", 0) == 0; }
};

struct Gpu {
  PciFunction function;
  // NVIDIA GPUs only (vendor 10de), else -1: the position in PCI bus order among the host's
  // NVIDIA GPUs, bound to a driver or not (what nvidia-smi and CUDA_DEVICE_ORDER=PCI_BUS_ID show).
  int index = -1;
  // From <procRoot>/driver/nvidia/gpus/<address>/information while the nvidia driver has the GPU;
  // empty / unset otherwise (no driver loaded, the GPU on vfio-pci).
  std::string uuid;                // "GPU-9a1e3c5f-2b7d-4e8a-b6c1-0f2d3e4a5b6c"
  std::string model;               // "NVIDIA H100 80GB HBM3"
  std::optional<int> deviceMinor;  // /dev/nvidia<minor>
  bool isNvidia() const { return function.vendor == "10de"; }
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
// Every display-class function (class 0x03xxxx) but SR-IOV virtual functions (a vGPU's VF is a
// slice of its GPU, not a GPU) with its companions and group peers, sorted by address; NVIDIA GPUs
// get their index, and what the driver's information file under procRoot says of them (UUID, model,
// device minor).
Result<std::vector<Gpu>> readGpuInventory(const std::filesystem::path& sysfsRoot,
                                          const std::filesystem::path& procRoot);

// "0000:01:00.0" -> true; anything else (paths, short forms) -> false.
bool isPciAddress(const std::string& s);

}  // namespace nodeplane::host
