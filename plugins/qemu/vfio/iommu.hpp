// What moves together: the functions of a PCI function's IOMMU group (bridges excluded), in the
// order QEMU takes them. Used by VfioDevice and by a VirtualMachine's expand().
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "nodeplane/error.hpp"
#include "nodeplane/host/pci.hpp"

namespace nodeplane::qemu {

// The non-bridge functions of `address`'s IOMMU group, sorted by address (so a GPU's function 0
// comes before its audio function). No iommu_group link: an error saying the IOMMU is off.
Result<std::vector<host::PciFunction>> groupFunctions(const std::filesystem::path& sysfsRoot,
                                                      const std::string& address);

// The VfioDevice child name of `address` under VM `vm`: "<vm>-0000-3b-00-1" (valid as a
// resource name; the address is recoverable).
std::string vfioChildName(const std::string& vm, const std::string& address);

}  // namespace nodeplane::qemu
