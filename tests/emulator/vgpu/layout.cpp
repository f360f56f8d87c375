#include "layout.hpp"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>

namespace nodeplane::vgpuemu {

namespace {

using nlohmann::json;

bool isHex(const std::string& s, std::size_t digits) {
  return s.size() == digits && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// Routing id (bus << 8 | device << 3 | function) and domain of "dddd:bb:dd.f"; nullopt when the
// text is not such an address.
struct Rid {
  unsigned domain = 0, rid = 0;
};
std::optional<Rid> parseAddress(const std::string& s) {
  unsigned d = 0, b = 0, dev = 0, fn = 0;
  char tail = 0;
  if (s.size() != 12 || std::sscanf(s.c_str(), "%4x:%2x:%2x.%1x%c", &d, &b, &dev, &fn, &tail) != 4)
    return std::nullopt;
  if (dev > 0x1f || fn > 7 || !isHex(s.substr(0, 4), 4) || !isHex(s.substr(5, 2), 2) ||
      !isHex(s.substr(8, 2), 2))
    return std::nullopt;
  return Rid{d, (b << 8) | (dev << 3) | fn};
}

std::string formatAddress(unsigned domain, unsigned rid) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04x:%02x:%02x.%x", domain, rid >> 8, (rid >> 3) & 0x1f, rid & 7);
  return buf;
}

class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}
  bool failed() const { return !error_.empty(); }
  const std::string& error() const { return error_; }
  void fail(const std::string& path, const std::string& what) {
    if (error_.empty()) error_ = file_ + ": " + path + ": " + what;
  }
  // Keys of `o` that are not in `known` are errors (a typo must not silently mean a default).
  void onlyKeys(const json& o, const std::string& path, const std::set<std::string>& known) {
    for (const auto& [k, v] : o.items())
      if (!known.count(k)) {
        std::string list;
        for (const auto& n : known) list += (list.empty() ? "" : ", ") + n;
        fail(path + "." + k, "unknown key (expected one of: " + list + ")");
      }
  }
  std::optional<int> integer(const json& o, const std::string& key, const std::string& path,
                             int min, int max) {
    if (!o.contains(key)) return std::nullopt;
    const json& v = o[key];
    if (!v.is_number_integer() || v.get<long long>() < min || v.get<long long>() > max) {
      fail(path + "." + key, "expected an integer from " + std::to_string(min) + " to " +
                                 std::to_string(max) + ", got " + v.dump());
      return std::nullopt;
    }
    return v.get<int>();
  }
  std::optional<std::string> string(const json& o, const std::string& key,
                                    const std::string& path) {
    if (!o.contains(key)) return std::nullopt;
    if (!o[key].is_string()) {
      fail(path + "." + key, "expected a string, got " + o[key].dump());
      return std::nullopt;
    }
    return o[key].get<std::string>();
  }
  // A hex attribute of `digits` lower-case digits without 0x ("10de", "030200").
  std::optional<std::string> hex(const json& o, const std::string& key, const std::string& path,
                                 std::size_t digits) {
    auto s = string(o, key, path);
    if (s && !isHex(*s, digits)) {
      fail(path + "." + key, "expected " + std::to_string(digits) +
                                 " lower-case hex digits without 0x, got \"" + *s + "\"");
      return std::nullopt;
    }
    return s;
  }

 private:
  std::string file_, error_;
};

const std::set<std::string> kPfKeys = {"address",         "kind",     "board",    "totalVfs",
                                       "vfOffset",        "vfStride", "numaNode", "iommuGroup",
                                       "vfIommuGroups",   "vendor",   "device",   "class",
                                       "driver",          "vfDriver", "vfDevice", "subsystemVendor",
                                       "subsystemDevice", "revision", "upstream"};

void readPf(Reader& r, const json& o, const std::string& path, PfConfig& pf) {
  if (!o.is_object()) return r.fail(path, "expected an object, got " + o.dump());
  r.onlyKeys(o, path, kPfKeys);
  auto address = r.string(o, "address", path);
  if (!address) return r.fail(path + ".address", "missing (the PF's PCI address, 0000:41:00.0)");
  if (!parseAddress(*address))
    return r.fail(path + ".address",
                  "expected a PCI address domain:bus:device.function in lower-case hex "
                  "(0000:41:00.0), got \"" +
                      *address + "\"");
  pf.address = *address;
  auto kind = r.string(o, "kind", path);
  if (!kind) return r.fail(path + ".kind", "missing (nvidia-sriov, nvidia-mdev or generic)");
  if (*kind == "nvidia-sriov") {
    pf.kind = PfKind::kNvidiaSriov;
  } else if (*kind == "nvidia-mdev") {
    pf.kind = PfKind::kNvidiaMdev;
  } else if (*kind == "generic") {
    pf.kind = PfKind::kGeneric;
  } else {
    return r.fail(path + ".kind",
                  "expected nvidia-sriov, nvidia-mdev or generic, got \"" + *kind + "\"");
  }
  auto board = r.string(o, "board", path);
  if (pf.isNvidia()) {
    if (!board) return r.fail(path + ".board", "missing (one of " + knownBoards() + ")");
    pf.board = findBoard(*board);
    if (!pf.board)
      return r.fail(path + ".board",
                    "unknown board \"" + *board + "\" (known: " + knownBoards() + ")");
  } else if (board) {
    return r.fail(path + ".board", "only for kind nvidia-sriov or nvidia-mdev");
  }
  auto total = r.integer(o, "totalVfs", path, 1, 256);
  if (!total) return r.fail(path + ".totalVfs", "missing or invalid (an integer from 1 to 256)");
  pf.totalVfs = *total;
  // NVIDIA GPUs put VF0 at function 4 (the A10's virtfn0 -> 41:00.4 [C S8]); the NVMe case of the
  // guest harness at offset 1.
  pf.vfOffset = r.integer(o, "vfOffset", path, 1, 65535).value_or(pf.isNvidia() ? 4 : 1);
  pf.vfStride = r.integer(o, "vfStride", path, 1, 65535).value_or(1);
  pf.numaNode = r.integer(o, "numaNode", path, -1, 63).value_or(0);

  if (pf.isNvidia()) {
    if (o.contains("vendor") && o["vendor"] != "10de")
      return r.fail(path + ".vendor", "an NVIDIA kind is always vendor 10de");
    pf.vendor = "10de";
    pf.device = r.hex(o, "device", path, 4).value_or(pf.board->device);
    pf.classCode = r.hex(o, "class", path, 6).value_or("030200");
    pf.driver = r.string(o, "driver", path).value_or("nvidia");
    pf.vfDriver = r.string(o, "vfDriver", path).value_or("nvidia");  // VFs stay on nvidia [C S9]
    pf.subsystemVendor = r.hex(o, "subsystemVendor", path, 4).value_or("10de");
    pf.subsystemDevice = r.hex(o, "subsystemDevice", path, 4).value_or(pf.board->subsystemDevice);
    pf.vfSubsystemDevice = "0000";  // the A2 VF's subsystem_device [C S2]
  } else {
    auto vendor = r.hex(o, "vendor", path, 4);
    auto device = r.hex(o, "device", path, 4);
    if (!vendor) return r.fail(path + ".vendor", "missing (4 hex digits, 8086)");
    if (!device) return r.fail(path + ".device", "missing (4 hex digits, 1592)");
    if (*vendor == "10de")
      return r.fail(path + ".vendor", "10de is NVIDIA: use kind nvidia-sriov or nvidia-mdev");
    pf.vendor = *vendor;
    pf.device = *device;
    pf.classCode = r.hex(o, "class", path, 6).value_or("020000");
    pf.driver = r.string(o, "driver", path).value_or("");
    if (pf.driver.empty()) return r.fail(path + ".driver", "missing (the PF's driver, ice)");
    // vfio-pci: the VFs are there to be given to VMs, and only vfio-bound functions have the
    // vfio-dev/ cdev a VM opens.
    pf.vfDriver = r.string(o, "vfDriver", path).value_or("vfio-pci");
    pf.subsystemVendor = r.hex(o, "subsystemVendor", path, 4).value_or(pf.vendor);
    pf.subsystemDevice = r.hex(o, "subsystemDevice", path, 4).value_or("0000");
    pf.vfSubsystemDevice = pf.subsystemDevice;
  }
  pf.vfDevice = r.hex(o, "vfDevice", path, 4).value_or(pf.device);
  pf.revision = r.hex(o, "revision", path, 2).value_or("a1");
  for (const auto* name : {&pf.driver, &pf.vfDriver})
    if (name->empty() || name->find('/') != std::string::npos || *name == "." || *name == "..")
      return r.fail(path + (name == &pf.driver ? ".driver" : ".vfDriver"),
                    "expected a driver name, got \"" + *name + "\"");

  auto pfRid = parseAddress(pf.address);
  for (int k = 0; k < pf.totalVfs; ++k) {
    long rid = static_cast<long>(pfRid->rid) + pf.vfOffset + static_cast<long>(k) * pf.vfStride;
    if (rid > 0xffff)
      return r.fail(path + ".totalVfs", "VF " + std::to_string(k) +
                                            " would lie beyond bus ff (offset " +
                                            std::to_string(pf.vfOffset) + ", stride " +
                                            std::to_string(pf.vfStride) + ")");
    pf.vfAddresses.push_back(formatAddress(pfRid->domain, static_cast<unsigned>(rid)));
  }

  if (auto up = r.string(o, "upstream", path)) {
    if (up->empty() || !up->starts_with("pci") || up->find("..") != std::string::npos ||
        up->front() == '/' || up->back() == '/')
      return r.fail(
          path + ".upstream",
          "expected a path under devices/ starting with pci, \"pci0000:40/0000:40:01.1\"");
    pf.upstream = *up;
  } else {
    // A root port on the bus below: "pci0000:40/0000:40:01.0" for bus 41.
    unsigned bus = pfRid->rid >> 8;
    char buf[64];
    if (bus == 0)
      std::snprintf(buf, sizeof buf, "pci%04x:00", pfRid->domain);
    else
      std::snprintf(buf, sizeof buf, "pci%04x:%02x/%04x:%02x:01.0", pfRid->domain, bus - 1,
                    pfRid->domain, bus - 1);
    pf.upstream = buf;
  }

  pf.iommuGroup = r.integer(o, "iommuGroup", path, 0, 100000).value_or(-1);
  if (o.contains("vfIommuGroups")) {
    const json& g = o["vfIommuGroups"];
    if (!g.is_array() || g.size() != static_cast<std::size_t>(pf.totalVfs))
      return r.fail(path + ".vfIommuGroups",
                    "expected an array of " + std::to_string(pf.totalVfs) + " group numbers");
    for (std::size_t k = 0; k < g.size(); ++k) {
      if (!g[k].is_number_integer() || g[k].get<long long>() < 0 || g[k].get<long long>() > 100000)
        return r.fail(path + ".vfIommuGroups[" + std::to_string(k) + "]",
                      "expected a group number from 0 to 100000, got " + g[k].dump());
      pf.vfIommuGroups.push_back(g[k].get<int>());
    }
  }
}

}  // namespace

std::optional<Layout> parseLayout(const json& j, const std::string& file, std::string* why) {
  Reader r(file);
  Layout layout;
  layout.source = j;
  if (!j.is_object()) {
    *why = file + ": expected a JSON object {\"pfs\": [...]}";
    return std::nullopt;
  }
  r.onlyKeys(j, "", {"pfs", "sriovManageLies"});
  if (j.contains("sriovManageLies")) {
    if (!j["sriovManageLies"].is_boolean())
      r.fail(".sriovManageLies", "expected true or false, got " + j["sriovManageLies"].dump());
    else
      layout.sriovManageLies = j["sriovManageLies"].get<bool>();
  }
  if (!j.contains("pfs") || !j["pfs"].is_array() || j["pfs"].empty())
    r.fail(".pfs", "expected a non-empty array of PFs");
  if (r.failed()) {
    *why = r.error();
    return std::nullopt;
  }
  for (std::size_t i = 0; i < j["pfs"].size() && !r.failed(); ++i) {
    PfConfig pf;
    readPf(r, j["pfs"][i], "pfs[" + std::to_string(i) + "]", pf);
    layout.pfs.push_back(std::move(pf));
  }
  if (r.failed()) {
    *why = r.error();
    return std::nullopt;
  }

  // Addresses: no PF or VF twice.
  std::map<std::string, std::string> owner;  // address -> "pfs[i]" / "pfs[i] VF k"
  for (std::size_t i = 0; i < layout.pfs.size(); ++i) {
    const auto& pf = layout.pfs[i];
    const std::string path = "pfs[" + std::to_string(i) + "]";
    std::vector<std::pair<std::string, std::string>> mine = {{pf.address, path}};
    for (int k = 0; k < pf.totalVfs; ++k)
      mine.push_back({pf.vfAddresses[k], path + " VF " + std::to_string(k)});
    for (const auto& [a, who] : mine) {
      if (auto it = owner.find(a); it != owner.end()) {
        r.fail(path + ".address", "address " + a + " of " + who + " is also " + it->second);
        break;
      }
      owner[a] = who;
    }
  }
  // IOMMU groups: each VF its own (PF group + 1 + k unless given); PFs without one get the next
  // free numbers after every group the layout names.
  std::set<int> used;
  for (const auto& pf : layout.pfs) {
    if (pf.iommuGroup >= 0) used.insert(pf.iommuGroup);
    for (int g : pf.vfIommuGroups) used.insert(g);
  }
  for (auto& pf : layout.pfs) {
    if (pf.iommuGroup < 0) {
      int next = used.empty() ? 1 : *used.rbegin() + 1;
      pf.iommuGroup = next;
      used.insert(next);
    }
    if (pf.vfIommuGroups.empty())
      for (int k = 0; k < pf.totalVfs; ++k) pf.vfIommuGroups.push_back(pf.iommuGroup + 1 + k);
    for (int g : pf.vfIommuGroups) used.insert(g);
  }
  std::map<int, std::string> groupOwner;
  for (std::size_t i = 0; i < layout.pfs.size() && !r.failed(); ++i) {
    const auto& pf = layout.pfs[i];
    const std::string path = "pfs[" + std::to_string(i) + "]";
    std::vector<std::pair<int, std::string>> mine = {{pf.iommuGroup, pf.address}};
    for (int k = 0; k < pf.totalVfs; ++k) mine.push_back({pf.vfIommuGroups[k], pf.vfAddresses[k]});
    for (const auto& [g, who] : mine) {
      if (auto it = groupOwner.find(g); it != groupOwner.end()) {
        r.fail(path + ".iommuGroup", "IOMMU group " + std::to_string(g) + " of " + who +
                                         " is also the group of " + it->second +
                                         " (every PF and VF has its own)");
        break;
      }
      groupOwner[g] = who;
    }
  }
  if (r.failed()) {
    *why = r.error();
    return std::nullopt;
  }
  return layout;
}

std::optional<Layout> readLayout(const std::string& file, std::string* why) {
  std::ifstream in(file);
  if (!in) {
    *why = file + ": cannot read the layout file";
    return std::nullopt;
  }
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    *why = file + ": not JSON: " + e.what();  // says the line and column
    return std::nullopt;
  }
  return parseLayout(j, file, why);
}

}  // namespace nodeplane::vgpuemu
