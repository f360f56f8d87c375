// `nodeplane run` over the FUSE emulator of NVIDIA's vGPU sysfs: the daemon sets the types, a
// "reboot" of the emulated host loses VFs and types, and once the VFs are back (the driver's
// sriov-manage, SriovPf's part; written here through the emulator's control file) the daemon's
// next passes put every type back without a person, with exactly the writes needed. Needs root
// (the emulator mounts); skips itself otherwise.
#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <optional>

#include "support/files.hpp"
#include "support/process.hpp"
#include "support/vgpu_emu.hpp"

namespace nodeplane::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class VgpuDaemon : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (the emulator mounts a FUSE filesystem)";
    if (::access("/dev/fuse", F_OK) != 0) GTEST_SKIP() << "no /dev/fuse on this machine";
    std::string why;
    auto started = test::VgpuEmulator::start(test::VgpuEmulator::defaultLayout(), &why);
    ASSERT_TRUE(started) << "the emulator did not start: " << why;
    emu.emplace(std::move(*started));
    ASSERT_EQ(emu->control("sriov-manage -e ALL"), 0) << emu->log();
    // sysfs has no events: the resync (1 s) is what notices a reboot.
    root.write("agent.yaml",
               "apiVersion: nodeplane.io/v1\nkind: AgentConfig\nresyncSeconds: 1\n"
               "debounceMilliseconds: 100\nlockTimeoutSeconds: 10\n");
    for (auto [name, vf] : {std::pair{"a", 0}, {"b", 1}, {"c", 2}})
      root.write("desired/" + std::string(name) + ".yaml",
                 "apiVersion: nodeplane.io/v1\nkind: Vgpu\nmetadata: {name: " + std::string(name) +
                     "}\nspec: {parent: \"0000:41:00.0\", vf: " + std::to_string(vf) +
                     ", profile: L40S-16Q}\n");
  }
  void TearDown() override {
    if (daemon) killAndReap(daemon);
  }
  void startDaemon() {
    daemon = spawnLogged({NODEPLANE_BINARY, "--state-dir", (root / "state").string(), "--config",
                          (root / "agent.yaml").string(), "--sysfs-root", emu->sysfsRoot().string(),
                          "--log-level", "debug", "run", "-f", (root / "desired").string()},
                         root / "daemon.out", root / "daemon.log");
    ASSERT_TRUE(daemon) << daemon.error;
  }
  std::string logTail() const {
    std::string t = slurp(root / "daemon.log");
    if (t.size() > 6000) t = "...\n" + t.substr(t.size() - 6000);
    return "\n--- daemon log ---\n" + t + "--- end of log ---\n" + emu->log();
  }
  ::testing::AssertionResult eventually(const std::string& what, const std::function<bool()>& cond,
                                        std::chrono::milliseconds timeout = 30s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (cond()) return ::testing::AssertionSuccess();
      if (!running(daemon))
        return ::testing::AssertionFailure()
               << "the daemon exited while waiting for: " << what << logTail();
      if (std::chrono::steady_clock::now() >= deadline)
        return ::testing::AssertionFailure() << "timed out waiting for: " << what << logTail();
      ::poll(nullptr, 0, 10);  // polling interval of the condition, not a synchronisation
    }
  }
  std::string type(const std::string& vf) {
    std::string s = slurp(emu->sysfsRoot() / "bus/pci/devices" / vf / "nvidia/current_vgpu_type");
    return s.substr(0, s.find('\n'));
  }
  bool allSet() {
    return type("0000:41:00.4") == "1154" && type("0000:41:00.5") == "1154" &&
           type("0000:41:00.6") == "1154";
  }

  std::optional<test::VgpuEmulator> emu;
  TempDir root;
  Spawned daemon;
};

TEST_F(VgpuDaemon, AfterARebootEveryTypeIsBackOnceTheVfsAre) {
  emu->resetWrites();
  startDaemon();
  ASSERT_TRUE(eventually("three L40S-16Q set", [&] { return allSet(); }));
  EXPECT_EQ(type("0000:41:00.7"), "0");
  // Settled: passes that find nothing to do write nothing.
  std::size_t mark = slurp(root / "daemon.log").size();
  ASSERT_TRUE(eventually("two passes in sync", [&] {
    return countOf(slurp(root / "daemon.log").substr(mark), "in sync: 3 resources") >= 2;
  }));
  EXPECT_EQ(emu->writes()["total"], 3) << emu->writes().dump() << logTail();

  ASSERT_EQ(emu->control("reboot"), 0) << emu->log();
  emu->resetWrites();
  // No VFs: the daemon sees the types gone and waits for the VFs (retryable), writing nothing.
  mark = slurp(root / "daemon.log").size();
  ASSERT_TRUE(eventually("a pass that waits for the VFs", [&] {
    return slurp(root / "daemon.log").find("virtual functions are not enabled", mark) !=
           std::string::npos;
  }));
  EXPECT_EQ(emu->writes()["total"], 0) << logTail();
  ASSERT_EQ(emu->control("sriov-manage -e 0000:41:00.0"), 0) << emu->log();
  ASSERT_TRUE(eventually(
      "the three types back after the reboot", [&] { return allSet(); }, 60s));
  EXPECT_EQ(emu->writes()["total"], 3) << emu->writes().dump();
}

}  // namespace
}  // namespace nodeplane::testing
