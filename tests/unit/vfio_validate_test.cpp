// VfioDevice's spec side: validate messages (file:line, field, what was expected), claims and
// normal form, over the g-passthrough fixture host.
#include <gtest/gtest.h>

#include <filesystem>

#include "support/files.hpp"
#include "support/plugin_rig.hpp"
#include "vfio_kind.hpp"

namespace nodeplane::qemu {
namespace {
namespace fs = std::filesystem;

using ::nodeplane::testing::procFixture;
using ::nodeplane::testing::sysfsFixture;

struct Host {
  explicit Host(const std::string& fixture = "g-passthrough",
                std::vector<std::string> allow = {"10de:*", "144d:*", "8086:*"})
      : rig(context(fixture), "qemu") {
    config.vfioAllow = std::move(allow);
  }
  static HostContext context(const std::string& fixture) {
    HostContext h;
    h.sysfsRoot = sysfsFixture(fixture);
    h.procRoot = procFixture(fixture);
    return h;
  }
  test::PluginRig rig;
  QemuConfig config;
  VfioKind kind{rig.services, config};

  std::vector<std::string> errors(const Json& spec, const std::string& name = "") {
    Resource r;
    r.id = {"VfioDevice", "gpu"};
    if (!name.empty()) r.id.name = name;
    r.spec = spec;
    r.where = {"vfio.yaml", 1, 1};
    r.locations["spec.device"] = {"vfio.yaml", 4, 11};
    std::vector<std::string> out;
    for (const auto& e : kind.validate(r)) {
      EXPECT_EQ(e.kind, ErrorKind::kInvalidInput) << e.str();
      out.push_back(e.str());
    }
    return out;
  }
};

const std::string kAt = "vfio.yaml:4:11: VfioDevice/gpu spec.device: ";

TEST(VfioValidate, AFreeGpuFunctionPasses) {
  Host h;
  EXPECT_TRUE(h.errors({{"device", "0000:01:00.0"}}).empty());
  EXPECT_TRUE(h.errors({{"device", "0000:01:00.1"}, {"bound", true}}).empty());
  EXPECT_TRUE(h.errors({{"device", "0000:06:00.0"}}).empty()) << "a NIC with no default route";
}

TEST(VfioValidate, ANameThatCannotNameItsRecordFile) {
  Host h;
  auto e = h.errors({{"device", "0000:01:00.0"}}, ".hidden");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_NE(e[0].find("VfioDevice/.hidden metadata.name: invalid VfioDevice name \".hidden\": it "
                      "starts with '.'"),
            std::string::npos)
      << e[0];
}

TEST(VfioValidate, MalformedAddress) {
  Host h;
  EXPECT_EQ(h.errors({{"device", "0000:1:00.0"}}),
            (std::vector<std::string>{kAt + "'0000:1:00.0' is not a PCI address (want "
                                            "domain:bus:device.function, e.g. 0000:3b:00.0)"}));
  EXPECT_EQ(h.errors({{"device", "01:00.0"}}).size(), 1u);
  EXPECT_TRUE(h.errors({{"device", "0000:01:00.0"}}).empty());
}

TEST(VfioValidate, UpperCaseIsTheSameAddress) {
  Host h;
  EXPECT_EQ(h.errors({{"device", "0000:0A:00.0"}}),
            (std::vector<std::string>{
                kAt + "no PCI function 0000:0a:00.0 on this host (" +
                (sysfsFixture("g-passthrough") / "bus/pci/devices/0000:0a:00.0").string() +
                " not found)"}));
}

TEST(VfioValidate, NoSuchFunction) {
  Host h;
  EXPECT_EQ(h.errors({{"device", "0000:99:00.0"}}),
            (std::vector<std::string>{
                kAt + "no PCI function 0000:99:00.0 on this host (" +
                (sysfsFixture("g-passthrough") / "bus/pci/devices/0000:99:00.0").string() +
                " not found)"}));
}

TEST(VfioValidate, ABridgeStaysWithTheHost) {
  Host h;
  EXPECT_EQ(
      h.errors({{"device", "0000:00:01.0"}}),
      (std::vector<std::string>{kAt + "0000:00:01.0 is a PCI bridge (class 0x060400): bridges "
                                      "stay with the host; name the devices behind it"}));
}

TEST(VfioValidate, NotAdmittedByTheAllowList) {
  Host empty("g-passthrough", {});
  EXPECT_EQ(
      empty.errors({{"device", "0000:01:00.1"}}),
      (std::vector<std::string>{
          kAt + "0000:01:00.1 (10de:1aef) is not admitted by vfio.allow (empty: no device may go "
                "to vfio-pci) (add \"10de:1aef\" or \"0000:01:00.1\" to vfio: {allow: [...]} in "
                "the agent config)"}));
  Host narrow("g-passthrough", {"0000:01:00.0"});
  EXPECT_EQ(
      narrow.errors({{"device", "0000:01:00.1"}}),
      (std::vector<std::string>{
          kAt + "0000:01:00.1 (10de:1aef) is not admitted by vfio.allow (add \"10de:1aef\" or "
                "\"0000:01:00.1\" to vfio: {allow: [...]} in the agent config)"}));
}

TEST(VfioValidate, InUseByTheHost) {
  Host h;
  const std::string hint = " (stop that use first, or pass another device)";
  EXPECT_EQ(h.errors({{"device", "0000:04:00.0"}}),
            (std::vector<std::string>{kAt +
                                      "the host is using 0000:04:00.0 (on nvidia): pid 4242 "
                                      "(Xorg) has /dev/nvidia2 open" +
                                      hint}));
  EXPECT_EQ(
      h.errors({{"device", "0000:05:00.0"}}),
      (std::vector<std::string>{
          kAt + "the host is using 0000:05:00.0 (on nvme): dm-0 (253:0) is mounted on /" + hint,
          kAt +
              "the host is using 0000:05:00.0 (on nvme): nvme0n1p1 (259:1) is mounted on "
              "/boot" +
              hint}));
  EXPECT_EQ(h.errors({{"device", "0000:00:1f.6"}}),
            (std::vector<std::string>{
                kAt + "the host is using 0000:00:1f.6 (on e1000e): eno1 carries the default route" +
                hint}));
  EXPECT_EQ(h.errors({{"device", "0000:00:02.0"}}),
            (std::vector<std::string>{kAt +
                                      "the host is using 0000:00:02.0 (on i915): it is the boot "
                                      "display and i915 has the console on it (fb0)" +
                                      hint}));
  // Not to be bound (a stopped VM's child): the host may use it.
  EXPECT_TRUE(h.errors({{"device", "0000:04:00.0"}, {"bound", false}}).empty());
}

TEST(VfioValidate, NoIommu) {
  Host h("c-no-iommu", {"10de:*"});
  EXPECT_EQ(
      h.errors({{"device", "0000:01:00.1"}}),
      (std::vector<std::string>{kAt + "0000:01:00.1 has no IOMMU group: the IOMMU is off (turn "
                                      "VT-d / AMD-Vi on in the firmware and boot with "
                                      "intel_iommu=on (or amd_iommu=on) iommu=pt)"}));
}

TEST(VfioSpec, NormalFormAndClaims) {
  Host h;
  EXPECT_EQ(h.kind.normalize({{"device", "0000:3B:00.1"}}),
            Json({{"device", "0000:3b:00.1"}, {"bound", true}}));
  EXPECT_EQ(h.kind.normalize({{"device", "0000:3b:00.1"}, {"bound", false}}),
            Json({{"device", "0000:3b:00.1"}, {"bound", false}}));
  Resource r;
  r.id = {"VfioDevice", "gpu"};
  r.spec = {{"device", "0000:3B:00.1"}};
  auto claims = h.kind.claims(r);
  ASSERT_EQ(claims.size(), 1u);
  EXPECT_EQ(claims[0], (Claim{"pci", "0000:3b:00.1", true, false}));
  auto schema = h.kind.schema();
  ASSERT_EQ(schema.spec.size(), 2u);
  EXPECT_TRUE(schema.spec[0].required);
  EXPECT_TRUE(schema.spec[0].forcesReplace);
  EXPECT_EQ(schema.spec[1].type, FieldType::kBoolean);
}

}  // namespace
}  // namespace nodeplane::qemu
