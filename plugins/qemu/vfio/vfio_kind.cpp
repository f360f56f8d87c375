// Stub: filled in by the VfioDevice work (schema, validate, observe, apply, recover, check).
#include "vfio_kind.hpp"

namespace nodeplane::qemu {

VfioKind::VfioKind(HostServices& services, const QemuConfig& config)
    : services_(services), config_(config) {}

KindSchema VfioKind::schema() const {
  KindSchema k;
  k.kind = kVfioDeviceKind;
  k.description = "a PCI function on vfio-pci (usually a child of a VirtualMachine)";
  FieldSchema device;
  device.name = "device";
  device.required = true;
  device.forcesReplace = true;
  FieldSchema bound;
  bound.name = "bound";
  bound.type = FieldType::kBoolean;
  k.spec = {device, bound};
  return k;
}
std::vector<Error> VfioKind::validate(const Resource&) const { return {}; }
std::vector<Claim> VfioKind::claims(const Resource&) const { return {}; }
Json VfioKind::normalize(const Json& spec) const { return spec; }
Result<std::vector<ObservedObject>> VfioKind::observe() { return std::vector<ObservedObject>{}; }
Outcome VfioKind::apply(const Change&, ApplyContext&) {
  return Outcome::failed(Error{ErrorKind::kTerminal, "VfioDevice: not implemented"});
}
Result<void> VfioKind::recover(const Interrupted&, ApplyContext&) { return {}; }
std::vector<CheckItem> VfioKind::check() { return {}; }

}  // namespace nodeplane::qemu
