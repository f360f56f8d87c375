// The host-readiness probes of the qemu plugin (they were the core's until the plugin existed):
// KVM, CPU virtualization, IOMMU, VFIO, the ACS override, and a passthrough verdict per GPU. Each
// looks through an injected root and says what it found, or what is missing and how to fix it.
#pragma once

#include <filesystem>
#include <istream>
#include <string>
#include <vector>

#include "nodeplane/host/pci.hpp"
#include "nodeplane/plugin.hpp"
#include "vfio_guard.hpp"

namespace nodeplane::qemu {

CheckItem probeKvm(const std::filesystem::path& devRoot);
CheckItem probeCpuVirtualization(const std::filesystem::path& procRoot);
CheckItem probeIommu(const std::filesystem::path& sysfsRoot);
CheckItem probeVfio(const std::filesystem::path& sysfsRoot);
// "acs-override": pcie_acs_override on <procRoot>/cmdline. Active is a warning: the groups are
// then what the override split, not what the hardware isolates.
CheckItem probeAcsOverride(const std::filesystem::path& procRoot);
// One "passthrough" item per GPU of the inventory: "0000:3b:00.0: passthrough ready" /
// "…: shares group 12 with 0000:3a:00.0 (a USB controller): it would move too" /
// "…: host is using it: pid 1234 (Xorg) has /dev/nvidia0 open" / no IOMMU group.
std::vector<CheckItem> passthroughChecks(const HostRoots& roots, const std::vector<host::Gpu>& gpus,
                                         const std::vector<std::string>& allow);

// "vmx" or "svm" when the `flags` of /proc/cpuinfo carry one, "" otherwise.
std::string parseCpuVirtualization(std::istream& cpuinfo);

}  // namespace nodeplane::qemu
