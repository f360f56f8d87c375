// Vgpu: one NVIDIA vGPU profile on one virtual function (SR-IOV model: <VF>/nvidia/
// current_vgpu_type, the VF stays on the nvidia driver) or one mediated device (mdev model:
// <parent>/mdev_supported_types/<type>/create with a UUID derived from the resource name). The
// model is read from sysfs per GPU. Placement (equal-size unless the GPU is in vgpu.mixedSize,
// how many fit, MIG) is checked at validate time against the profiles the GPU offers. A vGPU a VM
// has open is busy (ObservedObject::busy): never changed or removed under it. Ownership and the
// resolved type ids are kept in records under <stateDir>/vgpu/; the record also tells the qemu
// plugin the device to hand to a VM (nodeplane/host/vgpu_ref.hpp).
//
// Files: vgpu_types.* (the driver's type lists and names), vgpu_gpu.* (one GPU as sysfs shows
// it now, and its kept table of types), vgpu_records.* (ownership records, the mdev UUID),
// vgpu_kind.cpp (schema, validate, validateSet, claims, normalize, observe), vgpu_apply.cpp (the
// moves).
#pragma once

#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "nodeplane/plugin.hpp"
#include "vgpu_config.hpp"
#include "vgpu_gpu.hpp"
#include "vgpu_mig.hpp"
#include "vgpu_records.hpp"

namespace nodeplane::vgpu {

inline constexpr const char* kVgpuKind = "Vgpu";

// Where a spec puts its vGPU: resolved against sysfs now.
struct VgpuTarget {
  std::string gpu;   // the PF address
  std::string slot;  // the VF address (the PF's own, mdev on a PF)
  int vf = -1;       // the VF index; -1 on a PF
  GpuState state;    // the GPU as read now
};

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
  // parent/vf or address -> the GPU and the VF; an error with the field at fault (Resource::error
  // adds the location).
  Result<VgpuTarget> target(const Json& spec) const;
  // The profile on the target's GPU, checked against its types (MIG mode included); nullopt
  // with no error when the GPU's types cannot be known yet (VFs not enabled, no kept table).
  Result<std::optional<VgpuType>> profileOn(const VgpuTarget& t, const Json& spec,
                                            bool remember) const;
  std::filesystem::path typesDir() const { return config_.stateDir / "types"; }
  const std::filesystem::path& hostState() const { return services_.context().stateDir; }
  bool mixedSize(const std::string& gpu) const;  // in vgpu.mixedSize
  Result<void> applyNow(const Change& change, ApplyContext& context);
  Result<void> make(const Change& change, const std::optional<VgpuRecord>& existing,
                    ApplyContext& context);
  Result<void> unmake(const VgpuRecord& record, ApplyContext& context, const std::string& what);
  Result<void> owned(const std::optional<VgpuRecord>& record, const Change& change) const;
  // Logs `message` through the context the first time `key` is seen failing (a VF the driver
  // refuses briefly after a VM closed it fails every pass until it lets go).
  void progressOnce(ApplyContext& context, const std::string& key, const std::string& message);
  void settled(const std::string& key);

  // The spec side (validate, validateSet, claims, normalize: every Vgpu of a GPU, several times
  // each) reads each GPU once: kept until the next observe() or apply(), which read afresh.
  Result<GpuState> gpuNow(const std::string& address) const;
  void forgetGpus() const;
  // A MIG-backed type needs a free GPU instance of its profile on the target's GPU (§5): counted
  // when the step runs, with nvidia-smi; short of one, a retryable error that says what to make.
  Result<void> migInstanceFor(const VgpuTarget& t, const VgpuType& type,
                              const std::string& what) const;

  HostServices& services_;
  const VgpuConfig& config_;
  mutable std::mutex gpusMu_;
  mutable std::map<std::string, GpuState> gpus_;
  std::mutex loggedMu_;
  std::set<std::string> logged_;
};

}  // namespace nodeplane::vgpu
