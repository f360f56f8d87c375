// VfioDevice: one PCI function on vfio-pci while `bound` (default true), back on the driver it
// came from otherwise and when deleted. Every step is verified by reading sysfs back; every
// write has a timeout (HostServices::writeSysfs); the original driver is an undo record, written
// before the first write. Ownership: a record per device under <stateDir>/qemu/vfio/.
#pragma once

#include <vector>

#include "nodeplane/plugin.hpp"
#include "qemu_config.hpp"

namespace nodeplane::qemu {

inline constexpr const char* kVfioDeviceKind = "VfioDevice";

class VfioKind {
 public:
  VfioKind(HostServices& services, const QemuConfig& config);
  KindSchema schema() const;
  // Address syntax, the function exists, vfio.allow admits it, the host is not using it.
  std::vector<Error> validate(const Resource& r) const;
  std::vector<Claim> claims(const Resource& r) const;
  Json normalize(const Json& spec) const;
  Result<std::vector<ObservedObject>> observe();
  Outcome apply(const Change& change, ApplyContext& context);
  Result<void> recover(const Interrupted& interrupted, ApplyContext& context);
  // vfio modules loaded, IOMMU on, ACS override, and a passthrough verdict per GPU.
  std::vector<CheckItem> check();

 private:
  HostServices& services_;
  const QemuConfig& config_;
};

}  // namespace nodeplane::qemu
