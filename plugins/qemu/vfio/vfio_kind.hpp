// VfioDevice: one PCI function on vfio-pci while `bound` (default true), back on the driver it
// came from otherwise and when deleted. Every step is verified by reading sysfs back; every
// write has a timeout (HostServices::writeSysfs, QemuConfig::bindTimeout); the original driver is
// in the record and an undo record, both written before the first write. Ownership: a record per
// device under <stateDir>/qemu/vfio/ (vfio_records.hpp). Nothing here touches D-Bus: the kind
// works in a minimal guest with no systemd.
//
// Bind:    record (intent "bind") + undo {device, driver}; driver_override = vfio-pci; unbind
//          from the current driver; drivers_probe; the `driver` link reads vfio-pci; /dev/vfio/<N>
//          exists; record settled. A failure after the first write puts the function back.
// Restore: record (intent "restore"); unbind from vfio-pci; driver_override cleared ("\n");
//          drivers_probe; the recorded driver is back (when it is not, the driver is asked for by
//          name through driver_override, probed, and driver_override cleared again); delete then
//          removes the record.
// recover(): a record whose intent is "bind" is finished when the function already reads
// vfio-pci, else put back (and the record of an interrupted create or replace removed); one whose
// intent is "restore" is finished.
//
// Test hook: NODEPLANE_TEST_VFIO_CRASH_AT=<step> makes the process SIGKILL itself right after that
// step. Steps of a bind: after-record, after-override, after-unbind, after-probe, after-verify
// (bound, record not yet settled). Of a restore: restore-after-record, restore-after-unbind,
// restore-after-clear, restore-after-probe.
#pragma once

#include <optional>
#include <vector>

#include "nodeplane/plugin.hpp"
#include "qemu_config.hpp"
#include "vfio_records.hpp"

namespace nodeplane::qemu {

inline constexpr const char* kVfioDeviceKind = "VfioDevice";

class VfioKind {
 public:
  VfioKind(HostServices& services, const QemuConfig& config);
  KindSchema schema() const;
  // Address syntax, the function exists, not a bridge, vfio.allow admits it, the IOMMU is on,
  // the host is not using it (when it is to be bound).
  std::vector<Error> validate(const Resource& r) const;
  std::vector<Claim> claims(const Resource& r) const;
  Json normalize(const Json& spec) const;
  Result<std::vector<ObservedObject>> observe();
  Outcome apply(const Change& change, ApplyContext& context);
  Result<void> recover(const Interrupted& interrupted, ApplyContext& context);
  // IOMMU on, vfio modules loaded, ACS override, and a passthrough verdict per GPU.
  std::vector<CheckItem> check();

 private:
  Result<void> applyNow(const Change& change, ApplyContext& context);
  Result<void> bind(const std::string& name, const std::string& address,
                    std::optional<VfioRecord> existing, ApplyContext& context);
  // Puts record.device back on record.originalDriver; the record is left with intent "restore"
  // (the caller settles or removes it).
  Result<void> restore(VfioRecord& record, ApplyContext& context);
  Result<void> owned(const std::optional<VfioRecord>& record, const Change& change) const;
  std::optional<int> nvidiaMinor(const std::string& address) const;

  HostServices& services_;
  const QemuConfig& config_;
};

}  // namespace nodeplane::qemu
