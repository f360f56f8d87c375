#include "host.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <set>

namespace nodeplane::vgpuemu {

namespace {

std::string trim(std::string_view s) {
  const char* ws = " \t\n";
  auto b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return "";
  return std::string(s.substr(b, s.find_last_not_of(ws) - b + 1));
}

// The kernel's uuid_is_valid(): 8-4-4-4-12 hex digits, either case.
bool uuidValid(std::string_view s) {
  if (s.size() < 36) return false;
  for (std::size_t i = 0; i < 36; ++i) {
    const char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!std::isxdigit(static_cast<unsigned char>(c))) {
      return false;
    }
  }
  return true;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

int kstrtoll(std::string_view s, unsigned base, bool isSigned, long long* out) {
  std::size_t i = 0;
  bool negative = false;
  if (isSigned && i < s.size() && s[i] == '-') {
    negative = true;
    ++i;
  }
  if (i < s.size() && s[i] == '+') ++i;
  auto at = [&](std::size_t k) { return k < s.size() ? s[k] : '\0'; };
  if (base == 0) {
    if (at(i) == '0' && std::tolower(at(i + 1)) == 'x' &&
        std::isxdigit(static_cast<unsigned char>(at(i + 2))))
      base = 16;
    else if (at(i) == '0')
      base = 8;
    else
      base = 10;
  }
  if (base == 16 && at(i) == '0' && std::tolower(at(i + 1)) == 'x') i += 2;
  unsigned long long v = 0;
  std::size_t digits = 0;
  for (; i < s.size(); ++i, ++digits) {
    const char c = static_cast<char>(std::tolower(static_cast<unsigned char>(s[i])));
    unsigned d = (c >= '0' && c <= '9')   ? unsigned(c - '0')
                 : (c >= 'a' && c <= 'f') ? unsigned(c - 'a' + 10)
                                          : 99;
    if (d >= base) break;
    if (v > (ULLONG_MAX - d) / base) return ERANGE;
    v = v * base + d;
  }
  if (digits == 0) return EINVAL;
  if (at(i) == '\n') ++i;
  if (i != s.size()) return EINVAL;
  if (negative) {
    if (v > static_cast<unsigned long long>(LLONG_MAX) + 1) return ERANGE;
    *out = static_cast<long long>(0 - v);
  } else {
    if (v > static_cast<unsigned long long>(LLONG_MAX)) return ERANGE;
    *out = static_cast<long long>(v);
  }
  return 0;
}

namespace {
const std::pair<const char*, int> kErrnos[] = {
    {"EPERM", EPERM},           {"ENOENT", ENOENT}, {"EIO", EIO},       {"ENXIO", ENXIO},
    {"E2BIG", E2BIG},           {"EAGAIN", EAGAIN}, {"ENOMEM", ENOMEM}, {"EACCES", EACCES},
    {"EBUSY", EBUSY},           {"EEXIST", EEXIST}, {"ENODEV", ENODEV}, {"EINVAL", EINVAL},
    {"ENOSPC", ENOSPC},         {"ERANGE", ERANGE}, {"ENOSYS", ENOSYS}, {"ETIMEDOUT", ETIMEDOUT},
    {"EOPNOTSUPP", EOPNOTSUPP}, {"EINTR", EINTR},   {"EFAULT", EFAULT}, {"EROFS", EROFS}};
}  // namespace

int errnoFromName(const std::string& name) {
  for (const auto& [n, e] : kErrnos)
    if (name == n) return e;
  return 0;
}

std::string errnoName(int err) {
  for (const auto& [n, e] : kErrnos)
    if (err == e) return n;
  return "errno " + std::to_string(err);
}

Host::Host(Layout layout) : layout_(std::move(layout)), heldErrno_(EPERM) {
  int maxGroup = 0;
  for (const auto& c : layout_.pfs) {
    pfs_.push_back(Pf{.config = c});
    maxGroup = std::max(maxGroup, c.iommuGroup);
    for (int g : c.vfIommuGroups) maxGroup = std::max(maxGroup, g);
  }
  firstMdevGroup_ = maxGroup + 1;  // mdevs get new groups above every static one
}

Pf* Host::pf(const std::string& address) {
  for (auto& p : pfs_)
    if (p.config.address == address) return &p;
  return nullptr;
}

// ---------- SR-IOV enable (kernel drivers/pci/iov.c sriov_numvfs_store [C S16]) ----------

Status Host::storeNumVfs(Pf& pf, std::string_view text) {
  long long n = 0;
  // kstrtou16(buf, 0): "abc" and "-1" EINVAL, above 65535 ERANGE [C S16, guest note].
  if (int e = kstrtoll(text, 0, false, &n)) return {e, "not a number (kstrtou16)"};
  if (n > 0xffff) return {ERANGE, "above 65535 (kstrtou16)"};
  if (n > pf.config.totalVfs)
    return {ERANGE, std::to_string(n) + " > sriov_totalvfs " + std::to_string(pf.config.totalVfs)};
  // The same count succeeds before the kernel even looks at the driver [C S16].
  if (n == static_cast<long long>(pf.vfs.size())) return Status::ok();
  // nvidia has no sriov_configure: ENOENT; VFs come from sriov-manage [C S16 errno, S6 "rejected
  // unconditionally"; that nvidia lacks the callback is I].
  if (pf.isNvidia())
    return {ENOENT, "the nvidia driver has no sriov_configure (use sriov-manage -e)"};
  if (n == 0) {
    // The real kernel blocks this write until the VF's user closes it (guest note); a
    // single-threaded emulator cannot block, so it refuses.
    if (auto who = heldBy(pf); !who.empty())
      return {EBUSY, who + " is open (the kernel would block)"};
    disableVfs(pf);
    return Status::ok();
  }
  if (!pf.vfs.empty())
    return {EBUSY, std::to_string(pf.vfs.size()) +
                       " VFs already enabled. Disable before enabling " + std::to_string(n) +
                       " VFs"};  // [C S16, guest note]
  enableVfs(pf, static_cast<int>(n));
  return Status::ok();
}

Status Host::storeAutoprobe(Pf& pf, std::string_view text) {
  // kstrtobool: y/Y/1, n/N/0, on/off [C kernel lib/kstrtox.c].
  const char c0 = text.empty() ? '\0' : text[0], c1 = text.size() > 1 ? text[1] : '\0';
  if (c0 == 'y' || c0 == 'Y' || c0 == '1' || ((c0 == 'o' || c0 == 'O') && (c1 == 'n' || c1 == 'N')))
    pf.autoprobe = true;
  else if (c0 == 'n' || c0 == 'N' || c0 == '0' ||
           ((c0 == 'o' || c0 == 'O') && (c1 == 'f' || c1 == 'F')))
    pf.autoprobe = false;
  else
    return {EINVAL, "not a boolean (kstrtobool)"};
  return Status::ok();
}

void Host::enableVfs(Pf& pf, int n) {
  for (int k = 0; k < n; ++k) {
    Vf vf;
    vf.serial = ++serial_;
    vf.index = k;
    vf.address = pf.config.vfAddresses[k];
    vf.iommuGroup = pf.config.vfIommuGroups[k];
    vf.vfioMinor = freeVfioMinor();
    pf.vfs.push_back(std::move(vf));
  }
  ++generation_;
}

void Host::disableVfs(Pf& pf) {
  pf.vfs.clear();  // their types, params and mdevs go with them [C S6, S17]
  ++generation_;
}

int Host::freeVfioMinor() const {
  std::set<int> used;
  for (const auto& p : pfs_)
    for (const auto& v : p.vfs) used.insert(v.vfioMinor);
  int m = 0;
  while (used.count(m)) ++m;
  return m;  // lowest free, like the kernel's ida
}

int Host::freeMdevGroup() const {
  std::set<int> used;
  for (const auto& p : pfs_)
    for (const auto& v : p.vfs)
      if (v.mdev) used.insert(v.mdev->iommuGroup);
  int g = firstMdevGroup_;
  while (used.count(g)) ++g;
  return g;
}

std::string Host::heldBy(const Pf& pf) const {
  for (const auto& v : pf.vfs) {
    if (v.holds > 0) return "VF " + v.address;
    if (v.mdev && v.mdev->holds > 0) return "mdev " + v.mdev->uuid + " on VF " + v.address;
  }
  return "";
}

// ---------- placement (note §1.5, §4) ----------

std::vector<const VgpuType*> Host::active(const Pf& pf) const {
  std::vector<const VgpuType*> out;
  if (!pf.config.board) return out;
  for (const auto& v : pf.vfs) {
    int id = pf.isMdev() ? (v.mdev ? v.mdev->typeId : 0) : v.type;
    if (id != 0)
      if (const auto* t = pf.config.board->find(id)) out.push_back(t);
  }
  return out;
}

bool Host::creatable(const Pf& pf, const VgpuType& t) const {
  // With MIG mode on only MIG-backed types are offered, each while a GPU instance of its profile
  // is free (one vGPU per instance); with it off none of them [C S6, note §5].
  if (pf.mig) return t.migBacked && freeGi(pf, t) != nullptr;
  if (t.migBacked) return false;
  const auto act = active(pf);
  if (act.empty()) return true;
  const int fb = pf.config.board->fbMiB;
  const auto sameType =
      std::count_if(act.begin(), act.end(), [&](auto* a) { return a->id == t.id; });
  if (pf.mixedSize) {
    // Mixed-size mode: any sizes while they fit the framebuffer [C S6 mode; I the sum rule].
    int used = 0;
    for (const auto* a : act) used += a->sizeMiB;
    return used + t.sizeMiB <= fb && sameType < t.maxInstances;
  }
  // Equal-size (default): only the size already on the GPU, same-size series may mix (DC-3Q +
  // DC-3A) [C S6 #1316/#1338]; at most min(FB / size, max instances) of them [I count rule, §4].
  if (t.sizeMiB != act.front()->sizeMiB) return false;
  const int cap = std::min(fb / t.sizeMiB, t.maxInstances);
  return static_cast<int>(act.size()) < cap;
}

const GpuInstance* Host::freeGi(const Pf& pf, const VgpuType& t) const {
  for (const auto& g : pf.gis) {
    if (g.profile != t.gi) continue;
    const bool used = std::any_of(pf.vfs.begin(), pf.vfs.end(), [&](const Vf& v) {
      return v.gi == g.id || (v.mdev && v.mdev->gi == g.id);
    });
    if (!used) return &g;
  }
  return nullptr;
}

std::string Host::creatableTypes(const Pf& pf, const Vf& vf) const {
  // The header is printed always, even with nothing creatable [C S3, S10]; "%-5d : %s" per type,
  // ascending ids [C S1, S3].
  std::string out = "ID    : vGPU Name\n";
  // A VF that has a type lists nothing more: unconfirmed (§8), the S3 branch and the RFC's empty
  // answer agree that it offers no other type [I].
  if (vf.type != 0 || !pf.config.board) return out;
  for (const auto& t : pf.config.board->types) {
    if (!creatable(pf, t)) continue;
    char line[128];
    std::snprintf(line, sizeof line, "%-5d : NVIDIA %s\n", t.id, t.name.c_str());
    out += line;
  }
  return out;
}

int Host::availableInstances(const Pf& pf, const Vf& vf, const VgpuType& type) const {
  // VF parents read 0 or 1: 0 once the VF has an mdev [C S19 A40], else 1 for what the GPU can
  // still take (same framebuffer as what exists) [C S2 pattern, I rule].
  if (vf.mdev) return 0;
  return creatable(pf, type) ? 1 : 0;
}

int Host::placementFor(const Pf& pf, const VgpuType& t) const {
  // First free slot of the type's size, in GiB from the start of the framebuffer [I: the value
  // for time-sliced vGPUs is unconfirmed, §8; the real one reads 0 for the first, S6 #312].
  const int size = t.sizeMiB, fb = pf.config.board->fbMiB;
  std::vector<std::pair<int, int>> taken;
  for (const auto& v : pf.vfs)
    if (v.type != 0 && v.placement >= 0)
      if (const auto* o = pf.config.board->find(v.type))
        taken.push_back({v.placement * 1024, v.placement * 1024 + o->sizeMiB});
  for (int at = 0; at + size <= fb; at += size) {
    bool clash = false;
    for (auto [b, e] : taken) clash |= at < e && b < at + size;
    if (!clash) return at / 1024;
  }
  return 0;
}

// ---------- SR-IOV model: current_vgpu_type (note §1.4, §7.1) ----------

Status Host::storeCurrentType(Pf& pf, Vf& vf, std::string_view text) {
  long long id = 0;
  // kstrtol(buf, 10): "1155" and "1155\n" fine; " 1155", "1155 ", "0x483" EINVAL; "-1" parses
  // [C S3].
  if (int e = kstrtoll(text, 10, true, &id)) return {e, "not a decimal number (kstrtol)"};
  if (id == 0) {
    // Right after a VM closed the VF the driver refuses for a while (Proxmox retries 10 x 1 s,
    // "not always immediately ready") [C S7, W S19].
    if (vf.zeroRefusals > 0) {
      --vf.zeroRefusals;
      return {EPERM, "not ready yet after the VM closed the VF (busy-after-close)"};
    }
    if (vf.type == 0)
      return {EPERM, "Failed to remove vGPU. No vGPU exists on current device"};  // [C S3]
    // Destroying while a VM holds it: EPERM by the mdev path's usage count, EBUSY if handles
    // stay open (control held-errno) [I: S4 applied to the VF path].
    if (vf.holds > 0) return {heldErrno_, "the VF is open by a VM"};
    vf.type = 0;
    vf.placement = -1;
    vf.gi = -1;
    return Status::ok();
  }
  if (vf.type != 0)  // even the same id [C S3]; hence Proxmox writes 0 first [C S7]
    return {EPERM, "vGPU device already created with type ID " + std::to_string(vf.type)};
  if (vf.holds > 0) return {EPERM, "the VF is open by a VM"};  // [I] §1.4 last row
  const VgpuType* t =
      pf.config.board->find(static_cast<int>(std::clamp<long long>(id, INT_MIN, INT_MAX)));
  // Not creatable (unknown, wrong size, full, MIG without GI): RM refuses -> EIO [C S6 for the
  // MIG case, I for the others (S4 pattern)].
  if (!t) return {EIO, "type " + std::to_string(id) + " is not a type of " + pf.config.board->name};
  if (!creatable(pf, *t)) {
    std::string list = creatableTypes(pf, vf);
    std::replace(list.begin(), list.end(), '\n', ';');
    return {EIO, "type " + std::to_string(id) + " (" + t->name +
                     ") is not creatable now; creatable: " + list};
  }
  vf.placement = placementFor(pf, *t);
  if (t->migBacked) vf.gi = freeGi(pf, *t)->id;  // gpu_instance_id reads it [C S6 #312]
  vf.type = t->id;
  return Status::ok();
}

Status Host::storeVgpuParams(std::string& params, int holds, std::string_view text) {
  // VGPU_CONFIG_PARAMS_MAX_LENGTH 1024 -> E2BIG; in use -> EPERM [C S4].
  if (text.size() > 1024) return {E2BIG, "longer than 1024 bytes"};
  if (holds > 0) return {EPERM, "in use by a VM"};
  params = trim(text);  // `echo " "` clears it [C NVIDIA guide, note §1.8]
  return Status::ok();
}

Status Host::storeWarmUpdate(Vf& vf, std::string_view text) {
  long long v = 0;  // reads 0 [C S6]; what it accepts is not documented: 0 or 1 [I]
  if (int e = kstrtoll(text, 10, true, &v)) return {e, "not a decimal number"};
  if (v != 0 && v != 1) return {EINVAL, "expected 0 or 1"};
  vf.warmUpdate = v;
  return Status::ok();
}

// ---------- mdev model (note §2, §7.2) ----------

Status Host::createMdev(Pf& pf, Vf& vf, const VgpuType& type, std::string_view text) {
  // mdev_sysfs.c create_store: 36 or 37 bytes, then guid_parse (the 37th byte is not looked at)
  // [C S16].
  if (text.size() < 36 || text.size() > 37)
    return {EINVAL, "a UUID is 36 bytes (37 with a newline), got " + std::to_string(text.size())};
  if (!uuidValid(text)) return {EINVAL, "not a UUID (guid_parse)"};
  const std::string uuid = lower(std::string(text.substr(0, 36)));
  for (const auto& p : pfs_)
    for (const auto& v : p.vfs)
      if (v.mdev && v.mdev->uuid == uuid) return {EEXIST, "mdev " + uuid + " exists"};  // [C S16]
  // The vendor's create fails when the type is not available: RM error -> EIO [I from S4].
  if (availableInstances(pf, vf, type) == 0)
    return {EIO, "available_instances of " + type.name + " on " + vf.address + " is 0"};
  const GpuInstance* gi = type.migBacked ? freeGi(pf, type) : nullptr;
  vf.mdev = Mdev{.serial = ++serial_,
                 .uuid = uuid,
                 .typeId = type.id,
                 .iommuGroup = freeMdevGroup(),
                 .gi = gi ? gi->id : -1};
  ++generation_;
  return Status::ok();
}

Status Host::removeMdev(Pf&, Vf& vf, std::string_view text) {
  long long v = 0;
  // remove_store: kstrtoul(buf, 0); 0 does nothing [C S16 code, I that it succeeds].
  if (int e = kstrtoll(text, 0, false, &v)) return {e, "not a number (kstrtoul)"};
  if (v == 0) return Status::ok();
  // The 460 driver: usage count -> EPERM while a VM has it [C S4].
  if (vf.mdev->holds > 0) return {EPERM, "mdev " + vf.mdev->uuid + " is open by a VM"};
  vf.mdev.reset();
  ++generation_;
  return Status::ok();
}

// ---------- VMs ----------

bool Host::hold(std::uint64_t serial, int delta) {
  for (auto& p : pfs_)
    for (auto& v : p.vfs) {
      if (v.serial == serial) {
        v.holds = std::max(0, v.holds + delta);
        if (delta < 0 && v.holds == 0) v.zeroRefusals = busyAfterClose_;
        return true;
      }
      if (v.mdev && v.mdev->serial == serial) {
        v.mdev->holds = std::max(0, v.mdev->holds + delta);
        return true;
      }
    }
  return false;
}

std::map<std::string, int> Host::holds() const {
  std::map<std::string, int> out;
  for (const auto& p : pfs_)
    for (const auto& v : p.vfs) {
      if (v.holds > 0) out[v.address] = v.holds;
      if (v.mdev && v.mdev->holds > 0) out[v.mdev->uuid] = v.mdev->holds;
    }
  return out;
}

// ---------- control commands ----------

Status Host::sriovManage(bool enable, const std::string& target, std::string* reply) {
  std::vector<Pf*> targets;
  if (target == "ALL") {
    for (auto& p : pfs_)
      if (p.isNvidia()) targets.push_back(&p);
  } else {
    Pf* p = pf(target);
    if (!p) return {EINVAL, "no PF " + target + " in the layout"};
    if (!p->isNvidia()) return {EINVAL, target + " is not an NVIDIA GPU"};
    targets.push_back(p);
  }
  Status first;
  for (Pf* p : targets) {
    const std::string& a = p->config.address;
    Status s;
    std::string line;
    if (p->nvmlClient) {
      // An NVML client (DCGM) holds the GPU: the rebind cannot get the driver's lock [C S6].
      s = {EBUSY, "Cannot obtain unbindLock for " + a};
      line = s.why;
    } else if (enable) {
      if (!p->vfs.empty()) {
        line = "GPU at " + a + " already has VFs enabled.";  // idempotent [C S6, W script]
      } else {
        // All VFs at once, types 0, mixed-size mode reset, and the rebind removes the MIG GPU
        // instances (hence: sriov-manage -e, then make them) [C S6, S13 NumVFs == TotalVFs].
        enableVfs(*p, p->config.totalVfs);
        p->mixedSize = false;
        p->gis.clear();
        line = "Enabling VFs on " + a;  // [C S8]
      }
    } else if (auto who = heldBy(*p); !who.empty()) {
      s = {EBUSY, "Cannot disable VFs on " + a + ": " + who + " is in use"};  // [I]
      line = s.why;
    } else {
      disableVfs(*p);
      line = "Disabling VFs on " + a;
    }
    *reply += line + "\n";
    if (!s && first) first = s;
  }
  return first;
}

Status Host::reboot() {
  // VFs are disabled after a reboot, current_vgpu_type resets [C S17]; holds go with the VMs.
  // MIG GPU instances do not survive a reboot; the A100's MIG mode does (Hopper's would not)
  // [C S8, S17].
  for (auto& p : pfs_) {
    p.vfs.clear();
    p.mixedSize = false;
    p.gis.clear();
  }
  ++generation_;
  return Status::ok();
}

Status Host::driverReload(const std::string& address) {
  Pf* p = pf(address);
  if (!p) return {EINVAL, "no PF " + address + " in the layout"};
  // Unloading a driver whose device a VM uses fails ("in use") [I].
  if (auto who = heldBy(*p); !who.empty()) return {EBUSY, address + ": " + who + " is in use"};
  disableVfs(*p);  // "disabled … if the driver is reloaded or upgraded" [C S17]
  p->mixedSize = false;
  p->gis.clear();
  return Status::ok();
}

Status Host::setNvmlClient(const std::string& address, bool on) {
  Pf* p = pf(address);
  if (!p || !p->isNvidia()) return {EINVAL, address + " is not an NVIDIA PF of the layout"};
  p->nvmlClient = on;
  return Status::ok();
}

Status Host::setMixedSize(const std::string& address, bool on) {
  Pf* p = pf(address);
  if (!p || !p->isNvidia()) return {EINVAL, address + " is not an NVIDIA PF of the layout"};
  // nvidia-smi vgpu -shm fails with rc 19 while any vGPU exists [C S6].
  if (!active(*p).empty()) return {EBUSY, "In use by another client"};
  p->mixedSize = on;
  return Status::ok();
}

// ---------- MIG (note §5; nvidia-smi's words from NVIDIA's MIG user guide) ----------

namespace {
Status migPf(Host& host, const std::string& address, Pf** out) {
  Pf* p = host.pf(address);
  if (!p || !p->isNvidia() || !p->config.board)
    return {EINVAL, address + " is not an NVIDIA GPU of the layout"};
  if (p->config.board->migSlices == 0) return {EOPNOTSUPP, address + " has no MIG"};
  *out = p;
  return Status::ok();
}
}  // namespace

Status Host::setMig(const std::string& address, bool on, std::string* reply) {
  Pf* p = nullptr;
  if (auto s = migPf(*this, address, &p); !s) return s;
  // Refused while the VFs are enabled ("In use by another client"): [C S6] for off, [I] for on
  // (note §5's order: MIG mode first, then sriov-manage -e).
  if (!p->vfs.empty()) {
    *reply = "Unable to " + std::string(on ? "enable" : "disable") + " MIG Mode for GPU " +
             address + ": In use by another client\n";
    return {EBUSY, "the GPU's VFs are enabled"};
  }
  p->mig = on;
  if (!on) p->gis.clear();
  *reply = std::string(on ? "Enabled" : "Disabled") + " MIG Mode for GPU " + address +
           "\nAll done.\n";  // [C MIG user guide]
  return Status::ok();
}

Status Host::createGi(const std::string& address, const std::string& profile, std::string* reply) {
  Pf* p = nullptr;
  if (auto s = migPf(*this, address, &p); !s) return s;
  if (!p->mig) return {EINVAL, "MIG mode is not enabled on " + address};
  const VgpuType* t = nullptr;
  for (const auto& x : p->config.board->types)
    if (x.migBacked && x.gi == profile) t = &x;
  if (!t) return {EINVAL, "no GPU instance profile " + profile + " on " + p->config.board->name};
  // Slices are the profile's leading number; the GPU has migSlices of them [C MIG user guide].
  const int size = std::stoi(profile);
  int used = 0, id = 1;
  for (const auto& g : p->gis) used += g.size;
  while (std::any_of(p->gis.begin(), p->gis.end(), [&](const auto& g) { return g.id == id; })) ++id;
  if (used + size > p->config.board->migSlices)
    return {ENOSPC, "Insufficient Resources: " + std::to_string(p->config.board->migSlices - used) +
                        " of " + std::to_string(p->config.board->migSlices) + " slices free"};
  p->gis.push_back(
      {.id = id, .profile = profile, .profileId = t->giProfileId, .start = used, .size = size});
  *reply = "Successfully created GPU instance ID " + std::to_string(id) + " on GPU " + address +
           " using profile MIG " + profile + " (ID " + std::to_string(t->giProfileId) +
           ")\n";  // [C dask-cuda#583]
  return Status::ok();
}

Status Host::destroyGi(const std::string& address, int id, std::string* reply) {
  Pf* p = nullptr;
  if (auto s = migPf(*this, address, &p); !s) return s;
  auto it = std::find_if(p->gis.begin(), p->gis.end(), [&](const auto& g) { return g.id == id; });
  if (it == p->gis.end())
    return {ENOENT, "no GPU instance " + std::to_string(id) + " on " + address};
  for (const auto& v : p->vfs)
    if (v.gi == id || (v.mdev && v.mdev->gi == id))
      return {EBUSY, "GPU instance " + std::to_string(id) + " holds the vGPU of " + v.address +
                         ": In use by another client"};  // [I]
  p->gis.erase(it);
  *reply = "Successfully destroyed GPU instance ID " + std::to_string(id) + " from GPU " + address +
           "\n";
  return Status::ok();
}

Status Host::listGis(const std::string& address, std::string* reply) const {
  const Pf* p = nullptr;
  for (const auto& x : pfs_)
    if (x.config.address == address) p = &x;
  if (!p || !p->isNvidia() || !p->config.board) return {EINVAL, "no NVIDIA GPU " + address};
  // With MIG off, or none made: one line and a failing exit [I the exact words].
  if (!p->mig) {
    *reply = "No MIG-enabled devices found.\n";
    return {ENODEV, "MIG mode is off on " + address};
  }
  if (p->gis.empty()) {
    *reply = "No GPU instances found: Not Found\n";
    return {ENOENT, "no GPU instance on " + address};
  }
  // The table of `nvidia-smi mig -lgi` [C NVIDIA/DCGM#138]; GPU 0 stands for the GPU named.
  const char* rule = "+-------------------------------------------------------+\n";
  std::string out = std::string(rule) +
                    "| GPU instances:                                        |\n"
                    "| GPU   Name             Profile  Instance   Placement  |\n"
                    "|                          ID       ID       Start:Size |\n"
                    "|=======================================================|\n";
  for (const auto& g : p->gis) {
    char line[128];
    std::snprintf(line, sizeof line, "|   0  MIG %-13s %4d %8d %10d:%-5d |\n", g.profile.c_str(),
                  g.profileId, g.id, g.start, g.size);
    out += line;
    out += rule;
  }
  *reply = out;
  return Status::ok();
}

}  // namespace nodeplane::vgpuemu
