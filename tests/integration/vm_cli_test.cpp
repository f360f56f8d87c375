// VirtualMachine documents through the real `nodeplane` binary and the real qemu plugin, against
// fixture hosts (--sysfs-root / --proc-root): the bad input that only the core can see
// (one GPU in two VMs, or in a VM and a container: claim conflicts; a bridge nobody declares),
// the example VM VPS, and its expansion as `diff` shows it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "cli_util.hpp"
#include "netns.hpp"

namespace nodeplane::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
namespace fs = std::filesystem;

const fs::path kFixtures = fs::path(NODEPLANE_SOURCE_DIR) / "tests/fixtures";

std::string vmDoc(const std::string& name, const std::string& gpus, const std::string& more = "") {
  return "apiVersion: nodeplane.io/v1\nkind: VirtualMachine\nmetadata: {name: " + name +
         "}\nspec:\n  vcpus: 2\n  memoryMiB: 2048\n  disk: {base: ubuntu-22.04}\n  gpus: " + gpus +
         "\n" + more;
}

class VmCli : public ::testing::Test {
 protected:
  void SetUp() override {
    images_.write("ubuntu-22.04.qcow2", "");
    config_.write("agent.yaml",
                  "lockTimeoutSeconds: 1\nvfio:\n  allow: [\"10de:*\"]\nqemu:\n"
                  "  imagesDir: " +
                      images_.path().string() + "\n");
  }
  CliResult np(const std::string& fixture, std::vector<std::string> args) {
    std::vector<std::string> argv = {NODEPLANE_BINARY,
                                     "--state-dir",
                                     (state_ / "state").string(),
                                     "--config",
                                     (config_ / "agent.yaml").string(),
                                     "--sysfs-root",
                                     (kFixtures / "sysfs" / fixture).string(),
                                     "--proc-root",
                                     (kFixtures / "proc" / fixture).string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv);
  }
  TempDir state_, config_, images_, desired_;
};

TEST_F(VmCli, OneGpuInTwoVmsIsAClaimConflict) {
  desired_.write("a.yaml", vmDoc("vm1", "[1]"));
  desired_.write("b.yaml", vmDoc("vm2", "[\"0000:3b:00.0\"]"));
  auto v = np("e-h100", {"validate", "-f", desired_.path().string()});
  EXPECT_EQ(v.code, 1) << v.out << v.err;
  EXPECT_THAT(v.err, HasSubstr("VirtualMachine/vm2: claims pci 0000:3b:00.0, already claimed by "
                               "VirtualMachine/vm1 at " +
                               (desired_ / "a.yaml").string() + ":2:1"));
  // Different GPUs: no conflict.
  desired_.write("b.yaml", vmDoc("vm2", "[2]"));
  auto ok = np("e-h100", {"validate", "-f", desired_.path().string()});
  EXPECT_EQ(ok.code, 0) << ok.out << ok.err;
}

TEST_F(VmCli, OneGpuInAVmAndAContainerIsAClaimConflict) {
  desired_.write("a.yaml", vmDoc("vm1", "[\"GPU-3b000000-0000-4000-8000-000000000000\"]"));
  desired_.write("b.yaml",
                 "apiVersion: nodeplane.io/v1\nkind: Container\nmetadata: {name: infer}\nspec:\n"
                 "  image: nvcr.io/nvidia/tritonserver:24.05-py3\n  gpus: [1]\n");
  auto v = np("e-h100", {"validate", "-f", desired_.path().string()});
  EXPECT_EQ(v.code, 1) << v.out << v.err;
  EXPECT_THAT(v.err, HasSubstr("Container/infer: claims gpu 0000:3b:00.0 (shared), already "
                               "claimed exclusively by VirtualMachine/vm1 at " +
                               (desired_ / "a.yaml").string() + ":2:1"));
}

TEST_F(VmCli, ABridgeThatIsNotDeclaredIsADanglingReference) {
  desired_.write("a.yaml", vmDoc("vm1", "[]", "  network: {bridge: br-missing}\n"));
  auto v = np("e-h100", {"validate", "-f", desired_.path().string()});
  EXPECT_EQ(v.code, 1) << v.out << v.err;
  EXPECT_THAT(v.err, HasSubstr("spec.network.bridge"));
  EXPECT_THAT(v.err, HasSubstr("br-missing"));
}

TEST_F(VmCli, TheBadInputOfAVmIsReportedWithFileAndLine) {
  desired_.write("a.yaml", vmDoc("Bad_Name", "[7]"));
  auto v = np("g-vm", {"validate", "-f", desired_.path().string()});
  EXPECT_EQ(v.code, 1) << v.out << v.err;
  const std::string file = (desired_ / "a.yaml").string();
  EXPECT_THAT(v.err, HasSubstr(file + ":3:12: VirtualMachine/Bad_Name metadata.name: invalid VM "
                                      "name \"Bad_Name\""));
  EXPECT_THAT(v.err, HasSubstr(file + ":8:10: VirtualMachine/Bad_Name spec.gpus[0]: no NVIDIA GPU "
                                      "with index 7 on this host"));
}

// The example VM VPS validates on both fixture hosts; on g-vm its GPU has an audio function, so
// it expands to two VfioDevices and a Tap.
TEST_F(VmCli, TheExampleVmVpsValidatesAndExpands) {
  const std::string examples = std::string(NODEPLANE_SOURCE_DIR) + "/examples/vm";
  auto h100 = np("e-h100", {"validate", "-f", examples});
  EXPECT_EQ(h100.code, 0) << h100.out << h100.err;
  auto gvm = np("g-vm", {"validate", "-f", examples});
  EXPECT_EQ(gvm.code, 0) << gvm.out << gvm.err;
  EXPECT_THAT(gvm.out, HasSubstr("valid: 5 resource(s) in 2 file(s)"));
  if (!inPrivateNetns()) return;  // diff observes the bridge: netlink, root only
  auto d = np("g-vm", {"diff", "-f", examples});
  EXPECT_THAT(d.out, HasSubstr("+ VfioDevice/gpu-vps-1-0000-3b-00-0 create"));
  EXPECT_THAT(d.out, HasSubstr("+ VfioDevice/gpu-vps-1-0000-3b-00-1 create"));
  EXPECT_THAT(d.out, HasSubstr("+ Tap/vm-gpu-vps-1 create"));
  EXPECT_THAT(d.out, HasSubstr("+ VirtualMachine/gpu-vps-1 create"));
}

}  // namespace
}  // namespace nodeplane::testing
