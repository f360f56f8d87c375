// PCI inventory over the sysfs fixture trees in tests/fixtures/sysfs (laid out like the kernel's,
// relative links included; see make_fixtures.sh there).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "host/sysfs_parse.hpp"
#include "nodeplane/host/pci.hpp"
#include "support/files.hpp"

namespace nodeplane::host {
namespace {
namespace fs = std::filesystem;

using ::nodeplane::testing::sysfsFixture;

using ::nodeplane::testing::TempDir;
using ::nodeplane::testing::writeFile;

std::vector<std::string> addressesOf(const std::vector<PciFunction>& functions) {
  std::vector<std::string> out;
  for (const auto& f : functions) out.push_back(f.address);
  return out;
}

const Gpu& gpuAt(const std::vector<Gpu>& gpus, const std::string& address) {
  for (const auto& g : gpus) {
    if (g.function.address == address) return g;
  }
  ADD_FAILURE() << "no GPU at " << address;
  static const Gpu none;
  return none;
}

using Addresses = std::vector<std::string>;

TEST(PciParse, HexAttribute) {
  EXPECT_EQ(parseSysfsHex("0x10de\n", 4), "10de");
  EXPECT_EQ(parseSysfsHex("0x10DE", 4), "10de");
  EXPECT_EQ(parseSysfsHex("0x030000\n", 6), "030000");
  EXPECT_EQ(parseSysfsHex("10de\n", 4), std::nullopt);
  EXPECT_EQ(parseSysfsHex("0x10de0\n", 4), std::nullopt);
  EXPECT_EQ(parseSysfsHex("0x10dg\n", 4), std::nullopt);
  EXPECT_EQ(parseSysfsHex("", 4), std::nullopt);
}

TEST(PciParse, IntAndLinks) {
  EXPECT_EQ(parseSysfsInt("-1\n"), -1);
  EXPECT_EQ(parseSysfsInt("1\n"), 1);
  EXPECT_EQ(parseSysfsInt("1a\n"), std::nullopt);
  EXPECT_EQ(parseSysfsInt("\n"), std::nullopt);
  EXPECT_EQ(linkTargetName("../../../../bus/pci/drivers/vfio-pci"), "vfio-pci");
  EXPECT_EQ(linkTargetName("../../../../kernel/iommu_groups/13/"), "13");
  EXPECT_EQ(pciSlot("0000:01:00.1"), "0000:01:00");
}

TEST(PciParse, IsPciAddress) {
  EXPECT_TRUE(isPciAddress("0000:01:00.0"));
  EXPECT_TRUE(isPciAddress("0000:d8:1f.7"));
  EXPECT_FALSE(isPciAddress("0000:01:00.8"));   // function is 0-7
  EXPECT_FALSE(isPciAddress("0000:D8:00.0"));   // canonical form is lower-case
  EXPECT_FALSE(isPciAddress("01:00.0"));        // short form
  EXPECT_FALSE(isPciAddress("0000:01:00.0/"));  // a path
  EXPECT_FALSE(isPciAddress("../01:00.0.."));
  EXPECT_FALSE(isPciAddress("0000-01:00.0"));
  EXPECT_FALSE(isPciAddress(""));
}

TEST(PciInventory, WorkstationGpuWithAudioAndRootPort) {
  auto functions = readPciFunctions(sysfsFixture("a-workstation"));
  ASSERT_TRUE(functions) << functions.error().str();
  EXPECT_EQ(addressesOf(*functions), (Addresses{"0000:00:00.0", "0000:00:01.0", "0000:00:14.0",
                                                "0000:00:14.2", "0000:01:00.0", "0000:01:00.1"}));

  auto group = readIommuGroup(sysfsFixture("a-workstation"), 1);
  ASSERT_TRUE(group) << group.error().str();
  EXPECT_EQ(*group, (Addresses{"0000:00:01.0", "0000:01:00.0", "0000:01:00.1"}));

  auto gpus = readGpuInventory(sysfsFixture("a-workstation"), "/nonexistent-proc");
  ASSERT_TRUE(gpus) << gpus.error().str();
  ASSERT_EQ(gpus->size(), 1u);
  const Gpu& gpu = gpus->front();
  EXPECT_EQ(gpu.function.address, "0000:01:00.0");
  EXPECT_EQ(gpu.function.vendor, "10de");
  EXPECT_EQ(gpu.function.device, "2204");
  EXPECT_EQ(gpu.function.classCode, "030000");
  EXPECT_EQ(gpu.function.driver, "nvidia");
  EXPECT_EQ(gpu.function.numaNode, 0);
  EXPECT_EQ(gpu.function.iommuGroup, 1);
  ASSERT_EQ(gpu.companions.size(), 1u);
  EXPECT_EQ(gpu.companions[0].address, "0000:01:00.1");
  EXPECT_EQ(gpu.companions[0].classCode, "040300");
  EXPECT_EQ(gpu.companions[0].driver, "snd_hda_intel");
  EXPECT_TRUE(gpu.groupPeers.empty()) << "the root port 0000:00:01.0 is a bridge, not a peer";
}

TEST(PciInventory, ServerGroupsAndPeers) {
  auto gpus = readGpuInventory(sysfsFixture("b-server"), "/nonexistent-proc");
  ASSERT_TRUE(gpus) << gpus.error().str();
  std::vector<std::string> found;
  for (const auto& g : *gpus) found.push_back(g.function.address);
  EXPECT_EQ(found, (Addresses{"0000:03:00.0", "0000:3b:00.0", "0000:5e:00.0", "0000:d8:00.0"}));

  const Gpu& bmc = gpuAt(*gpus, "0000:03:00.0");  // the BMC's VGA, behind two bridges
  EXPECT_EQ(bmc.function.vendor + ":" + bmc.function.device, "1a03:2000");
  EXPECT_EQ(bmc.function.driver, "ast");
  EXPECT_EQ(bmc.function.iommuGroup, 5);
  EXPECT_TRUE(bmc.companions.empty());
  EXPECT_TRUE(bmc.groupPeers.empty());

  const Gpu& a100a = gpuAt(*gpus, "0000:3b:00.0");
  EXPECT_EQ(a100a.function.classCode, "030200");
  EXPECT_EQ(a100a.function.iommuGroup, 31);
  EXPECT_EQ(a100a.function.numaNode, 0);
  EXPECT_TRUE(a100a.companions.empty());
  EXPECT_TRUE(a100a.groupPeers.empty());

  const Gpu& a100b = gpuAt(*gpus, "0000:d8:00.0");
  EXPECT_EQ(a100b.function.iommuGroup, 81);
  EXPECT_EQ(a100b.function.numaNode, 1);
  EXPECT_TRUE(a100b.groupPeers.empty());

  const Gpu& t4 = gpuAt(*gpus, "0000:5e:00.0");
  EXPECT_EQ(t4.function.device, "1eb8");
  EXPECT_EQ(t4.function.iommuGroup, 45);
  EXPECT_TRUE(t4.companions.empty());
  EXPECT_EQ(addressesOf(t4.groupPeers), (Addresses{"0000:5f:00.0", "0000:5f:00.1"}));
  EXPECT_EQ(t4.groupPeers[0].driver, "mlx5_core");
  EXPECT_EQ(t4.groupPeers[0].classCode, "020000");
}

TEST(PciInventory, NoIommu) {
  const fs::path root = sysfsFixture("c-no-iommu");
  auto gpus = readGpuInventory(root, "/nonexistent-proc");
  ASSERT_TRUE(gpus) << gpus.error().str();
  ASSERT_EQ(gpus->size(), 2u);
  EXPECT_EQ((*gpus)[0].function.address, "0000:00:02.0");
  EXPECT_EQ((*gpus)[0].function.driver, "i915");
  EXPECT_EQ((*gpus)[1].function.address, "0000:01:00.0");
  for (const auto& g : *gpus) {
    EXPECT_EQ(g.function.iommuGroup, std::nullopt) << g.function.address;
    EXPECT_EQ(g.function.numaNode, -1) << g.function.address;
    EXPECT_TRUE(g.companions.empty()) << "no IOMMU group, so no group companions";
    EXPECT_TRUE(g.groupPeers.empty());
  }

  auto audio = readPciFunction(root, "0000:01:00.1");
  ASSERT_TRUE(audio) << audio.error().str();
  EXPECT_EQ(audio->driver, "") << "unbound: no driver link";
  EXPECT_EQ(audio->iommuGroup, std::nullopt);

  auto group = readIommuGroup(root, 0);
  ASSERT_FALSE(group);
  EXPECT_NE(group.error().str().find("kernel/iommu_groups/0"), std::string::npos)
      << group.error().str();
}

TEST(PciInventory, GpuBoundToVfio) {
  auto gpus = readGpuInventory(sysfsFixture("d-vfio"), "/nonexistent-proc");
  ASSERT_TRUE(gpus) << gpus.error().str();
  ASSERT_EQ(gpus->size(), 1u);
  const auto& f = gpus->front().function;
  EXPECT_EQ(f.address, "0000:41:00.0");
  EXPECT_EQ(f.vendor + ":" + f.device, "10de:2236");
  EXPECT_EQ(f.driver, "vfio-pci");
  EXPECT_EQ(f.iommuGroup, 13);
  EXPECT_EQ(f.numaNode, 0);
  EXPECT_TRUE(gpus->front().companions.empty());
  EXPECT_TRUE(gpus->front().groupPeers.empty());
}

TEST(PciInventory, MissingDevicesDirectoryNamesThePath) {
  TempDir tmp;
  auto functions = readPciFunctions(tmp.path());
  ASSERT_FALSE(functions);
  EXPECT_NE(functions.error().message.find((tmp.path() / "bus/pci/devices").string()),
            std::string::npos)
      << functions.error().str();
  EXPECT_FALSE(functions.error().hint.empty());

  auto gpus = readGpuInventory(tmp.path() / "nonexistent", "/nonexistent-proc");
  ASSERT_FALSE(gpus);
  EXPECT_NE(gpus.error().str().find("nonexistent/bus/pci/devices"), std::string::npos);
}

TEST(PciInventory, MissingFilesGiveDefaults) {
  TempDir tmp;
  // A device directory holding only its class: no vendor, device, numa_node or links.
  writeFile(tmp.path() / "bus/pci/devices/0000:02:00.0/class", "0x030000\n");
  auto f = readPciFunction(tmp.path(), "0000:02:00.0");
  ASSERT_TRUE(f) << f.error().str();
  EXPECT_EQ(f->vendor, "");
  EXPECT_EQ(f->device, "");
  EXPECT_EQ(f->driver, "");
  EXPECT_EQ(f->numaNode, -1);
  EXPECT_EQ(f->iommuGroup, std::nullopt);

  auto gpus = readGpuInventory(tmp.path(), "/nonexistent-proc");
  ASSERT_TRUE(gpus) << gpus.error().str();
  ASSERT_EQ(gpus->size(), 1u);

  // Entries that are not PCI addresses are not devices.
  fs::create_directories(tmp.path() / "bus/pci/devices/README");
  auto all = readPciFunctions(tmp.path());
  ASSERT_TRUE(all);
  EXPECT_EQ(addressesOf(*all), (Addresses{"0000:02:00.0"}));
}

TEST(PciInventory, MalformedAttributeIsAnErrorNamingTheFile) {
  TempDir tmp;
  writeFile(tmp.path() / "bus/pci/devices/0000:02:00.0/vendor", "nvidia\n");
  auto f = readPciFunction(tmp.path(), "0000:02:00.0");
  ASSERT_FALSE(f);
  EXPECT_NE(f.error().message.find("0000:02:00.0/vendor"), std::string::npos) << f.error().str();
}

TEST(PciInventory, RejectsBadAddressAndMissingDevice) {
  auto bad = readPciFunction(sysfsFixture("a-workstation"), "../../etc");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().kind, ErrorKind::kInvalidInput);

  auto missing = readPciFunction(sysfsFixture("a-workstation"), "0000:09:00.0");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("0000:09:00.0"), std::string::npos);
}

}  // namespace
}  // namespace nodeplane::host
