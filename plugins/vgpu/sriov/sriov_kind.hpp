// SriovPf: the number of virtual functions of one SR-IOV physical function (a NIC, an NVMe
// controller, a GPU). Generic PFs: sriov_numvfs is read, left alone when equal, else written 0 and
// then N (the kernel refuses N -> M), and the virtfn<k> links are waited for. NVIDIA GPU PFs
// refuse sriov_numvfs writes: their VFs are enabled by the driver's sriov-manage -e (all at once;
// run with argv; it can say success and fail, so the virtfn links are checked after it). Fewer
// VFs (or another count, which goes through 0) is refused while a VF is in use, naming the user;
// on a GPU, while any of its vGPUs is in use.
#pragma once

#include <vector>

#include "nodeplane/plugin.hpp"
#include "vgpu_config.hpp"

namespace nodeplane::vgpu {

inline constexpr const char* kSriovPfKind = "SriovPf";

class SriovKind {
 public:
  SriovKind(HostServices& services, const VgpuConfig& config);
  KindSchema schema() const;
  std::vector<Error> validate(const Resource& r) const;
  std::vector<Claim> claims(const Resource& r) const;
  Json normalize(const Json& spec) const;
  Result<std::vector<ObservedObject>> observe();
  Outcome apply(const Change& change, ApplyContext& context);
  // SR-IOV capable PFs with their total and current VFs.
  std::vector<CheckItem> check();

 private:
  HostServices& services_;
  const VgpuConfig& config_;
};

}  // namespace nodeplane::vgpu
