// `nodeplane check` over fixture roots: the probes, the report, its text and JSON forms.
#include "check.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "plugin_host.hpp"
#include "support/files.hpp"

namespace nodeplane {
namespace {
namespace fs = std::filesystem;

using ::nodeplane::testing::procFixture;
using ::nodeplane::testing::sysfsFixture;

using ::nodeplane::testing::TempDir;
using ::nodeplane::testing::writeFile;

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

const char* kAmdCpuinfo =
    "processor\t: 0\n"
    "vendor_id\t: AuthenticAMD\n"
    "flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic svm extapic cr8_legacy\n";

TEST(CheckProbes, SystemdBusFailuresAreReported) {
  TempDir tmp;
  auto noSocket = probeSystemdBus("unix:path=" + (tmp.path() / "bus").string());
  EXPECT_FALSE(noSocket.ok);
  EXPECT_FALSE(noSocket.required);
  EXPECT_TRUE(contains(noSocket.detail, "cannot read the systemd manager version"))
      << noSocket.detail;

  auto unknown = probeSystemdBus("session-of-someone-else");
  EXPECT_FALSE(unknown.ok);
  EXPECT_TRUE(contains(unknown.detail, "unknown systemd bus")) << unknown.detail;
}

// A host made of fixtures: vfio sysfs tree, /dev with a char device as kvm, an AMD cpuinfo, and a
// bus address nothing listens on.
struct FixtureHost {
  TempDir dev, proc;
  HostContext host;
  FixtureHost() {
    fs::create_symlink("/dev/null", dev.path() / "kvm");
    writeFile(proc.path() / "cpuinfo", kAmdCpuinfo);
    host.sysfsRoot = sysfsFixture("d-vfio");
    host.devRoot = dev.path();
    host.procRoot = proc.path();
    host.systemdBus = "unix:path=" + (proc.path() / "no-bus").string();
  }
};

TEST(Check, RunChecksOverFixtures) {
  FixtureHost fx;
  CheckReport report = runChecks(fx.host);
  std::vector<std::string> names;
  for (const auto& c : report.items) names.push_back(c.name);
  // No netlink item: that probe is the net plugin's; kvm, iommu and vfio are the qemu plugin's
  // (and no plugin is loaded here).
  EXPECT_EQ(names, (std::vector<std::string>{"systemd-bus"}));
  for (const auto& c : report.items) {
    EXPECT_FALSE(c.required) << c.name;
    EXPECT_EQ(c.ok, c.name != "systemd-bus") << c.name << ": " << c.detail;
  }
  EXPECT_TRUE(report.ok()) << "systemd-bus is not required";
  EXPECT_EQ(report.gpuError, "");
  ASSERT_EQ(report.gpus.size(), 1u);
  EXPECT_EQ(report.gpus[0].function.driver, "vfio-pci");
}

// Every loaded plugin is asked (Plugin::check), without being started; its items carry its name.
TEST(Check, AsksEveryLoadedPluginWithoutStartingIt) {
  FixtureHost fx;
  TempDir tmp;
  fx.host.config["lifecycle"] = {{"record", (tmp.path() / "calls").string()}, {"level", 4}};
  PluginHost plugins;
  ASSERT_TRUE(plugins.loadOne(
      fs::path(NODEPLANE_TEST_PLUGIN_DIR) / "lifecycle" / "libnodeplane-lifecycle.so", fx.host));
  plugins.plugins()[0]->services().setConfig(fx.host.config["lifecycle"]);
  CheckReport report = runChecks(fx.host, &plugins);
  ASSERT_EQ(report.items.size(), 2u);
  EXPECT_EQ(report.items[1].name, "gadget-bench");
  EXPECT_EQ(report.items[1].detail, "level 4");
  Json j = checkToJson(report);
  EXPECT_EQ(j["checks"][1], Json({{"name", "gadget-bench"},
                                  {"ok", true},
                                  {"required", false},
                                  {"detail", "level 4"},
                                  {"plugin", "lifecycle"}}));
  EXPECT_FALSE(j["checks"][0].contains("plugin")) << "the core's own probes name no plugin";
  EXPECT_FALSE(plugins.plugins()[0]->started());
  EXPECT_EQ(::nodeplane::testing::slurp(tmp.path() / "calls"), "check\n");
}

TEST(Check, GpuErrorWhenSysfsIsMissing) {
  FixtureHost fx;
  fx.host.sysfsRoot = fx.proc.path() / "no-sysfs";
  CheckReport report = runChecks(fx.host);
  EXPECT_TRUE(contains(report.gpuError, "no-sysfs/bus/pci/devices")) << report.gpuError;
  EXPECT_TRUE(report.gpus.empty());
  EXPECT_TRUE(contains(renderCheckText(report), "cannot read the PCI inventory"));
  EXPECT_EQ(checkToJson(report)["gpuError"], report.gpuError);
}

TEST(Check, OkOnlyWhenEveryRequiredItemIs) {
  CheckReport report;
  report.items = {{"netlink", true, true, "3 links"}, {"kvm", false, false, "missing"}};
  EXPECT_TRUE(report.ok());
  report.items[0].ok = false;
  EXPECT_FALSE(report.ok());
}

CheckReport serverReport() {
  CheckReport report;
  report.items = {{"netlink", false, true, "cannot open"},
                  {"kvm", false, false, "/dev/kvm not found"},
                  {"iommu", true, false, "81 IOMMU groups"}};
  auto gpus = host::readGpuInventory(sysfsFixture("b-server"), "/nonexistent-proc");
  EXPECT_TRUE(gpus) << gpus.error().str();
  if (gpus) report.gpus = *gpus;
  return report;
}

TEST(Check, TextReport) {
  std::string text = renderCheckText(serverReport());
  EXPECT_TRUE(contains(text, "MISSING  netlink  cannot open")) << text;
  EXPECT_TRUE(contains(text, "warn     kvm      /dev/kvm not found")) << text;
  EXPECT_TRUE(contains(text, "ok       iommu    81 IOMMU groups")) << text;
  EXPECT_TRUE(contains(text, "not ready")) << text;

  // The GPU table: every row starts each column where the header does.
  std::istringstream lines(text);
  std::string line, header;
  std::vector<std::string> rows;
  while (std::getline(lines, line)) {
    if (contains(line, "ADDRESS")) header = line;
    if (contains(line, "0000:") && !header.empty()) rows.push_back(line);
  }
  ASSERT_FALSE(header.empty()) << text;
  ASSERT_EQ(rows.size(), 4u) << text;
  EXPECT_EQ(header,
            "  INDEX  ADDRESS       UUID  VENDOR:DEVICE  DRIVER  NUMA  GROUP  COMPANIONS  PEERS");
  EXPECT_EQ(rows[0],
            "  -      0000:03:00.0  -     1a03:2000      ast     0     5      -           -");
  EXPECT_EQ(rows[2],
            "  1      0000:5e:00.0  -     10de:1eb8      nvidia  0     45     -           "
            "0000:5f:00.0,0000:5f:00.1");
  for (const char* column :
       {"ADDRESS", "UUID", "VENDOR:DEVICE", "DRIVER", "NUMA", "GROUP", "COMPANIONS", "PEERS"}) {
    auto at = header.find(column);
    for (const auto& row : rows) {
      EXPECT_EQ(row[at - 1], ' ') << row;
      EXPECT_NE(row[at], ' ') << column << " misaligned in: " << row;
    }
  }
}

TEST(Check, TextReportNoIommuAndNoGpus) {
  CheckReport report;
  auto gpus = host::readGpuInventory(sysfsFixture("c-no-iommu"), "/nonexistent-proc");
  ASSERT_TRUE(gpus);
  report.gpus = *gpus;
  std::string text = renderCheckText(report);
  EXPECT_TRUE(contains(
      text, "  0      0000:01:00.0  -     10de:25a2      nvidia  -1    -      -           -"))
      << text;
  EXPECT_TRUE(contains(text, "ready")) << text;

  report.gpus.clear();
  EXPECT_TRUE(contains(renderCheckText(report), "none found"));
}

TEST(Check, JsonShape) {
  CheckReport report = serverReport();
  Json j = checkToJson(report);
  EXPECT_EQ(j["ok"], false);
  ASSERT_TRUE(j["checks"].is_array());
  ASSERT_EQ(j["checks"].size(), 3u);
  EXPECT_EQ(
      j["checks"][0],
      Json({{"name", "netlink"}, {"ok", false}, {"required", true}, {"detail", "cannot open"}}));
  EXPECT_FALSE(j.contains("gpuError"));
  ASSERT_EQ(j["gpus"].size(), 4u);
  EXPECT_EQ(j["gpus"][2], Json::parse(R"({
    "address": "0000:5e:00.0", "index": 1, "uuid": null, "model": null, "deviceMinor": null,
    "vendor": "10de", "device": "1eb8", "driver": "nvidia",
    "numaNode": 0, "iommuGroup": 45, "companions": [],
    "groupPeers": ["0000:5f:00.0", "0000:5f:00.1"]})"));
  EXPECT_TRUE(j["gpus"][0]["index"].is_null()) << "the ASPEED VGA is not an NVIDIA GPU";

  CheckReport workstation;
  workstation.gpus = *host::readGpuInventory(sysfsFixture("a-workstation"), "/nonexistent-proc");
  Json w = checkToJson(workstation);
  EXPECT_EQ(w["ok"], true);
  EXPECT_EQ(w["gpus"][0]["companions"], Json::array({"0000:01:00.1"}));

  CheckReport noIommu;
  noIommu.gpus = *host::readGpuInventory(sysfsFixture("c-no-iommu"), "/nonexistent-proc");
  Json n = checkToJson(noIommu);
  EXPECT_TRUE(n["gpus"][1]["iommuGroup"].is_null());
  EXPECT_EQ(n["gpus"][1]["numaNode"], -1);
}

// The H100 host with its driver loaded: the table gains the model; index and UUID per GPU.
TEST(Check, H100HostShowsIndexUuidAndModel) {
  FixtureHost fx;
  fx.host.sysfsRoot = sysfsFixture("e-h100");
  fx.host.procRoot = procFixture("e-h100");  // no cpuinfo there: that probe warns, not required
  CheckReport report = runChecks(fx.host);
  ASSERT_EQ(report.gpuError, "");
  ASSERT_EQ(report.gpus.size(), 5u);
  std::string text = renderCheckText(report);
  EXPECT_TRUE(contains(text,
                       "  INDEX  ADDRESS       UUID                                      MODEL     "
                       "             VENDOR:DEVICE  DRIVER  NUMA  GROUP  COMPANIONS  PEERS\n"))
      << text;
  EXPECT_TRUE(contains(text,
                       "  -      0000:03:00.0  -                                         -         "
                       "             1a03:2000      ast     0     5      -           -\n"))
      << text;
  EXPECT_TRUE(contains(text,
                       "  2      0000:9b:00.0  GPU-9b000000-0000-4000-8000-000000000000  NVIDIA "
                       "H100 80GB HBM3  10de:2330      nvidia  1     91     -           -\n"))
      << text;

  Json j = checkToJson(report);
  ASSERT_EQ(j["gpus"].size(), 5u);
  EXPECT_EQ(j["gpus"][4], Json::parse(R"({
    "address": "0000:bb:00.0", "index": 3, "uuid": "GPU-bb000000-0000-4000-8000-000000000000",
    "model": "NVIDIA H100 80GB HBM3", "deviceMinor": 3, "vendor": "10de", "device": "2330",
    "driver": "nvidia", "numaNode": 1, "iommuGroup": 111, "companions": [], "groupPeers": []})"));
  EXPECT_TRUE(j["gpus"][0]["index"].is_null());
  EXPECT_TRUE(j["gpus"][0]["uuid"].is_null());
}

// The driver not loaded: indices, no UUID, no MODEL column.
TEST(Check, NoDriverShowsIndicesWithoutUuids) {
  CheckReport report;
  auto gpus = host::readGpuInventory(sysfsFixture("f-no-driver"), procFixture("f-no-driver"));
  ASSERT_TRUE(gpus) << gpus.error().str();
  report.gpus = *gpus;
  std::string text = renderCheckText(report);
  EXPECT_FALSE(contains(text, "MODEL")) << text;
  EXPECT_TRUE(
      contains(text,
               "  INDEX  ADDRESS       UUID  VENDOR:DEVICE  DRIVER  NUMA  GROUP  "
               "COMPANIONS  PEERS\n"
               "  0      0000:3b:00.0  -     10de:20b5      -       0     31     -           -\n"
               "  1      0000:d8:00.0  -     10de:20b5      -       1     81     -           -\n"))
      << text;
  Json j = checkToJson(report);
  EXPECT_EQ(j["gpus"][1]["index"], 1);
  EXPECT_TRUE(j["gpus"][1]["uuid"].is_null());
  EXPECT_TRUE(j["gpus"][1]["deviceMinor"].is_null());
}

}  // namespace
}  // namespace nodeplane
