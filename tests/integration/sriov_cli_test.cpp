// SriovPf through the real CLI over the sriov-host fixture (--sysfs-root / --proc-root): what
// only the core sees, the claims between kinds (a SriovPf shares its PF with a Vgpu of that GPU,
// conflicts with a VfioDevice of it and with a second SriovPf of it), and validate's messages
// with the file and line.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "support/files.hpp"
#include "support/process.hpp"

namespace nodeplane::testing {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

const fs::path kFixtures = fs::path(NODEPLANE_SOURCE_DIR) / "tests/fixtures";

std::string pfDoc(const std::string& name, const std::string& device, int numVfs) {
  return "apiVersion: nodeplane.io/v1\nkind: SriovPf\nmetadata: {name: " + name +
         "}\nspec:\n  device: \"" + device + "\"\n  numVfs: " + std::to_string(numVfs) + "\n";
}

class SriovPfCli : public ::testing::Test {
 protected:
  void SetUp() override {
    config_.write("agent.yaml",
                  "lockTimeoutSeconds: 1\nvfio:\n  allow: [\"10de:*\", \"8086:*\"]\n");
  }
  CliResult np(std::vector<std::string> args) {
    std::vector<std::string> argv = {NODEPLANE_BINARY,
                                     "--state-dir",
                                     (state_ / "state").string(),
                                     "--config",
                                     (config_ / "agent.yaml").string(),
                                     "--sysfs-root",
                                     (kFixtures / "sysfs/sriov-host").string(),
                                     "--proc-root",
                                     (kFixtures / "proc/sriov-host").string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv);
  }
  TempDir state_, config_, desired_;
};

TEST_F(SriovPfCli, TwoSriovPfsOfOnePfConflict) {
  desired_.write("a.yaml", pfDoc("nic-a", "0000:5e:00.0", 4));
  desired_.write("b.yaml", pfDoc("nic-b", "0000:5E:00.0", 2));
  auto v = np({"validate", "-f", desired_.path().string()});
  EXPECT_EQ(v.code, 1) << v.out << v.err;
  EXPECT_THAT(v.err, HasSubstr("SriovPf/nic-b: claims sriov 0000:5e:00.0, already "
                               "claimed by SriovPf/nic-a at " +
                               (desired_ / "a.yaml").string() + ":2:1"));
  desired_.write("b.yaml", pfDoc("nvme", "0000:05:00.0", 2));
  auto ok = np({"validate", "-f", desired_.path().string()});
  EXPECT_EQ(ok.code, 0) << ok.out << ok.err;
}

TEST_F(SriovPfCli, ASriovPfAndAVfioDeviceOfOneGpuConflict) {
  desired_.write("a.yaml", pfDoc("gpu", "1", 4));  // index 1: 0000:41:00.0
  desired_.write("b.yaml",
                 "apiVersion: nodeplane.io/v1\nkind: VfioDevice\nmetadata: {name: pass}\nspec:\n"
                 "  device: \"0000:41:00.0\"\n");
  auto v = np({"validate", "-f", desired_.path().string()});
  EXPECT_EQ(v.code, 1) << v.out << v.err;
  EXPECT_THAT(v.err, HasSubstr("claims pci 0000:41:00.0"));
  EXPECT_THAT(v.err, HasSubstr("SriovPf/gpu"));
  EXPECT_THAT(v.err, HasSubstr("VfioDevice/pass"));
}

TEST_F(SriovPfCli, BadInputNamesTheFileLineAndBothNumbers) {
  desired_.write("a.yaml", pfDoc("nic", "0000:5e:00.0", 9));
  auto v = np({"validate", "-f", desired_.path().string()});
  EXPECT_EQ(v.code, 1) << v.out << v.err;
  EXPECT_THAT(v.err, HasSubstr((desired_ / "a.yaml").string() +
                               ":6:3: SriovPf/nic spec.numVfs: numVfs 9 is more than "
                               "0000:5e:00.0 offers: its sriov_totalvfs is 8"));
  desired_.write("a.yaml", pfDoc("nic", "0000:00:1f.6", 1));
  v = np({"validate", "-f", desired_.path().string()});
  EXPECT_EQ(v.code, 1);
  EXPECT_THAT(v.err, HasSubstr((desired_ / "a.yaml").string() +
                               ":5:3: SriovPf/nic spec.device: 0000:00:1f.6 is not an SR-IOV "
                               "physical function (no sriov_totalvfs)"));
  auto plan = np({"diff", "-f", desired_.path().string()});
  EXPECT_EQ(plan.code, 1) << "nothing planned from bad input";
}

TEST_F(SriovPfCli, ExportWritesWhatApplyTakesBack) {
  // A record of ours, as a create leaves it, for the NVMe PF that has 2 VFs now.
  TempDir none;  // an empty apply opens the state store: its agent id
  auto agent = np({"apply", "--allow-empty", "-f", none.path().string()});
  ASSERT_EQ(agent.code, 0) << agent.err;
  const std::string id = slurp(state_ / "state/agent-id");
  ASSERT_FALSE(id.empty()) << "the state store keeps the agent id in agent-id";
  state_.write("state/vgpu/sriov/nvme.json", "{\"device\": \"0000:05:00.0\", \"agent\": \"" +
                                                 id.substr(0, id.find('\n')) +
                                                 "\", \"originalNumVfs\": 0, \"uid\": \"u1\"}\n");
  auto e = np({"export", "--kind", "SriovPf"});
  ASSERT_EQ(e.code, 0) << e.err;
  EXPECT_THAT(e.out, HasSubstr("kind: SriovPf"));
  EXPECT_THAT(e.out, HasSubstr("name: nvme"));
  EXPECT_THAT(e.out, HasSubstr("0000:05:00.0"));
  EXPECT_THAT(e.out, HasSubstr("numVfs: 2"));
  desired_.write("exported.yaml", e.out);
  auto d = np({"diff", "-f", desired_.path().string()});
  EXPECT_EQ(d.code, 0) << "in sync with what export wrote: " << d.out << d.err;
}

}  // namespace
}  // namespace nodeplane::testing
