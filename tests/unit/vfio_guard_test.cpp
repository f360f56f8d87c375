// What moves together and what may move: IOMMU group expansion (vfio/iommu.hpp), the vfio.allow
// list, and the in-use guard over fixture sysfs and proc trees (vfio/vfio_guard.hpp).
#include "vfio_guard.hpp"

#include <gtest/gtest.h>

#include <filesystem>

#include "iommu.hpp"
#include "qemu_config.hpp"
#include "support/files.hpp"

namespace nodeplane::qemu {
namespace {
namespace fs = std::filesystem;

using ::nodeplane::testing::procFixture;
using ::nodeplane::testing::sysfsFixture;
using ::nodeplane::testing::TempDir;

std::vector<std::string> addresses(const std::vector<host::PciFunction>& fs) {
  std::vector<std::string> out;
  for (const auto& f : fs) out.push_back(f.address);
  return out;
}

TEST(VfioGroups, AGpuTakesItsAudioFunctionNotTheBridge) {
  auto ws = groupFunctions(sysfsFixture("a-workstation"), "0000:01:00.1");
  ASSERT_TRUE(ws) << ws.error().str();
  EXPECT_EQ(addresses(*ws), (std::vector<std::string>{"0000:01:00.0", "0000:01:00.1"}));

  // b-server: the T4 shares group 45 with two NIC ports; the switch port (a bridge) stays.
  auto t4 = groupFunctions(sysfsFixture("b-server"), "0000:5e:00.0");
  ASSERT_TRUE(t4) << t4.error().str();
  EXPECT_EQ(addresses(*t4),
            (std::vector<std::string>{"0000:5e:00.0", "0000:5f:00.0", "0000:5f:00.1"}));

  auto usb = groupFunctions(sysfsFixture("g-passthrough"), "0000:02:00.0");
  ASSERT_TRUE(usb);
  EXPECT_EQ(addresses(*usb), (std::vector<std::string>{"0000:00:14.0", "0000:02:00.0"}));
}

TEST(VfioGroups, NoIommuGroupSaysTheIommuIsOff) {
  auto off = groupFunctions(sysfsFixture("c-no-iommu"), "0000:01:00.0");
  ASSERT_FALSE(off);
  EXPECT_EQ(off.error().message, "0000:01:00.0 has no IOMMU group: the IOMMU is off");
  EXPECT_TRUE(off.error().hint.find("intel_iommu=on") != std::string::npos) << off.error().hint;

  auto missing = groupFunctions(sysfsFixture("a-workstation"), "0000:09:00.0");
  ASSERT_FALSE(missing);
  EXPECT_TRUE(missing.error().message.find("not found") != std::string::npos)
      << missing.error().message;
}

TEST(VfioGroups, ChildNamesCarryTheAddress) {
  EXPECT_EQ(vfioChildName("vm1", "0000:3b:00.1"), "vm1-0000-3b-00-1");
}

TEST(VfioAllow, VendorDeviceGlobsAndAddresses) {
  host::PciFunction gpu{"0000:3b:00.0", "10de", "2236", "030200", "nvidia"};
  host::PciFunction audio{"0000:3b:00.1", "10de", "1aef", "040300", "snd_hda_intel"};
  host::PciFunction nic{"0000:5f:00.0", "15b3", "1017", "020000", "mlx5_core"};
  EXPECT_FALSE(vfioAllowed({}, gpu)) << "an empty list admits nothing";
  EXPECT_TRUE(vfioAllowed({"10de:*"}, gpu));
  EXPECT_TRUE(vfioAllowed({"10de:*"}, audio));
  EXPECT_FALSE(vfioAllowed({"10de:*"}, nic));
  EXPECT_TRUE(vfioAllowed({"10DE:2236"}, gpu)) << "ids are hex: case does not matter";
  EXPECT_FALSE(vfioAllowed({"10de:2236"}, audio));
  EXPECT_TRUE(vfioAllowed({"*:1017"}, nic));
  EXPECT_TRUE(vfioAllowed({"0000:3b:00.1"}, audio));
  EXPECT_FALSE(vfioAllowed({"0000:3b:00.1"}, gpu));
  EXPECT_TRUE(vfioAllowed({"0000:3b:00.*"}, gpu)) << "an address glob";
  EXPECT_FALSE(vfioAllowed({"15b3:*", "0000:3b:00.1"}, gpu));
}

class VfioGuard : public ::testing::Test {
 protected:
  HostRoots roots{sysfsFixture("g-passthrough"), procFixture("g-passthrough")};
  host::PciFunction fn(const std::string& a) {
    auto f = host::readPciFunction(roots.sysfsRoot, a);
    EXPECT_TRUE(f) << a;
    return f ? *f : host::PciFunction{};
  }
};

TEST_F(VfioGuard, NamesTheProcessThatHasTheGpuOpen) {
  EXPECT_EQ(hostUses(roots, fn("0000:04:00.0"), 2),
            (std::vector<std::string>{"pid 4242 (Xorg) has /dev/nvidia2 open"}));
  EXPECT_TRUE(hostUses(roots, fn("0000:01:00.0"), 0).empty()) << "nobody has /dev/nvidia0";
  EXPECT_TRUE(hostUses(roots, fn("0000:04:00.0"), std::nullopt).empty())
      << "no device minor (driver not loaded): no device node to look for";
}

TEST_F(VfioGuard, MountedBlockDevicesBelowTheFunction) {
  // nvme0n1p1 is mounted by its number; nvme0n1p2 through the device-mapper volume holding it.
  EXPECT_EQ(hostUses(roots, fn("0000:05:00.0"), std::nullopt),
            (std::vector<std::string>{"dm-0 (253:0) is mounted on /",
                                      "nvme0n1p1 (259:1) is mounted on /boot"}));
}

TEST_F(VfioGuard, TheNicOfTheDefaultRoute) {
  EXPECT_EQ(hostUses(roots, fn("0000:00:1f.6"), std::nullopt),
            (std::vector<std::string>{"eno1 carries the default route"}));
  EXPECT_TRUE(hostUses(roots, fn("0000:06:00.0"), std::nullopt).empty())
      << "enp6s0 carries no default route (nor does lo's unreachable IPv6 default count)";
}

TEST_F(VfioGuard, TheConsoleDisplay) {
  EXPECT_EQ(
      hostUses(roots, fn("0000:00:02.0"), std::nullopt),
      (std::vector<std::string>{"it is the boot display and i915 has the console on it (fb0)"}));
}

TEST_F(VfioGuard, AFunctionOnVfioPciIsNotTheHosts) {
  auto f = fn("0000:04:00.0");
  f.driver = "vfio-pci";
  EXPECT_TRUE(hostUses(roots, f, 2).empty());
}

TEST(VfioClass, Described) {
  EXPECT_EQ(describePciClass("0c0330"), "a USB controller");
  EXPECT_EQ(describePciClass("020000"), "an Ethernet controller");
  EXPECT_EQ(describePciClass("040300"), "an audio device");
  EXPECT_EQ(describePciClass("ff0000"), "a device of class 0xff0000");
}

}  // namespace
}  // namespace nodeplane::qemu
