// SriovPf against the FUSE emulator of a vGPU host's sysfs (tests/emulator/vgpu: a generic PF
// with the kernel's sriov_numvfs semantics, NVIDIA PFs that refuse raw writes and get their VFs
// from sriov-manage), through the real CLI where the CLI can see it (--sysfs-root), and through
// the plugin where a test must hold a VF open (device nodes under the emulator's dev/).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <functional>

#include "nodeplane/plugin_util.hpp"
#include "sriov_kind.hpp"
#include "support/files.hpp"
#include "support/plugin_rig.hpp"
#include "support/process.hpp"
#include "support/vgpu_emu.hpp"

namespace nodeplane::vgpu {
namespace {
namespace fs = std::filesystem;
using ::nodeplane::test::VgpuEmulator;
using ::nodeplane::testing::CliResult;
using ::nodeplane::testing::run;
using ::nodeplane::testing::slurp;
using ::nodeplane::testing::TempDir;
using ::testing::HasSubstr;
using ::testing::Not;

const std::string kNvidia = "0000:41:00.0";  // L40S, SR-IOV model, 4 VFs at 41:00.4-7
const std::string kNic = "0000:5e:00.0";     // generic, 8 VFs at 5e:00.1-5e:01.0

std::string pfDoc(const std::string& name, const std::string& device, int numVfs) {
  return "apiVersion: nodeplane.io/v1\nkind: SriovPf\nmetadata: {name: " + name +
         "}\nspec:\n  device: \"" + device + "\"\n  numVfs: " + std::to_string(numVfs) + "\n";
}

class SriovPfEmu : public ::testing::Test {
 protected:
  void SetUp() override { start(VgpuEmulator::defaultLayout()); }
  void start(const Json& layout) {
    emu_.reset();
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (a FUSE mount)";
    std::string why;
    auto started = VgpuEmulator::start(layout, &why);
    ASSERT_TRUE(started) << "the emulator did not start: " << why;
    emu_.emplace(std::move(*started));
    config_.write("agent.yaml", "lockTimeoutSeconds: 5\nvgpu:\n  sriovManage: " +
                                    emu_->sriovManage().string() + "\n  writeTimeoutSeconds: 5\n");
  }
  CliResult np(std::vector<std::string> args) {
    std::vector<std::string> argv = {NODEPLANE_BINARY,
                                     "--state-dir",
                                     (state_ / "state").string(),
                                     "--config",
                                     (config_ / "agent.yaml").string(),
                                     "--plugin-dir",
                                     NODEPLANE_BUILD_PLUGIN_DIR,
                                     "--sysfs-root",
                                     emu_->sysfsRoot().string(),
                                     "--dev-root",
                                     emu_->devRoot().string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv);
  }
  fs::path dev(const std::string& a) const { return emu_->sysfsRoot() / "bus/pci/devices" / a; }
  std::string numVfs(const std::string& pf) const {
    std::string s = slurp(dev(pf) / "sriov_numvfs");
    while (!s.empty() && s.back() == '\n') s.pop_back();
    return s;
  }
  int links(const std::string& pf) const {
    int n = 0;
    std::error_code ec;
    for (fs::directory_iterator it(dev(pf), ec); !ec && it != fs::directory_iterator();
         it.increment(ec))
      n += it->path().filename().string().starts_with("virtfn");
    return n;
  }
  int writesTo(const std::string& pf) const {
    Json w = emu_->writes();
    const std::string key = "bus/pci/devices/" + pf + "/sriov_numvfs";
    const Json files = w.value("files", Json::object());
    for (const auto& [file, n] : files.items())
      if (file.ends_with(pf + "/sriov_numvfs") || file == key) return n.get<int>();
    return 0;
  }

  // Sets a vGPU type on a VF by hand (what a Vgpu does), `type` or else the first creatable id
  // of its list; returns the id.
  std::string setTypeByHand(const std::string& vf, std::string type = "") {
    if (type.empty()) {
      const std::string list = slurp(dev(vf) / "nvidia/creatable_vgpu_types");
      for (std::size_t at = list.find('\n'); at != std::string::npos && type.empty();
           at = list.find('\n', at + 1)) {
        std::size_t s = list.find_first_not_of(" \t", at + 1);
        std::size_t e = list.find_first_of(" \t:", s);
        if (s != std::string::npos && e != std::string::npos) type = list.substr(s, e - s);
      }
      EXPECT_FALSE(type.empty()) << list;
    }
    EXPECT_EQ(run({"/bin/sh", "-c",
                   "printf " + type + " > " + (dev(vf) / "nvidia/current_vgpu_type").string()})
                  .code,
              0);
    return type;
  }
  // `nodeplane run` on the emulator, logging to <state>/daemon.log.
  ::testing::AssertionResult startDaemon(int resyncSeconds) {
    config_.write("agent.yaml",
                  "lockTimeoutSeconds: 5\nresyncSeconds: " + std::to_string(resyncSeconds) +
                      "\nvgpu:\n  sriovManage: " + emu_->sriovManage().string() +
                      "\n  writeTimeoutSeconds: 5\n");
    daemon_ = testing::spawnLogged(
        {NODEPLANE_BINARY, "--state-dir", (state_ / "state").string(), "--config",
         (config_ / "agent.yaml").string(), "--plugin-dir", NODEPLANE_BUILD_PLUGIN_DIR,
         "--sysfs-root", emu_->sysfsRoot().string(), "--dev-root", emu_->devRoot().string(), "run",
         "-f", desired_.path().string()},
        state_ / "daemon.log", state_ / "daemon.log");
    if (!daemon_) return ::testing::AssertionFailure() << daemon_.error;
    return ::testing::AssertionSuccess();
  }
  void stopDaemon() {
    ASSERT_TRUE(testing::sendSignal(daemon_, SIGTERM));
    EXPECT_EQ(testing::waitExitCode(daemon_, std::chrono::seconds(20)), 0)
        << slurp(state_ / "daemon.log");
  }
  // Polls the condition with a deadline; the daemon's death ends the wait.
  ::testing::AssertionResult eventually(const std::string& what,
                                        const std::function<bool()>& cond) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!cond()) {
      if (!testing::running(daemon_) || std::chrono::steady_clock::now() >= deadline)
        return ::testing::AssertionFailure() << "waiting for " << what << ": daemon log:\n"
                                             << slurp(state_ / "daemon.log");
      ::poll(nullptr, 0, 20);  // the polling interval of the condition, not a synchronisation
    }
    return ::testing::AssertionSuccess();
  }

  std::optional<VgpuEmulator> emu_;
  TempDir state_, config_, desired_;
  testing::Spawned daemon_;
};

TEST_F(SriovPfEmu, AGenericPfIsRaisedChangedThroughZeroAndPutBack) {
  desired_.write("pf.yaml", pfDoc("nic", kNic, 4));
  auto a = np({"apply", "-f", desired_.path().string()});
  ASSERT_EQ(a.code, 0) << a.out << a.err;
  EXPECT_EQ(numVfs(kNic), "4");
  EXPECT_EQ(links(kNic), 4);
  auto d = np({"diff", "-f", desired_.path().string()});
  EXPECT_EQ(d.code, 0) << "in sync: " << d.out << d.err;

  emu_->resetWrites();
  desired_.write("pf.yaml", pfDoc("nic", kNic, 6));
  a = np({"apply", "-f", desired_.path().string()});
  ASSERT_EQ(a.code, 0) << a.out << a.err;
  EXPECT_EQ(numVfs(kNic), "6");
  EXPECT_EQ(links(kNic), 6);
  EXPECT_EQ(writesTo(kNic), 2) << "4 -> 0 -> 6 (the kernel refuses 4 -> 6): " << emu_->writes();

  auto e = np({"export", "--kind", "SriovPf"});
  EXPECT_EQ(e.code, 0) << e.err;
  EXPECT_THAT(e.out, HasSubstr("kind: SriovPf"));
  EXPECT_THAT(e.out, HasSubstr("numVfs: 6"));
  EXPECT_THAT(e.out, HasSubstr(kNic));

  fs::remove(desired_ / "pf.yaml");
  a = np({"apply", "--allow-empty", "-f", desired_.path().string()});
  ASSERT_EQ(a.code, 0) << a.out << a.err;
  EXPECT_EQ(numVfs(kNic), "0") << "the count it found";
  EXPECT_EQ(links(kNic), 0);
}

TEST_F(SriovPfEmu, AnNvidiaGpuGetsItsVfsFromSriovManage) {
  desired_.write("pf.yaml", pfDoc("gpu", kNvidia, 4));
  auto a = np({"apply", "-f", desired_.path().string()});
  ASSERT_EQ(a.code, 0) << a.out << a.err;
  EXPECT_EQ(numVfs(kNvidia), "4");
  EXPECT_EQ(links(kNvidia), 4);
  EXPECT_TRUE(fs::exists(dev("0000:41:00.7") / "nvidia/current_vgpu_type"));
  EXPECT_EQ(writesTo(kNvidia), 0) << "no raw sriov_numvfs write on an NVIDIA PF";
  EXPECT_EQ(np({"diff", "-f", desired_.path().string()}).code, 0);

  desired_.write("pf.yaml", pfDoc("gpu", kNvidia, 2));
  auto v = np({"apply", "-f", desired_.path().string()});
  EXPECT_EQ(v.code, 1);
  EXPECT_THAT(v.err, HasSubstr((desired_ / "pf.yaml").string() + ":"));
  EXPECT_THAT(v.err, HasSubstr("numVfs must be 0 or 4 (its sriov_totalvfs), not 2"));

  fs::remove(desired_ / "pf.yaml");
  a = np({"apply", "--allow-empty", "-f", desired_.path().string()});
  ASSERT_EQ(a.code, 0) << a.out << a.err;
  EXPECT_EQ(numVfs(kNvidia), "0");
  EXPECT_EQ(links(kNvidia), 0);
}

TEST_F(SriovPfEmu, ASriovManageThatSaysSuccessAndFailsIsCaught) {
  Json layout = VgpuEmulator::defaultLayout();
  layout["sriovManageLies"] = true;
  start(layout);
  // The wait for VFs that never come is the write limit: the shortest there is.
  config_.write("agent.yaml", "lockTimeoutSeconds: 5\nvgpu:\n  sriovManage: " +
                                  emu_->sriovManage().string() + "\n  writeTimeoutSeconds: 1\n");
  ASSERT_EQ(emu_->control("nvml-client " + kNvidia + " on"), 0);
  desired_.write("pf.yaml", pfDoc("gpu", kNvidia, 4));
  auto a = np({"apply", "-f", desired_.path().string()});
  EXPECT_NE(a.code, 0);
  EXPECT_THAT(a.out + a.err, HasSubstr(" -e " + kNvidia + " exited 0, but " + kNvidia +
                                       " reads sriov_numvfs 0, 0 virtfn links after 1000 ms, "
                                       "not 4 VFs"));
  EXPECT_EQ(links(kNvidia), 0);
  // The NVML client goes: the next apply makes it.
  ASSERT_EQ(emu_->control("nvml-client " + kNvidia + " off"), 0);
  a = np({"apply", "-f", desired_.path().string()});
  EXPECT_EQ(a.code, 0) << a.out << a.err;
  EXPECT_EQ(links(kNvidia), 4);
}

TEST_F(SriovPfEmu, AfterARebootTheNextApplyPutsTheVfsBack) {
  desired_.write("nic.yaml", pfDoc("nic", kNic, 8));
  desired_.write("gpu.yaml", pfDoc("gpu", "0000:41:00.0", 4));
  ASSERT_EQ(np({"apply", "-f", desired_.path().string()}).code, 0);
  ASSERT_EQ(links(kNic), 8);
  ASSERT_EQ(links(kNvidia), 4);
  ASSERT_EQ(emu_->control("reboot"), 0);
  ASSERT_EQ(links(kNic), 0);
  ASSERT_EQ(links(kNvidia), 0);
  auto d = np({"diff", "-f", desired_.path().string()});
  EXPECT_EQ(d.code, 2) << d.out << d.err;
  EXPECT_THAT(d.out, HasSubstr("SriovPf/nic"));
  EXPECT_THAT(d.out, HasSubstr("numVfs: 0 -> 8"));
  auto a = np({"apply", "-f", desired_.path().string()});
  ASSERT_EQ(a.code, 0) << a.out << a.err;
  EXPECT_EQ(links(kNic), 8);
  EXPECT_EQ(links(kNvidia), 4);
  EXPECT_EQ(np({"diff", "-f", desired_.path().string()}).code, 0);
}

// A SriovPf taken over VFs that were already enabled (its record's count to put back is the
// count it has): deleting it only forgets the record, so it does not wait for the vGPUs on its
// VFs (it used to wait for ever: the core refused any delete of a busy object).
TEST_F(SriovPfEmu, ADeleteThatPutsBackTheCountItHasDoesNotWaitForTheVgpus) {
  ASSERT_EQ(run({emu_->sriovManage().string(), "-e", kNvidia}).code, 0);
  ASSERT_EQ(links(kNvidia), 4);
  desired_.write("pf.yaml", pfDoc("gpu", kNvidia, 4));
  auto a = np({"apply", "-f", desired_.path().string()});
  ASSERT_EQ(a.code, 0) << a.out << a.err;
  const std::string type = setTypeByHand("0000:41:00.5");
  ASSERT_FALSE(type.empty());

  fs::remove(desired_ / "pf.yaml");
  auto d = np({"diff", "-f", desired_.path().string()});
  EXPECT_EQ(d.code, 2) << d.out << d.err;
  EXPECT_THAT(d.out, HasSubstr("- SriovPf/gpu delete"));
  EXPECT_THAT(d.out, Not(HasSubstr("waits"))) << "the delete writes nothing";
  emu_->resetWrites();
  a = np({"apply", "--allow-empty", "-f", desired_.path().string()});
  ASSERT_EQ(a.code, 0) << a.out << a.err;
  EXPECT_EQ(links(kNvidia), 4) << "the count it found: sriov-manage -d was not run";
  EXPECT_EQ(emu_->writes().value("total", -1), 0) << emu_->writes();
  EXPECT_EQ(slurp(dev("0000:41:00.5") / "nvidia/current_vgpu_type").substr(0, type.size()), type);
  EXPECT_EQ(np({"export", "--kind", "SriovPf"}).out.find("SriovPf"), std::string::npos)
      << "forgotten";

  // Taken from 0, deleting it would disable the VFs: that still waits, naming the vGPU.
  setTypeByHand("0000:41:00.5", "0");
  ASSERT_EQ(run({emu_->sriovManage().string(), "-d", kNvidia}).code, 0);
  desired_.write("pf.yaml", pfDoc("gpu", kNvidia, 4));
  ASSERT_EQ(np({"apply", "-f", desired_.path().string()}).code, 0);
  setTypeByHand("0000:41:00.5", type);
  fs::remove(desired_ / "pf.yaml");
  d = np({"diff", "-f", desired_.path().string()});
  EXPECT_THAT(d.out, HasSubstr("- SriovPf/gpu delete [waits: has vGPUs (VF 0000:41:00.5: type " +
                               type + ")]"));
  a = np({"apply", "--allow-empty", "-f", desired_.path().string()});
  EXPECT_NE(a.code, 0);
  EXPECT_THAT(a.out + a.err, HasSubstr("has vGPUs (VF 0000:41:00.5: type " + type +
                                       "): not deleted until it is free"));
  EXPECT_EQ(links(kNvidia), 4);
}

// The level-triggered daemon: a "reboot" loses every VF; its next pass (the resync at the latest,
// every second here) puts them back, the NVIDIA GPU's through sriov-manage, without a person.
TEST_F(SriovPfEmu, TheDaemonPutsTheVfsBackAfterAReboot) {
  desired_.write("nic.yaml", pfDoc("nic", kNic, 8));
  desired_.write("gpu.yaml", pfDoc("gpu", kNvidia, 4));
  ASSERT_TRUE(startDaemon(1));
  auto allVfs = [&] { return links(kNic) == 8 && links(kNvidia) == 4; };
  ASSERT_TRUE(eventually("8 VFs on the NIC and 4 on the GPU", allVfs));
  ASSERT_EQ(emu_->control("reboot"), 0);
  EXPECT_EQ(links(kNic), 0);
  EXPECT_EQ(links(kNvidia), 0);
  EXPECT_TRUE(eventually("the VFs back after the reboot", allVfs));
  EXPECT_EQ(numVfs(kNic), "8");
  EXPECT_EQ(numVfs(kNvidia), "4");
  stopDaemon();
}

// A change held because a VF is in use proceeds soon after the user lets go, though closing a
// device node makes no event and the resync is ten minutes away: the daemon looks again at held
// changes of busy objects every few seconds (DaemonOptions::busyRecheck).
TEST_F(SriovPfEmu, TheDaemonMakesAHeldChangeSoonAfterTheVfIsClosed) {
  desired_.write("nic.yaml", pfDoc("nic", kNic, 4));
  ASSERT_TRUE(startDaemon(600));
  ASSERT_TRUE(eventually("4 VFs on the NIC", [&] { return links(kNic) == 4; }));
  {
    auto hold = emu_->hold("0000:5e:00.2");
    desired_.write("nic.yaml", pfDoc("nic", kNic, 2));
    ASSERT_TRUE(eventually("the change held", [&] {
      return slurp(state_ / "daemon.log").find("not updated until it is free") != std::string::npos;
    }));
    EXPECT_EQ(links(kNic), 4) << "not taken from under its user";
  }
  EXPECT_TRUE(eventually("2 VFs once the VF is closed", [&] { return links(kNic) == 2; }));
  stopDaemon();
}

// Through the plugin: the emulator's device nodes are under its own dev/.
struct Plugin {
  explicit Plugin(const VgpuEmulator& emu, const fs::path& state,
                  const fs::path& procRoot = "/proc")
      : rig(context(emu, procRoot), "vgpu") {
    config.stateDir = state;
    config.sriovManage = emu.sriovManage();
    config.writeTimeout = std::chrono::milliseconds(3000);
  }
  static HostContext context(const VgpuEmulator& emu, const fs::path& procRoot) {
    HostContext h;
    h.sysfsRoot = emu.sysfsRoot();
    h.devRoot = emu.devRoot();
    h.procRoot = procRoot;
    return h;
  }
  Outcome apply(Action a, const std::string& name, const std::string& device, int n,
                const std::string& uid = "") {
    Change c;
    c.action = a;
    c.id = {"SriovPf", name};
    c.desired = {{"device", device}, {"numVfs", n}};
    c.uid = uid;
    test::TestApplyContext ctx(rig.services);
    return kind.apply(c, ctx);
  }
  ObservedObject observed(const std::string& name) {
    auto o = kind.observe();
    EXPECT_TRUE(o) << o.error().str();
    if (o)
      for (auto& x : *o)
        if (x.id.name == name) return x;
    return {};
  }
  test::PluginRig rig;
  VgpuConfig config;
  SriovKind kind{rig.services, config};
};

TEST_F(SriovPfEmu, AVfInUseIsNotTakenAwayAndTheHolderIsNamed) {
  Plugin p(*emu_, state_ / "vgpu");
  ASSERT_TRUE(p.apply(Action::kCreate, "nic", kNic, 4).ok());
  EXPECT_EQ(p.observed("nic").busy, "");
  EXPECT_EQ(p.observed("nic").detail, "4 of 8 VFs");
  {
    auto hold = emu_->hold("0000:5e:00.2");
    const std::string me = "VF 0000:5e:00.2 in use by pid " + std::to_string(::getpid()) + " (";
    EXPECT_THAT(p.observed("nic").busy, HasSubstr(me));
    emu_->resetWrites();
    auto o = p.apply(Action::kUpdate, "nic", kNic, 2);
    EXPECT_EQ(o.error.kind, ErrorKind::kConflict);
    EXPECT_THAT(o.error.message, HasSubstr("0000:5e:00.0 from 4 to 2 VFs refused: " + me));
    o = p.apply(Action::kDelete, "nic", kNic, 0);
    EXPECT_EQ(o.error.kind, ErrorKind::kConflict);
    EXPECT_EQ(writesTo(kNic), 0);
    EXPECT_EQ(links(kNic), 4);
  }
  EXPECT_EQ(p.observed("nic").busy, "") << "closed: free";
  EXPECT_TRUE(p.apply(Action::kUpdate, "nic", kNic, 2).ok());
  EXPECT_EQ(links(kNic), 2);
}

// A user nodeplane cannot see (here: its /proc shows no process): the kernel's EBUSY is a
// retryable failure, tried again with backoff, not a hold that only a change of the object on
// the host would end (closing a VF changes nothing nodeplane observes).
TEST_F(SriovPfEmu, AVfTheKernelSaysIsBusyIsTriedAgainLater) {
  TempDir elsewhere;
  Plugin p(*emu_, state_ / "vgpu", elsewhere.path());
  ASSERT_TRUE(p.apply(Action::kCreate, "nic", kNic, 4).ok());
  {
    auto hold = emu_->hold("0000:5e:00.2");
    EXPECT_EQ(p.observed("nic").busy, "") << "not seen";
    auto o = p.apply(Action::kUpdate, "nic", kNic, 2);
    EXPECT_EQ(o.cls, Outcome::kRetryable) << o.error.str();
    EXPECT_THAT(o.error.message, HasSubstr("sriov_numvfs: Device or resource busy"));
    EXPECT_EQ(links(kNic), 4);
  }
  EXPECT_TRUE(p.apply(Action::kUpdate, "nic", kNic, 2).ok());
  EXPECT_EQ(links(kNic), 2);
}

TEST_F(SriovPfEmu, AGpuWithAVgpuTypeSetIsBusyEvenWhenNobodyHasItOpen) {
  Plugin p(*emu_, state_ / "vgpu");
  ASSERT_TRUE(p.apply(Action::kCreate, "gpu", kNvidia, 4).ok());
  ASSERT_EQ(links(kNvidia), 4);
  // A type on VF 1 (what a Vgpu does): the first creatable id of the list.
  const std::string id = setTypeByHand("0000:41:00.5");
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(p.observed("gpu").busy, "has vGPUs (VF 0000:41:00.5: type " + id + ")");
  auto o = p.apply(Action::kDelete, "gpu", kNvidia, 0);
  EXPECT_EQ(o.error.kind, ErrorKind::kConflict);
  EXPECT_EQ(links(kNvidia), 4) << "sriov-manage -d was not run";
}

}  // namespace
}  // namespace nodeplane::vgpu
