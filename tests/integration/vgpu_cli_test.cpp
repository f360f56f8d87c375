// Vgpu documents through the real `nodeplane` binary and the real vgpu plugin, over the FUSE
// emulator of NVIDIA's vGPU sysfs (--sysfs-root): the bad input with file and line (what
// validate() and validateSet() see, and the claims only the core sees: two Vgpus on one VF, a
// Vgpu and a VfioDevice of one GPU), and apply, apply again (nothing written), a "reboot", the VFs
// back (the driver's sriov-manage, SriovPf's part), apply: the types are back. Needs root (the
// emulator mounts); skips itself otherwise.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <optional>

#include "cli_util.hpp"
#include "support/vgpu_emu.hpp"

namespace nodeplane::testing {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;
using nlohmann::json;

std::string vgpuDoc(const std::string& name, const std::string& spec) {
  return "apiVersion: nodeplane.io/v1\nkind: Vgpu\nmetadata: {name: " + name + "}\nspec:\n" + spec;
}

class VgpuCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (the emulator mounts a FUSE filesystem)";
    if (::access("/dev/fuse", F_OK) != 0) GTEST_SKIP() << "no /dev/fuse on this machine";
    std::string why;
    auto started = test::VgpuEmulator::start(test::VgpuEmulator::defaultLayout(), &why);
    ASSERT_TRUE(started) << "the emulator did not start: " << why;
    emu.emplace(std::move(*started));
    ASSERT_EQ(emu->control("sriov-manage -e ALL"), 0) << emu->log();
    config.write("agent.yaml", "lockTimeoutSeconds: 1\nvfio:\n  allow: [\"10de:*\"]\n");
  }
  CliResult np(std::vector<std::string> args) {
    std::vector<std::string> argv = {NODEPLANE_BINARY,
                                     "--state-dir",
                                     state.path().string(),
                                     "--config",
                                     (config / "agent.yaml").string(),
                                     "--sysfs-root",
                                     emu->sysfsRoot().string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv);
  }
  std::string type(const std::string& vf) {
    std::string s = slurp(emu->sysfsRoot() / "bus/pci/devices" / vf / "nvidia/current_vgpu_type");
    return s.substr(0, s.find('\n'));
  }
  std::string at(const std::string& file, int line) {
    return (desired / file).string() + ":" + std::to_string(line);
  }

  std::optional<test::VgpuEmulator> emu;
  TempDir state, config, desired, images;
};

TEST_F(VgpuCli, BadInputIsReportedWithFileAndLineAndNothingIsApplied) {
  desired.write("a.yaml",
                vgpuDoc("a", "  parent: \"0000:41:00.0\"\n  vf: 9\n  profile: L40S-24Q\n"));
  desired.write("b.yaml",
                vgpuDoc("b", "  parent: \"0000:41:00.0\"\n  vf: 1\n  profile: L40S-20Q\n"));
  desired.write("c.yaml",
                vgpuDoc("c", "  parent: \"0000:5e:00.0\"\n  vf: 1\n  profile: L40S-24Q\n"));
  desired.write("d.yaml",
                vgpuDoc("d", "  address: \"0000:41:00.5\"\n  vf: 1\n  profile: L40S-24Q\n"));
  auto v = np({"apply", "-f", desired.path().string()});
  EXPECT_EQ(v.code, 1) << v.out << v.err;
  // file:line:column of the field at fault, then the message.
  EXPECT_THAT(v.err, HasSubstr(at("a.yaml", 6)));
  EXPECT_THAT(v.err, HasSubstr(": Vgpu/a spec.vf: vf 9 is not a virtual function of "
                               "0000:41:00.0, which has 4 now (0-3)"));
  EXPECT_THAT(v.err, HasSubstr(at("b.yaml", 7)));
  EXPECT_THAT(v.err, HasSubstr(": Vgpu/b spec.profile: profile L40S-20Q is not a vGPU type of "
                               "0000:41:00.0 (it offers: L40S-1B, L40S-2B, L40S-1Q"));
  EXPECT_THAT(v.err, HasSubstr(at("c.yaml", 5)));
  EXPECT_THAT(v.err, HasSubstr(": Vgpu/c spec.parent: 0000:5e:00.0 is not an NVIDIA GPU (vendor "
                               "8086"));
  EXPECT_THAT(v.err, HasSubstr(at("d.yaml", 6)));
  EXPECT_THAT(v.err, HasSubstr(": Vgpu/d spec.vf: give either parent and vf, or address, not "
                               "both"));
  EXPECT_EQ(emu->writes()["total"], 0) << emu->writes().dump();
}

TEST_F(VgpuCli, PlacementAndClaimsAcrossResources) {
  // Two sizes on an equal-size GPU; three 24Q where two fit.
  desired.write("a.yaml",
                vgpuDoc("a", "  parent: \"0000:41:00.0\"\n  vf: 0\n  profile: L40S-24Q\n") +
                    "---\n" +
                    vgpuDoc("b",
                            "  parent: \"0000:41:00.0\"\n  vf: 1\n  profile: "
                            "L40S-12Q\n"));
  auto v = np({"validate", "-f", desired.path().string()});
  EXPECT_EQ(v.code, 1) << v.out << v.err;
  EXPECT_THAT(v.err, HasSubstr("Vgpu/b spec.profile: equal-size mode: L40S-24Q (24 GiB, Vgpu/a) "
                               "and L40S-12Q (12 GiB) on 0000:41:00.0 (put the GPU in "
                               "vgpu.mixedSize (agent config) to mix sizes, or use one size)"));
  desired.write("a.yaml",
                vgpuDoc("a", "  parent: \"0000:41:00.0\"\n  vf: 0\n  profile: L40S-24Q\n") +
                    "---\n" +
                    vgpuDoc("b",
                            "  parent: \"0000:41:00.0\"\n  vf: 1\n  profile: "
                            "L40S-24Q\n") +
                    "---\n" + vgpuDoc("c", "  address: \"0000:41:00.6\"\n  profile: \"1155\"\n"));
  v = np({"validate", "-f", desired.path().string()});
  EXPECT_EQ(v.code, 1) << v.out << v.err;
  EXPECT_THAT(v.err, HasSubstr("Vgpu/c spec.profile: 3 x L40S-24Q on 0000:41:00.0, which holds 2"));
  // Two Vgpus on one VF, by index and by address: the core's claim check.
  desired.write("a.yaml",
                vgpuDoc("a", "  parent: \"0000:41:00.0\"\n  vf: 1\n  profile: L40S-24Q\n") +
                    "---\n" + vgpuDoc("b", "  address: \"0000:41:00.5\"\n  profile: L40S-24Q\n"));
  v = np({"validate", "-f", desired.path().string()});
  EXPECT_EQ(v.code, 1) << v.out << v.err;
  EXPECT_THAT(v.err, HasSubstr("Vgpu/b: claims pci 0000:41:00.5, already claimed by Vgpu/a"));
  // A Vgpu and a VfioDevice of the same GPU.
  desired.write("a.yaml",
                vgpuDoc("a", "  parent: \"0000:41:00.0\"\n  vf: 1\n  profile: L40S-24Q\n") +
                    "---\napiVersion: nodeplane.io/v1\nkind: VfioDevice\nmetadata: {name: "
                    "gpu}\nspec: {device: \"0000:41:00.0\"}\n");
  v = np({"validate", "-f", desired.path().string()});
  EXPECT_EQ(v.code, 1) << v.out << v.err;
  EXPECT_THAT(v.err, HasSubstr("VfioDevice/gpu: claims pci 0000:41:00.0 exclusively, already "
                               "claimed (shared) by Vgpu/a"));
  EXPECT_EQ(emu->writes()["total"], 0);
}

TEST_F(VgpuCli, ApplyAgainWritesNothingAndARebootIsRepairedByTheNextApply) {
  desired.write("v.yaml",
                vgpuDoc("a", "  parent: \"0000:41:00.0\"\n  vf: 0\n  profile: L40S-24Q\n") +
                    "---\n" + vgpuDoc("b", "  address: \"0000:41:00.5\"\n  profile: 1155\n"));
  emu->resetWrites();
  auto r = np({"apply", "-f", desired.path().string()});
  ASSERT_EQ(r.code, 0) << r.out << r.err << emu->log();
  EXPECT_EQ(type("0000:41:00.4"), "1155");
  EXPECT_EQ(type("0000:41:00.5"), "1155");
  EXPECT_EQ(emu->writes()["total"], 2);
  auto d = np({"diff", "-f", desired.path().string()});
  EXPECT_EQ(d.code, 0) << "in sync: " << d.out << d.err;
  r = np({"apply", "-f", desired.path().string()});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(emu->writes()["total"], 2) << "nothing written the second time";

  ASSERT_EQ(emu->control("reboot"), 0) << emu->log();
  d = np({"diff", "-f", desired.path().string()});
  EXPECT_EQ(d.code, 2) << "the types are gone: " << d.out << d.err;
  ASSERT_EQ(emu->control("sriov-manage -e 0000:41:00.0"), 0) << emu->log();
  r = np({"apply", "-f", desired.path().string()});
  ASSERT_EQ(r.code, 0) << r.out << r.err << emu->log();
  EXPECT_EQ(type("0000:41:00.4"), "1155");
  EXPECT_EQ(type("0000:41:00.5"), "1155");
  EXPECT_EQ(emu->writes()["total"], 4);
}

// A vGPU something has open (here this test process, as QEMU would) is busy: diff shows the change
// waiting and who holds it, apply refuses it as a conflict naming the holder and writes nothing,
// status shows the holder; once it is let go, the same apply makes the change.
TEST_F(VgpuCli, AHeldVgpuWaitsForItsHolderThroughTheCli) {
  desired.write("v.yaml",
                vgpuDoc("a", "  parent: \"0000:41:00.0\"\n  vf: 0\n  profile: L40S-24Q\n"));
  auto r = np(
      {"--dev-root", (emu->sysfsRoot() / "dev").string(), "apply", "-f", desired.path().string()});
  ASSERT_EQ(r.code, 0) << r.out << r.err << emu->log();
  auto held = emu->hold("0000:41:00.4");
  ASSERT_TRUE(held) << held.error();
  const std::string holder = "in use by pid " + std::to_string(::getpid());
  auto st = np({"--dev-root", (emu->sysfsRoot() / "dev").string(), "status"});
  ASSERT_EQ(st.code, 0) << st.err;
  EXPECT_THAT(st.out, HasSubstr("Vgpu/a    L40S-24Q (type 1155) on 0000:41:00.4"));
  EXPECT_THAT(st.out, HasSubstr(holder));
  EXPECT_EQ(::nodeplane::testing::countOf(st.out, holder), 1u) << "named once\n" << st.out;

  desired.write("v.yaml",
                vgpuDoc("a", "  parent: \"0000:41:00.0\"\n  vf: 0\n  profile: L40S-24A\n"));
  auto d = np(
      {"--dev-root", (emu->sysfsRoot() / "dev").string(), "diff", "-f", desired.path().string()});
  EXPECT_EQ(d.code, 2) << d.out << d.err;
  EXPECT_THAT(d.out, HasSubstr("~ Vgpu/a update profile: L40S-24Q -> L40S-24A [waits: " + holder));
  emu->resetWrites();
  r = np(
      {"--dev-root", (emu->sysfsRoot() / "dev").string(), "apply", "-f", desired.path().string()});
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_THAT(r.out + r.err, HasSubstr("Vgpu/a: " + holder));
  EXPECT_THAT(r.out + r.err, HasSubstr("not updated until it is free"));
  EXPECT_EQ(emu->writes()["total"], 0) << emu->writes().dump();
  EXPECT_EQ(type("0000:41:00.4"), "1155");

  held.release();
  r = np(
      {"--dev-root", (emu->sysfsRoot() / "dev").string(), "apply", "-f", desired.path().string()});
  ASSERT_EQ(r.code, 0) << r.out << r.err << emu->log();
  EXPECT_EQ(type("0000:41:00.4"), "1165");  // L40S-24A
}

// A Vgpu is one VM's: two VMs naming it is a claim conflict, found before anything is applied.
// And export writes the Vgpus back as documents apply takes.
TEST_F(VgpuCli, AVgpuNamedByTwoVmsIsAConflictAndExportRoundTrips) {
  images.write("blank.qcow2", "validate only looks for the file");
  config.write("agent.yaml",
               "lockTimeoutSeconds: 1\nqemu:\n  imagesDir: " + images.path().string() + "\n");
  const std::string vm = "  vcpus: 1\n  memoryMiB: 128\n  disk: {base: blank}\n  vgpus: [a]\n";
  desired.write("v.yaml",
                vgpuDoc("a", "  parent: \"0000:41:00.0\"\n  vf: 0\n  profile: L40S-24Q\n") +
                    "---\napiVersion: nodeplane.io/v1\nkind: VirtualMachine\nmetadata: {name: "
                    "vm1}\nspec:\n" +
                    vm +
                    "---\napiVersion: nodeplane.io/v1\nkind: VirtualMachine\nmetadata: {name: "
                    "vm2}\nspec:\n" +
                    vm);
  auto v = np({"validate", "-f", desired.path().string()});
  EXPECT_EQ(v.code, 1) << v.out << v.err;
  EXPECT_THAT(v.err, HasSubstr("VirtualMachine/vm2: claims vgpu a, already claimed by "
                               "VirtualMachine/vm1"));

  desired.write("v.yaml",
                vgpuDoc("a", "  parent: \"0000:41:00.0\"\n  vf: 0\n  profile: L40S-24Q\n"));
  ASSERT_EQ(np({"apply", "-f", desired.path().string()}).code, 0);
  auto e = np({"export", "--kind", "Vgpu"});
  ASSERT_EQ(e.code, 0) << e.out << e.err;
  EXPECT_THAT(e.out, HasSubstr("kind: Vgpu"));
  EXPECT_THAT(e.out, HasSubstr("L40S-24Q"));
  TempDir exported;
  exported.write("all.yaml", e.out);
  auto d = np({"diff", "-f", exported.path().string()});
  EXPECT_EQ(d.code, 0) << "export applies back in sync: " << e.out << d.out << d.err;
}

}  // namespace
}  // namespace nodeplane::testing
