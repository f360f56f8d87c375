// Vgpu's spec side (schema, target and profile resolution, validate, validateSet, claims,
// normalize) and observe. The moves are in vgpu_apply.cpp.
#include "vgpu_kind.hpp"

#include <algorithm>
#include <cctype>
#include <map>

#include "nodeplane/host/gpu_ref.hpp"
#include "nodeplane/record_store.hpp"

namespace nodeplane::vgpu {

namespace fs = std::filesystem;

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string str(const Json& spec, const char* key) {
  return spec.is_object() && spec.contains(key) && spec[key].is_string()
             ? spec[key].get<std::string>()
             : std::string();
}

std::string parentText(const Json& spec) {
  if (!spec.is_object() || !spec.contains("parent")) return "";
  const Json& p = spec["parent"];
  return p.is_string() ? p.get<std::string>() : p.dump();
}

// The profile as written: a string, or a bare number (a type id written without quotes).
std::string profileText(const Json& spec) {
  if (!spec.is_object() || !spec.contains("profile")) return "";
  const Json& p = spec["profile"];
  if (p.is_string()) return p.get<std::string>();
  if (p.is_number_integer()) return p.dump();
  return "";
}

Error bad(const std::string& field, std::string message, std::string hint = {}) {
  Error e;
  e.kind = ErrorKind::kInvalidInput;
  e.field = field;
  e.message = std::move(message);
  e.hint = std::move(hint);
  return e;
}

// The MIG-backed profiles of a table: "A100-1-5C, A100-2-10C".
std::string migNames(const TypeTable& table) {
  std::string out;
  for (const auto& t : table.types)
    if (t.migBacked) out += (out.empty() ? "" : ", ") + t.name;
  return out.empty() ? "none" : out;
}

// "0-3", "0", "none".
std::string range(int n) {
  if (n <= 0) return "none";
  return n == 1 ? "0" : "0-" + std::to_string(n - 1);
}

}  // namespace

VgpuKind::VgpuKind(HostServices& services, const VgpuConfig& config)
    : services_(services), config_(config) {}

KindSchema VgpuKind::schema() const {
  KindSchema k;
  k.kind = kVgpuKind;
  k.description = "An NVIDIA vGPU profile on a virtual function (SR-IOV) or as an mdev";
  // kAny: an index may be written bare (parent: 0), a type id too (profile: 1155); validate()
  // checks them.
  FieldSchema parent{"parent", FieldType::kAny,
                     "the GPU: a PCI address, inventory index or UUID (with vf)"};
  parent.forcesReplace = true;
  FieldSchema vf{"vf", FieldType::kInteger, "the virtual function's index on parent"};
  vf.minimum = 0;
  vf.maximum = 4095;
  vf.forcesReplace = true;
  FieldSchema address{"address", FieldType::kString,
                      "the virtual function's PCI address (instead of parent and vf)"};
  address.forcesReplace = true;
  FieldSchema profile{"profile", FieldType::kAny,
                      "the vGPU profile: its name (L40S-24Q) or numeric type id"};
  profile.required = true;
  k.spec = {parent, vf, address, profile};
  // A type is set on a VF that a SriovPf makes: after a reboot, VFs first, then types.
  k.appliedAfter = {"SriovPf"};
  return k;
}

Result<GpuState> VgpuKind::gpuNow(const std::string& address) const {
  std::lock_guard lock(gpusMu_);
  if (auto it = gpus_.find(address); it != gpus_.end()) return it->second;
  auto g = readGpu(services_.context().sysfsRoot, address);
  if (g) gpus_[address] = *g;
  return g;
}

void VgpuKind::forgetGpus() const {
  std::lock_guard lock(gpusMu_);
  gpus_.clear();
}

Result<VgpuTarget> VgpuKind::target(const Json& spec) const {
  const fs::path& sysfs = services_.context().sysfsRoot;
  const bool hasParent = spec.is_object() && spec.contains("parent");
  const bool hasVf = spec.is_object() && spec.contains("vf");
  const bool hasAddress = spec.is_object() && spec.contains("address");
  if (hasAddress && (hasParent || hasVf))
    return std::unexpected(bad(hasVf ? "spec.vf" : "spec.parent",
                               "give either parent and vf, or address, not both",
                               "address names the virtual function alone"));
  if (!hasAddress && !hasParent)
    return std::unexpected(bad("spec", "no parent or address: which GPU is the vGPU on?",
                               "give parent (the GPU) and vf, or address (the VF)"));
  VgpuTarget t;
  if (hasAddress) {
    const std::string address = lower(str(spec, "address"));
    if (!host::isPciAddress(address))
      return std::unexpected(bad("spec.address", "'" + str(spec, "address") +
                                                     "' is not a PCI address (want "
                                                     "domain:bus:device.function, e.g. "
                                                     "0000:41:00.5)"));
    auto f = host::readPciFunction(sysfs, address);
    if (f && f->isVirtualFunction()) {
      t.gpu = f->physfn;
    } else if (f) {
      auto g = gpuNow(address);
      if (!g || !g->mdevOnPf)
        return std::unexpected(bad("spec.address",
                                   address + " is not a virtual function" +
                                       (g ? " (it is a physical function)" : std::string()),
                                   "give parent: " + address + " and vf: <index> instead"));
      t.gpu = address;
    } else {
      // Not there now: a VF of a GPU whose VFs are not enabled yet (after a reboot), found
      // where the PF's sriov_offset/stride put it.
      auto pfs = readPfs(sysfs);
      if (pfs)
        for (const auto& pf : *pfs) {
          auto g = gpuNow(pf.function.address);
          if (!g) continue;
          for (const auto& s : g->slots)
            if (s.address == address) t.gpu = pf.function.address;
        }
      if (t.gpu.empty())
        return std::unexpected(
            bad("spec.address", "no PCI function " + address +
                                    " on this host, and no SR-IOV GPU would have it as a "
                                    "virtual function"));
    }
  } else {
    const std::string p = parentText(spec);
    if (host::isPciAddress(lower(p))) {
      t.gpu = lower(p);
    } else {
      auto gpus = services_.gpus();
      if (!gpus) return std::unexpected(bad("spec.parent", gpus.error().message));
      auto ref = host::resolveGpuRef(spec["parent"], *gpus);
      if (!ref.gpu) return std::unexpected(bad("spec.parent", ref.problem));
      t.gpu = ref.gpu->function.address;
    }
  }
  const std::string gpuField = hasAddress ? "spec.address" : "spec.parent";
  // The pass's shared inventory when it has the function (vendor and VF-ness do not change),
  // else sysfs now.
  Result<host::PciFunction> f = fail(ErrorKind::kTerminal, "");
  if (auto all = services_.pciFunctions())
    for (const auto& x : *all)
      if (x.address == t.gpu) f = x;
  if (!f) f = host::readPciFunction(sysfs, t.gpu);
  if (!f)
    return std::unexpected(bad(gpuField, "no PCI function " + t.gpu + " on this host (" +
                                             (sysfs / "bus/pci/devices" / t.gpu).string() +
                                             " not found)"));
  if (f->vendor != "10de")
    return std::unexpected(bad(gpuField,
                               t.gpu + " is not an NVIDIA GPU (vendor " + f->vendor + ", class " +
                                   f->classCode + "): vGPUs are NVIDIA's",
                               "a SriovPf gives other devices' virtual functions"));
  if (f->isVirtualFunction())
    return std::unexpected(
        bad(gpuField, t.gpu + " is a virtual function (of " + f->physfn + "), not a GPU",
            "give parent: " + f->physfn + " and its vf index, or address: " + t.gpu));
  auto g = gpuNow(t.gpu);
  if (!g)
    return std::unexpected(bad(gpuField,
                               t.gpu + " offers no vGPUs: it is neither an SR-IOV "
                                       "physical function (no sriov_totalvfs) nor an mdev "
                                       "parent (no mdev_supported_types)",
                               "install the NVIDIA vGPU host driver; a GPU without it is "
                               "passed whole with a VfioDevice"));
  t.state = std::move(*g);
  if (t.state.mdevOnPf) {
    if (hasVf)
      return std::unexpected(bad("spec.vf", t.gpu + " has no virtual functions (an mdev parent "
                                                    "without SR-IOV): leave out vf"));
    t.slot = t.gpu;
    return t;
  }
  if (hasAddress) {
    const std::string address = lower(str(spec, "address"));
    for (const auto& s : t.state.slots)
      if (s.address == address) t.vf = s.vf;
    if (t.vf < 0)
      return std::unexpected(
          bad("spec.address", address + " is not a virtual function of " + t.gpu));
    t.slot = address;
    return t;
  }
  if (!hasVf || !spec["vf"].is_number_integer())
    return std::unexpected(bad("spec.vf", "which virtual function of " + t.gpu + "? give vf (" +
                                              range(t.state.pf.function.totalVfs) + ")"));
  const int k = spec["vf"].get<int>();
  // The VFs present when they are; the VFs it can have before they are enabled (a SriovPf of the
  // same set enables them: after a reboot, before it runs, none is present).
  const int numVfs = t.state.pf.function.numVfs;
  const int limit = numVfs > 0 ? numVfs : t.state.pf.function.totalVfs;
  if (k < 0 || k >= limit || static_cast<std::size_t>(k) >= t.state.slots.size())
    return std::unexpected(
        bad("spec.vf", "vf " + std::to_string(k) + " is not a virtual function of " + t.gpu +
                           ", which has " + std::to_string(limit) +
                           (numVfs > 0 ? " now (" : " at most (") + range(limit) + ")"));
  t.vf = k;
  t.slot = t.state.slots[k].address;
  if (t.slot.empty())
    return std::unexpected(bad("spec.vf", "the address of vf " + std::to_string(k) + " of " +
                                              t.gpu + " is not known (no virtfn" +
                                              std::to_string(k) + " link, no sriov_offset)"));
  return t;
}

Result<std::optional<VgpuType>> VgpuKind::profileOn(const VgpuTarget& t, const Json& spec,
                                                    bool remember) const {
  const std::string profile = profileText(spec);
  if (profile.empty())
    return std::unexpected(bad("spec.profile",
                               "no profile: want a vGPU type name (L40S-24Q) "
                               "or a numeric type id"));
  TypeTable table = typeTableOf(t.state, typesDir(), remember);
  if (table.types.empty() && !t.state.live.complete && t.state.model == Model::kUnknown)
    return std::optional<VgpuType>();  // VFs not enabled yet and never seen: checked at apply
  const bool migNow = (t.state.live.complete && t.state.live.migMode()) ||
                      mdevMigMode(services_.context().sysfsRoot, t.state);
  const VgpuType* type = table.resolve(profile);
  auto info = parseTypeName(shortName(profile));
  if (migNow && ((type && !type->migBacked) || (!type && info && !info->migBacked)))
    return std::unexpected(bad(
        "spec.profile",
        shortName(profile) + " is a time-sliced profile, and " + t.gpu +
            " has MIG mode on (it offers MIG-backed profiles only: " + migNames(t.state.live) + ")",
        "use a MIG-backed profile, or turn MIG mode off on the GPU"));
  if (!type) {
    std::string msg = "profile " + profile + " is not a vGPU type of " + t.gpu + " (" +
                      (table.complete ? "it offers: " : "creatable now: ") + table.names() + ")";
    std::string hint;
    if (info && info->migBacked)
      hint = "MIG-backed profiles need MIG mode and GPU instances of their size";
    return std::unexpected(bad("spec.profile", msg, hint));
  }
  return std::optional<VgpuType>(*type);
}

std::vector<Error> VgpuKind::validate(const Resource& r) const {
  auto located = [&](Error e) { return r.error(e.kind, e.field, e.message, e.hint); };
  if (auto problem = recordNameProblem(r.id.name); !problem.empty())
    return {r.error(ErrorKind::kInvalidInput, "metadata.name",
                    "invalid Vgpu name \"" + r.id.name + "\": " + problem +
                        " (the name is its ownership record's file name)")};
  for (const char* key : {"parent", "profile"})
    if (r.spec.is_object() && r.spec.contains(key) && !r.spec[key].is_string() &&
        !r.spec[key].is_number_integer())
      return {r.error(ErrorKind::kInvalidInput, std::string("spec.") + key,
                      std::string("expected ") +
                          (key == std::string("parent")
                               ? "a GPU: a PCI address, an inventory index or a GPU-… UUID"
                               : "a vGPU profile: its name (L40S-24Q) or a numeric type id") +
                          ", got " + host::describeValue(r.spec[key]))};
  auto t = target(r.spec);
  if (!t) return {located(t.error())};
  auto p = profileOn(*t, r.spec, false);
  if (!p) return {located(p.error())};
  return {};
}

bool VgpuKind::mixedSize(const std::string& gpu) const {
  if (config_.mixedSize.empty()) return false;
  auto gpus = services_.gpus();
  for (const auto& m : config_.mixedSize) {
    if (lower(m) == gpu) return true;
    if (!gpus) continue;
    auto ref = host::resolveGpuRef(Json(m), *gpus);
    if (ref.gpu && ref.gpu->function.address == gpu) return true;
  }
  return false;
}

std::vector<Error> VgpuKind::validateSet(const std::vector<const Resource*>& vgpus) const {
  struct Placed {
    const Resource* r;
    VgpuType type;
  };
  std::map<std::string, std::vector<Placed>> byGpu;  // in the order given
  std::map<std::string, long> fbOf;
  for (const auto* r : vgpus) {
    auto t = target(r->spec);
    if (!t) continue;  // validate() said so
    auto p = profileOn(*t, r->spec, false);
    if (!p || !*p) continue;
    byGpu[t->gpu].push_back({r, **p});
    fbOf[t->gpu] = typeTableOf(t->state, typesDir(), false).framebufferMiB();
  }
  std::vector<Error> out;
  for (const auto& [gpu, placed] : byGpu) {
    const bool mixed = mixedSize(gpu);
    if (!mixed) {
      // The driver's default equal-size mode: every time-sliced vGPU of a GPU has one size
      // (§1.5; MIG-backed ones live in their own GPU instances).
      const Placed* first = nullptr;
      for (const auto& p : placed) {
        if (p.type.migBacked) continue;
        if (!first) {
          first = &p;
          continue;
        }
        if (p.type.framebufferMiB != first->type.framebufferMiB)
          out.push_back(p.r->error(
              ErrorKind::kInvalidInput, "spec.profile",
              "equal-size mode: " + first->type.name + " (" +
                  describeSize(first->type.framebufferMiB) + ", " + first->r->id.str() + ") and " +
                  p.type.name + " (" + describeSize(p.type.framebufferMiB) + ") on " + gpu,
              "put the GPU in vgpu.mixedSize (agent config) to mix sizes, or use one size"));
      }
    } else if (const long fb = fbOf[gpu]; fb > 0) {
      long sum = 0;
      std::string terms;
      for (const auto& p : placed) {
        if (p.type.migBacked) continue;
        sum += p.type.framebufferMiB;
        terms += (terms.empty() ? "" : " + ") + p.type.name;
        if (sum > fb) {
          out.push_back(p.r->error(ErrorKind::kInvalidInput, "spec.profile",
                                   terms + " = " + describeSize(sum) + " on " + gpu +
                                       ", which has " + describeSize(fb)));
          break;
        }
      }
    }
    // How many of a profile fit (and of a size, in equal-size mode: same-size profiles of
    // different series share the GPU, §1.5).
    std::map<long, int> perType, perSize;
    std::map<long, std::vector<std::string>> sizeNames;
    std::map<long, int> sizeMax;
    for (const auto& p : placed) {
      const int n = ++perType[p.type.id];
      if (p.type.maxInstances > 0 && n == p.type.maxInstances + 1) {
        int total = 0;
        for (const auto& q : placed) total += q.type.id == p.type.id;
        out.push_back(p.r->error(ErrorKind::kInvalidInput, "spec.profile",
                                 std::to_string(total) + " x " + p.type.name + " on " + gpu +
                                     ", which holds " + std::to_string(p.type.maxInstances)));
        continue;
      }
      if (mixed || p.type.migBacked) continue;
      const long size = p.type.framebufferMiB;
      auto& names = sizeNames[size];
      if (std::find(names.begin(), names.end(), p.type.name) == names.end())
        names.push_back(p.type.name);
      if (p.type.maxInstances > 0)
        sizeMax[size] = sizeMax.count(size) ? std::min(sizeMax[size], p.type.maxInstances)
                                            : p.type.maxInstances;
      if (++perSize[size] == sizeMax[size] + 1 && names.size() > 1) {
        std::string list;
        for (const auto& n2 : names) list += (list.empty() ? "" : ", ") + n2;
        int total = 0;
        for (const auto& q : placed) total += !q.type.migBacked && q.type.framebufferMiB == size;
        out.push_back(p.r->error(ErrorKind::kInvalidInput, "spec.profile",
                                 std::to_string(total) + " vGPUs of " + describeSize(size) + " (" +
                                     list + ") on " + gpu + ", which holds " +
                                     std::to_string(sizeMax[size])));
      }
    }
  }
  return out;
}

std::vector<Claim> VgpuKind::claims(const Resource& r) const {
  auto t = target(r.spec);
  if (!t) return {};
  std::vector<Claim> out;
  // The VF is this vGPU's alone; the GPU is shared by its vGPUs (so a VfioDevice of it, which
  // takes it whole, conflicts).
  if (t->slot != t->gpu) out.push_back(Claim{"pci", t->slot, true, false});
  out.push_back(Claim{"pci", t->gpu, false, false});
  return out;
}

Json VgpuKind::normalize(const Json& spec) const {
  Json out = spec.is_object() ? spec : Json::object();
  if (out.contains("parent") && out["parent"].is_string() &&
      host::isPciAddress(lower(out["parent"].get<std::string>())))
    out["parent"] = lower(out["parent"].get<std::string>());
  if (out.contains("address") && out["address"].is_string())
    out["address"] = lower(out["address"].get<std::string>());
  // One form of the profile: the GPU's own name for it ("1155" and "nvidia l40s-24q" are
  // "L40S-24Q"); what cannot be resolved stays as written (validate says why).
  const std::string profile = profileText(out);
  if (!profile.empty()) {
    out["profile"] = shortName(profile);
    if (auto t = target(out)) {
      const TypeTable table = typeTableOf(t->state, typesDir(), false);
      if (const VgpuType* type = table.resolve(profile)) out["profile"] = type->name;
    }
  }
  return out;
}

Result<std::vector<ObservedObject>> VgpuKind::observe() {
  forgetGpus();  // what the spec side read may be old now
  auto records = listVgpuRecords(hostState());
  if (!records) return std::unexpected(records.error());
  const HostContext& host = services_.context();
  const std::string agent = services_.agentId();

  struct Seen {
    ObservedObject o;
    std::vector<fs::path> nodes;
  };
  std::vector<Seen> seen;
  std::set<fs::path> allNodes;
  std::map<std::string, std::optional<GpuState>> gpus;  // read once per GPU
  for (auto rec : *records) {
    if (!gpus.count(rec.gpu)) {
      auto g = readGpu(host.sysfsRoot, rec.gpu);
      gpus[rec.gpu] = g ? std::optional<GpuState>(std::move(*g)) : std::nullopt;
      if (gpus[rec.gpu]) (void)typeTableOf(*gpus[rec.gpu], typesDir(), true);  // keep it
    }
    const auto& g = gpus[rec.gpu];
    long type = 0;
    fs::path dir;
    std::string where;
    if (rec.model == "mdev") {
      dir = host.sysfsRoot / "bus/mdev/devices" / rec.mdevUuid;
      std::error_code ec;
      auto link = fs::read_symlink(dir / "mdev_type", ec);
      if (!ec && !rec.mdevUuid.empty()) {
        const std::string d = link.filename().string();
        auto dash = d.find_last_of('-');
        try {
          type = std::stol(dash == std::string::npos ? d : d.substr(dash + 1));
        } catch (...) {
          type = -1;
        }
      }
      where = "mdev " + rec.mdevUuid + " on " + rec.slot;
    } else {
      dir = slotDir(host.sysfsRoot, rec.slot);
      type = readCurrentType(host.sysfsRoot, rec.slot).value_or(0);
      where = rec.slot;
    }
    if (type == 0) {
      // Gone (a reboot, a driver reload, cleared by hand): absent, so the plan makes it again;
      // the record stays (ours) but says not ready, for the qemu plugin.
      if (rec.ready && rec.agent == agent) {
        rec.ready = false;
        (void)writeVgpuRecord(hostState(), rec);
      }
      continue;
    }
    Seen s;
    ObservedObject& o = s.o;
    o.id = {kVgpuKind, rec.name};
    if (!agent.empty() && rec.agent == agent)
      o.marked = true;
    else
      o.markedByOther = rec.agent.empty() ? std::string("(no agent id)") : rec.agent;
    o.uid = rec.uid;
    o.spec = rec.spec.is_object() ? rec.spec : Json::object();
    std::string name = std::to_string(type);
    if (g) {
      const TypeTable table = typeTableOf(*g, typesDir(), false);
      if (const VgpuType* t = table.byId(type)) name = t->name;
    }
    if (type == rec.typeId && !rec.profile.empty()) name = rec.profile;
    o.spec["profile"] = name;
    o.detail = name + " (type " + std::to_string(type) + ") on " + where;
    if (rec.slot != rec.gpu) o.holds.push_back(Claim{"pci", rec.slot, true, false});
    o.holds.push_back(Claim{"pci", rec.gpu, false, false});
    s.nodes = vfioNodesOf(host, dir);
    allNodes.insert(s.nodes.begin(), s.nodes.end());
    seen.push_back(std::move(s));
  }
  // Keep each NVIDIA GPU's table while it is empty: after a reboot (no VFs) and once vGPUs have
  // shrunk the creatable lists, validate still knows every profile of the GPU.
  if (auto pfs = readPfs(host.sysfsRoot))
    for (const auto& pf : *pfs)
      if (pf.isNvidia() && !gpus.count(pf.function.address))
        if (auto g = readGpu(host.sysfsRoot, pf.function.address); g && g->live.complete)
          (void)typeTableOf(*g, typesDir(), true);
  auto openers = openersOf(host.procRoot, allNodes);
  std::vector<ObservedObject> out;
  for (auto& s : seen) {
    std::vector<Opener> users;
    for (const auto& n : s.nodes)
      if (auto it = openers.find(n); it != openers.end())
        users.insert(users.end(), it->second.begin(), it->second.end());
    s.o.busy = inUseBy(users);
    out.push_back(std::move(s.o));
  }
  return out;
}

void VgpuKind::progressOnce(ApplyContext& context, const std::string& key,
                            const std::string& message) {
  {
    std::lock_guard lock(loggedMu_);
    if (!logged_.insert(key + "\n" + message).second) return;
  }
  context.progress(message);
}

void VgpuKind::settled(const std::string& key) {
  std::lock_guard lock(loggedMu_);
  for (auto it = logged_.lower_bound(key + "\n");
       it != logged_.end() && it->starts_with(key + "\n");)
    it = logged_.erase(it);
}

}  // namespace nodeplane::vgpu
