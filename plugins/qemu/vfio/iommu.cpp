#include "iommu.hpp"

#include <algorithm>

namespace nodeplane::qemu {

Result<std::vector<host::PciFunction>> groupFunctions(const std::filesystem::path& sysfsRoot,
                                                      const std::string& address) {
  auto f = host::readPciFunction(sysfsRoot, address);
  if (!f) return std::unexpected(f.error());
  if (!f->iommuGroup)
    return fail(ErrorKind::kTerminal, address + " has no IOMMU group: the IOMMU is off", {},
                "turn VT-d / AMD-Vi on in the firmware and boot with intel_iommu=on (or "
                "amd_iommu=on) iommu=pt");
  auto members = host::readIommuGroup(sysfsRoot, *f->iommuGroup);
  if (!members) return std::unexpected(members.error());
  std::vector<host::PciFunction> out;
  for (const auto& a : *members) {
    auto m = host::readPciFunction(sysfsRoot, a);
    if (!m) return std::unexpected(m.error());
    if (m->isBridge()) continue;
    out.push_back(std::move(*m));
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.address < b.address; });
  return out;
}

std::string vfioChildName(const std::string& vm, const std::string& address) {
  std::string a = address;
  std::replace(a.begin(), a.end(), ':', '-');
  std::replace(a.begin(), a.end(), '.', '-');
  return vm + "-" + a;
}

}  // namespace nodeplane::qemu
