#include "support/vgpu_emu.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>

#include "support/files.hpp"
#include "support/process.hpp"

extern char** environ;

namespace nodeplane::test {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

constexpr auto kReadyTimeout = 20s;
constexpr auto kStopTimeout = 10s;
constexpr auto kReleaseTimeout = 5s;

// Whether `path` is a mount point now (/proc/self/mountinfo, field 5).
bool mounted(const fs::path& path) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, devno, root, point;
    fields >> id >> parent >> devno >> root >> point;
    if (point == path.string()) return true;
  }
  return false;
}

json readJson(const fs::path& file) {
  std::string text = testing::slurp(file);
  json j = json::parse(text, nullptr, false);
  return j.is_discarded() ? json() : j;
}

// Waits for `pid` (through its pidfd when there is one) up to `timeout`; true once reaped.
bool reap(pid_t pid, int pidfd, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid || (r < 0 && errno == ECHILD)) return true;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    if (pidfd >= 0) {
      pollfd p{pidfd, POLLIN, 0};
      ::poll(&p, 1, static_cast<int>(left.count()));
    } else {
      ::poll(nullptr, 0, 10);  // no pidfd: re-check the child every 10 ms
    }
  }
}

}  // namespace

json VgpuEmulator::defaultLayout() {
  // The PCI paths of the first two as the research note's §7.1 / §7.2 lay them out.
  return json::parse(R"({"pfs": [
    {"address": "0000:41:00.0", "kind": "nvidia-sriov", "board": "L40S", "totalVfs": 4,
     "vfOffset": 4, "vfStride": 1, "numaNode": 0, "iommuGroup": 30,
     "upstream": "pci0000:40/0000:40:01.1"},
    {"address": "0000:3b:00.0", "kind": "nvidia-mdev", "board": "A100", "totalVfs": 4,
     "upstream": "pci0000:3a/0000:3a:00.0"},
    {"address": "0000:5e:00.0", "kind": "generic", "vendor": "8086", "device": "1592",
     "class": "020000", "driver": "ice", "totalVfs": 8}
   ],
   "sriovManageLies": false})");
}

std::optional<VgpuEmulator> VgpuEmulator::start(const json& layout, std::string* why) {
  if (::geteuid() != 0) {
    *why = "needs root (it mounts a FUSE filesystem)";
    return std::nullopt;
  }
  if (::access("/dev/fuse", R_OK | W_OK) != 0) {
    *why = std::string("/dev/fuse: ") + std::strerror(errno) + " (FUSE is not available here)";
    return std::nullopt;
  }
  char tmpl[] = "/tmp/nodeplane-vgpu-emu.XXXXXX";
  if (!::mkdtemp(tmpl)) {
    *why = std::string("mkdtemp: ") + std::strerror(errno);
    return std::nullopt;
  }
  VgpuEmulator emu;
  emu.dir_ = fs::canonical(tmpl);  // /proc/<pid>/fd shows canonical paths: so must DIR be
  emu.mount_ = emu.dir_ / "mnt";
  fs::create_directory(emu.mount_);
  testing::writeFile(emu.dir_ / "layout.json", layout.dump(2) + "\n");
  testing::writeFile(emu.dir_ / "sriov-manage",
                     std::string("#!/bin/sh\nexec '") + NODEPLANE_VGPU_EMU +
                         "' sriov-manage --mount '" + emu.mount_.string() + "' \"$@\"\n");
  fs::permissions(emu.dir_ / "sriov-manage", fs::perms(0755));
  testing::writeFile(emu.dir_ / "nvidia-smi", std::string("#!/bin/sh\nexec '") +
                                                  NODEPLANE_VGPU_EMU + "' nvidia-smi --mount '" +
                                                  emu.mount_.string() + "' \"$@\"\n");
  fs::permissions(emu.dir_ / "nvidia-smi", fs::perms(0755));

  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    *why = std::string("pipe: ") + std::strerror(errno);
    return std::nullopt;
  }
  const std::string log = (emu.dir_ / "emu.log").string();
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_addopen(&fa, 2, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<std::string> args = {NODEPLANE_VGPU_EMU,
                                   "--mount",
                                   emu.mount_.string(),
                                   "--layout",
                                   (emu.dir_ / "layout.json").string(),
                                   "--exit-with-parent"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, argv[0], &fa, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  ::close(out[1]);
  if (rc != 0) {
    ::close(out[0]);
    *why = std::string("cannot start ") + NODEPLANE_VGPU_EMU + ": " + std::strerror(rc);
    return std::nullopt;  // ~VgpuEmulator removes the dir
  }
  emu.pid_ = pid;
  emu.pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  const std::string line = testing::readUntilClosed(
      out[0], std::chrono::duration_cast<std::chrono::milliseconds>(kReadyTimeout), true);
  ::close(out[0]);
  if (line != "ready\n") {
    emu.stop();
    *why = "nodeplane-vgpu-emu did not become ready" +
           std::string(line.empty() ? "" : " (said \"" + line + "\")") + ": " +
           testing::slurp(emu.dir_ / "emu.log");
    return std::nullopt;
  }
  return emu;
}

VgpuEmulator::VgpuEmulator(VgpuEmulator&& other) noexcept
    : dir_(std::move(other.dir_)),
      mount_(std::move(other.mount_)),
      pid_(other.pid_),
      pidfd_(other.pidfd_) {
  other.dir_.clear();
  other.mount_.clear();
  other.pid_ = -1;
  other.pidfd_ = -1;
}

VgpuEmulator::~VgpuEmulator() {
  stop();
  if (dir_.empty()) return;
  // Never walk into a mount that is still there: remove_all would try to delete emulated files.
  if (mounted(mount_)) {
    std::fprintf(stderr, "VgpuEmulator: %s is still mounted; leaving %s\n", mount_.c_str(),
                 dir_.c_str());
    return;
  }
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

void VgpuEmulator::stop() {
  if (pid_ > 0) {
    // Through the pidfd where there is one: the PID may have been reaped and reused meanwhile.
    auto signal = [this](int sig) {
      if (pidfd_ >= 0)
        ::syscall(SYS_pidfd_send_signal, pidfd_, sig, nullptr, 0);
      else
        ::kill(pid_, sig);
    };
    signal(SIGTERM);
    if (!reap(pid_, pidfd_, kStopTimeout)) {
      signal(SIGKILL);
      reap(pid_, pidfd_, kStopTimeout);
    }
    pid_ = -1;
  }
  if (pidfd_ >= 0) ::close(pidfd_);
  pidfd_ = -1;
  // A crashed or killed emulator leaves its mount ("Transport endpoint is not connected").
  if (!mount_.empty() && mounted(mount_)) {
    testing::run({"/usr/bin/fusermount3", "-u", "-z", mount_.string()}, {}, 10s);
    if (mounted(mount_)) ::umount2(mount_.c_str(), MNT_DETACH);
  }
}

fs::path VgpuEmulator::sysfsRoot() const { return mount_; }
fs::path VgpuEmulator::devRoot() const { return mount_ / "dev"; }
fs::path VgpuEmulator::sriovManage() const { return dir_ / "sriov-manage"; }
fs::path VgpuEmulator::nvidiaSmi() const { return dir_ / "nvidia-smi"; }
std::string VgpuEmulator::log() const { return testing::slurp(dir_ / "emu.log"); }
std::string VgpuEmulator::lastReply() const { return testing::slurp(mount_ / ".emu/control"); }

int VgpuEmulator::control(const std::string& command) {
  const int fd = ::open((mount_ / ".emu/control").c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  const ssize_t n = ::write(fd, command.data(), command.size());
  const int err = n < 0 ? errno : 0;
  ::close(fd);
  return err;
}

json VgpuEmulator::writes() const { return readJson(mount_ / ".emu/writes"); }
json VgpuEmulator::holds() const { return readJson(mount_ / ".emu/holds"); }

void VgpuEmulator::resetWrites() {
  const int fd = ::open((mount_ / ".emu/reset").c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return;
  (void)!::write(fd, "1\n", 2);
  ::close(fd);
}

VgpuEmulator::Hold VgpuEmulator::hold(const std::string& id) {
  Hold h;
  h.holdsFile_ = mount_ / ".emu/holds";
  h.what_ = id;
  std::error_code ec;
  if (fs::exists(mount_ / "bus/pci/devices" / id, ec)) {
    for (const auto& e : fs::directory_iterator(mount_ / "bus/pci/devices" / id / "vfio-dev", ec))
      h.node_ = mount_ / "dev/vfio/devices" / e.path().filename();
    if (h.node_.empty()) {
      h.error_ = id + " has no vfio-dev/ (not a VF of the emulator)";
      return h;
    }
  } else if (fs::exists(mount_ / "bus/mdev/devices" / id, ec)) {
    auto group = fs::read_symlink(mount_ / "bus/mdev/devices" / id / "iommu_group", ec);
    if (ec) {
      h.error_ = id + ": no iommu_group link";
      return h;
    }
    h.node_ = mount_ / "dev/vfio" / group.filename();
  } else {
    h.error_ = "no VF or mdev " + id + " in the emulator now";
    return h;
  }
  h.fd_ = ::open(h.node_.c_str(), O_RDWR | O_CLOEXEC);
  if (h.fd_ < 0) h.error_ = h.node_.string() + ": " + std::strerror(errno);
  return h;
}

VgpuEmulator::Hold::Hold(Hold&& other) noexcept { *this = std::move(other); }

VgpuEmulator::Hold& VgpuEmulator::Hold::operator=(Hold&& other) noexcept {
  if (this != &other) {
    release();
    fd_ = other.fd_;
    node_ = std::move(other.node_);
    holdsFile_ = std::move(other.holdsFile_);
    what_ = std::move(other.what_);
    error_ = std::move(other.error_);
    other.fd_ = -1;
  }
  return *this;
}

VgpuEmulator::Hold::~Hold() { release(); }

void VgpuEmulator::Hold::release() {
  if (fd_ < 0) return;
  auto count = [this]() -> long {
    json j = readJson(holdsFile_);
    if (!j.is_object()) return -1;  // the emulator is gone
    return j.value(what_, 0L);
  };
  const long before = count();
  ::close(fd_);
  fd_ = -1;
  if (before <= 0) return;
  // FUSE sends the release after close() returns: wait until the emulator counted it.
  const auto deadline = std::chrono::steady_clock::now() + kReleaseTimeout;
  while (std::chrono::steady_clock::now() < deadline) {
    const long now = count();
    if (now < 0 || now < before) return;
    ::poll(nullptr, 0, 5);  // re-check interval, not a synchronisation
  }
  std::fprintf(stderr, "VgpuEmulator::Hold: the emulator did not see %s released\n", what_.c_str());
}

}  // namespace nodeplane::test
