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

namespace nodeplane {
namespace {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

using ::nodeplane::testing::TempDir;

std::optional<fs::path> findBinary(const std::string& name) {
  for (const char* dir : {"/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/lib/systemd"}) {
    fs::path p = fs::path(dir) / name;
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return std::nullopt;
}

// The PIDs below `pid` (children, grandchildren, ...), read from /proc.
std::vector<pid_t> descendants(pid_t pid) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& task : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream in(task.path() / "children");
    pid_t child;
    while (in >> child) {
      out.push_back(child);
      for (pid_t d : descendants(child)) out.push_back(d);
    }
  }
  return out;
}

// A process started by the test; stopped (SIGTERM, then SIGKILL after a deadline) and reaped by
// PID when the test ends, together with anything it started that outlived it.
class Child {
 public:
  Child() = default;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() { stop(); }

  void adopt(pid_t pid) { child_ = ::nodeplane::testing::adoptChild(pid); }
  pid_t pid() const { return child_.pid; }
  bool running() const { return ::nodeplane::testing::running(child_); }

  void stop() {
    if (!child_) return;
    std::vector<pid_t> below = descendants(child_.pid);
    ::nodeplane::testing::sendSignal(child_, SIGTERM);
    if (!::nodeplane::testing::waitExit(child_, 5s)) ::nodeplane::testing::killAndReap(child_);
    for (pid_t d : below) ::kill(d, SIGKILL);  // only the ones it left behind still exist
  }

 private:
  ::nodeplane::testing::Spawned child_;
};

// Reads what a child writes to `fd` until it closes the pipe or the deadline passes.
std::string readUntilClosed(int fd, std::chrono::milliseconds limit, bool stopAtNewline) {
  std::string text;
  const auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    char buf[512];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    text.append(buf, static_cast<std::size_t>(n));
    if (stopAtNewline && text.find('\n') != std::string::npos) break;
  }
  return text;
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
  std::string address = readUntilClosed(pipeFds[0], 10s, true);
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

// Runs in the forked child: a user manager wants sd_booted() (/run/systemd/system). When the host
// was not booted with systemd (a container), give only this child a private /run that has it.
[[noreturn]] void execUserManager(const fs::path& systemd, const fs::path& runtimeDir, int errFd) {
  auto die = [&](const std::string& what) {
    std::string msg = what + ": " + std::strerror(errno);
    (void)!::write(errFd, msg.data(), msg.size());
    ::_exit(126);
  };
  ::setenv("XDG_RUNTIME_DIR", runtimeDir.c_str(), 1);
  ::setenv("DBUS_SESSION_BUS_ADDRESS", ("unix:path=" + (runtimeDir / "bus").string()).c_str(), 1);
  ::setenv("SYSTEMD_LOG_TARGET", "console", 1);
  if (::access("/run/systemd/system", F_OK) != 0) {
    if (::unshare(CLONE_NEWNS) != 0) die("unshare(CLONE_NEWNS)");
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) die("make / private");
    if (::mount("tmpfs", "/run", "tmpfs", 0, "mode=0755") != 0) die("mount tmpfs on /run");
    if (::mkdir("/run/systemd", 0755) != 0 || ::mkdir("/run/systemd/system", 0755) != 0) {
      die("mkdir /run/systemd/system");
    }
  }
  int devnull = ::open("/dev/null", O_RDWR);
  if (devnull >= 0) {
    ::dup2(devnull, 0);
    ::dup2(devnull, 1);
  }
  ::execl(systemd.c_str(), "systemd", "--user", static_cast<char*>(nullptr));
  die("exec " + systemd.string());
  ::_exit(126);  // not reached: die() exits, but the compiler can't see it through the lambda
}

TEST(CheckSystemdBus, ReadsTheVersionOfARealUserManager) {
  auto systemd = findBinary("systemd");
  if (!systemd) GTEST_SKIP() << "systemd not installed";
  if (!fs::exists("/usr/lib/systemd/user/dbus.socket")) {
    GTEST_SKIP() << "no user dbus.socket unit (apt-get install dbus-user-session)";
  }
  if (::geteuid() != 0 && ::access("/run/systemd/system", F_OK) != 0) {
    GTEST_SKIP() << "host not booted with systemd and not root: cannot give systemd --user a "
                    "/run/systemd/system (CI runs as root)";
  }
  TempDir tmp;
  const fs::path runtimeDir = tmp.path() / "runtime";
  fs::create_directory(runtimeDir);
  fs::permissions(runtimeDir, fs::perms::owner_all, fs::perm_options::replace);

  int errPipe[2];
  ASSERT_EQ(::pipe2(errPipe, O_CLOEXEC), 0);
  Child manager;
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(errPipe[0]);
    execUserManager(*systemd, runtimeDir, errPipe[1]);
  }
  manager.adopt(pid);
  ::close(errPipe[1]);
  // The pipe closes on a successful exec; a message means the child could not set up.
  std::string setupError = readUntilClosed(errPipe[0], 10s, false);
  ::close(errPipe[0]);
  if (!setupError.empty()) GTEST_SKIP() << "cannot start systemd --user here: " << setupError;

  // systemd --user listens on $XDG_RUNTIME_DIR/bus (dbus.socket), starts dbus-daemon on the first
  // connection and registers org.freedesktop.systemd1 once that daemon runs: poll for it.
  const std::string address = "unix:path=" + (runtimeDir / "bus").string();
  const auto deadline = Clock::now() + 60s;
  CheckItem item;
  while (Clock::now() < deadline) {
    ASSERT_TRUE(manager.running()) << "systemd --user exited";
    item = probeSystemdBus(address, 2s);
    if (item.ok) break;
    ::poll(nullptr, 0, 100);
  }
  ASSERT_TRUE(item.ok) << "no systemd manager on " << address << " within 60 s: " << item.detail;
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
