// VmKind's spec side: thin over vm_spec.hpp.
#include "vm_kind.hpp"
#include "vm_spec.hpp"

namespace nodeplane::qemu {

KindSchema VmKind::schema() const { return virtualMachineSchema(); }
std::vector<Error> VmKind::validate(const Resource& r) const {
  return validateVm(r, services_, config_);
}
Result<std::vector<Resource>> VmKind::expand(const Resource& r) const {
  return expandVm(r, services_);
}
std::vector<Claim> VmKind::claims(const Resource& r) const { return vmClaims(r, services_); }
Json VmKind::normalize(const Json& spec) const { return normalizeVm(spec, services_); }

}  // namespace nodeplane::qemu
