// The emulated host's state (PFs, their VFs, vGPU types, mdevs, who holds what) and how each
// sysfs store and control command changes it. No FUSE here: tree.hpp renders this state as files,
// main.cpp serves them. Every answer cites its source in the research note
// (/work/shared/research/nvidia-vgpu-sysfs.md, source ids S1..S19; README.md lists them).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "layout.hpp"

namespace nodeplane::vgpuemu {

// The result of a store or command: err 0, or the errno the write fails with and why (logged).
struct Status {
  int err = 0;
  std::string why;
  static Status ok() { return {}; }
  explicit operator bool() const { return err == 0; }
};

struct Mdev {
  std::uint64_t serial = 0;  // unique for the emulator's life: a stale fd never matches a new one
  std::string uuid;          // lower case, as the kernel names the device
  int typeId = 0;
  int iommuGroup = 0;
  std::string vgpuParams;
  int holds = 0;  // open dev nodes
  int gi = -1;    // MIG-backed: the GPU instance it lives in
};

struct Vf {
  std::uint64_t serial = 0;
  int index = 0;  // k of virtfn<k>
  std::string address;
  int iommuGroup = 0;
  int vfioMinor = 0;  // vfio-dev/vfio<minor>
  int type = 0;       // SR-IOV model: current_vgpu_type
  int placement = -1;
  std::string vgpuParams;
  long warmUpdate = 0;
  int holds = 0;
  int zeroRefusals = 0;      // busy-after-close: writes of 0 still to refuse
  int gi = -1;               // SR-IOV model, MIG-backed type: its GPU instance
  std::optional<Mdev> mdev;  // mdev model: a VF parent holds at most one
};

// A MIG GPU instance (`nvidia-smi mig -cgi`), as `nvidia-smi mig -lgi` lists it.
struct GpuInstance {
  int id = 0;
  std::string profile;      // "1g.5gb"
  int profileId = 0;        // 19
  int start = 0, size = 0;  // placement, in slices
};

struct Pf {
  PfConfig config;
  bool mig = false;  // MIG mode
  std::vector<GpuInstance> gis;
  std::vector<Vf> vfs;  // numVfs == vfs.size(); vfs[k] is VF k
  bool mixedSize = false;
  bool nvmlClient = false;
  bool autoprobe = true;
  bool isNvidia() const { return config.isNvidia(); }
  bool isMdev() const { return config.kind == PfKind::kNvidiaMdev; }
};

class Host {
 public:
  explicit Host(Layout layout);

  const Layout& layout() const { return layout_; }
  std::vector<Pf>& pfs() { return pfs_; }
  const std::vector<Pf>& pfs() const { return pfs_; }
  Pf* pf(const std::string& address);
  // Bumped whenever files appear or go (VFs, mdevs): the tree is rendered again.
  std::uint64_t generation() const { return generation_; }

  // --- sysfs stores (one write() each) ---
  Status storeNumVfs(Pf& pf, std::string_view text);
  Status storeAutoprobe(Pf& pf, std::string_view text);
  Status storeCurrentType(Pf& pf, Vf& vf, std::string_view text);
  Status storeVgpuParams(std::string& params, int holds, std::string_view text);
  Status storeWarmUpdate(Vf& vf, std::string_view text);
  Status createMdev(Pf& pf, Vf& vf, const VgpuType& type, std::string_view text);
  Status removeMdev(Pf& pf, Vf& vf, std::string_view text);

  // --- sysfs shows ---
  std::string creatableTypes(const Pf& pf, const Vf& vf) const;
  int availableInstances(const Pf& pf, const Vf& vf, const VgpuType& type) const;

  // --- VMs: a dev node opened / closed. False when the object is gone (a stale fd). ---
  bool hold(std::uint64_t serial, int delta);
  std::map<std::string, int> holds() const;  // VF address or mdev uuid -> open count (> 0)

  // --- control commands (README.md "Control file"); `reply` gets what the command says ---
  Status sriovManage(bool enable, const std::string& target, std::string* reply);
  Status reboot();
  Status driverReload(const std::string& pf);
  Status setNvmlClient(const std::string& pf, bool on);
  Status setMixedSize(const std::string& pf, bool on);
  // MIG (`nvidia-smi -mig`, `nvidia-smi mig -cgi/-dgi/-lgi`); `reply` gets what nvidia-smi says.
  Status setMig(const std::string& pf, bool on, std::string* reply);
  Status createGi(const std::string& pf, const std::string& profile, std::string* reply);
  Status destroyGi(const std::string& pf, int id, std::string* reply);
  Status listGis(const std::string& pf, std::string* reply) const;
  void setBusyAfterClose(int n) { busyAfterClose_ = n; }
  void setHeldErrno(int err) { heldErrno_ = err; }

 private:
  bool creatable(const Pf& pf, const VgpuType& t) const;
  const GpuInstance* freeGi(const Pf& pf, const VgpuType& t) const;
  std::vector<const VgpuType*> active(const Pf& pf) const;
  void enableVfs(Pf& pf, int n);
  void disableVfs(Pf& pf);
  std::string heldBy(const Pf& pf) const;  // "" or the first VF / mdev held
  int placementFor(const Pf& pf, const VgpuType& t) const;
  int freeVfioMinor() const;
  int freeMdevGroup() const;

  Layout layout_;
  std::vector<Pf> pfs_;
  std::uint64_t generation_ = 1, serial_ = 0;
  int busyAfterClose_ = 0;
  int heldErrno_;
  int firstMdevGroup_ = 0;
};

// Linux's kstrto* parsing (lib/kstrtox.c): optional '+' (and '-' when signed), digits of `base`
// (0: "0x" hex, "0" octal, else decimal), at most one trailing '\n', nothing else. 0, EINVAL
// or ERANGE.
int kstrtoll(std::string_view s, unsigned base, bool isSigned, long long* out);

// "EIO" -> EIO; 0 for a name it does not know.
int errnoFromName(const std::string& name);
std::string errnoName(int err);

}  // namespace nodeplane::vgpuemu
