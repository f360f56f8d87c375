// SriovPf's spec side (schema, validate, claims, normalize), observe, check and who uses a PF's
// VFs. The moves (apply) are in sriov_apply.cpp.
#include "sriov_kind.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <map>
#include <system_error>

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

std::string firstLine(const fs::path& file) {
  std::ifstream in(file);
  std::string line;
  std::getline(in, line);
  while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.pop_back();
  return line;
}

// "0b6f2b6e-…" (8-4-4-4-12 hex digits): the name of an mdev's directory under its parent.
bool isUuid(const std::string& s) {
  if (s.size() != 36) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

// The mdevs made on a parent device (a VF on Ampere, the PF before it): <dir>/<uuid>/mdev_type.
std::vector<std::string> mdevsOf(const fs::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    std::error_code lec;
    if (isUuid(name) && fs::exists(it->path() / "mdev_type", lec)) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

SriovKind::SriovKind(HostServices& services, const VgpuConfig& config)
    : services_(services), config_(config) {}

KindSchema SriovKind::schema() const {
  KindSchema k;
  k.kind = kSriovPfKind;
  k.description = "The number of virtual functions of an SR-IOV physical function";
  // kAny: a GPU index may be written bare (device: 1), as Vgpu's parent; validate() checks it.
  FieldSchema device{"device", FieldType::kAny,
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

PfRef SriovKind::resolve(const Json& device) const {
  if (device.is_string())
    if (std::string a = lower(device.get<std::string>()); host::isPciAddress(a)) return {a, ""};
  auto gpus = services_.gpus();
  if (!gpus) return {"", "cannot read the GPUs of this host: " + gpus.error().message};
  host::GpuRef ref = host::resolveGpuRef(device, *gpus);
  if (ref.gpu) return {ref.gpu->function.address, ""};
  return {"", ref.problem};
}

std::vector<Error> SriovKind::validate(const Resource& r) const {
  std::vector<Error> out;
  if (auto problem = recordNameProblem(r.id.name); !problem.empty())
    out.push_back(r.error(ErrorKind::kInvalidInput, "metadata.name",
                          "invalid SriovPf name \"" + r.id.name + "\": " + problem +
                              " (the name is its ownership record's file name)"));
  if (!r.spec.is_object() || !r.spec.contains("device")) return out;  // the schema says so
  if (const Json& d = r.spec["device"]; !d.is_string() && !d.is_number_integer()) {
    out.push_back(r.error(ErrorKind::kInvalidInput, "spec.device",
                          "expected a PF: a PCI address, a GPU's inventory index or a GPU-… "
                          "UUID, got " +
                              host::describeValue(d)));
    return out;
  }
  const PfRef ref = resolve(r.spec["device"]);
  if (ref.address.empty()) {
    out.push_back(r.error(ErrorKind::kInvalidInput, "spec.device", ref.problem));
    return out;
  }
  const fs::path& sysfs = services_.context().sysfsRoot;
  std::error_code ec;
  if (!fs::exists(sysfs / "bus/pci/devices" / ref.address, ec)) {
    out.push_back(r.error(ErrorKind::kInvalidInput, "spec.device",
                          "no PCI function " + ref.address + " on this host (" +
                              (sysfs / "bus/pci/devices" / ref.address).string() + " not found)"));
    return out;
  }
  auto pf = readPf(sysfs, ref.address);
  if (!pf) {
    out.push_back(r.error(ErrorKind::kInvalidInput, "spec.device", pf.error().message,
                          "name a physical function that offers virtual functions"));
    return out;
  }
  if (!r.spec.contains("numVfs") || !r.spec["numVfs"].is_number_integer()) return out;
  const long long want = r.spec["numVfs"].get<long long>();
  const int total = pf->function.totalVfs;
  if (want > total) {
    out.push_back(r.error(ErrorKind::kInvalidInput, "spec.numVfs",
                          "numVfs " + std::to_string(want) + " is more than " + ref.address +
                              " offers: its sriov_totalvfs is " + std::to_string(total)));
    return out;
  }
  if (pf->isNvidia() && want != 0 && want != total)
    out.push_back(r.error(ErrorKind::kInvalidInput, "spec.numVfs",
                          ref.address +
                              " is an NVIDIA GPU: its driver enables all its virtual functions at "
                              "once (sriov-manage -e), so numVfs must be 0 or " +
                              std::to_string(total) + " (its sriov_totalvfs), not " +
                              std::to_string(want)));
  return out;
}

std::vector<Claim> SriovKind::claims(const Resource& r) const {
  if (!r.spec.is_object() || !r.spec.contains("device")) return {};
  const PfRef ref = resolve(r.spec["device"]);
  if (ref.address.empty()) return {};
  return {Claim{"pci", ref.address, false, false}, Claim{"sriov", ref.address, true, false}};
}

Json SriovKind::normalize(const Json& spec) const {
  Json out = spec.is_object() ? spec : Json::object();
  if (out.contains("device"))
    if (const PfRef ref = resolve(out["device"]); !ref.address.empty()) out["device"] = ref.address;
  return out;  // an unresolved device stays as written: validate says why
}

std::string SriovKind::usersOf(const Pf& pf) const {
  const HostContext& host = services_.context();
  const fs::path devices = host.sysfsRoot / "bus/pci/devices";
  std::map<fs::path, std::string> nodeOf;  // device node -> the VF it gives access to
  std::vector<std::string> vgpus;
  for (const auto& vf : pf.vfs) {
    if (vf.empty()) continue;
    const fs::path dir = devices / vf;
    for (const auto& n : vfioNodesOf(host, dir)) nodeOf.emplace(n, vf);
    if (!pf.isNvidia()) continue;
    // A vGPU exists while a type is set, open or not (issue 9: never enable or disable VFs on
    // a GPU that has a vGPU); a type is "0" when none (research note §1.3).
    const std::string type = firstLine(dir / "nvidia/current_vgpu_type");
    if (!type.empty() && type != "0") vgpus.push_back("VF " + vf + ": type " + type);
    for (const auto& m : mdevsOf(dir)) {
      vgpus.push_back("VF " + vf + ": mdev " + m);
      for (const auto& n : vfioNodesOf(host, dir / m)) nodeOf.emplace(n, vf);
    }
  }
  std::vector<std::string> parts;
  std::set<fs::path> nodes;
  for (const auto& [n, vf] : nodeOf) nodes.insert(n);
  auto open = openersOf(host.procRoot, nodes);
  std::map<std::string, std::vector<Opener>> byVf;
  for (auto& [node, openers] : open)
    for (auto& o : openers) byVf[nodeOf.at(node)].push_back(o);
  for (auto& [vf, openers] : byVf) {
    std::sort(openers.begin(), openers.end(),
              [](const Opener& a, const Opener& b) { return a.pid < b.pid; });
    openers.erase(std::unique(openers.begin(), openers.end(),
                              [](const Opener& a, const Opener& b) { return a.pid == b.pid; }),
                  openers.end());
    parts.push_back("VF " + vf + " " + inUseBy(openers));
  }
  if (!vgpus.empty()) {
    std::string s = "has vGPUs (";
    for (std::size_t i = 0; i < vgpus.size(); ++i) s += (i ? ", " : "") + vgpus[i];
    parts.push_back(s + ")");
  }
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : "; ") + p;
  return out;
}

Result<std::vector<ObservedObject>> SriovKind::observe() {
  auto records = listSriovRecords(config_.stateDir);
  if (!records) return std::unexpected(records.error());
  const std::string agent = services_.agentId();
  const fs::path& sysfs = services_.context().sysfsRoot;
  std::vector<ObservedObject> out;
  for (const auto& rec : *records) {
    ObservedObject o;
    o.id = {kSriovPfKind, rec.name};
    if (!agent.empty() && rec.agent == agent)
      o.marked = true;
    else
      o.markedByOther = rec.agent.empty() ? std::string("(no agent id)") : rec.agent;
    o.uid = rec.uid;
    o.holds = {Claim{"pci", rec.device, false, false}, Claim{"sriov", rec.device, true, false}};
    auto pf = readPf(sysfs, rec.device);
    if (!pf) {  // gone from the bus, or its driver no longer offers SR-IOV: no VFs
      o.spec = {{"device", rec.device}, {"numVfs", 0}};
      o.detail = pf.error().message;
    } else {
      o.spec = {{"device", rec.device}, {"numVfs", pf->function.numVfs}};
      o.detail = std::to_string(pf->function.numVfs) + " of " +
                 std::to_string(pf->function.totalVfs) + " VFs";
      o.busy = usersOf(*pf);
    }
    out.push_back(std::move(o));
  }
  return out;
}

bool SriovKind::deleteLeavesVfs(const Change& change) const {
  if (change.action != Action::kDelete && change.action != Action::kReplace) return false;
  auto record = readSriovRecord(config_.stateDir, change.id.name);
  if (!record || !*record) return false;
  // As setCount() judges it: the count and the links both at the count to put back.
  auto pf = readPf(services_.context().sysfsRoot, (*record)->device);
  return pf && pf->has((*record)->originalNumVfs);
}

std::vector<CheckItem> SriovKind::check() {
  CheckItem item{"sriov", true, false, ""};
  auto pfs = readPfs(services_.context().sysfsRoot);
  if (!pfs) {
    item.ok = false;
    item.detail = "cannot read the PCI functions: " + pfs.error().message;
    return {item};
  }
  bool nvidia = false;
  for (const auto& pf : *pfs) {
    item.detail += (item.detail.empty() ? "" : ", ") + pf.function.address + " (" +
                   pf.function.vendor + ":" + pf.function.device + ", " +
                   (pf.function.driver.empty() ? std::string("no driver") : pf.function.driver) +
                   "): " + std::to_string(pf.function.numVfs) + " of " +
                   std::to_string(pf.function.totalVfs) + " VFs";
    nvidia = nvidia || pf.isNvidia();
  }
  if (pfs->empty()) item.detail = "no SR-IOV capable physical function on this host";
  std::vector<CheckItem> out{item};
  if (nvidia) {
    CheckItem manage{"sriov-manage", false, false, ""};
    std::error_code ec;
    const fs::path& p = config_.sriovManage;
    manage.ok = fs::is_regular_file(p, ec) && ::access(p.c_str(), X_OK) == 0;
    manage.detail = manage.ok ? p.string() + " (enables NVIDIA GPUs' virtual functions)"
                              : p.string() +
                                    " is not an executable file: SriovPf cannot enable an NVIDIA "
                                    "GPU's virtual functions (install NVIDIA's vGPU host driver, "
                                    "or set vgpu.sriovManage in the agent config)";
    out.push_back(manage);
  }
  return out;
}

}  // namespace nodeplane::vgpu
