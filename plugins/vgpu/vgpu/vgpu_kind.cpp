#include "vgpu_kind.hpp"

namespace nodeplane::vgpu {

VgpuKind::VgpuKind(HostServices& services, const VgpuConfig& config)
    : services_(services), config_(config) {}

KindSchema VgpuKind::schema() const {
  KindSchema k;
  k.kind = kVgpuKind;
  k.description = "An NVIDIA vGPU profile on a virtual function (SR-IOV) or as an mdev";
  FieldSchema parent{"parent", FieldType::kString,
                     "the GPU: a PCI address, inventory index or UUID (with vf)"};
  parent.forcesReplace = true;
  FieldSchema vf{"vf", FieldType::kInteger, "the virtual function's index on parent"};
  vf.minimum = 0;
  vf.maximum = 4095;
  vf.forcesReplace = true;
  FieldSchema address{"address", FieldType::kString,
                      "the virtual function's PCI address (instead of parent and vf)"};
  address.forcesReplace = true;
  FieldSchema profile{"profile", FieldType::kString,
                      "the vGPU profile: its name (L40S-24Q) or numeric type id"};
  profile.required = true;
  k.spec = {parent, vf, address, profile};
  // A type is set on a VF that a SriovPf makes: after a reboot, VFs first, then types.
  k.appliedAfter = {"SriovPf"};
  return k;
}

std::vector<Error> VgpuKind::validate(const Resource&) const { return {}; }
std::vector<Error> VgpuKind::validateSet(const std::vector<const Resource*>&) const { return {}; }
std::vector<Claim> VgpuKind::claims(const Resource&) const { return {}; }
Json VgpuKind::normalize(const Json& spec) const { return spec; }
Result<std::vector<ObservedObject>> VgpuKind::observe() { return std::vector<ObservedObject>{}; }
Outcome VgpuKind::apply(const Change&, ApplyContext&) {
  return Outcome::failed(Error{ErrorKind::kTerminal, "Vgpu is not implemented yet"});
}

}  // namespace nodeplane::vgpu
