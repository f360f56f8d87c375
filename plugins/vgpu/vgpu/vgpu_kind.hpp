// Vgpu: one NVIDIA vGPU profile on one virtual function (SR-IOV model: <VF>/nvidia/
// current_vgpu_type, the VF stays on the nvidia driver) or one mediated device (mdev model:
// <parent>/mdev_supported_types/<type>/create with a UUID derived from the resource name). The
// model is read from sysfs per GPU. Placement (equal-size unless the GPU is in vgpu.mixedSize,
// how many fit, MIG) is checked at validate time against the profiles the GPU offers. A vGPU a VM
// has open is busy (ObservedObject::busy): never changed or removed under it. Ownership and the
// resolved type ids are kept in records under <stateDir>/vgpu/; the record also tells the qemu
// plugin the device to hand to a VM (nodeplane/host/vgpu_ref.hpp).
#pragma once

#include <vector>

#include "nodeplane/plugin.hpp"
#include "vgpu_config.hpp"

namespace nodeplane::vgpu {

inline constexpr const char* kVgpuKind = "Vgpu";

class VgpuKind {
 public:
  VgpuKind(HostServices& services, const VgpuConfig& config);
  KindSchema schema() const;
  std::vector<Error> validate(const Resource& r) const;
  // Placement across every desired Vgpu: one size per equal-size GPU, no more of a profile than
  // fit, MIG.
  std::vector<Error> validateSet(const std::vector<const Resource*>& vgpus) const;
  std::vector<Claim> claims(const Resource& r) const;
  Json normalize(const Json& spec) const;
  Result<std::vector<ObservedObject>> observe();
  Outcome apply(const Change& change, ApplyContext& context);

 private:
  HostServices& services_;
  const VgpuConfig& config_;
};

}  // namespace nodeplane::vgpu
