// The VirtualMachine spec side against the real tools: qemu-img makes and grows the overlay on a
// blank base image, genisoimage writes the NoCloud seed, and the argv qemuArgv builds starts a
// real qemu-system-x86_64 (-accel tcg, -S: stopped before the first instruction) that answers on
// its QMP socket. No GPUs (the argv of vfio-pci devices is checked in the unit tier). The tap
// test needs root (a private network namespace) and skips itself otherwise.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <fstream>

#include "cli_util.hpp"
#include "netns.hpp"
#include "nodeplane/host/tool.hpp"
#include "support/plugin_rig.hpp"
#include "vm_spec.hpp"

namespace nodeplane::testing {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
using qemu::QemuConfig;
using qemu::VmSpec;

constexpr std::int64_t kGiB = 1024LL * 1024 * 1024;

// Polls `cond` (a real condition: a socket that accepts) until it holds or `timeout`.
::testing::AssertionResult eventually(const std::string& what, const std::function<bool()>& cond,
                                      std::chrono::milliseconds timeout = 30s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (cond()) return ::testing::AssertionSuccess();
    if (std::chrono::steady_clock::now() >= deadline)
      return ::testing::AssertionFailure()
             << "timed out after " << timeout.count() << " ms waiting for: " << what;
    ::poll(nullptr, 0, 20);  // polling interval of the condition, not a synchronisation
  }
}

std::int64_t virtualSize(const fs::path& image) {
  auto r = run({"/usr/bin/qemu-img", "info", "-U", "--output=json", image.string()});
  auto j = Json::parse(r.out, nullptr, false);
  return j.is_object() ? j.value("virtual-size", std::int64_t{-1}) : -1;
}

std::string backingOf(const fs::path& image) {
  auto r = run({"/usr/bin/qemu-img", "info", "-U", "--output=json", image.string()});
  auto j = Json::parse(r.out, nullptr, false);
  return j.is_object() ? j.value("backing-filename", std::string()) : std::string();
}

// A QMP client just big enough for the test: one line per message, a deadline on every read.
class Qmp {
 public:
  ~Qmp() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool connect(const fs::path& socket) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", socket.c_str());
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) return true;
    ::close(fd_);
    fd_ = -1;
    return false;
  }
  // The next message that is not an event, or null after `timeout`.
  Json next(std::chrono::milliseconds timeout = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (auto nl = buf_.find('\n'); nl != std::string::npos) {
        Json j = Json::parse(buf_.substr(0, nl), nullptr, false);
        buf_.erase(0, nl + 1);
        if (j.is_object() && j.contains("event")) continue;
        return j;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return nullptr;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return nullptr;
      char chunk[4096];
      ssize_t n = ::read(fd_, chunk, sizeof chunk);
      if (n <= 0) return nullptr;
      buf_.append(chunk, static_cast<std::size_t>(n));
    }
  }
  Json execute(const std::string& command) {
    const std::string line = Json{{"execute", command}}.dump() + "\n";
    if (::write(fd_, line.data(), line.size()) != static_cast<ssize_t>(line.size())) return nullptr;
    return next();
  }

 private:
  int fd_ = -1;
  std::string buf_;
};

class VmToolsTest : public ::testing::Test {
 protected:
  VmToolsTest() : rig(HostContext{}, "qemu") {
    config.binary = "qemu-system-x86_64";
    config.imagesDir = dir / "images";
    config.instancesDir = dir / "instances";
    config.runDir = dir / "run";
    fs::create_directories(config.imagesDir);
    fs::create_directories(config.runDir);
  }
  // A blank qcow2 base image of `gib` GiB, made with the real qemu-img.
  void makeBase(const std::string& name, int gib) {
    auto r = run({"/usr/bin/qemu-img", "create", "-q", "-f", "qcow2",
                  (config.imagesDir / (name + ".qcow2")).string(), std::to_string(gib) + "G"});
    ASSERT_EQ(r.code, 0) << r.err;
  }

 public:
  VmSpec spec(const std::string& name = "vm1") {
    VmSpec s;
    s.name = name;
    s.vcpus = 1;
    s.memoryMiB = 128;
    s.diskBase = "blank";
    return s;
  }

  TempDir dir;
  test::PluginRig rig;
  QemuConfig config;
};

TEST_F(VmToolsTest, TheOverlayIsMadeOnceOnItsBaseGrownAndNeverShrunk) {
  makeBase("blank", 1);
  VmSpec s = spec();
  const auto layout = qemu::vmLayout(config, s.name);
  ASSERT_TRUE(qemu::ensureOverlay(s, layout, config));
  EXPECT_EQ(backingOf(layout.overlay), (config.imagesDir / "blank.qcow2").string());
  EXPECT_EQ(virtualSize(layout.overlay), kGiB) << "no size given: the base's";
  EXPECT_FALSE(fs::exists(layout.overlay.string() + ".tmp"));

  s.diskSizeGiB = 3;
  auto grown = qemu::ensureOverlay(s, layout, config);
  ASSERT_TRUE(grown) << grown.error().str();
  EXPECT_EQ(virtualSize(layout.overlay), 3 * kGiB);
  s.diskSizeGiB = 2;
  ASSERT_TRUE(qemu::ensureOverlay(s, layout, config));
  EXPECT_EQ(virtualSize(layout.overlay), 3 * kGiB) << "never shrunk";

  // A new VM asking for less than the base gets the base's size, not a cut disk.
  VmSpec small = spec("vm2");
  small.diskSizeGiB = 1;
  makeBase("big", 2);
  small.diskBase = "big";
  const auto l2 = qemu::vmLayout(config, "vm2");
  ASSERT_TRUE(qemu::ensureOverlay(small, l2, config));
  EXPECT_EQ(virtualSize(l2.overlay), 2 * kGiB);

  // The overlay stays on its base: a changed base is an error, not a silent new disk.
  s.diskBase = "big";
  auto moved = qemu::ensureOverlay(s, layout, config);
  ASSERT_FALSE(moved);
  EXPECT_THAT(moved.error().message,
              HasSubstr("is an overlay on " + (config.imagesDir / "blank.qcow2").string() +
                        ", not on " + (config.imagesDir / "big.qcow2").string()));
}

TEST_F(VmToolsTest, AMissingBaseImageIsAnErrorNamingThePath) {
  VmSpec s = spec();
  s.diskBase = "nowhere";
  auto r = qemu::ensureOverlay(s, qemu::vmLayout(config, s.name), config);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message,
            "base image " + (config.imagesDir / "nowhere.qcow2").string() + " not found");
  EXPECT_FALSE(fs::exists(config.instancesDir / "vm1" / "disk.qcow2"));
}

TEST_F(VmToolsTest, TheSeedIsoIsACidataVolumeWithTheFiles) {
  VmSpec s = spec();
  s.cloudInit = true;
  s.hostname = "seeded";
  s.mac = "52:54:00:00:00:01";
  s.address = "10.9.8.7/24";
  const auto files = qemu::seedFiles(s, "i-42");
  const fs::path iso = config.instancesDir / "vm1" / "seed.iso";
  fs::create_directories(iso.parent_path());
  auto w = qemu::writeSeedIso(files, iso, config);
  ASSERT_TRUE(w) << w.error().str();
  const std::string bytes = slurp(iso);
  ASSERT_GT(bytes.size(), 32768u + 72u);
  // ISO 9660: the primary volume descriptor in sector 16, its volume id at byte 40 (32 bytes).
  EXPECT_EQ(bytes.substr(32768 + 1, 5), "CD001");
  EXPECT_EQ(bytes.substr(32768 + 40, 6), "cidata");
  EXPECT_THAT(bytes, HasSubstr(files.userData));
  EXPECT_THAT(bytes, HasSubstr(files.metaData));
  EXPECT_THAT(bytes, HasSubstr(files.networkConfig));
  EXPECT_THAT(bytes, HasSubstr("network-config"));
  EXPECT_FALSE(fs::exists(iso.string() + ".tmp"));
  EXPECT_FALSE(fs::exists(iso.string() + ".d")) << "the files (user-data may hold secrets) go";

  QemuConfig noTool = config;
  noTool.isoBinary = "no-such-iso-tool";
  auto bad = qemu::writeSeedIso(files, iso, noTool);
  ASSERT_FALSE(bad);
  EXPECT_THAT(bad.error().message, HasSubstr("no-such-iso-tool not found on PATH"));
  EXPECT_EQ(slurp(iso), bytes) << "the old seed stays";
}

TEST_F(VmToolsTest, UefiVariablesAreCopiedOnceAndKept) {
  const auto layout = qemu::vmLayout(config, "vm1");
  auto code = qemu::ovmfCode(config);
  ASSERT_TRUE(code) << code.error().str();
  EXPECT_EQ(*code, fs::path("/usr/share/OVMF/OVMF_CODE_4M.fd"));
  ASSERT_TRUE(qemu::ensureVars(layout, config));
  EXPECT_EQ(slurp(layout.vars), slurp("/usr/share/OVMF/OVMF_VARS_4M.fd"));
  writeFile(layout.vars, "the guest wrote its boot order");
  ASSERT_TRUE(qemu::ensureVars(layout, config));
  EXPECT_EQ(slurp(layout.vars), "the guest wrote its boot order");
}

TEST_F(VmToolsTest, ToolsRunWithADeadline) {
  auto r = host::runTool({"/bin/sleep", "30"}, 200ms);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "/bin/sleep 30 did not finish within 200 ms: killed");
  auto ok = host::runToolOk({"/bin/sh", "-c", "echo out; echo err >&2; exit 3"}, 10s);
  ASSERT_FALSE(ok);
  EXPECT_EQ(ok.error().message,
            "/bin/sh -c echo out; echo err >&2; exit 3 failed (exit code 3): err");
}

// Boots the argv as far as QMP: QEMU parsed every option (disk, seed cdrom, firmware, console,
// QMP), built the machine, and stopped before the first instruction (-S).
void bootToQmp(VmToolsTest& t, const VmSpec& s, const std::string& firmware) {
  QemuConfig& config = t.config;
  const auto layout = qemu::vmLayout(config, s.name);
  ASSERT_TRUE(qemu::ensureOverlay(s, layout, config));
  if (s.cloudInit) {
    ASSERT_TRUE(qemu::writeSeedIso(qemu::seedFiles(s, "i-1"), layout.seed, config));
  }
  if (firmware == "uefi") {
    ASSERT_TRUE(qemu::ensureVars(layout, config));
  }
  auto argv = qemu::qemuArgv(s, layout, config, "tcg");
  ASSERT_TRUE(argv) << argv.error().str();
  argv->push_back("-S");
  Spawned q = spawn(*argv, {}, t.dir / (s.name + ".log"));
  ASSERT_TRUE(q) << q.error;
  Qmp qmp;
  ASSERT_TRUE(eventually("QEMU's QMP socket accepts",
                         [&] { return !running(q) || qmp.connect(layout.qmp); }));
  ASSERT_TRUE(running(q)) << slurp(t.dir / (s.name + ".log"));
  Json greeting = qmp.next();
  ASSERT_TRUE(greeting.contains("QMP")) << greeting.dump();
  EXPECT_EQ(qmp.execute("qmp_capabilities"), Json({{"return", Json::object()}}));
  Json status = qmp.execute("query-status");
  EXPECT_EQ(status["return"]["status"], "prelaunch") << status.dump();
  Json name = qmp.execute("query-name");
  EXPECT_EQ(name["return"]["name"], s.name);
  Json uuid = qmp.execute("query-uuid");
  EXPECT_EQ(uuid["return"]["UUID"], qemu::vmUuid(s.name));
  Json blocks = qmp.execute("query-block");
  std::string devices = blocks.dump();
  EXPECT_THAT(devices, HasSubstr(layout.overlay.string()));
  if (s.cloudInit) {
    EXPECT_THAT(devices, HasSubstr(layout.seed.string()));
  }
  if (firmware == "uefi") {
    EXPECT_THAT(devices, HasSubstr(layout.vars.string()));
  }
  qmp.execute("quit");
  EXPECT_EQ(waitExitCode(q, 30s), 0) << slurp(t.dir / (s.name + ".log"));
}

TEST_F(VmToolsTest, TheArgvStartsARealQemuThatAnswersOnQmp) {
  makeBase("blank", 1);
  VmSpec s = spec();
  s.cloudInit = true;
  s.hostname = "argv-test";
  bootToQmp(*this, s, "bios");
}

TEST_F(VmToolsTest, TheUefiArgvStartsARealQemuToo) {
  makeBase("blank", 1);
  VmSpec s = spec("vm-uefi");
  s.firmware = "uefi";
  bootToQmp(*this, s, "uefi");
}

// With a NIC: QEMU opens the tap named in the argv (here it makes it: in production the Tap
// child exists first, on the bridge).
TEST_F(VmToolsTest, TheNetworkArgvOpensTheTap) {
  if (!inPrivateNetns()) GTEST_SKIP() << "needs root to create a private network namespace";
  makeBase("blank", 1);
  VmSpec s = spec("vm-net");
  s.bridge = "br-vm";
  s.mac = qemu::derivedMac(s.name);
  s.tap = qemu::tapName(s.name);
  ASSERT_FALSE(linkExists(s.tap));
  const auto layout = qemu::vmLayout(config, s.name);
  ASSERT_TRUE(qemu::ensureOverlay(s, layout, config));
  auto argv = qemu::qemuArgv(s, layout, config, "tcg");
  ASSERT_TRUE(argv) << argv.error().str();
  argv->push_back("-S");
  Spawned q = spawn(*argv, {}, dir / "net.log");
  ASSERT_TRUE(q) << q.error;
  Qmp qmp;
  ASSERT_TRUE(eventually("QEMU's QMP socket accepts",
                         [&] { return !running(q) || qmp.connect(layout.qmp); }));
  ASSERT_TRUE(running(q)) << slurp(dir / "net.log");
  // The socket listens from the start; the greeting comes once the machine (its tap too) is made.
  Json greeting = qmp.next();
  ASSERT_TRUE(greeting.contains("QMP")) << greeting.dump();
  EXPECT_TRUE(linkExists(s.tap));
  qmp.execute("qmp_capabilities");
  qmp.execute("quit");
  EXPECT_EQ(waitExitCode(q, 30s), 0) << slurp(dir / "net.log");
}

}  // namespace
}  // namespace nodeplane::testing
