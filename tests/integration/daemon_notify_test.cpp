// The daemon's systemd protocol, against a real notify socket: READY=1 once loaded and watching
// (before the first pass), STATUS= lines, WATCHDOG=1 at half the watchdog interval, also while a
// long pass runs, STOPPING=1 on SIGTERM, also in the middle of a pass.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <chrono>
#include <string>
#include <vector>

#include "cli_util.hpp"
#include "netns.hpp"

namespace nodeplane::testing {
namespace {

using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

// Receives datagrams until one contains `what` or the deadline passes; returns all received.
std::string receiveUntil(int fd, const std::string& what, std::chrono::seconds limit) {
  std::string all;
  const auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline && all.find(what) == std::string::npos) {
    pollfd p{fd, POLLIN, 0};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (::poll(&p, 1, static_cast<int>(std::max<long>(left.count(), 1))) <= 0) continue;
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) all.append(buf, n).push_back('\n');
  }
  return all;
}

// A notify socket in `dir` and a daemon reporting to it over the desired files in dir/desired;
// `env` adds to the daemon's environment (the watchdog interval, test hooks).
struct NotifiedDaemon {
  NotifiedDaemon(const TempDir& d, std::vector<std::string> env) : dir(d) {
    const auto sockPath = dir / "notify.sock";
    fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sockPath.c_str());
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) return;
    env.push_back("NOTIFY_SOCKET=" + sockPath.string());
    daemon = spawn({NODEPLANE_BINARY, "--state-dir", (dir / "state").string(), "--config",
                    (dir / "agent.yaml").string(), "run", "-f", (dir / "desired").string()},
                   env, dir / "daemon.log");
  }
  ~NotifiedDaemon() {
    if (fd >= 0) ::close(fd);
    if (daemon) killAndReap(daemon);
    if (inPrivateNetns())  // the next test's daemon would find them marked as its own
      for (int i = 0; i < 20; ++i)
        if (linkExists("br-slow-" + std::to_string(i)))
          run({"/usr/sbin/ip", "link", "del", "br-slow-" + std::to_string(i)});
  }
  std::string log() const { return slurp(dir / "daemon.log"); }

  const TempDir& dir;
  int fd = -1;
  Spawned daemon;
};

// Bridges br-slow-0 .. br-slow-(n-1), in one file.
void writeBridges(TempDir& dir, int n) {
  std::string text;
  for (int i = 0; i < n; ++i)
    text += "---\napiVersion: nodeplane.io/v1\nkind: Bridge\nmetadata: {name: br-slow-" +
            std::to_string(i) + "}\n";
  dir.write("desired/br.yaml", text);
  dir.write("agent.yaml", "resyncSeconds: 3600\n");
}

TEST(DaemonNotify, SpeaksTheSystemdProtocol) {
  NODEPLANE_REQUIRE_NETNS();
  TempDir dir;
  dir.write("desired/br.yaml",
            "apiVersion: nodeplane.io/v1\nkind: Bridge\nmetadata: {name: br-notify}\n");
  dir.write("agent.yaml", "resyncSeconds: 3600\n");
  const auto sockPath = dir / "notify.sock";
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sockPath.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);

  Spawned daemon =
      spawn({NODEPLANE_BINARY, "--state-dir", (dir / "state").string(), "--config",
             (dir / "agent.yaml").string(), "run", "-f", (dir / "desired").string()},
            {"NOTIFY_SOCKET=" + sockPath.string(), "WATCHDOG_USEC=400000"}, dir / "daemon.log");
  ASSERT_TRUE(daemon) << daemon.error;

  std::string got = receiveUntil(fd, "READY=1", std::chrono::seconds(20));
  EXPECT_THAT(got, HasSubstr("READY=1"));
  got = receiveUntil(fd, "STATUS=in sync", std::chrono::seconds(20));
  EXPECT_THAT(got, HasSubstr("STATUS=in sync; 1 resources: 1 created"));
  EXPECT_TRUE(linkExists("br-notify"));
  got = receiveUntil(fd, "WATCHDOG=1", std::chrono::seconds(5));
  EXPECT_THAT(got, HasSubstr("WATCHDOG=1"));

  sendSignal(daemon, SIGTERM);
  got = receiveUntil(fd, "STOPPING=1", std::chrono::seconds(10));
  EXPECT_THAT(got, HasSubstr("STOPPING=1"));
  EXPECT_EQ(waitExitCode(daemon, std::chrono::seconds(10)), 0) << slurp(dir / "daemon.log");
  ::close(fd);
}

// READY=1 says "loaded and watching", not "converged": `systemctl start` must not wait for a
// first pass that takes minutes (here 3 steps of 1 s each).
TEST(DaemonNotify, ReadyComesBeforeASlowFirstPassEnds) {
  NODEPLANE_REQUIRE_NETNS();
  TempDir dir;
  writeBridges(dir, 3);
  NotifiedDaemon d(dir, {"NODEPLANE_TEST_STEP_DELAY_MS=1000"});
  ASSERT_TRUE(d.daemon) << d.daemon.error;
  std::string got = receiveUntil(d.fd, "READY=1", std::chrono::seconds(20));
  ASSERT_THAT(got, HasSubstr("READY=1")) << d.log();
  EXPECT_THAT(got, ::testing::Not(HasSubstr("STATUS=in sync"))) << "READY came after the pass";
  EXPECT_THAT(got, ::testing::Not(HasSubstr("STATUS=applying")));
  got = receiveUntil(d.fd, "STATUS=in sync", std::chrono::seconds(30));
  EXPECT_THAT(got, HasSubstr("STATUS=applying 1 of "));
  EXPECT_THAT(got, HasSubstr("STATUS=in sync; 3 resources: 3 created")) << d.log();
  sendSignal(d.daemon, SIGTERM);
  EXPECT_EQ(waitExitCode(d.daemon, std::chrono::seconds(10)), 0) << d.log();
}

// The watchdog is fed from the poll thread while the pass runs on its own: a pass longer than
// the watchdog interval (3 s against 400 ms) does not get the daemon killed by systemd.
TEST(DaemonNotify, WatchdogKeepsComingDuringALongPass) {
  NODEPLANE_REQUIRE_NETNS();
  TempDir dir;
  writeBridges(dir, 3);
  NotifiedDaemon d(dir, {"NODEPLANE_TEST_STEP_DELAY_MS=1000", "WATCHDOG_USEC=400000"});
  ASSERT_TRUE(d.daemon) << d.daemon.error;
  std::string got = receiveUntil(d.fd, "STATUS=in sync", std::chrono::seconds(30));
  ASSERT_THAT(got, HasSubstr("STATUS=in sync; 3 resources: 3 created")) << d.log();
  const std::string during = got.substr(0, got.find("STATUS=in sync"));
  // One every 200 ms: some 15 in 3 s; a pass that blocks the poll loop lets none through.
  EXPECT_GE(countOf(during, "WATCHDOG=1"), 5u) << "notifications during the pass:\n" << during;
  sendSignal(d.daemon, SIGTERM);
  EXPECT_EQ(waitExitCode(d.daemon, std::chrono::seconds(10)), 0) << d.log();
}

// SIGTERM in the middle of a 20 s pass: the step running ends, no other starts, the state store
// is committed, exit 0 at once. A following apply converges what was not done.
TEST(DaemonNotify, SigtermDuringALongPassExitsZeroPromptly) {
  NODEPLANE_REQUIRE_NETNS();
  TempDir dir;
  writeBridges(dir, 20);
  NotifiedDaemon d(dir, {"NODEPLANE_TEST_STEP_DELAY_MS=1000"});
  ASSERT_TRUE(d.daemon) << d.daemon.error;
  // The pass is under way once its first bridge is there (polled every 10 ms, with a deadline).
  for (const auto deadline = Clock::now() + std::chrono::seconds(30);
       !linkExists("br-slow-0") && Clock::now() < deadline;)
    ::poll(nullptr, 0, 10);
  ASSERT_TRUE(linkExists("br-slow-0")) << d.log();
  const auto t0 = Clock::now();
  ASSERT_TRUE(sendSignal(d.daemon, SIGTERM));
  std::string got = receiveUntil(d.fd, "STOPPING=1", std::chrono::seconds(30));
  EXPECT_THAT(got, HasSubstr("STOPPING=1"));
  EXPECT_EQ(waitExitCode(d.daemon, std::chrono::seconds(30)), 0) << d.log();
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
  // The step in flight (1 s) ends; the 18 or so not started are not tried.
  EXPECT_LT(took.count(), 5000) << d.log();
  EXPECT_FALSE(linkExists("br-slow-19")) << "the pass went on after SIGTERM";
  EXPECT_THAT(d.log(), HasSubstr("signal 15: stopping once the steps running now end"));
  EXPECT_THAT(d.log(), HasSubstr("apply interrupted: stopping, so"));

  auto apply = run({NODEPLANE_BINARY, "--state-dir", (dir / "state").string(), "apply", "-f",
                    (dir / "desired").string()});
  EXPECT_EQ(apply.code, 0) << apply.out << apply.err;
  for (int i = 0; i < 20; ++i)
    EXPECT_TRUE(linkExists("br-slow-" + std::to_string(i))) << i << ": " << apply.out << apply.err;
}

}  // namespace
}  // namespace nodeplane::testing
