#include "support/systemd_user.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sdbus-c++/sdbus-c++.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>

namespace nodeplane::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

std::optional<fs::path> findBinary(const std::string& name) {
  for (const char* dir : {"/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/lib/systemd"}) {
    fs::path p = fs::path(dir) / name;
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return std::nullopt;
}

// A cgroup of its own beside the test's, in each hierarchy systemd tracks processes in (the
// named "systemd" one of a hybrid host, the unified one). A user manager takes the cgroup it
// starts in as its root: two managers started from one cgroup would both put a unit of the same
// name in <root>/app.slice/<unit>, and stopping one would kill the other's processes.
std::vector<fs::path> makeOwnCgroups(const std::string& leaf) {
  std::vector<fs::path> made;
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    fs::path mount;
    if (line.starts_with("0::")) {
      mount = fs::exists("/sys/fs/cgroup/unified/cgroup.procs") ? "/sys/fs/cgroup/unified"
                                                                : "/sys/fs/cgroup";
    } else if (line.find(":name=systemd:") != std::string::npos) {
      mount = "/sys/fs/cgroup/systemd";
    } else {
      continue;
    }
    const std::string path = line.substr(line.find(':', line.find(':') + 1) + 1);
    fs::path dir = mount / fs::path(path).relative_path() / leaf;
    std::error_code ec;
    if (fs::exists(mount / "cgroup.procs", ec) && fs::create_directory(dir, ec))
      made.push_back(dir);
  }
  return made;
}

// Removes a cgroup tree bottom-up (rmdir is how a cgroup goes; it fails while a process is in it).
void removeCgroup(const fs::path& dir) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_directory(ec)) removeCgroup(e.path());
  ::rmdir(dir.c_str());
}

// Runs in the forked child: a user manager wants sd_booted() (/run/systemd/system). When the host
// was not booted with systemd (a container), give only this child a private /run that has it.
[[noreturn]] void execUserManager(const fs::path& systemd, const fs::path& runtimeDir,
                                  const std::vector<fs::path>& cgroups, int errFd) {
  auto die = [&](const std::string& what) {
    std::string msg = what + ": " + std::strerror(errno);
    (void)!::write(errFd, msg.data(), msg.size());
    ::_exit(126);
  };
  for (const auto& cg : cgroups) {
    int fd = ::open((cg / "cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0 || ::write(fd, "0", 1) != 1) die("move into " + cg.string());
    ::close(fd);
  }
  ::setenv("XDG_RUNTIME_DIR", runtimeDir.c_str(), 1);
  ::setenv("DBUS_SESSION_BUS_ADDRESS", ("unix:path=" + (runtimeDir / "bus").string()).c_str(), 1);
  ::setenv("SYSTEMD_LOG_TARGET", "console", 1);
  ::unsetenv("NOTIFY_SOCKET");  // not the test's own service manager
  ::unsetenv("WATCHDOG_PID");
  ::unsetenv("WATCHDOG_USEC");
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

}  // namespace

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

void Child::adopt(pid_t pid) { child_ = adoptChild(pid); }

bool Child::running() const { return ::nodeplane::testing::running(child_); }

void Child::stop(std::chrono::milliseconds grace) {
  if (!child_) return;
  std::vector<pid_t> below = descendants(child_.pid);
  sendSignal(child_, SIGTERM);
  if (!waitExit(child_, grace)) killAndReap(child_);
  for (pid_t d : below) ::kill(d, SIGKILL);  // only the ones it left behind still exist
  child_ = Spawned{};
}

std::string SystemdUser::unavailable() {
  if (!findBinary("systemd")) return "systemd not installed";
  if (!fs::exists("/usr/lib/systemd/user/dbus.socket"))
    return "no user dbus.socket unit (apt-get install dbus-user-session)";
  if (::geteuid() != 0 && ::access("/run/systemd/system", F_OK) != 0)
    return "host not booted with systemd and not root: cannot give systemd --user a "
           "/run/systemd/system (CI runs as root)";
  return "";
}

SystemdUser::SystemdUser(std::chrono::milliseconds timeout) {
  if (std::string why = unavailable(); !why.empty()) {
    setupError_ = why;
    return;
  }
  runtimeDir_ = dir_.path() / "runtime";
  fs::create_directory(runtimeDir_);
  fs::permissions(runtimeDir_, fs::perms::owner_all, fs::perm_options::replace);
  const fs::path systemd = *findBinary("systemd");
  if (::geteuid() == 0) cgroups_ = makeOwnCgroups(dir_.path().filename().string());

  int errPipe[2];
  if (::pipe2(errPipe, O_CLOEXEC) != 0) {
    error_ = std::string("pipe2: ") + std::strerror(errno);
    return;
  }
  pid_t pid = ::fork();
  if (pid < 0) {
    error_ = std::string("fork: ") + std::strerror(errno);
    ::close(errPipe[0]);
    ::close(errPipe[1]);
    return;
  }
  if (pid == 0) {
    ::close(errPipe[0]);
    execUserManager(systemd, runtimeDir_, cgroups_, errPipe[1]);
  }
  manager_.adopt(pid);
  ::close(errPipe[1]);
  // The pipe closes on a successful exec; a message means the child could not set up.
  setupError_ = readUntilClosed(errPipe[0], 10s);
  ::close(errPipe[0]);
  if (!setupError_.empty()) {
    setupError_ = "cannot start systemd --user here: " + setupError_;
    return;
  }
  // systemd --user listens on $XDG_RUNTIME_DIR/bus (dbus.socket), starts dbus-daemon on the first
  // connection and registers org.freedesktop.systemd1 once that daemon runs: ask until it answers.
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (!manager_.running()) {
      error_ = "systemd --user exited before it answered on " + address();
      return;
    }
    if (!version(1s).empty()) return;
    if (Clock::now() >= deadline) {
      error_ = "no systemd manager on " + address() + " within " +
               std::to_string(std::chrono::duration_cast<std::chrono::seconds>(timeout).count()) +
               " s";
      return;
    }
    ::poll(nullptr, 0, 50);  // the interval between two questions, not a synchronisation
  }
}

SystemdUser::~SystemdUser() { stop(); }

std::string SystemdUser::address() const { return "unix:path=" + (runtimeDir_ / "bus").string(); }

std::string SystemdUser::version(std::chrono::milliseconds timeout) const {
  try {
    auto connection = sdbus::createSessionBusConnectionWithAddress(address());
    auto proxy =
        sdbus::createProxy(*connection, "org.freedesktop.systemd1", "/org/freedesktop/systemd1");
    sdbus::Variant v;
    proxy->callMethod("Get")
        .onInterface("org.freedesktop.DBus.Properties")
        .withTimeout(timeout)
        .withArguments(std::string("org.freedesktop.systemd1.Manager"), std::string("Version"))
        .storeResultsTo(v);
    return v.get<std::string>();
  } catch (const std::exception&) {
    return "";
  }
}

// SIGTERM makes the manager stop its units (each within its TimeoutStopSec) before it exits.
void SystemdUser::stop() {
  manager_.stop(std::chrono::seconds(30));
  for (const auto& cg : cgroups_) removeCgroup(cg);
  cgroups_.clear();
}

}  // namespace nodeplane::testing
