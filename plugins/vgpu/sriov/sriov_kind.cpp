#include "sriov_kind.hpp"

namespace nodeplane::vgpu {

SriovKind::SriovKind(HostServices& services, const VgpuConfig& config)
    : services_(services), config_(config) {}

KindSchema SriovKind::schema() const {
  KindSchema k;
  k.kind = kSriovPfKind;
  k.description = "The number of virtual functions of an SR-IOV physical function";
  FieldSchema device{"device", FieldType::kString,
                     "the PF: a PCI address, or a GPU's inventory index or UUID"};
  device.required = true;
  device.forcesReplace = true;
  FieldSchema numVfs{"numVfs", FieldType::kInteger, "virtual functions wanted (0: none)"};
  numVfs.required = true;
  numVfs.minimum = 0;
  numVfs.maximum = 4096;
  k.spec = {device, numVfs};
  return k;
}

std::vector<Error> SriovKind::validate(const Resource&) const { return {}; }
std::vector<Claim> SriovKind::claims(const Resource&) const { return {}; }
Json SriovKind::normalize(const Json& spec) const { return spec; }
Result<std::vector<ObservedObject>> SriovKind::observe() { return std::vector<ObservedObject>{}; }
Outcome SriovKind::apply(const Change&, ApplyContext&) {
  return Outcome::failed(Error{ErrorKind::kTerminal, "SriovPf is not implemented yet"});
}
std::vector<CheckItem> SriovKind::check() { return {}; }

}  // namespace nodeplane::vgpu
