// Who has a VF's VFIO node open (plugins/vgpu/pf.hpp openersOf), on a fake /proc: a process of
// this mount namespace names the node by its path; one in a container or behind a bind mount
// names it by another path with the same tail, and is a user all the same.
#include "pf.hpp"

#include <gtest/gtest.h>

#include <filesystem>

#include "support/files.hpp"

namespace nodeplane::vgpu {
namespace {
namespace fs = std::filesystem;

struct FakeProc {
  ::nodeplane::testing::TempDir dir;
  // Process `pid` (its comm `command`) with fd 3 open on `target`.
  void process(int pid, const std::string& command, const fs::path& target) {
    const fs::path p = dir.path() / std::to_string(pid);
    fs::create_directories(p / "fd");
    ::nodeplane::testing::writeFile(p / "comm", command + "\n");
    ::nodeplane::testing::writeFile(p / "cgroup", "0::/user.slice\n");
    fs::create_symlink(target, p / "fd/3");
  }
};

TEST(OpenersOf, AProcessThatNamesTheNodeByAnotherPathWithItsTailIsAUser) {
  FakeProc proc;
  const fs::path group = "/dev/vfio/41", cdev = "/dev/vfio/devices/vfio3";
  proc.process(100, "qemu", group);                                          // this namespace
  proc.process(200, "in-container", "/var/lib/ctr/dev/vfio/devices/vfio3");  // a bind mount
  proc.process(300, "bystander", "/dev/vfio/410");                           // another group
  proc.process(400, "bystander", "/home/me/vfio/devices/vfio30");            // another device
  auto open = openersOf(proc.dir.path(), {group, cdev});
  ASSERT_EQ(open.size(), 2u);
  ASSERT_EQ(open[group].size(), 1u);
  EXPECT_EQ(open[group][0].pid, 100);
  ASSERT_EQ(open[cdev].size(), 1u);
  EXPECT_EQ(open[cdev][0].pid, 200);
  EXPECT_EQ(inUseBy(open[cdev]), "in use by pid 200 (in-container)");
}

}  // namespace
}  // namespace nodeplane::vgpu
