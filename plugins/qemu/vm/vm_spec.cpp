// The VirtualMachine spec side: validation against the host, the normal form, expansion into
// VfioDevice and Tap children, claims, the typed VmSpec, and the VM's file layout. No host
// writes here. (The schema is vm_schema.cpp, QEMU's argv vm_argv.cpp, the disk, firmware and
// seed files vm_files.cpp.)
#include "vm_spec.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "iommu.hpp"
#include "nodeplane/digest.hpp"
#include "nodeplane/host/gpu_ref.hpp"
#include "nodeplane/host/vgpu_ref.hpp"
#include "nodeplane/plugin_util.hpp"
#include "nodeplane/text.hpp"
#include "vfio_kind.hpp"

namespace nodeplane::qemu {
namespace {

bool allDigits(const std::string& s) {
  return !s.empty() && s.size() <= 9 &&
         std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string quoted(const std::string& s) { return "\"" + printable(s) + "\""; }

std::string describe(const Json& v) { return host::describeValue(v); }

std::string gpuName(const host::Gpu& g) {
  std::string s = g.function.address;
  if (g.index >= 0) s += " (index " + std::to_string(g.index) + ")";
  return s;
}

std::string knownGpus(const std::vector<host::Gpu>& inventory) {
  return host::describeGpus(inventory);
}

std::string functionName(const host::PciFunction& f) {
  return f.address + " (" + f.vendor + ":" + f.device + ", class " + f.classCode +
         (f.driver.empty() ? "" : ", driver " + f.driver) + ")";
}

// One entry of spec.gpus: the GPU it names, or what is wrong (expected …).
struct Resolved {
  const host::Gpu* gpu = nullptr;
  std::string problem;
};

// UUID (lower-case) -> PCI address of the GPUs seen with one: a GPU's UUID is known only while
// the nvidia driver has it, so a VM's GPU named by UUID is found again by its address while the
// VM runs (the GPU on vfio-pci). Kept in <stateDir>/qemu/gpu-uuids.json.
using UuidMemory = std::map<std::string, std::string>;

std::filesystem::path uuidFile(HostServices& services) {
  return services.context().stateDir / "qemu" / "gpu-uuids.json";
}

UuidMemory readUuids(HostServices& services) {
  UuidMemory out;
  std::ifstream in(uuidFile(services));
  if (!in) return out;
  Json j = Json::parse(in, nullptr, false);
  if (!j.is_object()) return out;
  for (const auto& [uuid, address] : j.items())
    if (address.is_string()) out[uuid] = address.get<std::string>();
  return out;
}

// Records the UUIDs the inventory shows now (a best effort: a read-only state directory, as for
// `validate` by a user, records nothing, and the UUID resolves while the driver has the GPU).
void rememberUuids(HostServices& services, const std::vector<host::Gpu>& inventory) {
  UuidMemory known = readUuids(services);
  bool changed = false;
  for (const auto& g : inventory) {
    if (g.uuid.empty()) continue;
    auto& slot = known[lower(g.uuid)];
    if (slot != g.function.address) {
      slot = g.function.address;
      changed = true;
    }
  }
  if (!changed) return;
  Json j = Json::object();
  for (const auto& [uuid, address] : known) j[uuid] = address;
  (void)writeFileAtomically(uuidFile(services), j.dump(2) + "\n");
}

Resolved resolveEntry(const Json& v, const std::vector<host::Gpu>& inventory,
                      const std::vector<host::PciFunction>& functions,
                      const UuidMemory& remembered = {}) {
  host::GpuRef ref = host::resolveGpuRef(v, inventory, remembered);
  if (ref.gpu) return {ref.gpu, {}};
  // An address of a function that is not a GPU: say which one, and that its group comes along.
  if (v.is_string())
    if (const std::string addr = lower(v.get<std::string>()); host::isPciAddress(addr))
      for (const auto& f : functions)
        if (f.address == addr)
          return {nullptr, "the device at " + functionName(f) +
                               " is not a GPU: name the GPU's own function; the other functions "
                               "of its IOMMU group come with it (" +
                               knownGpus(inventory) + ")"};
  return {nullptr, ref.problem};
}

// The GPUs of spec.gpus, in the order written; problems appended with their field path.
struct GpuPick {
  std::vector<const host::Gpu*> gpus;
  std::vector<std::pair<std::string, std::string>> problems;  // path, message
  std::vector<Json> unresolved;                               // as written
};

GpuPick pickGpus(const Json& spec, const std::vector<host::Gpu>& inventory,
                 const std::vector<host::PciFunction>& functions, const UuidMemory& remembered) {
  GpuPick out;
  auto it = spec.is_object() ? spec.find("gpus") : spec.end();
  if (!spec.is_object() || it == spec.end() || it->is_null()) return out;
  if (!it->is_array()) {
    out.problems.emplace_back("spec.gpus",
                              "expected a list of GPU indices, PCI addresses and GPU-… UUIDs, "
                              "got " +
                                  describe(*it));
    return out;
  }
  std::map<std::string, std::size_t> seen;
  for (std::size_t i = 0; i < it->size(); ++i) {
    const std::string path = "spec.gpus[" + std::to_string(i) + "]";
    Resolved r = resolveEntry((*it)[i], inventory, functions, remembered);
    if (!r.gpu) {
      out.problems.emplace_back(path, r.problem);
      out.unresolved.push_back((*it)[i]);
      continue;
    }
    auto [first, fresh] = seen.emplace(r.gpu->function.address, i);
    if (!fresh) {
      out.problems.emplace_back(path, "GPU " + gpuName(*r.gpu) + " is already named by spec.gpus[" +
                                          std::to_string(first->second) + "]");
      continue;
    }
    out.gpus.push_back(r.gpu);
  }
  return out;
}

std::vector<host::Gpu> inventoryOf(HostServices& services) {
  auto g = services.gpus();
  return g ? *g : std::vector<host::Gpu>{};
}

std::vector<host::PciFunction> functionsOf(HostServices& services) {
  auto f = services.pciFunctions();
  return f ? *f : std::vector<host::PciFunction>{};
}

// The GPUs' addresses, sorted, unique; nullopt-free: unresolvable entries are left out.
std::vector<std::string> gpuAddresses(const Json& spec, HostServices& services) {
  auto inventory = inventoryOf(services);
  auto pick = pickGpus(spec, inventory, functionsOf(services), readUuids(services));
  std::vector<std::string> out;
  for (const auto* g : pick.gpus) out.push_back(g->function.address);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

const Json* member(const Json& spec, const char* key) {
  if (!spec.is_object()) return nullptr;
  auto it = spec.find(key);
  return it == spec.end() || it->is_null() ? nullptr : &*it;
}

std::string stringAt(const Json& spec, const char* key) {
  const Json* v = member(spec, key);
  return v && v->is_string() ? v->get<std::string>() : std::string();
}

// "0-3,8,10-11": how many CPUs; nullopt when malformed.
std::optional<int> countCpuList(std::string text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  if (text.empty()) return std::nullopt;
  int count = 0;
  std::stringstream in(text);
  std::string part;
  while (std::getline(in, part, ',')) {
    auto dash = part.find('-');
    std::string a = part.substr(0, dash), b = dash == std::string::npos ? a : part.substr(dash + 1);
    if (!allDigits(a) || !allDigits(b)) return std::nullopt;
    int lo = std::stoi(a), hi = std::stoi(b);
    if (hi < lo) return std::nullopt;
    count += hi - lo + 1;
  }
  return count;
}

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  if (!in) return {};
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct Cidr {
  int family = 0;
  unsigned char addr[16] = {};
  int prefix = 0;
};

std::optional<Cidr> parseAddress(const std::string& s, bool withPrefix) {
  Cidr c;
  std::string ip = s;
  if (withPrefix) {
    auto slash = s.find('/');
    if (slash == std::string::npos) return std::nullopt;
    ip = s.substr(0, slash);
    const std::string p = s.substr(slash + 1);
    if (!allDigits(p) || p.size() > 3) return std::nullopt;
    c.prefix = std::stoi(p);
  }
  if (::inet_pton(AF_INET, ip.c_str(), c.addr) == 1) {
    c.family = AF_INET;
    if (c.prefix > 32) return std::nullopt;
  } else if (::inet_pton(AF_INET6, ip.c_str(), c.addr) == 1) {
    c.family = AF_INET6;
    if (c.prefix > 128) return std::nullopt;
  } else {
    return std::nullopt;
  }
  return c;
}

bool inSubnet(const Cidr& net, const Cidr& ip) {
  if (net.family != ip.family) return false;
  for (int bit = 0; bit < net.prefix; ++bit) {
    const int byte = bit / 8, mask = 0x80 >> (bit % 8);
    if ((net.addr[byte] & mask) != (ip.addr[byte] & mask)) return false;
  }
  return true;
}

bool isHostname(const std::string& s) {
  static const std::regex re(
      "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
      "*");
  return s.size() <= 253 && std::regex_match(s, re);
}

}  // namespace

bool isVmName(const std::string& name) {
  static const std::regex re("[a-z0-9][a-z0-9-]{0,62}");
  return std::regex_match(name, re);
}

std::optional<std::string> macProblem(const std::string& mac) {
  static const std::regex re("[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}");
  if (!std::regex_match(mac, re))
    return "malformed MAC address " + quoted(mac) +
           ": expected six hex pairs separated by ':', e.g. 52:54:00:12:34:56";
  const int first = std::stoi(mac.substr(0, 2), nullptr, 16);
  if (first & 1)
    return "MAC address " + quoted(mac) +
           " is a multicast address (the low bit of its first byte is set): a NIC needs a "
           "unicast address, e.g. 52:54:00:12:34:56";
  if (lower(mac) == "00:00:00:00:00:00") return "MAC address 00:00:00:00:00:00 is not usable";
  return std::nullopt;
}

std::optional<std::int64_t> hostMemoryMiB(const std::filesystem::path& procRoot) {
  std::ifstream in(procRoot / "meminfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("MemTotal:", 0) != 0) continue;
    std::stringstream s(line.substr(9));
    std::int64_t kb = 0;
    if (s >> kb) return kb / 1024;
  }
  return std::nullopt;
}

std::optional<int> hostCpus(const std::filesystem::path& sysfsRoot,
                            const std::filesystem::path& procRoot) {
  if (auto n = countCpuList(slurp(sysfsRoot / "devices/system/cpu/online"))) return n;
  std::ifstream in(procRoot / "cpuinfo");
  std::string line;
  int count = 0;
  while (std::getline(in, line))
    if (line.rfind("processor", 0) == 0) ++count;
  if (count > 0) return count;
  return std::nullopt;
}

std::vector<Error> validateVm(const Resource& r, HostServices& services, const QemuConfig& config) {
  std::vector<Error> out;
  auto add = [&](std::string path, std::string message, std::string hint = {}) {
    out.push_back(
        r.error(ErrorKind::kInvalidInput, std::move(path), std::move(message), std::move(hint)));
  };
  if (!isVmName(r.id.name))
    add("metadata.name",
        "invalid VM name " + quoted(r.id.name) +
            ": expected [a-z0-9][a-z0-9-]{0,62} (lower-case letters, digits and '-', at most 63 "
            "characters), as it is part of the unit name nodeplane-vm-<name>.service");
  const Json& spec = r.spec;
  if (!spec.is_object()) return out;
  const HostContext& host = services.context();

  // vcpus and memory against the host's (skipped when the host does not say).
  if (const Json* v = member(spec, "vcpus"); v && v->is_number_integer())
    if (auto cpus = hostCpus(host.sysfsRoot, host.procRoot); cpus && v->get<std::int64_t>() > *cpus)
      add("spec.vcpus",
          "vcpus " + v->dump() + " is more than this host's CPUs (" + std::to_string(*cpus) +
              ", from " + (host.sysfsRoot / "devices/system/cpu/online").string() + ")",
          "at most " + std::to_string(*cpus));
  if (const Json* v = member(spec, "memoryMiB"); v && v->is_number_integer())
    if (auto mem = hostMemoryMiB(host.procRoot); mem && v->get<std::int64_t>() > *mem)
      add("spec.memoryMiB",
          "memoryMiB " + v->dump() + " is more than this host's memory (" + std::to_string(*mem) +
              " MiB, MemTotal in " + (host.procRoot / "meminfo").string() + ")",
          "at most " + std::to_string(*mem));

  // The base image.
  if (const Json* disk = member(spec, "disk"); disk && disk->is_object()) {
    const std::string base = stringAt(*disk, "base");
    static const std::regex baseRe("[A-Za-z0-9_][A-Za-z0-9._+-]*");
    if (const Json* b = member(*disk, "base"); b && b->is_string()) {
      if (!std::regex_match(base, baseRe)) {
        add("spec.disk.base",
            "invalid base image name " + quoted(base) +
                ": expected a file name without .qcow2 (letters, digits, '.', '_', '+', '-'; no "
                "'/'), the image being <imagesDir>/<base>.qcow2");
      } else {
        const auto path = config.imagesDir / (base + ".qcow2");
        std::error_code ec;
        if (!std::filesystem::is_regular_file(path, ec))
          add("spec.disk.base", "base image " + path.string() + " not found",
              "put the qcow2 image there, or point qemu.imagesDir in the agent config at the "
              "folder that has it");
      }
    }
  }

  // GPUs: each resolved, its whole group admitted by vfio.allow.
  auto inventory = inventoryOf(services);
  auto functions = functionsOf(services);
  if (const Json* g = member(spec, "gpus"); g && g->dump().find("GPU-") != std::string::npos)
    rememberUuids(services, inventory);
  const UuidMemory remembered = readUuids(services);
  GpuPick pick = pickGpus(spec, inventory, functions, remembered);
  for (auto& [path, message] : pick.problems) add(path, message);
  std::set<int> numaNodes;
  if (const Json* g = member(spec, "gpus"); g && g->is_array()) {
    for (std::size_t i = 0; i < g->size(); ++i) {
      const std::string path = "spec.gpus[" + std::to_string(i) + "]";
      Resolved res = resolveEntry((*g)[i], inventory, functions, remembered);
      if (!res.gpu) continue;
      const host::Gpu& gpu = *res.gpu;
      numaNodes.insert(gpu.function.numaNode);
      auto group = groupFunctions(host.sysfsRoot, gpu.function.address);
      if (!group) {
        add(path, "GPU " + gpuName(gpu) + " cannot be passed through: " + group.error().message,
            group.error().hint);
        continue;
      }
      for (const auto& f : *group) {
        if (vfioAllowed(config.vfioAllow, f)) continue;
        const std::string which =
            f.address == gpu.function.address
                ? "the GPU itself"
                : "function " + functionName(f) + " of its IOMMU group " +
                      (f.iommuGroup ? std::to_string(*f.iommuGroup) : std::string("?"));
        add(path,
            "GPU " + gpuName(gpu) + " cannot be passed through: " + which +
                " is not admitted by vfio.allow" +
                (config.vfioAllow.empty() ? " (empty: no device may go to vfio-pci)" : ""),
            "every function of the group moves to vfio-pci with the GPU: add \"" + f.vendor + ":" +
                f.device + "\" or \"" + f.address + "\" to vfio.allow in the agent config");
        break;
      }
    }
  }
  if (const Json* n = member(spec, "numaAffinity"); n && n->is_boolean() && n->get<bool>()) {
    if (pick.gpus.empty() && pick.problems.empty())
      add("spec.numaAffinity",
          "numaAffinity pins the VM to the NUMA node of its GPUs, and it has none",
          "set spec.gpus, or remove numaAffinity");
    numaNodes.erase(-1);
    if (numaNodes.size() > 1) {
      std::string list;
      for (int node : numaNodes) list += (list.empty() ? "" : " and ") + std::to_string(node);
      add("spec.numaAffinity",
          "the GPUs are on NUMA nodes " + list + ": numaAffinity needs them on one node",
          "pick GPUs of one node, or remove numaAffinity");
    }
  }

  // Network.
  if (const Json* net = member(spec, "network"); net && net->is_object()) {
    if (const Json* mac = member(*net, "mac"); mac && mac->is_string())
      if (auto p = macProblem(mac->get<std::string>())) add("spec.network.mac", *p);
    std::optional<Cidr> subnet;
    if (const Json* a = member(*net, "address"); a && a->is_string()) {
      subnet = parseAddress(a->get<std::string>(), true);
      if (!subnet)
        add("spec.network.address",
            "invalid address " + quoted(a->get<std::string>()) +
                ": expected an IP address with its prefix length (CIDR), e.g. 192.168.100.10/24");
    }
    if (const Json* gw = member(*net, "gateway"); gw && gw->is_string()) {
      const std::string text = gw->get<std::string>();
      auto ip = parseAddress(text, false);
      if (!ip) {
        add("spec.network.gateway",
            "invalid gateway " + quoted(text) + ": expected an IP address, e.g. 192.168.100.1");
      } else if (!member(*net, "address")) {
        add("spec.network.gateway",
            "a gateway needs a static address: set spec.network.address (CIDR) too");
      } else if (subnet && !inSubnet(*subnet, *ip)) {
        add("spec.network.gateway",
            "gateway " + text + " is outside the VM's subnet " + stringAt(*net, "address"),
            "the gateway must be reachable on the bridge: an address inside " +
                stringAt(*net, "address"));
      }
    }
  }

  // Cloud-init.
  if (const Json* ci = member(spec, "cloudInit"); ci && ci->is_object()) {
    if (const Json* h = member(*ci, "hostname");
        h && h->is_string() && !isHostname(h->get<std::string>()))
      add("spec.cloudInit.hostname",
          "invalid host name " + quoted(h->get<std::string>()) +
              ": expected letters, digits and '-' in dot-separated labels of at most 63 "
              "characters");
    if (const Json* keys = member(*ci, "sshAuthorizedKeys"); keys && keys->is_array())
      for (std::size_t i = 0; i < keys->size(); ++i) {
        const Json& k = (*keys)[i];
        if (!k.is_string()) continue;
        const std::string s = k.get<std::string>();
        if (s.empty() || s.find_first_of("\r\n") != std::string::npos)
          add("spec.cloudInit.sshAuthorizedKeys[" + std::to_string(i) + "]",
              "expected one public key on one line, e.g. \"ssh-ed25519 AAAA… user@host\"");
      }
    if (const Json* u = member(*ci, "userData"); u && u->is_string()) {
      const std::string s = u->get<std::string>();
      if (s.empty() || s.front() != '#')
        add("spec.cloudInit.userData",
            "user-data must start with a cloud-init header line: #cloud-config, #! (a script) "
            "or #include (the value is sensitive, so it is not shown)");
    }
  }

  // UEFI needs OVMF.
  if (stringAt(spec, "firmware") == "uefi")
    if (auto code = ovmfCode(config); !code)
      add("spec.firmware", "firmware uefi: " + code.error().message, code.error().hint);
  return out;
}

Json normalizeVm(const Json& spec, HostServices& services) {
  if (!spec.is_object()) return spec;
  Json out = spec;
  auto dflt = [&](const char* key, Json value) {
    if (!out.contains(key) || out[key].is_null()) out[key] = std::move(value);
  };
  dflt("vcpus", 1);
  dflt("memoryMiB", 1024);
  dflt("firmware", "bios");
  dflt("accel", "auto");
  dflt("numaAffinity", false);
  dflt("state", "running");
  dflt("shutdownTimeoutSec", 60);
  dflt("retainDisk", false);
  dflt("keepBound", false);
  dflt("gpus", Json::array());
  dflt("vgpus", Json::array());
  if (out["gpus"].is_array()) {
    auto inventory = inventoryOf(services);
    auto pick = pickGpus(out, inventory, functionsOf(services), readUuids(services));
    std::vector<std::string> addresses;
    for (const auto* g : pick.gpus) addresses.push_back(g->function.address);
    std::sort(addresses.begin(), addresses.end());
    Json gpus = Json::array();
    for (const auto& a : addresses) gpus.push_back(a);
    for (const auto& u : pick.unresolved) gpus.push_back(u);  // validate reports them
    out["gpus"] = std::move(gpus);
  }
  // A MAC left out stays out (normalize does not know the VM's name): parseVmSpec derives it,
  // and the diff does not compare a field the desired spec leaves out.
  if (auto net = out.find("network"); net != out.end() && net->is_object())
    if (auto mac = net->find("mac"); mac != net->end() && mac->is_string())
      *mac = lower(mac->get<std::string>());
  if (auto ci = out.find("cloudInit"); ci != out.end() && ci->is_object()) {
    if (!ci->contains("sshAuthorizedKeys")) (*ci)["sshAuthorizedKeys"] = Json::array();
  }
  return out;
}

Result<std::vector<Resource>> expandVm(const Resource& r, HostServices& services) {
  std::vector<Resource> out;
  const Json& spec = r.spec;
  const bool running = stringAt(spec, "state") != "stopped";
  const Json* kb = member(spec, "keepBound");
  const bool bound = running || (kb && kb->is_boolean() && kb->get<bool>());
  std::set<std::string> done;
  const auto addresses = gpuAddresses(spec, services);
  for (const auto& address : addresses) {
    auto group = groupFunctions(services.context().sysfsRoot, address);
    if (!group) {
      Error e = group.error();
      e.message = "GPU " + address + ": " + e.message;
      e.field = "spec.gpus";
      e.where = r.locate("spec.gpus");
      return std::unexpected(e);
    }
    for (const auto& f : *group) {
      if (!done.insert(f.address).second) continue;
      Resource c;
      c.id = ResourceId{kVfioDeviceKind, vfioChildName(r.id.name, f.address)};
      c.spec = Json{{"device", f.address}, {"bound", bound}};
      c.where = r.locate("spec.gpus");
      if (!bound) c.dependsOn.push_back(r.id);
      out.push_back(std::move(c));
    }
  }
  if (const Json* net = member(spec, "network"); net && net->is_object()) {
    const std::string bridge = stringAt(*net, "bridge");
    if (!bridge.empty()) {
      Resource tap;
      tap.id = ResourceId{"Tap", tapName(r.id.name)};
      tap.spec = Json{{"bridge", bridge}, {"up", true}};
      tap.where = r.locate("spec.network.bridge");
      out.push_back(std::move(tap));
    }
  }
  return out;
}

std::vector<Claim> vmClaims(const Resource& r, HostServices& services) {
  std::vector<Claim> out;
  for (const auto& a : gpuAddresses(r.spec, services))
    out.push_back(Claim{.type = "pci", .id = a, .exclusive = true, .iommuGroup = true});
  // A vGPU is one VM's: two VMs naming one Vgpu conflict.
  if (const Json* v = member(r.spec, "vgpus"); v && v->is_array())
    for (const auto& name : *v)
      if (name.is_string()) out.push_back(Claim{.type = "vgpu", .id = name.get<std::string>()});
  return out;
}

Result<VmSpec> parseVmSpec(const std::string& name, const Json& normalized,
                           HostServices& services) {
  if (!normalized.is_object()) return fail(ErrorKind::kTerminal, "the VM's spec is not a mapping");
  return catchAll("reading the spec of VirtualMachine/" + name, [&]() -> Result<VmSpec> {
    VmSpec s;
    s.name = name;
    const Json& n = normalized;
    s.vcpus = n.value("vcpus", 1);
    s.memoryMiB = n.value("memoryMiB", std::int64_t{1024});
    if (const Json* d = member(n, "disk"); d && d->is_object()) {
      s.diskBase = stringAt(*d, "base");
      s.diskSizeGiB = d->value("sizeGiB", std::int64_t{0});
    }
    const auto inventory = inventoryOf(services);
    s.gpus = gpuAddresses(n, services);
    if (const Json* g = member(n, "gpus"); g && g->is_array() && s.gpus.size() != g->size())
      return fail(ErrorKind::kTerminal,
                  "VirtualMachine/" + name + ": not every GPU of spec.gpus is on this host now",
                  "spec.gpus");
    std::set<std::string> seen;
    std::set<int> nodes;
    for (const auto& a : s.gpus) {
      auto group = groupFunctions(services.context().sysfsRoot, a);
      if (!group) return std::unexpected(group.error());
      for (const auto& f : *group)
        if (seen.insert(f.address).second) s.functions.push_back(f.address);
      for (const auto& g : inventory)
        if (g.function.address == a) nodes.insert(g.function.numaNode);
    }
    if (n.value("numaAffinity", false) && nodes.size() == 1 && *nodes.begin() >= 0)
      s.numaNode = *nodes.begin();
    if (const Json* net = member(n, "network"); net && net->is_object()) {
      s.bridge = stringAt(*net, "bridge");
      s.mac = lower(stringAt(*net, "mac"));
      if (s.mac.empty() && !s.bridge.empty()) s.mac = derivedMac(name);
      s.tap = s.bridge.empty() ? "" : tapName(name);
      s.address = stringAt(*net, "address");
      s.gateway = stringAt(*net, "gateway");
    }
    if (const Json* ci = member(n, "cloudInit"); ci && ci->is_object()) {
      s.cloudInit = true;
      s.hostname = stringAt(*ci, "hostname");
      if (const Json* keys = member(*ci, "sshAuthorizedKeys"); keys && keys->is_array())
        for (const auto& k : *keys)
          if (k.is_string()) s.sshAuthorizedKeys.push_back(k.get<std::string>());
      s.userData = stringAt(*ci, "userData");
    }
    if (!s.address.empty()) s.cloudInit = true;
    s.firmware = n.value("firmware", std::string("bios"));
    s.accel = n.value("accel", std::string("auto"));
    s.running = n.value("state", std::string("running")) != "stopped";
    s.shutdownTimeoutSec = n.value("shutdownTimeoutSec", 60);
    s.retainDisk = n.value("retainDisk", false);
    s.keepBound = n.value("keepBound", false);
    // A VM that is to run needs its vGPUs made (they are applied first: a reference).
    if (const Json* v = member(n, "vgpus"); v && v->is_array())
      for (const auto& vgpu : *v) {
        if (!vgpu.is_string()) continue;
        s.vgpus.push_back(vgpu.get<std::string>());
        auto dev = host::readVgpuDevice(services.context().stateDir, s.vgpus.back());
        if (dev)
          s.vgpuDevices.push_back(dev->device);
        else if (s.running)
          return std::unexpected(dev.error());
      }
    return s;
  });
}

std::string derivedMac(const std::string& name) {
  const std::string h = sha256Hex("nodeplane-vm:" + name);
  return "52:54:00:" + h.substr(0, 2) + ":" + h.substr(2, 2) + ":" + h.substr(4, 2);
}

std::string tapName(const std::string& vm) {
  // "vm-<name>" when it fits IFNAMSIZ - 1 (15); else "vm-<first 5>-<6 hex of a hash>".
  if (vm.size() <= 12) return "vm-" + vm;
  return "vm-" + vm.substr(0, 5) + "-" + sha256Hex("nodeplane-tap:" + vm).substr(0, 6);
}

VmLayout vmLayout(const QemuConfig& config, const std::string& name) {
  VmLayout l;
  l.dir = config.instancesDir / name;
  l.overlay = l.dir / "disk.qcow2";
  l.seed = l.dir / "seed.iso";
  l.vars = l.dir / "OVMF_VARS.fd";
  l.record = l.dir / "vm.json";
  l.qmp = config.runDir / (name + ".qmp");
  l.console = l.dir / "console.log";
  return l;
}

}  // namespace nodeplane::qemu
