#include "host_checks.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <system_error>

#include "iommu.hpp"
#include "qemu_config.hpp"

namespace nodeplane::qemu {
namespace fs = std::filesystem;
namespace {

CheckItem item(std::string name, bool required) {
  CheckItem c;
  c.name = std::move(name);
  c.required = required;
  return c;
}

std::string trim(std::string s) {
  const char* ws = " \t\r\n";
  s.erase(0, s.find_first_not_of(ws));
  s.erase(s.find_last_not_of(ws) + 1);
  return s;
}

std::string join(const std::vector<std::string>& parts, const char* sep) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : sep) + p;
  return out;
}

}  // namespace

CheckItem probeKvm(const fs::path& devRoot) {
  CheckItem c = item("kvm", false);
  const fs::path kvm = devRoot / "kvm";
  std::error_code ec;
  auto st = fs::status(kvm, ec);
  if (ec || !fs::exists(st)) {
    c.detail = kvm.string() +
               " not found (enable virtualization in the firmware, then modprobe kvm_intel or "
               "kvm_amd)";
  } else if (!fs::is_character_file(st)) {
    c.detail = kvm.string() + " exists but is not a character device";
  } else {
    c.ok = true;
    c.detail = kvm.string();
  }
  return c;
}

std::string parseCpuVirtualization(std::istream& cpuinfo) {
  std::string line;
  while (std::getline(cpuinfo, line)) {
    auto colon = line.find(':');
    if (colon == std::string::npos || trim(line.substr(0, colon)) != "flags") continue;
    std::istringstream flags(line.substr(colon + 1));
    std::string flag;
    while (flags >> flag) {
      if (flag == "vmx" || flag == "svm") return flag;
    }
  }
  return {};
}

CheckItem probeCpuVirtualization(const fs::path& procRoot) {
  CheckItem c = item("cpu-virtualization", false);
  const fs::path path = procRoot / "cpuinfo";
  std::ifstream in(path);
  if (!in) {
    c.detail = "cannot read " + path.string() + ": " + std::strerror(errno);
    return c;
  }
  std::string flag = parseCpuVirtualization(in);
  if (flag.empty()) {
    c.detail = "no vmx or svm flag in " + path.string() + " (enable VT-x / AMD-V in the firmware)";
  } else {
    c.ok = true;
    c.detail = flag == "vmx" ? "vmx (Intel VT-x)" : "svm (AMD-V)";
  }
  return c;
}

CheckItem probeIommu(const fs::path& sysfsRoot) {
  CheckItem c = item("iommu", false);
  const fs::path dir = sysfsRoot / "kernel/iommu_groups";
  std::size_t groups = 0;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    if (it->is_directory(ec)) ++groups;
  }
  if (groups == 0) {
    c.detail = "no IOMMU groups under " + dir.string() +
               " (add intel_iommu=on or amd_iommu=on, and iommu=pt, to the kernel command line)";
  } else {
    c.ok = true;
    c.detail = std::to_string(groups) + (groups == 1 ? " IOMMU group" : " IOMMU groups");
  }
  return c;
}

CheckItem probeVfio(const fs::path& sysfsRoot) {
  CheckItem c = item("vfio", false);
  const fs::path module = sysfsRoot / "module/vfio_pci";
  const fs::path driver = sysfsRoot / "bus/pci/drivers/vfio-pci";
  std::error_code ec;
  if (fs::is_directory(driver, ec)) {
    c.ok = true;
    c.detail = "vfio-pci driver registered (" + driver.string() + ")";
  } else if (fs::is_directory(module, ec)) {
    c.ok = true;
    c.detail = "vfio_pci module loaded (" + module.string() + ")";
  } else {
    c.detail =
        "vfio-pci is not loaded (modprobe vfio-pci; add it to /etc/modules-load.d to keep "
        "it)";
  }
  return c;
}

CheckItem probeAcsOverride(const fs::path& procRoot) {
  CheckItem c = item("acs-override", false);
  const fs::path path = procRoot / "cmdline";
  std::ifstream in(path);
  if (!in) {
    c.detail = "cannot read " + path.string() + ": " + std::strerror(errno);
    return c;
  }
  std::string arg, found;
  while (in >> arg)
    if (arg.rfind("pcie_acs_override", 0) == 0) found = arg;
  if (found.empty()) {
    c.ok = true;
    c.detail = "not active: the IOMMU groups are what the hardware isolates";
  } else {
    c.detail = found +
               " is on the kernel command line: the IOMMU groups are split by the override, not "
               "isolated by the hardware (a device in the guest may still reach its peers)";
  }
  return c;
}

std::vector<CheckItem> passthroughChecks(const HostRoots& roots, const std::vector<host::Gpu>& gpus,
                                         const std::vector<std::string>& allow) {
  std::vector<CheckItem> out;
  for (const auto& gpu : gpus) {
    CheckItem c = item("passthrough", false);
    const auto& f = gpu.function;
    auto verdict = [&]() -> std::pair<bool, std::string> {
      if (!f.iommuGroup) return {false, "no IOMMU group: the IOMMU is off"};
      auto group = groupFunctions(roots.sysfsRoot, f.address);
      if (!group) return {false, group.error().message};
      std::vector<std::string> uses, peers, refused;
      const std::string slot = f.address.substr(0, 10);
      for (const auto& m : *group) {
        std::optional<int> minor;
        for (const auto& g : gpus)
          if (g.function.address == m.address) minor = g.deviceMinor;
        for (auto& u : hostUses(roots, m, minor))
          uses.push_back(m.address == f.address ? u : m.address + ": " + u);
        if (m.address.substr(0, 10) != slot)
          peers.push_back(m.address + " (" + describePciClass(m.classCode) + ")");
        if (!vfioAllowed(allow, m)) refused.push_back(m.address);
      }
      if (!uses.empty()) return {false, "host is using it: " + join(uses, "; ")};
      if (!peers.empty())
        return {false, "shares group " + std::to_string(*f.iommuGroup) + " with " +
                           join(peers, ", ") + ": " + (peers.size() == 1 ? "it" : "they") +
                           " would move too"};
      std::string ready = "passthrough ready";
      if (f.driver == "vfio-pci") ready += " (on vfio-pci)";
      if (!refused.empty()) ready += "; vfio.allow does not admit " + join(refused, ", ") + " yet";
      return {true, ready};
    }();
    c.ok = verdict.first;
    c.detail = f.address + ": " + verdict.second;
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace nodeplane::qemu
