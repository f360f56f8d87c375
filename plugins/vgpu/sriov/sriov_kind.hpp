// SriovPf: the number of virtual functions of one SR-IOV physical function (a NIC, an NVMe
// controller, a GPU). Generic PFs: sriov_numvfs is read, left alone when equal, else written 0 and
// then N (the kernel refuses N -> M), and the virtfn<k> links are waited for. NVIDIA GPU PFs
// refuse sriov_numvfs writes: their VFs are enabled by the driver's sriov-manage -e (all at once;
// run with argv; it can say success and fail, so the virtfn links are checked after it). Fewer
// VFs (or another count, which goes through 0) is refused while a VF is in use, naming the user;
// on a GPU, while any of its vGPUs exists (a type set on a VF, an mdev), open or not.
//
// Ownership: a record per SriovPf under <stateDir>/vgpu/sriov/ (sriov_records.hpp) with the count
// the PF had before nodeplane took it; a delete puts that count back, a release forgets the
// record and leaves the VFs. observe() reports each record's PF with its count now, who uses its
// VFs (ObservedObject::busy) and "4 of 8 VFs" (detail).
#pragma once

#include <string>
#include <vector>

#include "nodeplane/plugin.hpp"
#include "pf.hpp"
#include "sriov_records.hpp"
#include "vgpu_config.hpp"

namespace nodeplane::vgpu {

inline constexpr const char* kSriovPfKind = "SriovPf";

// What spec.device names: the PF's PCI address, or why it names none.
struct PfRef {
  std::string address;  // lower case; "" when unresolved
  std::string problem;  // when unresolved: what is wrong
};

class SriovKind {
 public:
  SriovKind(HostServices& services, const VgpuConfig& config);
  KindSchema schema() const;
  // device resolves (a PCI address, a GPU's index or UUID) to an SR-IOV PF; numVfs within
  // sriov_totalvfs; on an NVIDIA GPU 0 or sriov_totalvfs (sriov-manage enables all of them).
  std::vector<Error> validate(const Resource& r) const;
  // The PF shared ("pci": a Vgpu of that GPU shares it, a VfioDevice of it conflicts) and
  // {"sriov", PF} exclusively (two SriovPfs of one PF conflict).
  std::vector<Claim> claims(const Resource& r) const;
  // device as the PF's PCI address.
  Json normalize(const Json& spec) const;
  Result<std::vector<ObservedObject>> observe();
  // True when `change` removes (deletes or replaces) an object whose recorded count is the one
  // its PF has now: putting it back writes nothing, so whatever uses its VFs is not disturbed.
  bool deleteLeavesVfs(const Change& change) const;
  Outcome apply(const Change& change, ApplyContext& context);
  // SR-IOV capable PFs with their total and current VFs; sriov-manage when an NVIDIA PF is there.
  std::vector<CheckItem> check();

  PfRef resolve(const Json& device) const;
  // Who uses the VFs of `pf` now ("" when nobody): "VF 0000:5e:00.2 in use by
  // VirtualMachine/vm1", and on an NVIDIA GPU "has vGPUs (VF 0000:41:00.5: type 1155)".
  std::string usersOf(const Pf& pf) const;
  // Refused (Error::inUse) when setting `want` VFs would change the count while a VF is used.
  Result<void> freeFor(const Pf& pf, int want) const;

 private:
  Result<void> applyNow(const Change& change, ApplyContext& context);
  Result<void> create(const std::string& name, const std::string& device, int numVfs,
                      ApplyContext& context);
  // Brings the PF to `want` VFs (nothing when it has them), refused while its VFs are used.
  Result<void> setCount(const std::string& device, int want, ApplyContext& context);
  Result<void> setGeneric(const Pf& pf, int want, ApplyContext& context);
  Result<void> setNvidia(const Pf& pf, int want, ApplyContext& context);
  // Waits until sriov_numvfs reads `want` and virtfn0..want-1 exist (and no more), up to the
  // deadline; the PF as last read.
  Result<Pf> waitForCount(const std::string& device, int want, std::chrono::milliseconds timeout,
                          ApplyContext& context) const;
  Result<void> owned(const SriovRecord& record, const Change& change) const;

  HostServices& services_;
  const VgpuConfig& config_;
};

}  // namespace nodeplane::vgpu
