// The readiness probes of `nodeplane check`. Each looks at one thing through an injected root and
// says what it found, or what is missing and what to do about it.
#include <sdbus-c++/sdbus-c++.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <system_error>

#include "check.hpp"

namespace nodeplane {
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

}  // namespace

CheckItem probeSystemdBus(const std::string& bus, std::chrono::milliseconds timeout) {
  CheckItem c = item("systemd-bus", false);
  try {
    std::unique_ptr<sdbus::IConnection> connection;
    if (bus == "system") {
      connection = sdbus::createSystemBusConnection();
    } else if (bus == "user") {
      connection = sdbus::createSessionBusConnection();
    } else if (bus.starts_with("unix:")) {
      connection = sdbus::createSessionBusConnectionWithAddress(bus);
    } else {
      c.detail = "unknown systemd bus '" + bus + "' (want system, user or a unix: address)";
      return c;
    }
    // A proxy over a borrowed connection runs no event-loop thread; the call below is synchronous.
    auto proxy =
        sdbus::createProxy(*connection, "org.freedesktop.systemd1", "/org/freedesktop/systemd1");
    sdbus::Variant version;
    proxy->callMethod("Get")
        .onInterface("org.freedesktop.DBus.Properties")
        .withTimeout(timeout)
        .withArguments(std::string("org.freedesktop.systemd1.Manager"), std::string("Version"))
        .storeResultsTo(version);
    c.ok = true;
    c.detail = "systemd " + version.get<std::string>() + " on the " + bus + " bus";
  } catch (const sdbus::Error& e) {
    c.detail = "cannot read the systemd manager version on the " + bus + " bus: " + e.getName() +
               ": " + e.getMessage();
  } catch (const std::exception& e) {
    c.detail = "cannot read the systemd manager version on the " + bus + " bus: " + e.what();
  }
  return c;
}

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

}  // namespace nodeplane
