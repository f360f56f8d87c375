// `nodeplane run` keeps a VM running on the unit's signals alone (the resync is an hour away):
// QEMU killed by PID, or its unit stopped by hand, is running again within 2 s; the VM outlives
// the daemon, and a daemon that starts again leaves a running VM alone.
#include <gmock/gmock.h>
#include <signal.h>

#include "vm_rig.hpp"

namespace nodeplane::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

using VmDaemon = VmRig;

TEST_F(VmDaemon, AKilledOrStoppedVmIsRunningAgainAndTheVmOutlivesTheDaemon) {
  writeVm("vm1", tinyVm("  state: running\n"));
  startDaemon();
  pid_t first = 0;
  ASSERT_TRUE(eventually("vm1 running", 120s, [&] {
    auto u = unit("vm1");
    if (!u || u->activeState != "active") return false;
    first = u->mainPid;
    return true;
  }));
  ASSERT_TRUE(eventually("the daemon watching unit events", 30s, [&] {
    return slurp(root_ / "daemon.log").find("watching systemd units nodeplane-vm-*") !=
           std::string::npos;
  }));
  ASSERT_TRUE(eventually("QMP running", 30s, [&] { return qmpStatus("vm1") == "running"; }));

  // QEMU killed by its PID: the unit fails, its signal brings the daemon, the VM runs again.
  ASSERT_EQ(::kill(first, SIGKILL), 0);
  auto t0 = Clock::now();
  pid_t second = 0;
  ASSERT_TRUE(eventually("vm1 running again after kill -9", 30s, [&] {
    auto u = unit("vm1");
    if (!u || u->activeState != "active" || u->mainPid == first) return false;
    second = u->mainPid;
    return true;
  }));
  EXPECT_LT(Clock::now() - t0, 2s) << "repaired on the unit's signals" << logTail();
  ASSERT_TRUE(eventually("QMP running again", 30s, [&] { return qmpStatus("vm1") == "running"; }));

  // Stopped by hand (systemctl --user stop): started again.
  auto stop = run({"/usr/bin/systemctl", "--user", "stop", "nodeplane-vm-vm1.service"},
                  {"XDG_RUNTIME_DIR=" + manager_->runtimeDir().string(),
                   "DBUS_SESSION_BUS_ADDRESS=" + manager_->address()},
                  60s);
  ASSERT_EQ(stop.code, 0) << stop.err;
  t0 = Clock::now();
  pid_t third = 0;
  ASSERT_TRUE(eventually("vm1 running again after systemctl stop", 30s, [&] {
    auto u = unit("vm1");
    if (!u || u->activeState != "active" || u->mainPid == second) return false;
    third = u->mainPid;
    return true;
  }));
  EXPECT_LT(Clock::now() - t0, 2s) << "repaired on the unit's signals" << logTail();

  // The daemon killed: the VM runs on. Started again: the VM is left alone.
  killAndReap(daemon_);
  daemon_ = Spawned{};
  ASSERT_TRUE(unitActive("vm1"));
  EXPECT_EQ(unit("vm1")->mainPid, third);
  fs::remove(root_ / "daemon.log");
  startDaemon();
  ASSERT_TRUE(eventually("the new daemon in sync", 60s, [&] {
    return slurp(root_ / "daemon.log").find("in sync:") != std::string::npos;
  }));
  ASSERT_TRUE(unitActive("vm1"));
  EXPECT_EQ(unit("vm1")->mainPid, third) << "a daemon start does not restart a VM" << logTail();
}

}  // namespace
}  // namespace nodeplane::testing
