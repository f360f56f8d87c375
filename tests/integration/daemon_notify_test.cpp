// The daemon's systemd protocol, against a real notify socket: READY=1 after the first pass,
// STATUS= lines, WATCHDOG=1 at half the watchdog interval, STOPPING=1 on SIGTERM.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <chrono>

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
  EXPECT_THAT(got, HasSubstr("STATUS=in sync; 1 resources: 1 created"));
  EXPECT_TRUE(linkExists("br-notify")) << "READY comes after the first pass";
  got = receiveUntil(fd, "WATCHDOG=1", std::chrono::seconds(5));
  EXPECT_THAT(got, HasSubstr("WATCHDOG=1"));

  sendSignal(daemon, SIGTERM);
  got = receiveUntil(fd, "STOPPING=1", std::chrono::seconds(10));
  EXPECT_THAT(got, HasSubstr("STOPPING=1"));
  EXPECT_EQ(waitExitCode(daemon, std::chrono::seconds(10)), 0) << slurp(dir / "daemon.log");
  ::close(fd);
}

}  // namespace
}  // namespace nodeplane::testing
