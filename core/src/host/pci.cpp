// PCI inventory over an injected sysfs root. Layout followed
// (Documentation/ABI/testing/sysfs-bus-pci and the kernel's drivers/iommu/iommu.c):
//   <root>/bus/pci/devices/<addr>            link into <root>/devices/pci.../<addr>
//     vendor, device ("0x10de\n"), class ("0x030000\n"), numa_node ("-1\n")
//     driver       -> .../bus/pci/drivers/<name>        absent when unbound
//     iommu_group  -> .../kernel/iommu_groups/<N>       absent without an IOMMU
//   <root>/kernel/iommu_groups/<N>/devices/<addr>
// and, over an injected proc root, the NVIDIA driver's view of each GPU it has
// (nvidia_proc.hpp): <procRoot>/driver/nvidia/gpus/<addr>/information.
#include "nodeplane/host/pci.hpp"

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>
#include <system_error>

#include "nvidia_proc.hpp"
#include "sysfs_parse.hpp"

namespace nodeplane::host {
namespace fs = std::filesystem;
namespace {

std::unexpected<Error> sysfsError(std::string message) {
  return fail(ErrorKind::kTerminal, std::move(message), {},
              "check that sysfs is mounted there, or pass --sysfs-root");
}

// The whole file, or nullopt when it is missing or unreadable (sysfs files are tiny).
std::optional<std::string> readSmallFile(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return std::nullopt;
  return text.str();
}

// A hex attribute (vendor, device, class): "" when the file is missing, an error when it holds
// something the kernel never writes.
Result<std::string> readHexAttribute(const fs::path& path, std::size_t digits) {
  auto text = readSmallFile(path);
  if (!text) return std::string{};
  auto value = parseSysfsHex(*text, digits);
  if (!value) {
    return sysfsError(path.string() + ": unexpected content '" + *text + "' (want 0x and " +
                      std::to_string(digits) + " hex digits)");
  }
  return *value;
}

// The name a link points to, or nullopt when there is no such link.
std::optional<std::string> readLinkName(const fs::path& link) {
  std::error_code ec;
  if (!fs::is_symlink(fs::symlink_status(link, ec))) return std::nullopt;
  fs::path target = fs::read_symlink(link, ec);
  if (ec) return std::nullopt;
  return linkTargetName(target);
}

// Sorted PCI addresses among the entry names of `dir`.
Result<std::vector<std::string>> listAddresses(const fs::path& dir) {
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) return sysfsError("cannot list " + dir.string() + ": " + ec.message());
  std::vector<std::string> out;
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) return sysfsError("cannot list " + dir.string() + ": " + ec.message());
    std::string name = it->path().filename().string();
    if (isPciAddress(name)) out.push_back(std::move(name));
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

bool isPciAddress(const std::string& s) {
  // dddd:bb:dd.f, lower-case hex, function 0-7.
  if (s.size() != 12) return false;
  auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); };
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    switch (i) {
      case 4:
      case 7:
        if (c != ':') return false;
        break;
      case 10:
        if (c != '.') return false;
        break;
      case 11:
        if (c < '0' || c > '7') return false;
        break;
      default:
        if (!hex(c)) return false;
    }
  }
  return true;
}

Result<PciFunction> readPciFunction(const fs::path& sysfsRoot, const std::string& address) {
  if (!isPciAddress(address)) {
    return fail(ErrorKind::kInvalidInput,
                "'" + address + "' is not a PCI address (want domain:bus:device.function, " +
                    "e.g. 0000:01:00.0)");
  }
  const fs::path dir = sysfsRoot / "bus/pci/devices" / address;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return sysfsError("PCI device " + dir.string() + " not found");

  PciFunction f;
  f.address = address;
  auto vendor = readHexAttribute(dir / "vendor", 4);
  if (!vendor) return std::unexpected(vendor.error());
  f.vendor = *vendor;
  auto device = readHexAttribute(dir / "device", 4);
  if (!device) return std::unexpected(device.error());
  f.device = *device;
  auto classCode = readHexAttribute(dir / "class", 6);
  if (!classCode) return std::unexpected(classCode.error());
  f.classCode = *classCode;

  if (auto numa = readSmallFile(dir / "numa_node")) {
    auto node = parseSysfsInt(*numa);
    if (!node) {
      return sysfsError((dir / "numa_node").string() + ": unexpected content '" + *numa + "'");
    }
    f.numaNode = *node;
  }
  f.driver = readLinkName(dir / "driver").value_or("");
  if (auto group = readLinkName(dir / "iommu_group")) {
    auto n = parseSysfsInt(*group);
    if (!n || *n < 0) {
      return sysfsError((dir / "iommu_group").string() + ": link to '" + *group +
                        "' is not an IOMMU group number");
    }
    f.iommuGroup = *n;
  }
  f.physfn = readLinkName(dir / "physfn").value_or("");
  for (auto [file, value] : {std::pair{"sriov_totalvfs", &f.totalVfs}, {"sriov_numvfs", &f.numVfs}})
    if (auto text = readSmallFile(dir / file))
      if (auto n = parseSysfsInt(*text); n && *n >= 0) *value = *n;
  return f;
}

Result<std::vector<PciFunction>> readPciFunctions(const fs::path& sysfsRoot) {
  const fs::path dir = sysfsRoot / "bus/pci/devices";
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    return sysfsError("PCI device directory " + dir.string() + " not found");
  auto addresses = listAddresses(dir);
  if (!addresses) return std::unexpected(addresses.error());
  std::vector<PciFunction> out;
  out.reserve(addresses->size());
  for (const auto& address : *addresses) {
    auto f = readPciFunction(sysfsRoot, address);
    if (!f) return std::unexpected(f.error());
    out.push_back(std::move(*f));
  }
  return out;
}

Result<std::vector<std::string>> readIommuGroup(const fs::path& sysfsRoot, int group) {
  const fs::path dir = sysfsRoot / "kernel/iommu_groups" / std::to_string(group) / "devices";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return sysfsError("IOMMU group " + dir.string() + " not found");
  return listAddresses(dir);
}

Result<std::vector<Gpu>> readGpuInventory(const fs::path& sysfsRoot, const fs::path& procRoot) {
  auto functions = readPciFunctions(sysfsRoot);
  if (!functions) return std::unexpected(functions.error());
  std::map<std::string, const PciFunction*> byAddress;
  for (const auto& f : *functions) byAddress[f.address] = &f;

  // Members of a group: the kernel's own list; the functions' links say the same thing, so they
  // stand in when the group directory cannot be read.
  std::map<int, std::vector<const PciFunction*>> groups;
  auto membersOf = [&](int group) -> Result<const std::vector<const PciFunction*>*> {
    auto it = groups.find(group);
    if (it != groups.end()) return &it->second;
    std::vector<const PciFunction*> members;
    if (auto listed = readIommuGroup(sysfsRoot, group)) {
      for (const auto& address : *listed) {
        auto known = byAddress.find(address);
        if (known == byAddress.end()) {
          return sysfsError("IOMMU group " + std::to_string(group) + " lists " + address +
                            ", which is not under " + (sysfsRoot / "bus/pci/devices").string());
        }
        members.push_back(known->second);
      }
    } else {
      for (const auto& f : *functions) {
        if (f.iommuGroup == group) members.push_back(&f);
      }
    }
    return &groups.emplace(group, std::move(members)).first->second;
  };

  std::vector<Gpu> out;
  for (const auto& f : *functions) {
    if (!f.isDisplay() || f.isVirtualFunction()) continue;
    Gpu gpu;
    gpu.function = f;
    if (f.iommuGroup) {
      auto members = membersOf(*f.iommuGroup);
      if (!members) return std::unexpected(members.error());
      const std::string slot = pciSlot(f.address);
      for (const PciFunction* m : **members) {
        if (m->address == f.address) continue;
        if (pciSlot(m->address) == slot) {
          gpu.companions.push_back(*m);
        } else if (!m->isBridge()) {
          gpu.groupPeers.push_back(*m);
        }
      }
    }
    out.push_back(std::move(gpu));
  }

  // NVIDIA GPUs, in PCI bus order (the functions are sorted by address), bound or not: their
  // index; what the driver says of those it has (no file: not loaded, or not its GPU).
  int index = 0;
  for (auto& gpu : out) {
    if (!gpu.isNvidia()) continue;
    gpu.index = index++;
    auto text =
        readSmallFile(procRoot / "driver/nvidia/gpus" / gpu.function.address / "information");
    if (!text) continue;
    NvidiaGpuInfo info = parseNvidiaGpuInformation(*text);
    gpu.uuid = std::move(info.uuid);
    gpu.model = std::move(info.model);
    gpu.deviceMinor = info.deviceMinor;
  }
  return out;
}

}  // namespace nodeplane::host
