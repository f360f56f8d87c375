// SriovPf's spec side over the sriov-host fixture (tests/fixtures/sysfs/sriov-make_fixtures.sh):
// validate messages (file:line, field, what was expected), claims, normal form; observe of the
// records (ownership, busy, detail) and check().
#include <gtest/gtest.h>

#include <filesystem>

#include "sriov_kind.hpp"
#include "support/files.hpp"
#include "support/plugin_rig.hpp"

namespace nodeplane::vgpu {
namespace {
namespace fs = std::filesystem;

using ::nodeplane::testing::procFixture;
using ::nodeplane::testing::sysfsFixture;
using ::nodeplane::testing::TempDir;

struct Host {
  Host() : rig(context(), "vgpu") { config.stateDir = tmp / "state/vgpu"; }
  static HostContext context() {
    HostContext h;
    h.sysfsRoot = sysfsFixture("sriov-host");
    h.procRoot = procFixture("sriov-host");
    h.devRoot = "/dev";  // the fixture's qemu has /dev/vfio/devices/vfio0 open
    return h;
  }
  TempDir tmp;
  test::PluginRig rig;
  VgpuConfig config;
  SriovKind kind{rig.services, config};

  std::vector<std::string> errors(const Json& spec, const std::string& name = "") {
    Resource r;
    r.id = {"SriovPf", "pf"};
    if (!name.empty()) r.id.name = name;
    r.spec = spec;
    r.where = {"sriov.yaml", 1, 1};
    r.locations["spec.device"] = {"sriov.yaml", 4, 11};
    r.locations["spec.numVfs"] = {"sriov.yaml", 5, 11};
    std::vector<std::string> out;
    for (const auto& e : kind.validate(r)) {
      EXPECT_EQ(e.kind, ErrorKind::kInvalidInput) << e.str();
      out.push_back(e.str());
    }
    return out;
  }
  void record(const std::string& name, const std::string& device, const std::string& agent,
              int original = 0) {
    ASSERT_TRUE(writeSriovRecord(config.stateDir, {name, device, agent, original, "u-" + name}));
  }
  std::map<std::string, ObservedObject> observed() {
    auto o = kind.observe();
    EXPECT_TRUE(o) << o.error().str();
    std::map<std::string, ObservedObject> out;
    if (o)
      for (auto& x : *o) out[x.id.name] = x;
    return out;
  }
};

const std::string kDevice = "sriov.yaml:4:11: SriovPf/pf spec.device: ";
const std::string kNum = "sriov.yaml:5:11: SriovPf/pf spec.numVfs: ";

TEST(SriovPfValidate, AnSriovPfWithinItsTotalPasses) {
  Host h;
  EXPECT_TRUE(h.errors({{"device", "0000:5e:00.0"}, {"numVfs", 8}}).empty());
  EXPECT_TRUE(h.errors({{"device", "0000:5E:00.0"}, {"numVfs", 0}}).empty());
  EXPECT_TRUE(h.errors({{"device", "0000:05:00.0"}, {"numVfs", 3}}).empty());
  // A GPU by index and by UUID (any case).
  EXPECT_TRUE(h.errors({{"device", "1"}, {"numVfs", 4}}).empty());
  EXPECT_TRUE(h.errors({{"device", 1}, {"numVfs", 4}}).empty()) << "an index written bare";
  EXPECT_EQ(h.errors({{"device", true}, {"numVfs", 4}}).size(), 1u);
  EXPECT_TRUE(
      h.errors({{"device", "gpu-3B000000-0000-4000-8000-00000000A100"}, {"numVfs", 0}}).empty());
}

TEST(SriovPfValidate, ANameThatCannotNameItsRecordFile) {
  Host h;
  EXPECT_EQ(h.errors({{"device", "0000:5e:00.0"}, {"numVfs", 8}}, "a/../../b"),
            std::vector<std::string>{
                "sriov.yaml:1:1: SriovPf/a/../../b metadata.name: invalid SriovPf name "
                "\"a/../../b\": it has a character other than letters, digits, '.', '_' and '-' "
                "(the name is its ownership record's file name)"});
}

TEST(SriovPfValidate, MoreVfsThanTheTotalNamesBothNumbers) {
  Host h;
  EXPECT_EQ(h.errors({{"device", "0000:5e:00.0"}, {"numVfs", 9}}),
            (std::vector<std::string>{
                kNum + "numVfs 9 is more than 0000:5e:00.0 offers: its sriov_totalvfs is 8"}));
  EXPECT_EQ(h.errors({{"device", "0000:05:00.0"}, {"numVfs", 5}}),
            (std::vector<std::string>{
                kNum + "numVfs 5 is more than 0000:05:00.0 offers: its sriov_totalvfs is 4"}));
}

TEST(SriovPfValidate, AnNvidiaGpuTakesNoneOrAll) {
  Host h;
  EXPECT_EQ(h.errors({{"device", "0000:41:00.0"}, {"numVfs", 2}}),
            (std::vector<std::string>{
                kNum + "0000:41:00.0 is an NVIDIA GPU: its driver enables all its virtual "
                       "functions at once (sriov-manage -e), so numVfs must be 0 or 4 (its "
                       "sriov_totalvfs), not 2"}));
  EXPECT_EQ(h.errors({{"device", "0"}, {"numVfs", 1}}).size(), 1u) << "index 0 is 0000:3b:00.0";
  EXPECT_TRUE(h.errors({{"device", "0"}, {"numVfs", 4}}).empty());
}

TEST(SriovPfValidate, NotAnSriovPf) {
  Host h;
  EXPECT_EQ(
      h.errors({{"device", "0000:00:1f.6"}, {"numVfs", 1}}),
      (std::vector<std::string>{
          kDevice + "0000:00:1f.6 is not an SR-IOV physical function (no sriov_totalvfs) (name a "
                    "physical function that offers virtual functions)"}));
  EXPECT_EQ(
      h.errors({{"device", "0000:05:00.1"}, {"numVfs", 1}}),
      (std::vector<std::string>{
          kDevice + "0000:05:00.1 is a virtual function (of 0000:05:00.0), not a physical function "
                    "(name a physical function that offers virtual functions)"}));
}

TEST(SriovPfValidate, NoSuchDevice) {
  Host h;
  EXPECT_EQ(
      h.errors({{"device", "0000:99:00.0"}, {"numVfs", 1}}),
      (std::vector<std::string>{
          kDevice + "no PCI function 0000:99:00.0 on this host (" +
          (sysfsFixture("sriov-host") / "bus/pci/devices/0000:99:00.0").string() + " not found)"}));
  auto gpu = h.errors({{"device", "7"}, {"numVfs", 1}});
  ASSERT_EQ(gpu.size(), 1u);
  EXPECT_TRUE(gpu[0].starts_with(kDevice)) << gpu[0];
  EXPECT_NE(gpu[0].find("0000:41:00.0 (index 1)"), std::string::npos)
      << "names the GPUs there are: " << gpu[0];
}

TEST(SriovPfSpec, ClaimsAndNormalForm) {
  Host h;
  Resource r;
  r.id = {"SriovPf", "pf"};
  r.spec = {{"device", "1"}, {"numVfs", 4}};
  EXPECT_EQ(h.kind.claims(r), (std::vector<Claim>{{"pci", "0000:41:00.0", false, false},
                                                  {"sriov", "0000:41:00.0", true, false}}));
  EXPECT_EQ(h.kind.normalize(r.spec), Json({{"device", "0000:41:00.0"}, {"numVfs", 4}}));
  EXPECT_EQ(h.kind.normalize({{"device", "0000:5E:00.0"}, {"numVfs", 1}}),
            Json({{"device", "0000:5e:00.0"}, {"numVfs", 1}}));
  EXPECT_EQ(h.kind.normalize({{"device", "9"}, {"numVfs", 1}}),
            Json({{"device", "9"}, {"numVfs", 1}}))
      << "unresolved: left as written for validate to report";
  auto schema = h.kind.schema();
  ASSERT_EQ(schema.spec.size(), 2u);
  EXPECT_TRUE(schema.spec[0].forcesReplace);
  EXPECT_FALSE(schema.spec[1].forcesReplace);
}

TEST(SriovPfObserve, ReportsEachRecordWithItsCountOwnerAndUsers) {
  Host h;
  EXPECT_TRUE(h.observed().empty()) << "no record: nothing of ours, whatever the host has";
  h.record("nic", "0000:5e:00.0", test::PluginRig::kAgentId);
  h.record("nvme", "0000:05:00.0", test::PluginRig::kAgentId);
  h.record("l40s", "0000:41:00.0", test::PluginRig::kAgentId);
  h.record("other", "0000:3b:00.0", "00000000000000b2");
  h.record("ampere", "0000:9b:00.0", test::PluginRig::kAgentId);
  auto o = h.observed();
  ASSERT_EQ(o.size(), 5u);

  EXPECT_EQ(o["nic"].spec, Json({{"device", "0000:5e:00.0"}, {"numVfs", 0}}));
  EXPECT_TRUE(o["nic"].marked);
  EXPECT_EQ(o["nic"].uid, "u-nic");
  EXPECT_EQ(o["nic"].busy, "");
  EXPECT_EQ(o["nic"].detail, "0 of 8 VFs");
  EXPECT_EQ(o["nic"].holds, (std::vector<Claim>{{"pci", "0000:5e:00.0", false, false},
                                                {"sriov", "0000:5e:00.0", true, false}}));

  EXPECT_EQ(o["nvme"].spec, Json({{"device", "0000:05:00.0"}, {"numVfs", 2}}));
  EXPECT_EQ(o["nvme"].detail, "2 of 4 VFs");
  EXPECT_EQ(o["nvme"].busy, "VF 0000:05:00.1 in use by VirtualMachine/vm1");

  // A type set on a VF is a vGPU, open or not.
  EXPECT_EQ(o["l40s"].busy, "has vGPUs (VF 0000:41:00.5: type 1155)");
  EXPECT_EQ(o["l40s"].detail, "4 of 4 VFs");
  EXPECT_EQ(o["ampere"].busy,
            "has vGPUs (VF 0000:9b:00.6: mdev 5f0b3c2a-1d4e-4b6f-8a9c-0d1e2f3a4b5c)");

  EXPECT_FALSE(o["other"].marked);
  EXPECT_EQ(o["other"].markedByOther, "00000000000000b2");
}

TEST(SriovPfObserve, AnUnreadableRecordIsAnErrorNotAGuess) {
  Host h;
  testing::writeFile(h.config.stateDir / "sriov/bad.json", "{\"device\": \"0000:5e:00.0\"}");
  auto o = h.kind.observe();
  ASSERT_FALSE(o);
  EXPECT_NE(o.error().message.find("bad.json is not a SriovPf record (want a JSON object with "
                                   "device and originalNumVfs, a count of 0 or more)"),
            std::string::npos)
      << o.error().message;
}

TEST(SriovPfCheck, ListsThePfsAndLooksForSriovManage) {
  Host h;
  h.config.sriovManage = h.tmp / "no-sriov-manage";
  auto items = h.kind.check();
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0].name, "sriov");
  EXPECT_TRUE(items[0].ok);
  EXPECT_EQ(items[0].detail,
            "0000:05:00.0 (1b36:0010, nvme): 2 of 4 VFs, 0000:3b:00.0 (10de:20b5, nvidia): 0 of 4 "
            "VFs, 0000:41:00.0 (10de:26b9, nvidia): 4 of 4 VFs, 0000:5e:00.0 (8086:1592, ice): 0 "
            "of 8 VFs, 0000:9b:00.0 (10de:26b9, nvidia): 4 of 4 VFs");
  EXPECT_EQ(items[1].name, "sriov-manage");
  EXPECT_FALSE(items[1].ok);
  EXPECT_FALSE(items[1].required);
  EXPECT_NE(items[1].detail.find("no-sriov-manage is not an executable file"), std::string::npos)
      << items[1].detail;
}

}  // namespace
}  // namespace nodeplane::vgpu
