// PCI inventory over the sysfs fixture trees in tests/fixtures/sysfs (laid out like the kernel's,
// relative links included; see make_fixtures.sh there).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "host/nvidia_proc.hpp"
#include "host/sysfs_parse.hpp"
#include "nodeplane/host/pci.hpp"
#include "support/files.hpp"

namespace nodeplane::host {
namespace {
namespace fs = std::filesystem;

using ::nodeplane::testing::procFixture;
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

// The driver's information file as the issue quotes it: tabs and spaces after each colon.
const char* kH100Information =
    "Model: \t\t NVIDIA H100 80GB HBM3\n"
    "IRQ:   \t\t 255\n"
    "GPU UUID: \t GPU-9a1e3c5f-2b7d-4e8a-b6c1-0f2d3e4a5b6c\n"
    "Video BIOS: \t 96.00.74.00.01\n"
    "Bus Type: \t PCIe\n"
    "DMA Size: \t 52 bits\n"
    "DMA Mask: \t 0xfffffffffffff\n"
    "Bus Location: \t 0000:3b:00.0\n"
    "Device Minor: \t 0\n"
    "GPU Excluded:\t No\n";

TEST(NvidiaProc, ParsesTheDriversInformationFile) {
  NvidiaGpuInfo info = parseNvidiaGpuInformation(kH100Information);
  EXPECT_EQ(info.uuid, "GPU-9a1e3c5f-2b7d-4e8a-b6c1-0f2d3e4a5b6c");
  EXPECT_EQ(info.model, "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(info.busLocation, "0000:3b:00.0");
  EXPECT_EQ(info.deviceMinor, 0);
}

TEST(NvidiaProc, OddWhitespaceCrlfCaseAndUnknownKeys) {
  NvidiaGpuInfo info = parseNvidiaGpuInformation(
      "  gpu   uuid :GPU-aa\r\n"  // inner spaces in the key, none after the colon, CRLF
      "Model:\tNVIDIA  A100-SXM4-80GB \t\r\n"  // inner spaces of a value are kept
      "Some Future Key: \t whatever: with colons\r\n"
      "a line without a colon\r\n"
      "\r\n"
      "Bus Location:\t\t0000:3B:00.0\r\n"
      "DEVICE MINOR:   7");  // no final newline
  EXPECT_EQ(info.uuid, "GPU-aa");
  EXPECT_EQ(info.model, "NVIDIA  A100-SXM4-80GB");
  EXPECT_EQ(info.busLocation, "0000:3b:00.0");
  EXPECT_EQ(info.deviceMinor, 7);
}

TEST(NvidiaProc, WhatIsMissingOrMalformedStaysEmpty) {
  NvidiaGpuInfo empty = parseNvidiaGpuInformation("");
  EXPECT_EQ(empty.uuid, "");
  EXPECT_EQ(empty.model, "");
  EXPECT_EQ(empty.busLocation, "");
  EXPECT_EQ(empty.deviceMinor, std::nullopt);

  for (const char* minor : {"Device Minor: -1\n", "Device Minor: 1a\n", "Device Minor:\n",
                            "Device Minor: 99999999999999999999\n"}) {
    EXPECT_EQ(parseNvidiaGpuInformation(minor).deviceMinor, std::nullopt) << minor;
  }
  NvidiaGpuInfo noValue = parseNvidiaGpuInformation("GPU UUID:\t\nModel:");
  EXPECT_EQ(noValue.uuid, "");
  EXPECT_EQ(noValue.model, "");
}

std::vector<int> indicesOf(const std::vector<Gpu>& gpus) {
  std::vector<int> out;
  for (const auto& g : gpus) out.push_back(g.index);
  return out;
}

TEST(GpuInventory, H100HostIndicesUuidsAndMinorsInBusOrder) {
  auto gpus = readGpuInventory(sysfsFixture("e-h100"), procFixture("e-h100"));
  ASSERT_TRUE(gpus) << gpus.error().str();
  std::vector<std::string> found;
  for (const auto& g : *gpus) found.push_back(g.function.address);
  EXPECT_EQ(found, (Addresses{"0000:03:00.0", "0000:1b:00.0", "0000:3b:00.0", "0000:9b:00.0",
                              "0000:bb:00.0"}));
  // The BMC's VGA comes first on the bus but is no NVIDIA GPU: no index, nothing from the driver.
  EXPECT_EQ(indicesOf(*gpus), (std::vector<int>{-1, 0, 1, 2, 3}));
  const Gpu& bmc = gpuAt(*gpus, "0000:03:00.0");
  EXPECT_FALSE(bmc.isNvidia());
  EXPECT_EQ(bmc.uuid, "");
  EXPECT_EQ(bmc.deviceMinor, std::nullopt);

  const char* uuids[] = {
      "GPU-1b000000-0000-4000-8000-000000000000", "GPU-3b000000-0000-4000-8000-000000000000",
      "GPU-9b000000-0000-4000-8000-000000000000", "GPU-bb000000-0000-4000-8000-000000000000"};
  for (int i = 0; i < 4; ++i) {
    const Gpu& g = (*gpus)[static_cast<std::size_t>(i) + 1];
    EXPECT_TRUE(g.isNvidia());
    EXPECT_EQ(g.uuid, uuids[i]);
    EXPECT_EQ(g.model, "NVIDIA H100 80GB HBM3");
    EXPECT_EQ(g.deviceMinor, i);
    EXPECT_EQ(g.function.driver, "nvidia");
    EXPECT_EQ(g.function.device, "2330");
    EXPECT_EQ(g.function.numaNode, i < 2 ? 0 : 1);
    EXPECT_TRUE(g.companions.empty()) << g.function.address;
    EXPECT_TRUE(g.groupPeers.empty()) << g.function.address;
  }
}

TEST(GpuInventory, NoDriverLoadedIndicesWithoutUuids) {
  auto gpus = readGpuInventory(sysfsFixture("f-no-driver"), procFixture("f-no-driver"));
  ASSERT_TRUE(gpus) << gpus.error().str();
  ASSERT_EQ(gpus->size(), 2u);
  EXPECT_EQ(indicesOf(*gpus), (std::vector<int>{0, 1}));
  for (const auto& g : *gpus) {
    EXPECT_EQ(g.function.driver, "") << g.function.address;
    EXPECT_EQ(g.uuid, "") << g.function.address;
    EXPECT_EQ(g.model, "") << g.function.address;
    EXPECT_EQ(g.deviceMinor, std::nullopt) << g.function.address;
  }
  EXPECT_EQ((*gpus)[1].function.address, "0000:d8:00.0");
}

TEST(GpuInventory, GpuOnVfioHasAnIndexButNothingFromTheDriver) {
  auto gpus = readGpuInventory(sysfsFixture("d-vfio"), procFixture("d-vfio"));
  ASSERT_TRUE(gpus) << gpus.error().str();
  ASSERT_EQ(gpus->size(), 1u);
  EXPECT_EQ(gpus->front().index, 0);
  EXPECT_EQ(gpus->front().uuid, "");
  EXPECT_EQ(gpus->front().deviceMinor, std::nullopt);
}

TEST(GpuInventory, IndexCountsNvidiaGpusOnly) {
  // c-no-iommu: an Intel iGPU at 00:02.0 before the NVIDIA GPU; b-server: the ASPEED first.
  auto c = readGpuInventory(sysfsFixture("c-no-iommu"), "/nonexistent-proc");
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_EQ(indicesOf(*c), (std::vector<int>{-1, 0}));
  auto b = readGpuInventory(sysfsFixture("b-server"), "/nonexistent-proc");
  ASSERT_TRUE(b) << b.error().str();
  EXPECT_EQ(indicesOf(*b), (std::vector<int>{-1, 0, 1, 2}));
}

TEST(GpuInventory, OddInformationFilesUnderAProcRoot) {
  // The H100 host's sysfs with a proc root of our own: one GPU's file odd, one missing, one a
  // directory (unreadable as a file).
  TempDir proc;
  const fs::path gpus = proc.path() / "driver/nvidia/gpus";
  writeFile(gpus / "0000:1b:00.0/information",
            "GPU UUID:GPU-odd\r\nDevice Minor:\t\t5\r\nModel:\r\n");
  fs::create_directories(gpus / "0000:9b:00.0/information");
  writeFile(gpus / "0000:bb:00.0/information", "garbage without any key\n");
  auto inv = readGpuInventory(sysfsFixture("e-h100"), proc.path());
  ASSERT_TRUE(inv) << inv.error().str();
  const Gpu& odd = gpuAt(*inv, "0000:1b:00.0");
  EXPECT_EQ(odd.uuid, "GPU-odd");
  EXPECT_EQ(odd.deviceMinor, 5);
  EXPECT_EQ(odd.model, "");
  EXPECT_EQ(gpuAt(*inv, "0000:3b:00.0").uuid, "") << "no file: driver does not have it";
  EXPECT_EQ(gpuAt(*inv, "0000:9b:00.0").uuid, "");
  EXPECT_EQ(gpuAt(*inv, "0000:bb:00.0").uuid, "");
  EXPECT_EQ(indicesOf(*inv), (std::vector<int>{-1, 0, 1, 2, 3}));
}

}  // namespace
}  // namespace nodeplane::host
