#include "vgpu_gpu.hpp"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "nodeplane/plugin_util.hpp"

namespace nodeplane::vgpu {

namespace fs = std::filesystem;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

bool isUuid(const std::string& s) {
  if (s.size() != 36) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

// The mdevs made on a parent: <parent>/<uuid>/ directories.
std::vector<std::string> mdevsOn(const fs::path& parent) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(parent, ec); !ec && it != fs::directory_iterator();
       it.increment(ec))
    if (isUuid(it->path().filename().string())) out.push_back(it->path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// "nvidia-468" (any driver's prefix, §2) -> 468; -1 when it does not end in a number.
long typeIdOfDir(const std::string& dir) {
  auto dash = dir.find_last_of('-');
  const std::string digits = dash == std::string::npos ? dir : dir.substr(dash + 1);
  if (digits.empty() || digits.size() > 9 ||
      !std::all_of(digits.begin(), digits.end(), [](unsigned char c) { return std::isdigit(c); }))
    return -1;
  return std::stol(digits);
}

std::vector<VgpuType> mdevTypes(const fs::path& parent) {
  std::vector<VgpuType> out;
  std::error_code ec;
  for (fs::directory_iterator it(parent / "mdev_supported_types", ec);
       !ec && it != fs::directory_iterator(); it.increment(ec)) {
    VgpuType t;
    t.typeDir = it->path().filename().string();
    t.id = typeIdOfDir(t.typeDir);
    if (t.id < 0) continue;
    t.name = shortName(readAttr(it->path() / "name").value_or(t.typeDir));
    if (auto info = parseTypeName(t.name)) {
      t.framebufferMiB = info->framebufferMiB;
      t.migBacked = info->migBacked;
    }
    if (auto d = readAttr(it->path() / "description")) parseMdevDescription(*d, t);
    out.push_back(std::move(t));
  }
  std::sort(out.begin(), out.end(),
            [](const VgpuType& a, const VgpuType& b) { return a.id < b.id; });
  return out;
}

// Fills maxInstances where sysfs does not say it (SR-IOV has no description): time-sliced
// floor(framebuffer / size), MIG-backed floor(7 / slices) (one for a media-extension type), both
// capped by the VFs the GPU can have (§4: the rule is inferred from NVIDIA's example values).
void fillLimits(TypeTable& t) {
  const long fb = t.framebufferMiB();
  for (auto& v : t.types) {
    if (v.maxInstances > 0) continue;
    int n = 0;
    if (auto info = parseTypeName(v.name); info && info->migBacked)
      n = info->mediaExtension ? 1 : info->slices > 0 ? 7 / info->slices : 0;
    else if (fb > 0 && v.framebufferMiB > 0)
      n = static_cast<int>(fb / v.framebufferMiB);
    if (t.totalVfs > 0 && (n == 0 || n > t.totalVfs)) n = t.totalVfs;
    v.maxInstances = n;
  }
}

int intAttr(const fs::path& file) {
  try {
    return std::stoi(readAttr(file).value_or("0"));
  } catch (...) {
    return 0;
  }
}

fs::path tableFile(const fs::path& recordDir, const std::string& gpu) {
  return recordDir / (gpu + ".json");
}

}  // namespace

std::optional<std::string> readAttr(const fs::path& file) {
  std::ifstream in(file);
  if (!in) return std::nullopt;
  std::stringstream s;
  s << in.rdbuf();
  if (in.bad()) return std::nullopt;
  std::string v = s.str();
  while (!v.empty() && (v.back() == '\n' || v.back() == ' ')) v.pop_back();
  return v;
}

fs::path slotDir(const fs::path& sysfsRoot, const std::string& address) {
  return sysfsRoot / "bus/pci/devices" / address;
}

std::optional<long> readCurrentType(const fs::path& sysfsRoot, const std::string& vf) {
  auto v = readAttr(slotDir(sysfsRoot, vf) / "nvidia/current_vgpu_type");
  if (!v) return std::nullopt;
  if (v->empty()) return 0;  // "" or "0": no profile (kubevirt's reading, §1.3)
  try {
    return std::stol(*v);
  } catch (...) {
    return std::nullopt;
  }
}

std::string offsetAddress(const std::string& address, int offset) {
  unsigned domain = 0, bus = 0, dev = 0, fn = 0;
  if (std::sscanf(address.c_str(), "%4x:%2x:%2x.%1x", &domain, &bus, &dev, &fn) != 4) return "";
  const long rid = (static_cast<long>(bus) << 8 | dev << 3 | fn) + offset;  // the routing id
  if (rid < 0 || rid > 0xffff) return "";
  char out[16];
  std::snprintf(out, sizeof out, "%04x:%02lx:%02lx.%lx", domain, rid >> 8, (rid >> 3) & 0x1f,
                rid & 7);
  return out;
}

bool GpuState::empty() const {
  return std::none_of(slots.begin(), slots.end(),
                      [](const Slot& s) { return s.currentType != 0 || !s.mdevs.empty(); });
}

const Slot* GpuState::slotOf(const std::string& address) const {
  for (const auto& s : slots)
    if (s.address == address) return &s;
  return nullptr;
}

Result<GpuState> readGpu(const fs::path& sysfsRoot, const std::string& address) {
  GpuState g;
  g.address = address;
  const fs::path pfDir = slotDir(sysfsRoot, address);
  std::error_code ec;
  auto pf = readPf(sysfsRoot, address);
  if (!pf) {
    // Pascal/Turing: no SR-IOV, the PF itself is the mdev parent (§2).
    auto f = host::readPciFunction(sysfsRoot, address);
    if (!f || f->isVirtualFunction() || !fs::is_directory(pfDir / "mdev_supported_types", ec))
      return std::unexpected(pf.error());
    g.pf.function = *f;
    g.model = Model::kMdev;
    g.mdevOnPf = true;
    Slot s{address, -1, true, 0, mdevsOn(pfDir)};
    g.slots.push_back(std::move(s));
    g.live.gpu = address;
    g.live.model = Model::kMdev;
    g.live.types = mdevTypes(pfDir);
    g.live.complete = true;
    fillLimits(g.live);
    return g;
  }
  g.pf = *pf;
  g.vfOffset = intAttr(pfDir / "sriov_offset");
  g.vfStride = intAttr(pfDir / "sriov_stride");
  const int total = g.pf.function.totalVfs;
  for (int k = 0; k < total; ++k) {
    Slot s;
    s.vf = k;
    if (static_cast<std::size_t>(k) < g.pf.vfs.size() && !g.pf.vfs[k].empty()) {
      s.address = g.pf.vfs[k];
      s.present = fs::exists(slotDir(sysfsRoot, s.address), ec);
    } else if (g.vfOffset > 0) {
      s.address = offsetAddress(address, g.vfOffset + k * g.vfStride);
    }
    g.slots.push_back(std::move(s));
  }
  for (auto& s : g.slots) {
    if (!s.present) continue;
    const fs::path dir = slotDir(sysfsRoot, s.address);
    if (fs::exists(dir / "nvidia/current_vgpu_type", ec)) {
      g.model = Model::kSriov;
      s.currentType = readCurrentType(sysfsRoot, s.address).value_or(0);
    } else if (fs::is_directory(dir / "mdev_supported_types", ec)) {
      g.model = Model::kMdev;
      s.mdevs = mdevsOn(dir);
      if (!s.mdevs.empty()) {
        auto t = fs::read_symlink(dir / s.mdevs.front() / "mdev_type", ec);
        s.currentType = ec ? 0 : typeIdOfDir(t.filename().string());
      }
    }
  }
  g.live.gpu = address;
  g.live.model = g.model;
  g.live.totalVfs = total;
  if (g.model == Model::kSriov) {
    // What the GPU offers now is what a VF without a type lists (a VF with a type lists nothing,
    // or only its own type, §1.2/§8). The lists are the GPU's placement, the same on every free
    // VF (§1.5), so the first non-empty one is read: one file, not one per VF, each pass.
    std::vector<VgpuType> all;
    for (const auto& s : g.slots) {
      if (!s.present || s.currentType != 0) continue;
      all = parseCreatable(slurp(slotDir(sysfsRoot, s.address) / "nvidia/creatable_vgpu_types"));
      if (!all.empty()) break;
    }
    std::sort(all.begin(), all.end(),
              [](const VgpuType& a, const VgpuType& b) { return a.id < b.id; });
    g.live.types = std::move(all);
    g.live.complete = g.empty() && !g.live.types.empty();
  } else if (g.model == Model::kMdev) {
    for (const auto& s : g.slots)
      if (s.present) {
        g.live.types = mdevTypes(slotDir(sysfsRoot, s.address));
        break;
      }
    g.live.complete = !g.live.types.empty();
  }
  fillLimits(g.live);
  return g;
}

std::optional<TypeTable> keptTypeTable(const fs::path& recordDir, const std::string& gpu) {
  std::ifstream in(tableFile(recordDir, gpu));
  if (!in) return std::nullopt;
  Json j = Json::parse(in, nullptr, false);
  if (j.is_discarded()) return std::nullopt;
  return typeTableFromJson(j);
}

TypeTable typeTableOf(const GpuState& gpu, const fs::path& recordDir, bool remember) {
  if (gpu.live.complete) {
    if (remember) {
      auto kept = keptTypeTable(recordDir, gpu.address);
      const Json now = toJson(gpu.live);
      // A driver upgrade changes ids: the table read now replaces the kept one.
      if (!kept || toJson(*kept) != now)
        (void)writeFileAtomically(tableFile(recordDir, gpu.address), now.dump(2) + "\n");
    }
    return gpu.live;
  }
  if (auto kept = keptTypeTable(recordDir, gpu.address)) {
    if (gpu.model != Model::kUnknown) kept->model = gpu.model;
    return *kept;
  }
  return gpu.live;
}

std::vector<VgpuType> creatableOn(const fs::path& sysfsRoot, const GpuState& gpu,
                                  const Slot& slot) {
  const fs::path dir = slotDir(sysfsRoot, slot.address);
  if (gpu.model == Model::kSriov) {
    auto list = parseCreatable(slurp(dir / "nvidia/creatable_vgpu_types"));
    return list;
  }
  std::vector<VgpuType> out;
  for (auto& t : gpu.live.types) {
    auto n = readAttr(dir / "mdev_supported_types" / t.typeDir / "available_instances");
    try {
      if (n && std::stol(*n) > 0) out.push_back(t);
    } catch (...) {
    }
  }
  return out;
}

bool mdevMigMode(const fs::path& sysfsRoot, const GpuState& gpu) {
  if (gpu.model != Model::kMdev) return false;
  for (const auto& s : gpu.slots)
    if (s.present && s.currentType != 0)
      if (const VgpuType* t = gpu.live.byId(s.currentType)) return t->migBacked;
  const bool timeSliced = std::any_of(gpu.live.types.begin(), gpu.live.types.end(),
                                      [](const VgpuType& t) { return !t.migBacked; });
  for (const auto& s : gpu.slots) {
    if (!s.present || !s.mdevs.empty()) continue;
    const auto offered = creatableOn(sysfsRoot, gpu, s);
    return timeSliced && std::none_of(offered.begin(), offered.end(),
                                      [](const VgpuType& t) { return !t.migBacked; });
  }
  return false;
}

}  // namespace nodeplane::vgpu
