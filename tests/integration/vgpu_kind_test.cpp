// The Vgpu kind against the FUSE emulator of NVIDIA's vGPU sysfs (tests/emulator/vgpu), through
// the core's own HostServices (real writes, with their timeout) and the real /proc: exactly the
// writes needed (the emulator counts them), one VF touched by a change, a vGPU held open by this
// process left alone until it is released (and the driver's brief refusal after that retried),
// types put back after a "reboot", a profile that no longer fits refused with what does, and the
// mdev model's create and remove, and MIG-backed profiles counted against the GPU instances
// that nvidia-smi (the emulator's stand-in) lists. Needs root (the emulator mounts); skips itself
// otherwise.
#include "vgpu_kind.hpp"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <thread>

#include "nodeplane/host/vgpu_ref.hpp"
#include "support/files.hpp"
#include "support/plugin_rig.hpp"
#include "support/vgpu_emu.hpp"
#include "vgpu_config.hpp"
#include "vgpu_records.hpp"

namespace nodeplane::vgpu {
namespace {

namespace fs = std::filesystem;
using ::nodeplane::testing::countOf;
using ::nodeplane::testing::slurp;
using ::nodeplane::testing::TempDir;
using namespace std::chrono_literals;

constexpr const char* kL40S = "0000:41:00.0";
constexpr const char* kA100 = "0000:3b:00.0";

class VgpuKindTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (the emulator mounts a FUSE filesystem)";
    if (::access("/dev/fuse", F_OK) != 0) GTEST_SKIP() << "no /dev/fuse on this machine";
    std::string why;
    auto started = test::VgpuEmulator::start(test::VgpuEmulator::defaultLayout(), &why);
    ASSERT_TRUE(started) << "the emulator did not start: " << why;
    emu.emplace(std::move(*started));
    ASSERT_EQ(emu->control("sriov-manage -e ALL"), 0) << emu->log();
    HostContext h;
    h.sysfsRoot = emu->sysfsRoot();
    h.devRoot = emu->devRoot();
    h.procRoot = "/proc";  // this process's opens are what a VM's would be
    h.stateDir = state.path();
    rig.emplace(h, "vgpu");
    cfg = readVgpuConfig(rig->services.context());
    cfg.writeTimeout = 5s;
    kind.emplace(rig->services, cfg);
    emu->resetWrites();
  }

  static Json spec(int vf, const std::string& profile, const std::string& pf = kL40S) {
    return {{"parent", pf}, {"vf", vf}, {"profile", profile}};
  }
  Outcome run(Action a, const std::string& name, const Json& desired = Json::object()) {
    rig->shared->newPass();
    Change c;
    c.action = a;
    c.id = {"Vgpu", name};
    c.desired = desired;
    if (auto o = observed(name)) c.uid = o->uid;
    return kind->apply(c, ctx());
  }
  test::TestApplyContext& ctx() {
    if (!context) context.emplace(rig->services);
    return *context;
  }
  std::optional<ObservedObject> observed(const std::string& name) {
    auto all = kind->observe();
    EXPECT_TRUE(all) << all.error().str();
    if (all)
      for (auto& o : *all)
        if (o.id.name == name) return o;
    return std::nullopt;
  }
  std::string type(const std::string& vf) {
    std::string s = slurp(emu->sysfsRoot() / "bus/pci/devices" / vf / "nvidia/current_vgpu_type");
    return s.substr(0, s.find('\n'));
  }
  static std::string typeFile(const std::string& vf) {
    return "bus/pci/devices/" + vf + "/nvidia/current_vgpu_type";
  }
  std::vector<std::string> validate(const Json& s) {
    Resource r;
    r.id = {"Vgpu", "v"};
    r.spec = s;
    std::vector<std::string> out;
    for (const auto& e : kind->validate(r)) out.push_back(e.str());
    return out;
  }

  TempDir state;
  std::optional<test::VgpuEmulator> emu;
  std::optional<test::PluginRig> rig;
  VgpuConfig cfg;
  std::optional<VgpuKind> kind;
  std::optional<test::TestApplyContext> context;
};

TEST_F(VgpuKindTest, AssignsProfilesWithExactlyTheWritesNeeded) {
  ASSERT_TRUE(validate(spec(0, "L40S-24Q")).empty());
  for (auto [name, vf] : {std::pair{"a", 0}, {"b", 1}}) {
    Outcome o = run(Action::kCreate, name, spec(vf, "L40S-24Q"));
    ASSERT_TRUE(o.ok()) << o.error.str() << "\n" << emu->log();
  }
  EXPECT_EQ(type("0000:41:00.4"), "1155");
  EXPECT_EQ(type("0000:41:00.5"), "1155");
  EXPECT_EQ(emu->writes(),
            (Json{{"total", 2},
                  {"files", {{typeFile("0000:41:00.4"), 1}, {typeFile("0000:41:00.5"), 1}}}}));
  // The qemu plugin's view: the VF to hand to QEMU, ready.
  auto dev = host::readVgpuDevice(state.path(), "a");
  ASSERT_TRUE(dev) << dev.error().str();
  EXPECT_EQ(dev->device, emu->sysfsRoot() / "bus/pci/devices/0000:41:00.4");
  EXPECT_EQ(dev->gpu, kL40S);
  auto a = observed("a");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->spec, kind->normalize(spec(0, "1155")));
  EXPECT_EQ(a->detail, "L40S-24Q (type 1155) on 0000:41:00.4");
  // Applied again: read, nothing written.
  emu->resetWrites();
  ASSERT_TRUE(run(Action::kCreate, "a", spec(0, "L40S-24Q")).ok());
  ASSERT_TRUE(run(Action::kUpdate, "b", spec(1, "L40S-24Q")).ok());
  EXPECT_EQ(emu->writes()["total"], 0) << emu->writes().dump();
}

TEST_F(VgpuKindTest, ChangingOneWritesZeroThenTheIdOnThatVfAlone) {
  for (auto [name, vf] : {std::pair{"a", 0}, {"b", 1}, {"c", 2}})
    ASSERT_TRUE(run(Action::kCreate, name, spec(vf, "L40S-12Q")).ok()) << emu->log();
  emu->resetWrites();
  Outcome o = run(Action::kUpdate, "b", spec(1, "L40S-12A"));
  ASSERT_TRUE(o.ok()) << o.error.str() << "\n" << emu->log();
  EXPECT_EQ(emu->writes(), (Json{{"total", 2}, {"files", {{typeFile("0000:41:00.5"), 2}}}}));
  EXPECT_EQ(type("0000:41:00.4"), "1153");
  EXPECT_EQ(type("0000:41:00.5"), "1163");
  EXPECT_EQ(type("0000:41:00.6"), "1153");
}

TEST_F(VgpuKindTest, AVgpuInUseWaitsForItsHolderThenProceeds) {
  ASSERT_TRUE(run(Action::kCreate, "a", spec(3, "L40S-24Q")).ok()) << emu->log();
  ASSERT_EQ(emu->control("busy-after-close 2"), 0) << emu->log();
  auto hold = emu->hold("0000:41:00.7");
  ASSERT_TRUE(hold) << hold.error();
  const std::string holder = "in use by pid " + std::to_string(::getpid());
  auto seen = observed("a");
  ASSERT_TRUE(seen);
  EXPECT_EQ(seen->busy.rfind(holder + " (", 0), 0u) << seen->busy;
  EXPECT_EQ(seen->detail, "L40S-24Q (type 1155) on 0000:41:00.7") << "status adds busy itself";
  emu->resetWrites();
  Outcome o = run(Action::kUpdate, "a", spec(3, "L40S-24A"));
  EXPECT_EQ(o.error.kind, ErrorKind::kConflict) << o.error.str();
  EXPECT_EQ(o.error.message.rfind("update Vgpu/a: 0000:41:00.7 is " + holder, 0), 0u)
      << o.error.message;
  o = run(Action::kDelete, "a");
  EXPECT_EQ(o.error.kind, ErrorKind::kConflict) << o.error.str();
  EXPECT_EQ(emu->writes()["total"], 0) << "nothing written under the holder";

  hold.release();
  EXPECT_EQ(observed("a")->busy, "");
  // The driver refuses `0` twice after the close (busy-after-close 2): retried, logged once.
  int retried = 0;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (true) {
    o = run(Action::kUpdate, "a", spec(3, "L40S-24A"));
    if (o.ok() || o.cls != Outcome::kRetryable || std::chrono::steady_clock::now() > deadline)
      break;
    ++retried;
  }
  ASSERT_TRUE(o.ok()) << o.error.str() << "\n" << emu->log();
  EXPECT_EQ(retried, 2);
  std::string said;
  for (const auto& m : ctx().messages) said += m + "\n";
  EXPECT_EQ(countOf(said, "0000:41:00.7 still has type 1155 after writing 0"), 1u) << said;
  EXPECT_EQ(type("0000:41:00.7"), "1165");
  EXPECT_EQ(emu->writes(), (Json{{"total", 4}, {"files", {{typeFile("0000:41:00.7"), 4}}}}))
      << "0 refused twice, 0, the new id";
}

TEST_F(VgpuKindTest, AfterARebootTheTypesAreSetAgain) {
  ASSERT_TRUE(run(Action::kCreate, "a", spec(0, "L40S-24Q")).ok()) << emu->log();
  ASSERT_TRUE(run(Action::kCreate, "b", spec(1, "L40S-24Q")).ok());
  ASSERT_EQ(emu->control("reboot"), 0) << emu->log();
  EXPECT_FALSE(observed("a")) << "absent: the plan creates it again";
  EXPECT_FALSE(host::readVgpuDevice(state.path(), "a")) << "not ready for a VM";
  // The VFs are gone: still valid (the GPU's table was kept), but not made until they are back.
  EXPECT_TRUE(validate(spec(0, "L40S-24Q")).empty());
  EXPECT_EQ(validate(spec(0, "L40S-20Q")).size(), 1u);
  Outcome o = run(Action::kCreate, "a", spec(0, "L40S-24Q"));
  EXPECT_EQ(o.cls, Outcome::kRetryable) << o.error.str();
  // SriovPf's part: the driver's sriov-manage.
  ASSERT_EQ(emu->control("sriov-manage -e " + std::string(kL40S)), 0) << emu->log();
  emu->resetWrites();
  for (const char* name : {"a", "b"}) {
    o = run(Action::kCreate, name, spec(name[0] - 'a', "L40S-24Q"));
    ASSERT_TRUE(o.ok()) << o.error.str() << "\n" << emu->log();
  }
  EXPECT_EQ(type("0000:41:00.4"), "1155");
  EXPECT_EQ(type("0000:41:00.5"), "1155");
  EXPECT_EQ(emu->writes()["total"], 2);
  EXPECT_TRUE(host::readVgpuDevice(state.path(), "b"));
}

TEST_F(VgpuKindTest, AProfileThatNoLongerFitsIsRefusedWithWhatDoes) {
  ASSERT_TRUE(run(Action::kCreate, "a", spec(0, "L40S-24Q")).ok()) << emu->log();
  // One set by hand: not this agent's, so nothing will move it.
  {
    const int fd =
        ::open((emu->sysfsRoot() / typeFile("0000:41:00.5")).c_str(), O_WRONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    EXPECT_EQ(::write(fd, "1155", 4), 4);
    ::close(fd);
  }
  Outcome o = run(Action::kCreate, "c", spec(2, "L40S-12Q"));
  EXPECT_EQ(o.cls, Outcome::kTerminal);
  EXPECT_EQ(o.error.message,
            "create Vgpu/c: L40S-12Q is not creatable on 0000:41:00.6 now (writing \"1153\" to " +
                (emu->sysfsRoot() / typeFile("0000:41:00.6")).string() +
                ": Input/output error) (creatable now: none); the GPU holds L40S-24Q on "
                "0000:41:00.4, L40S-24Q on 0000:41:00.5");
  EXPECT_EQ(type("0000:41:00.6"), "0");
}

// A whole GPU moved to another size through the driver's equal-size rule: the first waits for
// the second (its VF cleared), the second moves, the first follows: 24Q -> 12Q on both.
TEST_F(VgpuKindTest, MovingEveryVgpuOfAGpuToAnotherSize) {
  ASSERT_TRUE(run(Action::kCreate, "a", spec(0, "L40S-24Q")).ok()) << emu->log();
  ASSERT_TRUE(run(Action::kCreate, "b", spec(1, "L40S-24Q")).ok());
  Outcome o = run(Action::kUpdate, "a", spec(0, "L40S-12Q"));
  EXPECT_EQ(o.cls, Outcome::kRetryable) << o.error.str();
  EXPECT_NE(o.error.message.find("waits for Vgpu/b (L40S-24Q on 0000:41:00.5)"), std::string::npos)
      << o.error.message;
  EXPECT_EQ(type("0000:41:00.4"), "0");
  ASSERT_TRUE(run(Action::kUpdate, "b", spec(1, "L40S-12Q")).ok()) << emu->log();
  ASSERT_TRUE(run(Action::kUpdate, "a", spec(0, "L40S-12Q")).ok()) << emu->log();
  EXPECT_EQ(type("0000:41:00.4"), "1153");
  EXPECT_EQ(type("0000:41:00.5"), "1153");
}

TEST_F(VgpuKindTest, DeleteClearsTheTypeReleaseLeavesIt) {
  ASSERT_TRUE(run(Action::kCreate, "a", spec(0, "L40S-8Q")).ok()) << emu->log();
  ASSERT_TRUE(run(Action::kCreate, "b", spec(1, "L40S-8Q")).ok());
  ASSERT_TRUE(run(Action::kDelete, "a").ok());
  ASSERT_TRUE(run(Action::kRelease, "b").ok());
  EXPECT_EQ(type("0000:41:00.4"), "0");
  EXPECT_EQ(type("0000:41:00.5"), "1152");
  EXPECT_FALSE(fs::exists(host::vgpuRecordPath(state.path(), "a")));
  EXPECT_FALSE(fs::exists(host::vgpuRecordPath(state.path(), "b")));
}

TEST_F(VgpuKindTest, MdevModelCreatesAndRemovesOneMdev) {
  const std::string uuid = mdevUuidFor(test::PluginRig::kAgentId, "m");
  Outcome o = run(Action::kCreate, "m", spec(1, "A100-10C", kA100));
  ASSERT_TRUE(o.ok()) << o.error.str() << "\n" << emu->log();
  const fs::path mdev = emu->sysfsRoot() / "bus/mdev/devices" / uuid;
  EXPECT_TRUE(fs::exists(mdev));
  EXPECT_EQ(fs::read_symlink(mdev / "mdev_type").filename(), "nvidia-471");
  auto dev = host::readVgpuDevice(state.path(), "m");
  ASSERT_TRUE(dev) << dev.error().str();
  EXPECT_EQ(dev->device, mdev);
  EXPECT_EQ(observed("m")->detail, "A100-10C (type 471) on mdev " + uuid + " on 0000:3b:00.5");
  {
    auto hold = emu->hold(uuid);
    ASSERT_TRUE(hold) << hold.error();
    EXPECT_NE(observed("m")->busy, "");
    o = run(Action::kDelete, "m");
    EXPECT_EQ(o.error.kind, ErrorKind::kConflict) << o.error.str();
    EXPECT_TRUE(fs::exists(mdev));
  }
  emu->resetWrites();
  o = run(Action::kDelete, "m");
  ASSERT_TRUE(o.ok()) << o.error.str() << "\n" << emu->log();
  EXPECT_FALSE(fs::exists(mdev));
  EXPECT_EQ(emu->writes()["total"], 1);
  EXPECT_FALSE(fs::exists(host::vgpuRecordPath(state.path(), "m")));
}

// MIG (note §5): each MIG-backed vGPU needs a GPU instance of its profile, counted with
// nvidia-smi when its step runs. MIG mode off, or no free instance, makes that Vgpu wait
// (retryable, saying what to make) with nothing written; once there is one, it is made. The
// instances are host state a reboot loses, so they are not a validate-time error (that would stop
// every kind of the host); a time-sliced profile under MIG is, read from sysfs.
TEST_F(VgpuKindTest, MigBackedProfilesNeedTheirGpuInstances) {
  using ::testing::HasSubstr;
  cfg.nvidiaSmi = emu->nvidiaSmi();
  auto mig = [](int vf) { return spec(vf, "A100-1-5C", kA100); };
  Outcome o = run(Action::kCreate, "m0", mig(0));
  EXPECT_EQ(o.cls, Outcome::kRetryable) << o.error.str();
  EXPECT_EQ(o.error.message,
            "create Vgpu/m0: A100-1-5C is MIG-backed, and 0000:3b:00.0 has MIG mode off");
  EXPECT_EQ(o.error.hint,
            "with the GPU's VFs disabled (sriov-manage -d 0000:3b:00.0), nvidia-smi -i "
            "0000:3b:00.0 -mig 1; enable them again (sriov-manage -e 0000:3b:00.0), then make GPU "
            "instances of 1g.5gb (nvidia-smi mig -i 0000:3b:00.0 -cgi 1g.5gb)");
  EXPECT_EQ(emu->writes()["total"], 0);

  // The mode is set while the VFs are off, and sriov-manage -e removes the instances: so the
  // mode, then the VFs, then the instances.
  EXPECT_NE(emu->control("mig 0000:3b:00.0 on"), 0) << "refused while the VFs are enabled";
  ASSERT_EQ(emu->control("sriov-manage -d 0000:3b:00.0"), 0) << emu->lastReply();
  ASSERT_EQ(emu->control("mig 0000:3b:00.0 on"), 0) << emu->lastReply();
  ASSERT_EQ(emu->control("sriov-manage -e 0000:3b:00.0"), 0) << emu->lastReply();
  // Under MIG a time-sliced profile is refused, seen from sysfs alone: an empty GPU offers none.
  (void)kind->observe();
  auto timeSliced = validate(spec(3, "A100-20C", kA100));
  ASSERT_EQ(timeSliced.size(), 1u);
  EXPECT_THAT(timeSliced[0], HasSubstr("A100-20C is a time-sliced profile, and 0000:3b:00.0 has "
                                       "MIG mode on (it offers MIG-backed profiles only: "
                                       "A100-1-5C, A100-2-10C, A100-3-20C, A100-4-20C, "
                                       "A100-7-40C, A100-1-5CME)"));
  EXPECT_TRUE(validate(mig(0)).empty()) << "the instances are not counted at validate time";

  o = run(Action::kCreate, "m0", mig(0));
  EXPECT_EQ(o.cls, Outcome::kRetryable) << o.error.str();
  EXPECT_EQ(o.error.message,
            "create Vgpu/m0: A100-1-5C needs a free MIG GPU instance of 1g.5gb, and 0000:3b:00.0 "
            "has 0");
  EXPECT_THAT(o.error.hint, HasSubstr("nvidia-smi mig -i 0000:3b:00.0 -cgi 1g.5gb"));
  ASSERT_EQ(emu->control("create-gi 0000:3b:00.0 1g.5gb"), 0) << emu->lastReply();
  EXPECT_THAT(emu->lastReply(), HasSubstr("using profile MIG 1g.5gb (ID 19)"));
  o = run(Action::kCreate, "m0", mig(0));
  ASSERT_TRUE(o.ok()) << o.error.str() << "\n" << emu->log();
  emu->resetWrites();
  o = run(Action::kCreate, "m1", mig(1));
  EXPECT_EQ(o.cls, Outcome::kRetryable) << o.error.str();
  EXPECT_EQ(o.error.message,
            "create Vgpu/m1: A100-1-5C needs a free MIG GPU instance of 1g.5gb, and 0000:3b:00.0 "
            "has 1 (1 in use by A100-1-5C on 0000:3b:00.4)");
  EXPECT_EQ(emu->writes()["total"], 0);
  ASSERT_EQ(emu->control("create-gi 0000:3b:00.0 1g.5gb"), 0) << emu->lastReply();
  o = run(Action::kCreate, "m1", mig(1));
  ASSERT_TRUE(o.ok()) << o.error.str() << "\n" << emu->log();
  EXPECT_THAT(observed("m1")->detail, HasSubstr("A100-1-5C (type 474) on mdev"));
  EXPECT_EQ(validate(spec(3, "A100-20C", kA100)).size(), 1u) << "a MIG-backed vGPU says: MIG on";
  EXPECT_NE(emu->control("destroy-gi 0000:3b:00.0 1"), 0) << "it holds a vGPU";

  // Without nvidia-smi the instances cannot be counted: said, not guessed.
  cfg.nvidiaSmi = state.path() / "no-nvidia-smi";
  o = run(Action::kCreate, "m2", mig(2));
  EXPECT_EQ(o.cls, Outcome::kRetryable) << o.error.str();
  EXPECT_THAT(o.error.message, HasSubstr("the GPU instances of 0000:3b:00.0 cannot be counted"));
  EXPECT_EQ(o.error.hint, "set vgpu.nvidiaSmi in the agent config to NVIDIA's nvidia-smi");
}

}  // namespace
}  // namespace nodeplane::vgpu
