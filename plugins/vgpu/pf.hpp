// What both kinds read of an SR-IOV physical function and its virtual functions, and who has a
// function open now. Plain sysfs and /proc reads under the injectable roots.
#pragma once

#include <sys/types.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "nodeplane/error.hpp"
#include "nodeplane/host/pci.hpp"
#include "nodeplane/plugin.hpp"

namespace nodeplane::vgpu {

struct Pf {
  host::PciFunction function;  // totalVfs / numVfs as sysfs says now
  // The VFs present now, by index: vfs[k] is the target of virtfn<k> (sparse indexes are kept
  // as "" so vfs[k] stays VF k).
  std::vector<std::string> vfs;
  bool isNvidia() const { return function.vendor == "10de"; }
  // The VFs present, counted from the virtfn links.
  int linked() const {
    return static_cast<int>(
        std::count_if(vfs.begin(), vfs.end(), [](const std::string& v) { return !v.empty(); }));
  }
  // sriov_numvfs and the virtfn links both say `n`: setting n writes nothing.
  bool has(int n) const { return function.numVfs == n && linked() == n; }
};

// The PF at `address`; an error that says why when it is not an SR-IOV PF (no sriov_totalvfs, or
// a virtual function itself).
Result<Pf> readPf(const std::filesystem::path& sysfsRoot, const std::string& address);

// Every SR-IOV capable PF of the host (sriov_totalvfs > 0), sorted by address.
Result<std::vector<Pf>> readPfs(const std::filesystem::path& sysfsRoot);

// A process that has a device open.
struct Opener {
  pid_t pid = 0;
  std::string command;  // /proc/<pid>/comm
  std::string vm;       // "vm1" when the process runs in the unit nodeplane-vm-vm1.service
  // "VirtualMachine/vm1" or "pid 4242 (qemu-system-x86)".
  std::string str() const;
};

// The device files through which a PCI function or an mdev (its sysfs directory) is used by a
// VM: <devRoot>/vfio/<its IOMMU group> and <devRoot>/vfio/devices/<each name under vfio-dev/>.
std::vector<std::filesystem::path> vfioNodesOf(const HostContext& host,
                                               const std::filesystem::path& deviceDir);

// Which processes under procRoot have any of `nodes` open (one scan of /proc/*/fd for all of
// them), by node. Processes that vanish or cannot be read while scanning are skipped.
std::map<std::filesystem::path, std::vector<Opener>> openersOf(
    const std::filesystem::path& procRoot, const std::set<std::filesystem::path>& nodes);

// "in use by VirtualMachine/vm1" (every opener, VMs first); "" when none.
std::string inUseBy(const std::vector<Opener>& openers);

// Who has the function or mdev at `deviceDir` open now: inUseBy() of every opener of its VFIO
// nodes, read at the moment of asking (the check a step makes right before it writes).
std::string inUseNow(const HostContext& host, const std::filesystem::path& deviceDir);

}  // namespace nodeplane::vgpu
