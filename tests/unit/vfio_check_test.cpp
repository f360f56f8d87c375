// The qemu plugin's readiness items (plugins/qemu/host_checks.hpp): KVM, CPU virtualization,
// IOMMU and VFIO (moved from the core), the ACS override and the passthrough verdict per GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <sstream>
#include <string>

#include "host_checks.hpp"
#include "qemu_plugin.hpp"
#include "support/files.hpp"
#include "support/plugin_rig.hpp"

namespace nodeplane::qemu {
namespace {
namespace fs = std::filesystem;

using ::nodeplane::testing::procFixture;
using ::nodeplane::testing::sysfsFixture;
using ::nodeplane::testing::TempDir;
using ::nodeplane::testing::writeFile;

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

const char* kIntelCpuinfo =
    "processor\t: 0\n"
    "vendor_id\t: GenuineIntel\n"
    "model name\t: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz\n"
    "flags\t\t: fpu vme de pse tsc msr pae mce vmx smx est tm2 ssse3\n"
    "vmx flags\t: vnmi preemption_timer invvpid ept_x_only\n"
    "\n";
const char* kAmdCpuinfo =
    "processor\t: 0\n"
    "vendor_id\t: AuthenticAMD\n"
    "flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic svm extapic cr8_legacy\n";
// A guest without nested virtualization: the "vmx flags" line is not the flags line.
const char* kNoVirtCpuinfo =
    "processor\t: 0\n"
    "model name\t: vmx svm\n"
    "flags\t\t: fpu vme de pse tsc msr pae mce hypervisor\n"
    "vmx flags\t: vnmi\n";

std::string parse(const char* text) {
  std::istringstream in(text);
  return parseCpuVirtualization(in);
}

TEST(QemuChecks, CpuinfoParser) {
  EXPECT_EQ(parse(kIntelCpuinfo), "vmx");
  EXPECT_EQ(parse(kAmdCpuinfo), "svm");
  EXPECT_EQ(parse(kNoVirtCpuinfo), "");
  EXPECT_EQ(parse(""), "");
}

TEST(QemuChecks, CpuVirtualizationReadsProcRoot) {
  TempDir proc;
  auto missing = probeCpuVirtualization(proc.path());
  EXPECT_FALSE(missing.ok);
  EXPECT_TRUE(contains(missing.detail, (proc.path() / "cpuinfo").string())) << missing.detail;

  writeFile(proc.path() / "cpuinfo", kAmdCpuinfo);
  auto amd = probeCpuVirtualization(proc.path());
  EXPECT_TRUE(amd.ok);
  EXPECT_TRUE(contains(amd.detail, "svm")) << amd.detail;

  writeFile(proc.path() / "cpuinfo", kNoVirtCpuinfo);
  auto none = probeCpuVirtualization(proc.path());
  EXPECT_FALSE(none.ok);
  EXPECT_FALSE(none.required);
}

TEST(QemuChecks, KvmMustBeACharacterDevice) {
  TempDir dev;
  auto missing = probeKvm(dev.path());
  EXPECT_FALSE(missing.ok);
  EXPECT_TRUE(contains(missing.detail, "not found")) << missing.detail;

  writeFile(dev.path() / "kvm", "");
  auto regular = probeKvm(dev.path());
  EXPECT_FALSE(regular.ok);
  EXPECT_TRUE(contains(regular.detail, "not a character device")) << regular.detail;

  // A link to a real character device stands in for /dev/kvm without root.
  fs::remove(dev.path() / "kvm");
  fs::create_symlink("/dev/null", dev.path() / "kvm");
  auto chr = probeKvm(dev.path());
  EXPECT_TRUE(chr.ok) << chr.detail;
}

TEST(QemuChecks, IommuCountsGroups) {
  auto a = probeIommu(sysfsFixture("a-workstation"));
  EXPECT_TRUE(a.ok);
  EXPECT_EQ(a.detail, "3 IOMMU groups");

  auto c = probeIommu(sysfsFixture("c-no-iommu"));
  EXPECT_FALSE(c.ok);
  EXPECT_TRUE(contains(c.detail, "intel_iommu=on")) << c.detail;
  EXPECT_TRUE(contains(c.detail, "amd_iommu=on")) << c.detail;
  EXPECT_TRUE(contains(c.detail, "iommu=pt")) << c.detail;
}

TEST(QemuChecks, Vfio) {
  auto driver = probeVfio(sysfsFixture("d-vfio"));
  EXPECT_TRUE(driver.ok);
  EXPECT_TRUE(contains(driver.detail, "driver registered")) << driver.detail;

  auto module = probeVfio(sysfsFixture("b-server"));  // module loaded, no device bound yet
  EXPECT_TRUE(module.ok);
  EXPECT_TRUE(contains(module.detail, "module loaded")) << module.detail;

  auto none = probeVfio(sysfsFixture("a-workstation"));
  EXPECT_FALSE(none.ok);
  EXPECT_TRUE(contains(none.detail, "modprobe vfio-pci")) << none.detail;
}

TEST(QemuChecks, AcsOverrideOnTheKernelCommandLine) {
  auto on = probeAcsOverride(procFixture("g-passthrough"));
  EXPECT_FALSE(on.ok);
  EXPECT_FALSE(on.required);
  EXPECT_EQ(on.detail,
            "pcie_acs_override=downstream,multifunction is on the kernel command line: the IOMMU "
            "groups are split by the override, not isolated by the hardware (a device in the "
            "guest may still reach its peers)");

  TempDir proc;
  writeFile(proc.path() / "cmdline", "BOOT_IMAGE=/vmlinuz root=/dev/sda1 intel_iommu=on\n");
  auto off = probeAcsOverride(proc.path());
  EXPECT_TRUE(off.ok);
  EXPECT_EQ(off.detail, "not active: the IOMMU groups are what the hardware isolates");

  auto unreadable = probeAcsOverride(proc.path() / "none");
  EXPECT_FALSE(unreadable.ok);
  EXPECT_TRUE(contains(unreadable.detail, "cannot read")) << unreadable.detail;
}

// One verdict per GPU of the g-passthrough host (tests/fixtures/sysfs/README.md).
TEST(QemuChecks, PassthroughVerdictPerGpu) {
  const HostRoots roots{sysfsFixture("g-passthrough"), procFixture("g-passthrough")};
  auto gpus = host::readGpuInventory(roots.sysfsRoot, roots.procRoot);
  ASSERT_TRUE(gpus) << gpus.error().str();
  auto items = passthroughChecks(roots, *gpus, {"10de:*"});
  std::vector<std::string> details;
  for (const auto& c : items) {
    EXPECT_EQ(c.name, "passthrough");
    EXPECT_FALSE(c.required);
    details.push_back(c.detail);
  }
  ASSERT_EQ(items.size(), 5u);
  EXPECT_EQ(details[0],
            "0000:00:02.0: host is using it: it is the boot display and i915 has the "
            "console on it (fb0)");
  EXPECT_FALSE(items[0].ok);
  // The GPU with its audio function (not admitted by 10de:*? it is: 10de:1aef).
  EXPECT_EQ(details[1], "0000:01:00.0: passthrough ready");
  EXPECT_TRUE(items[1].ok);
  EXPECT_EQ(details[2],
            "0000:02:00.0: shares group 2 with 0000:00:14.0 (a USB controller): it would move "
            "too");
  EXPECT_FALSE(items[2].ok);
  EXPECT_EQ(details[3], "0000:04:00.0: host is using it: pid 4242 (Xorg) has /dev/nvidia2 open");
  EXPECT_FALSE(items[3].ok);
  EXPECT_EQ(details[4], "0000:08:00.0: passthrough ready (on vfio-pci)");

  // An allowlist that leaves the audio function out says so, still ready.
  auto narrow = passthroughChecks(roots, *gpus, {"0000:01:00.0"});
  EXPECT_EQ(narrow[1].detail,
            "0000:01:00.0: passthrough ready; vfio.allow does not admit 0000:01:00.1 yet");

  auto noIommu = host::readGpuInventory(sysfsFixture("c-no-iommu"), "/nonexistent-proc");
  ASSERT_TRUE(noIommu);
  auto off = passthroughChecks({sysfsFixture("c-no-iommu"), "/nonexistent-proc"}, *noIommu, {});
  ASSERT_FALSE(off.empty());
  EXPECT_EQ(off[0].detail, "0000:00:02.0: no IOMMU group: the IOMMU is off");
}

// The plugin's check(): the moved probes, the ACS override and the verdicts, without start().
TEST(QemuChecks, PluginReportsEveryItem) {
  TempDir dev;
  fs::create_symlink("/dev/null", dev.path() / "kvm");
  HostContext host;
  host.sysfsRoot = sysfsFixture("g-passthrough");
  host.procRoot = procFixture("g-passthrough");
  host.devRoot = dev.path();
  host.config = {{"vfio", {{"allow", {"10de:*"}}}}};
  test::PluginRig rig(host, "qemu");
  QemuPlugin plugin(rig.services);
  std::vector<std::string> names;
  for (const auto& c : plugin.check()) names.push_back(c.name);
  for (const char* name : {"kvm", "cpu-virtualization", "iommu", "vfio", "acs-override"})
    EXPECT_EQ(std::count(names.begin(), names.end(), name), 1) << name;
  EXPECT_EQ(std::count(names.begin(), names.end(), "passthrough"), 5);
}

}  // namespace
}  // namespace nodeplane::qemu
