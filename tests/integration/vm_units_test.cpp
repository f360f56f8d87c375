// The qemu plugin's host pieces against the real things: the QMP client against a real QEMU
// (TCG), transient units against a real `systemd --user` manager on a private bus.
#include <gtest/gtest.h>
#include <poll.h>
#include <sdbus-c++/sdbus-c++.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>

#include "qmp.hpp"
#include "support/files.hpp"
#include "support/process.hpp"
#include "support/systemd_user.hpp"
#include "units.hpp"

namespace nodeplane::qemu {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using testing::slurp;
using testing::SystemdUser;
using testing::TempDir;

const char* kQemu = "/usr/bin/qemu-system-x86_64";

// Asks `cond` until it holds or 30 s pass.
bool eventually(const std::function<bool()>& cond) {
  const auto deadline = Clock::now() + 30s;
  while (Clock::now() < deadline) {
    if (cond()) return true;
    ::poll(nullptr, 0, 20);  // the interval between two questions, not a synchronisation
  }
  return cond();
}

// Connects to a QEMU that is starting: its socket appears once it has parsed its command line.
Result<QmpClient> connectWhenUp(const fs::path& socket) {
  Result<QmpClient> c = fail(ErrorKind::kRetryable, "never tried");
  eventually([&] { return static_cast<bool>(c = QmpClient::connect(socket, 2s)); });
  return c;
}

TEST(QmpAgainstQemu, StatusCommandsAndEventsOfARealQemu) {
  if (::access(kQemu, X_OK) != 0)
    GTEST_SKIP() << kQemu << " not installed (apt-get install qemu-system-x86)";
  TempDir tmp;
  const fs::path socket = tmp.path() / "q.qmp";
  auto qemu = testing::spawn(
      {kQemu, "-accel", "tcg", "-machine", "q35", "-S", "-nodefaults", "-display", "none", "-m",
       "64", "-qmp", "unix:" + socket.string() + ",server=on,wait=off"},
      {}, tmp.path() / "qemu.log");
  ASSERT_TRUE(qemu) << qemu.error;
  auto client = connectWhenUp(socket);
  ASSERT_TRUE(client) << client.error().message << "\n" << slurp(tmp.path() / "qemu.log");

  auto status = client->execute("query-status");
  ASSERT_TRUE(status) << status.error().message;
  EXPECT_EQ((*status)["status"], "prelaunch");  // -S: not started yet
  ASSERT_TRUE(client->execute("cont"));
  auto resumed = client->waitEvent("RESUME", 10s);
  ASSERT_TRUE(resumed) << resumed.error().message;
  EXPECT_TRUE(resumed->has_value());
  status = client->execute("query-status");
  ASSERT_TRUE(status) << status.error().message;
  EXPECT_EQ((*status)["status"], "running");

  auto bad = client->execute("no-such-command");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("QMP no-such-command: CommandNotFound: "), std::string::npos)
      << bad.error().message;

  ASSERT_TRUE(client->execute("stop"));
  auto quit = client->execute("quit");
  ASSERT_TRUE(quit) << quit.error().message;
  // The events that came meanwhile were kept: STOP, then SHUTDOWN as QEMU quits.
  auto shutdown = client->waitEvent("SHUTDOWN", 10s);
  ASSERT_TRUE(shutdown) << shutdown.error().message;
  EXPECT_TRUE(shutdown->has_value());
  bool stopped = false;
  for (const auto& e : client->takeEvents()) stopped |= e["event"] == "STOP";
  EXPECT_TRUE(stopped);
  EXPECT_EQ(testing::waitExitCode(qemu, 10s), 0) << slurp(tmp.path() / "qemu.log");
}

// Whether root may raise RLIMIT_MEMLOCK to infinity here (asked in a child).
bool canRaiseMemlock() {
  auto r = testing::runForked(
      [] { return std::string(); },
      [] {
        rlimit inf{RLIM_INFINITY, RLIM_INFINITY};
        return std::string(::setrlimit(RLIMIT_MEMLOCK, &inf) == 0 ? "yes" : "no");
      });
  return r.ok && r.text == "yes";
}

class UnitsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = SystemdUser::unavailable(); !why.empty()) GTEST_SKIP() << why;
    manager_ = std::make_unique<SystemdUser>();
    if (!manager_->setupError().empty()) GTEST_SKIP() << manager_->setupError();
    ASSERT_TRUE(manager_->ok()) << manager_->error();
    bus_ = sdbus::createSessionBusConnectionWithAddress(manager_->address());
  }
  std::unique_ptr<SystemdUser> manager_;
  std::unique_ptr<sdbus::IConnection> bus_;
};

TEST_F(UnitsTest, StartsATransientUnitWithItsLimitsAndStopsIt) {
  UnitManager units(*bus_);
  TransientUnit u;
  u.name = "nodeplane-vm-t1.service";
  u.description = "nodeplane VM t1 (agent 00000000000000a1)";
  u.argv = {"/bin/sleep", "1000"};
  u.memlockInfinity = true;
  u.cpus = {0};
  u.numaNode = 0;
  u.stopTimeout = 5s;
  auto started = units.start(u, 30s);
  ASSERT_TRUE(started) << started.error().message;

  auto st = units.state(u.name);
  ASSERT_TRUE(st) << st.error().message;
  ASSERT_TRUE(st->has_value());
  EXPECT_EQ((*st)->activeState, "active");
  EXPECT_EQ((*st)->description, u.description);
  EXPECT_EQ((*st)->invocationId.size(), 32u);
  const pid_t pid = (*st)->mainPid;
  ASSERT_GT(pid, 0);
  const std::string proc = "/proc/" + std::to_string(pid);
  EXPECT_NE(slurp(proc + "/cmdline").find("1000"), std::string::npos);
  // What systemd was asked for, and what the process got where the host lets root raise the
  // limit (a sandbox may refuse: systemd then applies the closest limit it can).
  auto unitProxy =
      sdbus::createProxy(*bus_, "org.freedesktop.systemd1",
                         "/org/freedesktop/systemd1/unit/nodeplane_2dvm_2dt1_2eservice");
  EXPECT_EQ(unitProxy->getProperty("LimitMEMLOCK")
                .onInterface("org.freedesktop.systemd1.Service")
                .get<std::uint64_t>(),
            UINT64_MAX);
  std::string limits = slurp(proc + "/limits");
  if (canRaiseMemlock())
    EXPECT_NE(limits.find("Max locked memory         unlimited            unlimited"),
              std::string::npos)
        << limits;
  EXPECT_NE(slurp(proc + "/status").find("Cpus_allowed_list:\t0\n"), std::string::npos);
  EXPECT_NE(slurp(proc + "/numa_maps").find("bind:0"), std::string::npos);

  auto listed = units.list("nodeplane-vm-*.service");
  ASSERT_TRUE(listed) << listed.error().message;
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].name, u.name);
  EXPECT_EQ((*listed)[0].activeState, "active");
  EXPECT_EQ((*listed)[0].description, u.description);

  auto stopped = units.stop(u.name, 30s);
  ASSERT_TRUE(stopped) << stopped.error().message;
  st = units.state(u.name);
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_FALSE(st->has_value()) << "a stopped transient unit is gone: " << (*st)->activeState;
  EXPECT_NE(::kill(pid, 0), 0) << "the process is gone with its unit";
  // Stopping what is not there: done.
  EXPECT_TRUE(units.stop(u.name, 5s));
}

TEST_F(UnitsTest, AKilledUnitIsFailedAndItsNameCanBeStartedAgain) {
  UnitManager units(*bus_);
  TransientUnit u;
  u.name = "nodeplane-vm-t2.service";
  u.description = "t2";
  u.argv = {"/bin/sleep", "1000"};
  ASSERT_TRUE(units.start(u, 30s));
  auto st = units.state(u.name);
  ASSERT_TRUE(st && *st);
  ASSERT_EQ(::kill((*st)->mainPid, SIGKILL), 0);
  ASSERT_TRUE(eventually([&] {
    auto s = units.state(u.name);
    return s && *s && (*s)->activeState == "failed";
  }));
  st = units.state(u.name);
  EXPECT_EQ((*st)->result, "signal");
  auto again = units.start(u, 30s);
  ASSERT_TRUE(again) << again.error().message;
  st = units.state(u.name);
  ASSERT_TRUE(st && *st);
  EXPECT_EQ((*st)->activeState, "active");
  EXPECT_TRUE(units.stop(u.name, 30s));
}

TEST_F(UnitsTest, AProgramThatCannotRunFailsTheStart) {
  UnitManager units(*bus_);
  TransientUnit u;
  u.name = "nodeplane-vm-t3.service";
  u.description = "t3";
  u.argv = {"/nonexistent/qemu-system-x86_64", "-version"};
  auto r = units.start(u, 30s);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("starting nodeplane-vm-t3.service: job failed (failed, result "
                                   "exit-code)"),
            std::string::npos)
      << r.error().message;
  u.argv = {"sleep", "1"};
  r = units.start(u, 30s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "nodeplane-vm-t3.service: ExecStart needs an absolute program path");
}

}  // namespace
}  // namespace nodeplane::qemu
