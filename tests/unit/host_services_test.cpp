// The core's HostServices: sysfs writes under the root and with a real timeout, the inventory
// snapshot refreshed once per pass, the systemd bus connection's failure.
#include "host_services.hpp"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

#include "engine.hpp"
#include "plugin_host.hpp"
#include "support/files.hpp"

namespace nodeplane {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using ::nodeplane::testing::slurp;
using ::nodeplane::testing::TempDir;
using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

struct Services {
  TempDir root;
  std::shared_ptr<SharedHostServices> shared;
  PluginServices services;
  explicit Services(HostContext ctx = {})
      : shared(std::make_shared<SharedHostServices>(withRoot(ctx, root.path()))),
        services(shared) {}
  static HostContext withRoot(HostContext ctx, const fs::path& root) {
    if (ctx.sysfsRoot == "/sys") ctx.sysfsRoot = root;
    return ctx;
  }
};

// Reads a FIFO until `want` bytes came or 10 s passed.
std::string drain(const fs::path& fifo, std::size_t want) {
  int fd = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return "cannot open " + fifo.string();
  std::string got;
  const auto deadline = Clock::now() + 10s;
  while (got.size() < want && Clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    ::poll(&p, 1, 100);
    char buf[64];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) got.append(buf, n);
  }
  ::close(fd);
  return got;
}

TEST(HostServices, WritesARelativePathUnderTheSysfsRoot) {
  Services s;
  fs::create_directories(s.root / "bus/pci/drivers/vfio-pci");
  ::nodeplane::testing::writeFile(s.root / "bus/pci/drivers/vfio-pci/bind", "");
  ASSERT_TRUE(s.services.writeSysfs("bus/pci/drivers/vfio-pci/bind", "0000:3b:00.0", 1s));
  EXPECT_EQ(slurp(s.root / "bus/pci/drivers/vfio-pci/bind"), "0000:3b:00.0");
  // An absolute path inside the root is the same file.
  ASSERT_TRUE(s.services.writeSysfs(s.root / "bus/pci/drivers/vfio-pci/bind", "x", 1s));
}

TEST(HostServices, RefusesPathsOutsideTheSysfsRoot) {
  Services s;
  TempDir outside;
  ::nodeplane::testing::writeFile(outside / "victim", "keep");
  fs::create_directory_symlink(outside.path(), s.root / "escape");

  auto dots = s.services.writeSysfs("bus/../../victim", "x", 1s);
  ASSERT_FALSE(dots);
  EXPECT_EQ(dots.error().message,
            "refusing to write bus/../../victim: a sysfs path may not contain \"..\"");
  auto absolute = s.services.writeSysfs(outside / "victim", "x", 1s);
  ASSERT_FALSE(absolute);
  EXPECT_EQ(absolute.error().message, "refusing to write " + (outside / "victim").string() +
                                          ": it is not under the sysfs root " +
                                          s.root.path().string());
  auto link = s.services.writeSysfs("escape/victim", "x", 1s);
  ASSERT_FALSE(link);
  EXPECT_THAT(link.error().message, HasSubstr("it is not under the sysfs root"));
  EXPECT_EQ(slurp(outside / "victim"), "keep");
}

// open() of a FIFO for writing blocks until a reader comes, as a write to `unbind` can block in
// a driver: the call must come back after its timeout and say so, and the write still lands
// once the file lets it.
TEST(HostServices, AWriteThatHangsIsAbandonedAfterItsTimeout) {
  Services s;
  const fs::path fifo = s.root / "unbind";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const auto started = Clock::now();
  auto r = s.services.writeSysfs("unbind", "0000:3b:00.1", 200ms);
  const auto took = Clock::now() - started;
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kRetryable);
  EXPECT_EQ(r.error().message,
            "writing \"0000:3b:00.1\" to " + fifo.string() + " did not return within 200 ms");
  EXPECT_GE(took, 200ms);
  EXPECT_LT(took, 5s);

  // A reader unblocks the abandoned writer: what it wrote arrives.
  EXPECT_EQ(drain(fifo, 12), "0000:3b:00.1");
}

// Abandoned writes are not piled up without end: while kMaxHungWrites still hang, no new write
// starts; once they return, writes go through again.
TEST(HostServices, TooManyHungWritesRefuseTheNext) {
  Services s;
  std::vector<fs::path> fifos;
  for (int i = 0; i < SharedHostServices::kMaxHungWrites; ++i) {
    fifos.push_back(s.root / ("unbind" + std::to_string(i)));
    ASSERT_EQ(::mkfifo(fifos.back().c_str(), 0600), 0);
    ASSERT_FALSE(s.services.writeSysfs(fifos.back().filename(), "x", 20ms));
  }
  ::nodeplane::testing::writeFile(s.root / "bind", "");
  auto refused = s.services.writeSysfs("bind", "y", 1s);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().kind, ErrorKind::kRetryable);
  EXPECT_EQ(refused.error().message, "8 earlier sysfs writes have not returned; not writing to " +
                                         (s.root / "bind").string());
  for (const auto& f : fifos) EXPECT_EQ(drain(f, 1), "x");
  // The writers count themselves out as they return: wait for that, with a deadline.
  const auto deadline = Clock::now() + 10s;
  Result<void> again = refused;
  while (!again && Clock::now() < deadline) {
    again = s.services.writeSysfs("bind", "y", 1s);
    if (!again) ::poll(nullptr, 0, 10);  // polling interval of the condition
  }
  ASSERT_TRUE(again) << again.error().str();
  EXPECT_EQ(slurp(s.root / "bind"), "y");
}

TEST(HostServices, AFailedWriteSaysWhy) {
  Services s;
  auto r = s.services.writeSysfs("bus/pci/drivers/none/bind", "x", 1s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "cannot open " + (s.root / "bus/pci/drivers/none/bind").string() +
                                   ": No such file or directory");
}

TEST(HostServices, SystemdBusThatCannotBeReachedIsAnError) {
  TempDir tmp;
  HostContext ctx;
  ctx.systemdBus = "unix:path=" + (tmp / "no-bus").string();
  Services s(ctx);
  auto bus = s.services.systemdBus();
  ASSERT_FALSE(bus);
  EXPECT_EQ(bus.error().kind, ErrorKind::kRetryable);
  EXPECT_THAT(bus.error().message,
              HasSubstr("cannot connect to the unix:path=" + (tmp / "no-bus").string() + " bus: "));
  ctx.systemdBus = "session-of-someone-else";
  Services other(ctx);
  auto unknown = other.services.systemdBus();
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().message,
            "unknown systemd bus \"session-of-someone-else\" (want system, user or a unix: "
            "address)");
}

// The inventory is a snapshot per pass: the engine's observation starts a new one.
TEST(HostServices, InventoryIsReadOncePerPass) {
  TempDir tmp;
  const fs::path sysfs = tmp / "sys";
  fs::copy(::nodeplane::testing::sysfsFixture("a-workstation"), sysfs,
           fs::copy_options::recursive | fs::copy_options::copy_symlinks);
  HostContext ctx;
  ctx.sysfsRoot = sysfs;
  PluginHost host;
  ASSERT_TRUE(
      host.loadOne(fs::path(NODEPLANE_TEST_PLUGIN_DIR) / "widget" / "libnodeplane-widget.so", ctx));
  Engine engine(host, ctx);
  auto& services = host.forKind("Widget")->services();
  auto before = services.pciFunctions();
  ASSERT_TRUE(before) << before.error().str();
  ASSERT_FALSE(before->empty());
  fs::remove(sysfs / "bus/pci/devices" / before->front().address);
  auto same = services.pciFunctions();
  ASSERT_TRUE(same);
  EXPECT_EQ(same->size(), before->size()) << "the pass's snapshot";
  (void)engine.observe();
  auto after = services.pciFunctions();
  ASSERT_TRUE(after);
  EXPECT_EQ(after->size(), before->size() - 1) << "a new pass reads sysfs again";
}

}  // namespace
}  // namespace nodeplane
