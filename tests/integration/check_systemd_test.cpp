// The systemd-bus probe of `nodeplane check` against real buses: a private dbus-daemon without
// systemd on it (the probe must say why it failed), and a real `systemd --user` manager on its own
// private bus (the probe must read its version). Every process is started here and stopped by PID.
#include <fcntl.h>
#include <poll.h>
#include <sdbus-c++/sdbus-c++.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "check.hpp"
#include "host_services.hpp"
#include "netns.hpp"
#include "support/files.hpp"
#include "support/process.hpp"
#include "support/systemd_user.hpp"

namespace nodeplane {
namespace {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

using ::nodeplane::testing::Child;
using ::nodeplane::testing::SystemdUser;
using ::nodeplane::testing::TempDir;

std::optional<fs::path> findBinary(const std::string& name) {
  for (const char* dir : {"/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/lib/systemd"}) {
    fs::path p = fs::path(dir) / name;
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return std::nullopt;
}

// A config for a bare session bus: one socket, no activatable services, everything allowed.
void writeBusConfig(const fs::path& config, const fs::path& socket) {
  std::ofstream(config)
      << R"(<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=)"
      << socket.string() << R"(</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
)";
}

TEST(CheckSystemdBus, PrivateBusWithoutSystemdIsAClearFailure) {
  auto daemon = findBinary("dbus-daemon");
  if (!daemon) GTEST_SKIP() << "dbus-daemon not installed (apt-get install dbus)";
  TempDir tmp;
  const fs::path socket = tmp.path() / "bus";
  writeBusConfig(tmp.path() / "bus.conf", socket);

  int pipeFds[2];
  ASSERT_EQ(::pipe2(pipeFds, O_CLOEXEC), 0);
  Child bus;
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::dup2(pipeFds[1], 3);  // dup2 clears O_CLOEXEC on the copy
    std::string config = "--config-file=" + (tmp.path() / "bus.conf").string();
    ::execl(daemon->c_str(), "dbus-daemon", config.c_str(), "--nofork", "--print-address=3",
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  bus.adopt(pid);
  ::close(pipeFds[1]);
  // The daemon prints its address once it listens: that line is the readiness signal.
  std::string address = ::nodeplane::testing::readUntilClosed(pipeFds[0], 10s, true);
  ::close(pipeFds[0]);
  ASSERT_NE(address.find("unix:path="), std::string::npos) << "dbus-daemon printed: " << address;
  address.erase(address.find_last_not_of("\n") + 1);

  CheckItem item = probeSystemdBus(address, 2s);
  EXPECT_EQ(item.name, "systemd-bus");
  EXPECT_FALSE(item.ok);
  EXPECT_FALSE(item.required);
  EXPECT_NE(item.detail.find("org.freedesktop.DBus.Error.ServiceUnknown"), std::string::npos)
      << item.detail;
  EXPECT_NE(item.detail.find("org.freedesktop.systemd1"), std::string::npos) << item.detail;

  // "user" finds the session bus through DBUS_SESSION_BUS_ADDRESS.
  const char* saved = ::getenv("DBUS_SESSION_BUS_ADDRESS");
  std::optional<std::string> old = saved ? std::optional<std::string>(saved) : std::nullopt;
  ::setenv("DBUS_SESSION_BUS_ADDRESS", address.c_str(), 1);
  CheckItem user = probeSystemdBus("user", 2s);
  if (old) {
    ::setenv("DBUS_SESSION_BUS_ADDRESS", old->c_str(), 1);
  } else {
    ::unsetenv("DBUS_SESSION_BUS_ADDRESS");
  }
  EXPECT_FALSE(user.ok);
  EXPECT_NE(user.detail.find("ServiceUnknown"), std::string::npos) << user.detail;

  bus.stop();
  CheckItem gone = probeSystemdBus(address, 2s);
  EXPECT_FALSE(gone.ok);
  EXPECT_NE(gone.detail.find("cannot read the systemd manager version"), std::string::npos)
      << gone.detail;
}

TEST(CheckSystemdBus, ReadsTheVersionOfARealUserManager) {
  if (std::string why = SystemdUser::unavailable(); !why.empty()) GTEST_SKIP() << why;
  SystemdUser manager;
  if (!manager.setupError().empty()) GTEST_SKIP() << manager.setupError();
  ASSERT_TRUE(manager.ok()) << manager.error();
  const std::string address = manager.address();
  CheckItem item = probeSystemdBus(address, 2s);
  ASSERT_TRUE(item.ok) << item.detail;
  EXPECT_NE(item.detail.find("systemd 2"), std::string::npos) << item.detail;

  // The whole report with that bus: the probe's item is in it and passes.
  HostContext host;
  host.systemdBus = address;
  host.sysfsRoot = fs::path(NODEPLANE_SOURCE_DIR) / "tests/fixtures/sysfs/a-workstation";
  CheckReport report = runChecks(host);
  bool found = false;
  for (const auto& c : report.items) {
    if (c.name != "systemd-bus") continue;
    found = true;
    EXPECT_TRUE(c.ok) << c.detail;
  }
  EXPECT_TRUE(found);

  // The connection plugins get (HostServices::systemdBus): one per host, opened on first use,
  // and it reaches the manager.
  auto shared = std::make_shared<SharedHostServices>(host);
  PluginServices docker(shared), qemu(shared);
  auto bus = docker.systemdBus();
  ASSERT_TRUE(bus) << bus.error().str();
  auto again = qemu.systemdBus();
  ASSERT_TRUE(again) << again.error().str();
  EXPECT_EQ(*bus, *again) << "one shared connection";
  auto proxy = sdbus::createProxy(**bus, "org.freedesktop.systemd1", "/org/freedesktop/systemd1");
  sdbus::Variant version;
  proxy->callMethod("Get")
      .onInterface("org.freedesktop.DBus.Properties")
      .withTimeout(2s)
      .withArguments(std::string("org.freedesktop.systemd1.Manager"), std::string("Version"))
      .storeResultsTo(version);
  EXPECT_EQ(item.detail, "systemd " + version.get<std::string>() + " on the " + address + " bus");
  manager.stop();
}

}  // namespace
}  // namespace nodeplane
