// The NVIDIA vGPU sysfs emulator (tests/emulator/vgpu/README.md) on a real FUSE mount: every
// behaviour the README lists, asserted with plain open/write/read syscalls and the errno each
// refused write gives. Needs root (it mounts); skips itself otherwise.
#include "support/vgpu_emu.hpp"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>

#include "nodeplane/host/pci.hpp"
#include "support/files.hpp"
#include "support/process.hpp"

namespace nodeplane::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kL40S = "0000:41:00.0";
constexpr const char* kA100 = "0000:3b:00.0";
constexpr const char* kNic = "0000:5e:00.0";
constexpr const char* kUuid = "9d1e5c2a-1b2c-4d3e-8f40-123456789abc";
constexpr const char* kUuid2 = "0b7e1f3c-5a6d-4e8f-9a0b-c1d2e3f4a5b6";

// One write() of `text` to `file`: 0, or the errno of the open or the write.
int put(const fs::path& file, const std::string& text) {
  const int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  const ssize_t n = ::write(fd, text.data(), text.size());
  const int err = n < 0 ? errno : (n == static_cast<ssize_t>(text.size()) ? 0 : EIO);
  ::close(fd);
  return err;
}

// The whole file by read(): its content, or the errno of the open or a read.
struct ReadResult {
  int err = 0;
  std::string text;
};
ReadResult get(const fs::path& file) {
  ReadResult r;
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {errno, ""};
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      r.err = errno;
      break;
    }
    if (n == 0) break;
    r.text.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return r;
}

std::string linkOf(const fs::path& p) {
  std::error_code ec;
  auto t = fs::read_symlink(p, ec);
  return ec ? "<no link: " + ec.message() + ">" : t.string();
}

bool present(const fs::path& p) {
  std::error_code ec;
  return fs::exists(fs::symlink_status(p, ec));
}

const std::string kL40SFullList =
    "ID    : vGPU Name\n"
    "1145  : NVIDIA L40S-1B\n1146  : NVIDIA L40S-2B\n1147  : NVIDIA L40S-1Q\n"
    "1148  : NVIDIA L40S-2Q\n1149  : NVIDIA L40S-3Q\n1150  : NVIDIA L40S-4Q\n"
    "1151  : NVIDIA L40S-6Q\n1152  : NVIDIA L40S-8Q\n1153  : NVIDIA L40S-12Q\n"
    "1154  : NVIDIA L40S-16Q\n1155  : NVIDIA L40S-24Q\n1156  : NVIDIA L40S-48Q\n"
    "1157  : NVIDIA L40S-1A\n1158  : NVIDIA L40S-2A\n1159  : NVIDIA L40S-3A\n"
    "1160  : NVIDIA L40S-4A\n1161  : NVIDIA L40S-6A\n1162  : NVIDIA L40S-8A\n"
    "1163  : NVIDIA L40S-12A\n1164  : NVIDIA L40S-16A\n1165  : NVIDIA L40S-24A\n"
    "1166  : NVIDIA L40S-48A\n2164  : NVIDIA L40S-3B\n";
const std::string kHeader = "ID    : vGPU Name\n";

class VgpuEmulator : public ::testing::Test {
 protected:
  void SetUp() override { start(test::VgpuEmulator::defaultLayout()); }

  void start(const json& layout) {
    emu_.reset();
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (mounts a FUSE filesystem)";
    if (::access("/dev/fuse", F_OK) != 0) GTEST_SKIP() << "no /dev/fuse on this machine";
    std::string why;
    auto started = test::VgpuEmulator::start(layout, &why);
    ASSERT_TRUE(started) << "the emulator did not start: " << why;
    emu_.emplace(std::move(*started));
  }

  fs::path dev(const std::string& address) const {
    return emu_->sysfsRoot() / "bus/pci/devices" / address;
  }
  fs::path vf(const std::string& address, const std::string& file) const {
    return dev(address) / file;
  }
  fs::path type(const std::string& vfAddress) const {
    return vf(vfAddress, "nvidia/current_vgpu_type");
  }
  fs::path creatable(const std::string& vfAddress) const {
    return vf(vfAddress, "nvidia/creatable_vgpu_types");
  }
  fs::path mdevType(const std::string& vfAddress, int id, const std::string& file) const {
    return dev(vfAddress) / "mdev_supported_types" / ("nvidia-" + std::to_string(id)) / file;
  }
  CliResult sriovManage(const std::string& flag, const std::string& target) {
    return run({emu_->sriovManage().string(), flag, target}, {}, 30s);
  }
  void enable(const std::string& pf) {
    auto r = sriovManage("-e", pf);
    ASSERT_EQ(r.code, 0) << r.out << r.err;
  }

  std::optional<test::VgpuEmulator> emu_;
};

TEST_F(VgpuEmulator, LaysOutThePfsAsTheResearchNoteSays) {
  // §7.1: the link into devices/, the attribute formats, no nvidia/ on the PF, no VFs yet.
  EXPECT_EQ(linkOf(dev(kL40S)), "../../../devices/pci0000:40/0000:40:01.1/0000:41:00.0");
  EXPECT_EQ(get(dev(kL40S) / "vendor").text, "0x10de\n");
  EXPECT_EQ(get(dev(kL40S) / "device").text, "0x26b9\n");
  EXPECT_EQ(get(dev(kL40S) / "class").text, "0x030200\n");
  EXPECT_EQ(get(dev(kL40S) / "subsystem_vendor").text, "0x10de\n");
  EXPECT_EQ(get(dev(kL40S) / "revision").text, "0xa1\n");
  EXPECT_EQ(get(dev(kL40S) / "numa_node").text, "0\n");
  EXPECT_EQ(get(dev(kL40S) / "reset_method").text, "flr\n");
  EXPECT_EQ(get(dev(kL40S) / "sriov_totalvfs").text, "4\n");
  EXPECT_EQ(get(dev(kL40S) / "sriov_numvfs").text, "0\n");
  EXPECT_EQ(get(dev(kL40S) / "sriov_offset").text, "4\n");
  EXPECT_EQ(get(dev(kL40S) / "sriov_stride").text, "1\n");
  EXPECT_EQ(get(dev(kL40S) / "sriov_vf_device").text, "26b9\n");
  EXPECT_EQ(get(dev(kL40S) / "sriov_drivers_autoprobe").text, "1\n");
  EXPECT_EQ(get(dev(kL40S) / "uevent").text,
            "DRIVER=nvidia\nPCI_CLASS=30200\nPCI_ID=10DE:26B9\nPCI_SUBSYS_ID=10DE:1851\n"
            "PCI_SLOT_NAME=0000:41:00.0\n"
            "MODALIAS=pci:v000010DEd000026B9sv000010DEsd00001851bc03sc02i00\n");
  EXPECT_EQ(linkOf(dev(kL40S) / "driver"), "../../../../bus/pci/drivers/nvidia");
  EXPECT_EQ(linkOf(dev(kL40S) / "iommu_group"), "../../../../kernel/iommu_groups/30");
  EXPECT_TRUE(fs::exists(emu_->sysfsRoot() / "kernel/iommu_groups/30/devices" / kL40S));
  EXPECT_TRUE(fs::exists(emu_->sysfsRoot() / "bus/pci/drivers/nvidia" / kL40S));
  EXPECT_FALSE(present(dev(kL40S) / "nvidia"));
  EXPECT_FALSE(present(dev(kL40S) / "virtfn0"));
  EXPECT_FALSE(present(dev("0000:41:00.4")));
  EXPECT_FALSE(present(dev(kA100) / "mdev_supported_types"));  // Ampere: the VFs are the parents
  EXPECT_EQ(linkOf(dev(kA100)), "../../../devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0");
  EXPECT_EQ(get(dev(kNic) / "class").text, "0x020000\n");
  EXPECT_EQ(linkOf(dev(kNic) / "driver"), "../../../../bus/pci/drivers/ice");
  EXPECT_TRUE(fs::is_directory(emu_->sysfsRoot() / "bus/mdev/devices"));

  // nodeplane's own PCI reader understands the tree.
  auto f = host::readPciFunction(emu_->sysfsRoot(), kL40S);
  ASSERT_TRUE(f) << f.error().message;
  EXPECT_EQ(f->vendor, "10de");
  EXPECT_EQ(f->driver, "nvidia");
  EXPECT_EQ(f->iommuGroup, 30);
  EXPECT_EQ(f->totalVfs, 4);
  EXPECT_EQ(f->numVfs, 0);
  auto all = host::readPciFunctions(emu_->sysfsRoot());
  ASSERT_TRUE(all) << all.error().message;
  EXPECT_EQ(all->size(), 3u);
}

TEST_F(VgpuEmulator, ReadOnlyAndWriteOnlyFilesRefuseTheOtherWay) {
  enable(kL40S);
  enable(kA100);
  // kernfs: no store -> EACCES on open for writing; no show -> EACCES on open for reading.
  EXPECT_EQ(put(creatable("0000:41:00.4"), "1155"), EACCES);
  EXPECT_EQ(put(dev(kL40S) / "sriov_totalvfs", "2"), EACCES);
  EXPECT_EQ(put(dev(kL40S) / "vendor", "0x10de"), EACCES);
  EXPECT_EQ(get(mdevType("0000:3b:00.4", 468, "create")).err, EACCES);
  const int fd = ::open((dev(kL40S) / "new").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  EXPECT_EQ(fd < 0 ? errno : 0, EACCES) << "no new files";
  if (fd >= 0) ::close(fd);
  EXPECT_EQ(emu_->writes()["total"], 0) << "refused opens are not writes";
}

TEST_F(VgpuEmulator, GenericPfAnswersSriovNumvfsLikeTheKernel) {
  const fs::path numvfs = dev(kNic) / "sriov_numvfs";
  EXPECT_EQ(put(numvfs, "3\n"), 0);
  EXPECT_EQ(get(numvfs).text, "3\n");
  // Offset 1, stride 1; each VF its own group (PF group + 1 + k), physfn back to the PF.
  EXPECT_EQ(linkOf(dev(kNic) / "virtfn0"), "../0000:5e:00.1");
  EXPECT_EQ(linkOf(dev(kNic) / "virtfn2"), "../0000:5e:00.3");
  EXPECT_FALSE(present(dev(kNic) / "virtfn3"));
  EXPECT_EQ(linkOf(dev("0000:5e:00.1") / "physfn"), "../0000:5e:00.0");
  const std::string pfGroup = fs::path(linkOf(dev(kNic) / "iommu_group")).filename().string();
  EXPECT_EQ(fs::path(linkOf(dev("0000:5e:00.2") / "iommu_group")).filename().string(),
            std::to_string(std::stoi(pfGroup) + 2));
  EXPECT_EQ(get(dev("0000:5e:00.1") / "device").text, "0x1592\n");
  EXPECT_EQ(linkOf(dev("0000:5e:00.1") / "driver"), "../../../../bus/pci/drivers/vfio-pci");

  EXPECT_EQ(put(numvfs, "5"), EBUSY) << "N -> M";
  EXPECT_EQ(put(numvfs, "3"), 0) << "the same count";
  EXPECT_EQ(put(numvfs, "9"), ERANGE) << "above sriov_totalvfs";
  EXPECT_EQ(put(numvfs, "abc"), EINVAL);
  EXPECT_EQ(put(numvfs, "-1"), EINVAL);
  EXPECT_EQ(get(numvfs).text, "3\n");
  {
    auto held = emu_->hold("0000:5e:00.2");
    ASSERT_TRUE(held) << held.error();
    EXPECT_EQ(put(numvfs, "0"), EBUSY) << "a VF is open (the kernel would block)";
    EXPECT_EQ(get(numvfs).text, "3\n");
  }
  EXPECT_EQ(put(numvfs, "0"), 0);
  EXPECT_EQ(get(numvfs).text, "0\n");
  EXPECT_FALSE(present(dev(kNic) / "virtfn0"));
  EXPECT_FALSE(present(dev("0000:5e:00.1")));
  EXPECT_EQ(put(numvfs, "8"), 0);
  EXPECT_EQ(linkOf(dev(kNic) / "virtfn7"), "../0000:5e:01.0") << "function 7 rolls to device 1";
  EXPECT_EQ(put(dev(kNic) / "sriov_drivers_autoprobe", "0"), 0);
  EXPECT_EQ(get(dev(kNic) / "sriov_drivers_autoprobe").text, "0\n");
  EXPECT_EQ(put(dev(kNic) / "sriov_drivers_autoprobe", "maybe"), EINVAL);
}

TEST_F(VgpuEmulator, NvidiaVfsComeOnlyFromSriovManage) {
  const fs::path numvfs = dev(kL40S) / "sriov_numvfs";
  EXPECT_EQ(put(numvfs, "4"), ENOENT) << "nvidia has no sriov_configure";
  EXPECT_EQ(put(numvfs, "5"), ERANGE) << "the kernel checks the total first";
  EXPECT_EQ(put(numvfs, "0"), 0) << "the same count succeeds before the driver is asked";
  EXPECT_THAT(emu_->log(), HasSubstr("sriov_numvfs: ENOENT"));

  auto r = sriovManage("-e", kL40S);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "Enabling VFs on 0000:41:00.0\n");
  EXPECT_EQ(get(numvfs).text, "4\n") << "all VFs at once";
  EXPECT_EQ(linkOf(dev(kL40S) / "virtfn0"), "../0000:41:00.4");
  EXPECT_EQ(linkOf(dev(kL40S) / "virtfn3"), "../0000:41:00.7");
  EXPECT_EQ(get(numvfs).text, "4\n");
  EXPECT_EQ(get(dev(kA100) / "sriov_numvfs").text, "0\n") << "only the PF named";
  r = sriovManage("-e", kL40S);
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "GPU at 0000:41:00.0 already has VFs enabled.\n");

  const std::string v = "0000:41:00.4";
  EXPECT_EQ(get(dev(v) / "device").text, "0x26b9\n") << "a VF shows the PF's device id";
  EXPECT_EQ(get(dev(v) / "subsystem_device").text, "0x0000\n");
  EXPECT_EQ(linkOf(dev(v) / "physfn"), "../0000:41:00.0");
  EXPECT_EQ(linkOf(dev(v) / "driver"), "../../../../bus/pci/drivers/nvidia");
  EXPECT_EQ(linkOf(dev(v) / "iommu_group"), "../../../../kernel/iommu_groups/31");
  EXPECT_THAT(get(dev(v) / "uevent").text, HasSubstr("PCI_SUBSYS_ID=10DE:0000\n"));
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dev(v) / "nvidia"))
    files.push_back(e.path().filename().string());
  std::sort(files.begin(), files.end());
  EXPECT_EQ(files, (std::vector<std::string>{"creatable_vgpu_types", "current_vgpu_type",
                                             "gpu_instance_id", "placement_id", "vgpu_params",
                                             "warm_update"}));
  EXPECT_EQ((fs::status(creatable(v)).permissions() & fs::perms::all), fs::perms(0444));
  EXPECT_EQ((fs::status(type(v)).permissions() & fs::perms::all), fs::perms(0644));
  EXPECT_EQ(get(type(v)).text, "0\n");
  EXPECT_EQ(get(vf(v, "nvidia/vgpu_params")).text, "\n");
  EXPECT_EQ(get(vf(v, "nvidia/warm_update")).text, "0\n");
  EXPECT_EQ(get(vf(v, "nvidia/gpu_instance_id")).err, ENXIO) << "until a type is set";
  EXPECT_EQ(get(vf(v, "nvidia/placement_id")).err, ENXIO);
  // The VF's vfio cdev and its dev nodes.
  EXPECT_EQ(get(dev(v) / "vfio-dev/vfio0/dev").text, "508:0\n");
  EXPECT_TRUE(fs::exists(emu_->devRoot() / "vfio/devices/vfio0"));
  EXPECT_TRUE(fs::exists(emu_->devRoot() / "vfio/31"));
  EXPECT_TRUE(fs::exists(emu_->devRoot() / "vfio/devices/vfio3"));

  auto f = host::readPciFunction(emu_->sysfsRoot(), v);
  ASSERT_TRUE(f) << f.error().message;
  EXPECT_EQ(f->physfn, kL40S);
  EXPECT_TRUE(f->isVirtualFunction());

  r = sriovManage("-d", kL40S);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(get(numvfs).text, "0\n");
  EXPECT_FALSE(present(dev(v)));
  EXPECT_FALSE(present(emu_->devRoot() / "vfio/devices/vfio0"));

  r = sriovManage("-e", kNic);
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("0000:5e:00.0 is not an NVIDIA GPU"));
  r = sriovManage("-e", "ALL");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "Enabling VFs on 0000:41:00.0\nEnabling VFs on 0000:3b:00.0\n");
  EXPECT_EQ(get(dev(kNic) / "sriov_numvfs").text, "0\n") << "ALL means the NVIDIA GPUs";
}

TEST_F(VgpuEmulator, CurrentVgpuTypeWritesFollowTheDriver) {
  enable(kL40S);
  const fs::path t = type("0000:41:00.4");
  // kstrtol(buf, 10): no spaces, no hex.
  EXPECT_EQ(put(t, " 1155"), EINVAL);
  EXPECT_EQ(put(t, "1155 "), EINVAL);
  EXPECT_EQ(put(t, "0x483"), EINVAL);
  EXPECT_EQ(put(t, "\n"), EINVAL);
  EXPECT_EQ(put(t, "0"), EPERM) << "no vGPU to remove";
  EXPECT_EQ(put(t, "9999"), EIO) << "not a type of this GPU";
  EXPECT_EQ(put(t, "-1"), EIO) << "parses, then RM refuses";
  EXPECT_EQ(put(t, "1155\n"), 0);
  EXPECT_EQ(get(t).text, "1155\n");
  EXPECT_EQ(put(t, "1155"), EPERM) << "already created, even with the same id";
  EXPECT_EQ(put(t, "1154"), EPERM);
  EXPECT_EQ(get(vf("0000:41:00.4", "nvidia/gpu_instance_id")).text, "0\n");
  EXPECT_EQ(get(vf("0000:41:00.4", "nvidia/placement_id")).text, "0\n");
  EXPECT_EQ(put(type("0000:41:00.5"), "1155"), 0);
  EXPECT_EQ(get(vf("0000:41:00.5", "nvidia/placement_id")).text, "24\n") << "the next slot";
  EXPECT_EQ(put(t, "0"), 0) << "switching is 0, then the new id";
  EXPECT_EQ(get(t).text, "0\n");
  EXPECT_EQ(get(vf("0000:41:00.4", "nvidia/gpu_instance_id")).err, ENXIO);
  EXPECT_EQ(put(t, "1155"), 0);
  EXPECT_THAT(emu_->log(), HasSubstr("No vGPU exists on current device"));
  EXPECT_THAT(emu_->log(), HasSubstr("vGPU device already created with type ID 1155"));
}

TEST_F(VgpuEmulator, CreatableListsCollapseToTheSizeInUse) {
  enable(kL40S);
  EXPECT_EQ(get(creatable("0000:41:00.4")).text, kL40SFullList);
  EXPECT_EQ(get(creatable("0000:41:00.7")).text, kL40SFullList);
  ASSERT_EQ(put(type("0000:41:00.4"), "1155"), 0);  // 24Q
  EXPECT_EQ(get(creatable("0000:41:00.4")).text, kHeader) << "a VF with a type lists nothing";
  EXPECT_EQ(get(creatable("0000:41:00.5")).text,
            kHeader + "1155  : NVIDIA L40S-24Q\n1165  : NVIDIA L40S-24A\n")
      << "equal-size: only 24 GB types, of either series";
  EXPECT_EQ(put(type("0000:41:00.5"), "1154"), EIO) << "16Q: another size";
  EXPECT_EQ(put(type("0000:41:00.5"), "1165"), 0) << "24A: same size mixes";
  EXPECT_EQ(get(creatable("0000:41:00.6")).text, kHeader) << "48 GB used: the GPU is full";
  EXPECT_EQ(put(type("0000:41:00.6"), "1155"), EIO);
  EXPECT_EQ(put(type("0000:41:00.4"), "0"), 0);
  EXPECT_EQ(get(creatable("0000:41:00.6")).text,
            kHeader + "1155  : NVIDIA L40S-24Q\n1165  : NVIDIA L40S-24A\n");
  EXPECT_EQ(put(type("0000:41:00.5"), "0"), 0);
  EXPECT_EQ(get(creatable("0000:41:00.6")).text, kL40SFullList) << "empty again: everything";
}

TEST_F(VgpuEmulator, CapacityIsTheProfilesMaxInstances) {
  json layout = test::VgpuEmulator::defaultLayout();
  layout["pfs"][0]["totalVfs"] = 8;
  start(layout);
  enable(kL40S);
  // 12Q: min(48 / 12, max 4) = 4 fit on a GPU with 8 VFs.
  const std::vector<std::string> vfs = {"0000:41:00.4", "0000:41:00.5", "0000:41:00.6",
                                        "0000:41:00.7", "0000:41:01.0"};
  for (int k = 0; k < 4; ++k) EXPECT_EQ(put(type(vfs[k]), "1153"), 0) << vfs[k];
  EXPECT_EQ(get(creatable(vfs[4])).text, kHeader);
  EXPECT_EQ(put(type(vfs[4]), "1153"), EIO) << "a fifth 12Q does not fit";
  EXPECT_EQ(put(type(vfs[4]), "1152"), EIO) << "nor another size";
}

TEST_F(VgpuEmulator, MixedSizeModeMixesSizesUpToTheFramebuffer) {
  enable(kL40S);
  EXPECT_EQ(emu_->control("mixed-size 0000:41:00.0 on"), 0);
  EXPECT_EQ(put(type("0000:41:00.4"), "1155"), 0);  // 24
  EXPECT_EQ(put(type("0000:41:00.5"), "1153"), 0);  // 12
  EXPECT_THAT(get(creatable("0000:41:00.6")).text, HasSubstr("1153  : NVIDIA L40S-12Q\n"));
  EXPECT_THAT(get(creatable("0000:41:00.6")).text, Not(HasSubstr("L40S-16Q")));
  EXPECT_EQ(put(type("0000:41:00.6"), "1150"), 0);  // 4
  EXPECT_EQ(put(type("0000:41:00.7"), "1153"), EIO) << "12 more than the 8 left";
  EXPECT_EQ(put(type("0000:41:00.7"), "1152"), 0);  // 8: exactly full

  // The mode cannot change while any vGPU exists ("In use by another client").
  EXPECT_EQ(emu_->control("mixed-size 0000:41:00.0 off"), EBUSY);
  EXPECT_EQ(emu_->lastReply(), "error: In use by another client\n");
  // sriov-manage -e resets it.
  ASSERT_EQ(sriovManage("-d", kL40S).code, 0);
  EXPECT_EQ(emu_->control("mixed-size 0000:41:00.0 on"), 0);
  enable(kL40S);
  EXPECT_EQ(put(type("0000:41:00.4"), "1155"), 0);
  EXPECT_EQ(put(type("0000:41:00.5"), "1153"), EIO) << "equal-size again";
}

TEST_F(VgpuEmulator, AnOpenVfIsHeldLikeAVmHoldsIt) {
  enable(kL40S);
  const std::string v = "0000:41:00.4";
  ASSERT_EQ(put(type(v), "1155"), 0);
  {
    auto held = emu_->hold(v);
    ASSERT_TRUE(held) << held.error();
    EXPECT_EQ(held.node(), emu_->devRoot() / "vfio/devices/vfio0");
    EXPECT_EQ(emu_->holds(), json({{v, 1}}));
    // What the plugin's scan of /proc/*/fd finds: the node's path under --dev-root.
    bool seen = false;
    for (const auto& fd : fs::directory_iterator("/proc/self/fd"))
      seen |= linkOf(fd.path()) == held.node().string();
    EXPECT_TRUE(seen);

    EXPECT_EQ(put(type(v), "0"), EPERM) << "the VM uses the vGPU";
    EXPECT_EQ(emu_->control("held-errno EBUSY"), 0);
    EXPECT_EQ(put(type(v), "0"), EBUSY);
    EXPECT_EQ(put(vf(v, "nvidia/vgpu_params"), "frame_rate_limiter=0"), EPERM);
    auto r = sriovManage("-d", kL40S);
    EXPECT_EQ(r.code, 1);
    EXPECT_THAT(r.err, HasSubstr("VF 0000:41:00.4 is in use"));
    EXPECT_EQ(emu_->control("driver-reload 0000:41:00.0"), EBUSY);
    EXPECT_EQ(get(dev(kL40S) / "sriov_numvfs").text, "4\n");
    EXPECT_EQ(get(type(v)).text, "1155\n");
  }
  EXPECT_EQ(emu_->holds(), json::object()) << "released on the last close";
  EXPECT_EQ(put(type(v), "0"), 0);

  // The group node holds it too, and a VF without a type can be held (sriov-manage -d waits).
  {
    const fs::path group = emu_->devRoot() / "vfio/32";
    const int fd = ::open(group.c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    EXPECT_EQ(emu_->holds(), json({{"0000:41:00.5", 1}}));
    EXPECT_EQ(sriovManage("-d", kL40S).code, 1);
    ::close(fd);
  }
}

TEST_F(VgpuEmulator, BusyAfterCloseRefusesTheFirstZeroWrites) {
  enable(kL40S);
  const std::string v = "0000:41:00.6";
  ASSERT_EQ(emu_->control("busy-after-close 2"), 0);
  ASSERT_EQ(put(type(v), "1155"), 0);
  { auto vm = emu_->hold(v); }  // a VM ran and stopped
  EXPECT_EQ(put(type(v), "0"), EPERM);
  EXPECT_EQ(put(type(v), "0"), EPERM);
  EXPECT_EQ(put(type(v), "0"), 0) << "ready on the third try";
  EXPECT_THAT(emu_->log(), HasSubstr("busy-after-close"));
}

TEST_F(VgpuEmulator, MdevCreateRemoveAndAvailableInstances) {
  enable(kA100);
  const std::string v0 = "0000:3b:00.4", v1 = "0000:3b:00.5", v2 = "0000:3b:00.6";
  EXPECT_EQ(linkOf(emu_->sysfsRoot() / "class/mdev_bus" / v0),
            "../../devices/pci0000:3a/0000:3a:00.0/0000:3b:00.4");
  EXPECT_FALSE(present(dev(v0) / "nvidia")) << "the mdev model has no nvidia/ on the VF";
  EXPECT_EQ(get(mdevType(v0, 472, "name")).text, "NVIDIA A100-20C\n");
  EXPECT_EQ(get(mdevType(v0, 468, "description")).text,
            "num_heads=1, frl_config=60, framebuffer=4096M, max_resolution=4096x2400, "
            "max_instance=10\n");
  EXPECT_EQ(get(mdevType(v0, 468, "device_api")).text, "vfio-pci\n");
  EXPECT_EQ(get(mdevType(v0, 472, "available_instances")).text, "1\n");
  EXPECT_EQ(get(mdevType(v0, 474, "available_instances")).text, "0\n") << "MIG-backed, no MIG";
  EXPECT_EQ((fs::status(mdevType(v0, 472, "create")).permissions() & fs::perms::all),
            fs::perms(0200));

  const fs::path create = mdevType(v0, 472, "create");
  EXPECT_EQ(put(create, std::string(kUuid).substr(0, 35)), EINVAL) << "35 bytes";
  EXPECT_EQ(put(create, std::string(kUuid) + "\n\n"), EINVAL) << "38 bytes";
  EXPECT_EQ(put(create, "zd1e5c2a-1b2c-4d3e-8f40-123456789abc"), EINVAL) << "not hex";
  EXPECT_EQ(put(create, "9d1e5c2a_1b2c-4d3e-8f40-123456789abc"), EINVAL) << "no dash";
  EXPECT_EQ(put(create, "9D1E5C2A-1B2C-4D3E-8F40-123456789ABC\n"), 0);
  const fs::path mdev = emu_->sysfsRoot() / "bus/mdev/devices" / kUuid;  // named in lower case
  EXPECT_EQ(linkOf(mdev),
            std::string("../../../devices/pci0000:3a/0000:3a:00.0/0000:3b:00.4/") + kUuid);
  EXPECT_EQ(linkOf(mdev / "mdev_type"), "../mdev_supported_types/nvidia-472");
  EXPECT_TRUE(present(mdevType(v0, 472, "devices") / kUuid));
  EXPECT_EQ(get(mdev / "nvidia/vgpu_params").text, "\n");
  EXPECT_EQ(get(mdev / "nvidia/vm_name").text, "\n");
  const std::string group = fs::path(linkOf(mdev / "iommu_group")).filename().string();
  EXPECT_TRUE(fs::exists(emu_->devRoot() / "vfio" / group));
  EXPECT_TRUE(present(emu_->sysfsRoot() / "kernel/iommu_groups" / group / "devices" / kUuid));

  // After a create: this VF offers nothing; others only the same framebuffer.
  EXPECT_EQ(get(mdevType(v0, 472, "available_instances")).text, "0\n");
  EXPECT_EQ(get(mdevType(v0, 468, "available_instances")).text, "0\n");
  EXPECT_EQ(get(mdevType(v1, 472, "available_instances")).text, "1\n");
  EXPECT_EQ(get(mdevType(v1, 468, "available_instances")).text, "0\n");
  EXPECT_EQ(put(mdevType(v1, 472, "create"), kUuid), EEXIST) << "the UUID exists";
  EXPECT_EQ(put(mdevType(v1, 468, "create"), kUuid2), EIO) << "another size";
  EXPECT_EQ(put(mdevType(v1, 472, "create"), kUuid2), 0);
  EXPECT_EQ(get(mdevType(v2, 472, "available_instances")).text, "0\n") << "20C: max 2";
  EXPECT_EQ(put(mdevType(v2, 472, "create"), "11111111-2222-4333-8444-555555555555"), EIO);

  // Remove: kstrtoul; 0 does nothing; refused while a VM has it open.
  {
    auto vm = emu_->hold(kUuid);
    ASSERT_TRUE(vm) << vm.error();
    EXPECT_EQ(vm.node(), emu_->devRoot() / "vfio" / group);
    EXPECT_EQ(put(mdev / "remove", "1"), EPERM);
    EXPECT_EQ(put(mdev / "nvidia/vgpu_params", "frame_rate_limiter=0"), EPERM);
  }
  EXPECT_EQ(put(mdev / "remove", "x"), EINVAL);
  EXPECT_EQ(put(mdev / "remove", "0"), 0);
  EXPECT_TRUE(present(mdev));
  EXPECT_EQ(put(mdev / "remove", "1\n"), 0);
  EXPECT_FALSE(present(mdev));
  EXPECT_FALSE(present(dev(v0) / kUuid));
  EXPECT_FALSE(present(emu_->devRoot() / "vfio" / group));
  EXPECT_EQ(get(mdevType(v0, 472, "available_instances")).text, "1\n");
  EXPECT_EQ(get(mdevType(v0, 468, "available_instances")).text, "0\n") << "the other is 20C";
}

TEST_F(VgpuEmulator, VgpuParamsTakeUpTo1024Bytes) {
  enable(kL40S);
  const fs::path p = vf("0000:41:00.4", "nvidia/vgpu_params");
  EXPECT_EQ(put(p, std::string(1025, 'x')), E2BIG);
  EXPECT_EQ(put(p, std::string(1024, 'x')), 0);
  EXPECT_EQ(put(p, "intervaltime=16667,vgaintervaltime=16667\n"), 0);
  EXPECT_EQ(get(p).text, "intervaltime=16667,vgaintervaltime=16667\n");
  EXPECT_EQ(put(p, " \n"), 0) << "echo \" \" clears it";
  EXPECT_EQ(get(p).text, "\n");
}

TEST_F(VgpuEmulator, RebootAndDriverReloadLoseVfsTypesAndMdevs) {
  enable(kL40S);
  enable(kA100);
  ASSERT_EQ(put(dev(kNic) / "sriov_numvfs", "2"), 0);
  ASSERT_EQ(put(type("0000:41:00.4"), "1155"), 0);
  ASSERT_EQ(put(mdevType("0000:3b:00.4", 472, "create"), kUuid), 0);
  // A file opened before the reboot belongs to the VF that went: ENODEV even once a VF of the
  // same address is back.
  const int stale = ::open(type("0000:41:00.5").c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(stale, 0);

  ASSERT_EQ(emu_->control("reboot"), 0);
  for (const char* pf : {kL40S, kA100, kNic}) {
    EXPECT_EQ(get(dev(pf) / "sriov_numvfs").text, "0\n") << pf;
    EXPECT_FALSE(present(dev(pf) / "virtfn0")) << pf;
  }
  EXPECT_FALSE(present(dev("0000:41:00.4")));
  EXPECT_FALSE(present(emu_->sysfsRoot() / "bus/mdev/devices" / kUuid));
  EXPECT_TRUE(fs::is_empty(emu_->devRoot() / "vfio/devices"));

  enable(kL40S);
  EXPECT_EQ(get(type("0000:41:00.4")).text, "0\n") << "types are lost";
  EXPECT_EQ(get(creatable("0000:41:00.5")).text, kL40SFullList);
  EXPECT_EQ(::write(stale, "1155", 4), -1);
  EXPECT_EQ(errno, ENODEV);
  ::close(stale);

  // driver-reload: that PF only.
  enable(kA100);
  ASSERT_EQ(put(type("0000:41:00.4"), "1155"), 0);
  ASSERT_EQ(emu_->control("driver-reload 0000:3b:00.0"), 0);
  EXPECT_EQ(get(dev(kA100) / "sriov_numvfs").text, "0\n");
  EXPECT_EQ(get(type("0000:41:00.4")).text, "1155\n");
}

TEST_F(VgpuEmulator, ControlCommandsAndFaultInjection) {
  // Bad commands: EINVAL, and the log says why.
  EXPECT_EQ(emu_->control("frobnicate"), EINVAL);
  EXPECT_THAT(emu_->log(), HasSubstr("unknown command \"frobnicate\""));
  EXPECT_EQ(emu_->control("sriov-manage -x ALL"), EINVAL);
  EXPECT_THAT(emu_->lastReply(), HasSubstr("usage: sriov-manage <-e|-d> <pf|ALL>"));
  EXPECT_EQ(emu_->control("sriov-manage -e 0000:99:00.0"), EINVAL);
  EXPECT_EQ(emu_->control("fail-next bus/pci/devices/0000:41:00.0/sriov_numvfs EWHAT"), EINVAL);
  EXPECT_THAT(emu_->log(), HasSubstr("unknown errno name \"EWHAT\""));
  EXPECT_EQ(emu_->control("fail-next no/such/file EIO"), EINVAL);
  EXPECT_EQ(emu_->control("mixed-size 0000:5e:00.0 on"), EINVAL) << "not an NVIDIA GPU";
  EXPECT_EQ(emu_->control("busy-after-close many"), EINVAL);
  EXPECT_EQ(emu_->control("nvml-client 0000:41:00.0 maybe"), EINVAL);
  EXPECT_EQ(emu_->control(" \n"), EINVAL);

  // An NVML client holds the GPU: sriov-manage cannot get the unbindLock.
  ASSERT_EQ(emu_->control("nvml-client 0000:41:00.0 on"), 0);
  auto r = sriovManage("-e", kL40S);
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "Cannot obtain unbindLock for 0000:41:00.0\n");
  EXPECT_EQ(get(dev(kL40S) / "sriov_numvfs").text, "0\n");
  ASSERT_EQ(emu_->control("nvml-client 0000:41:00.0 off"), 0);
  enable(kL40S);

  // fail-next: by the bus/pci/devices path, or the real one under devices/; once.
  ASSERT_EQ(emu_->control("fail-next bus/pci/devices/0000:41:00.4/nvidia/current_vgpu_type EIO"),
            0);
  EXPECT_EQ(put(type("0000:41:00.4"), "1155"), EIO);
  EXPECT_EQ(put(type("0000:41:00.4"), "1155"), 0);
  ASSERT_EQ(emu_->control("fail-next devices/pci0000:40/0000:40:01.1/0000:41:00.5/nvidia/"
                          "current_vgpu_type EBUSY"),
            0);
  EXPECT_EQ(put(type("0000:41:00.5"), "1155"), EBUSY);
  EXPECT_EQ(get(type("0000:41:00.5")).text, "0\n") << "the failed write changed nothing";
  ASSERT_EQ(emu_->control("fail-next " + type("0000:41:00.6").string() + " ENODEV"), 0)
      << "an absolute path under the mount";
  EXPECT_EQ(put(type("0000:41:00.6"), "1155"), ENODEV);
  // A VF that does not exist yet, by the name its writes will have.
  ASSERT_EQ(emu_->control("fail-next bus/pci/devices/0000:5e:00.1/uevent ETIMEDOUT"), 0);
  ASSERT_EQ(put(dev(kNic) / "sriov_numvfs", "1"), 0);
  EXPECT_EQ(put(dev("0000:5e:00.1") / "uevent", "change"), ETIMEDOUT);
  EXPECT_EQ(put(dev("0000:5e:00.1") / "uevent", "change"), 0);
}

// MIG (note §5): the mode only while the VFs are off; sriov-manage -e removes the GPU
// instances; MIG-backed types offered one per free instance of their profile, time-sliced none;
// an instance holding a vGPU stays; nvidia-smi mig -lgi lists them as nvidia-smi does.
TEST_F(VgpuEmulator, MigModeGpuInstancesAndTheirTypes) {
  enable(kA100);
  const std::string a = kA100, v0 = "0000:3b:00.4", v1 = "0000:3b:00.5";
  auto smi = [&] { return run({emu_->nvidiaSmi().string(), "mig", "-lgi", "-i", a}, {}, 30s); };
  auto off = smi();
  EXPECT_EQ(off.code, 6);
  EXPECT_THAT(off.out, HasSubstr("No MIG-enabled devices found."));
  EXPECT_EQ(emu_->control("mig " + a + " on"), EBUSY) << "the VFs are enabled";
  EXPECT_THAT(emu_->lastReply(), HasSubstr("In use by another client"));
  ASSERT_EQ(sriovManage("-d", a).code, 0);
  ASSERT_EQ(emu_->control("mig " + a + " on"), 0) << emu_->lastReply();
  ASSERT_EQ(emu_->control("create-gi " + a + " 1g.5gb"), 0) << emu_->lastReply();
  ASSERT_EQ(sriovManage("-e", a).code, 0);
  EXPECT_THAT(smi().out, HasSubstr("No GPU instances found")) << "the rebind removed it";
  ASSERT_EQ(emu_->control("create-gi " + a + " 1g.5gb"), 0) << emu_->lastReply();
  EXPECT_EQ(emu_->lastReply(),
            "Successfully created GPU instance ID 1 on GPU 0000:3b:00.0 using profile MIG 1g.5gb "
            "(ID 19)\n");
  EXPECT_EQ(emu_->control("create-gi " + a + " 7g.40gb"), ENOSPC) << "1 of 7 slices taken";
  EXPECT_EQ(emu_->control("create-gi " + a + " 9g.1gb"), EINVAL);
  auto listed = smi();
  EXPECT_EQ(listed.code, 0);
  EXPECT_THAT(listed.out, HasSubstr("|   0  MIG 1g.5gb          19        1          0:1     |"));

  EXPECT_EQ(get(mdevType(v0, 474, "available_instances")).text, "1\n") << "a free 1g.5gb";
  EXPECT_EQ(get(mdevType(v0, 475, "available_instances")).text, "0\n") << "no 2g.10gb";
  EXPECT_EQ(get(mdevType(v0, 468, "available_instances")).text, "0\n") << "time-sliced, MIG on";
  ASSERT_EQ(put(mdevType(v0, 474, "create"), kUuid), 0);
  EXPECT_EQ(get(mdevType(v1, 474, "available_instances")).text, "0\n") << "its instance is used";
  EXPECT_EQ(put(mdevType(v1, 474, "create"), kUuid2), EIO);
  EXPECT_EQ(emu_->control("destroy-gi " + a + " 1"), EBUSY) << "it holds the vGPU";
  ASSERT_EQ(emu_->control("create-gi " + a + " 1g.5gb"), 0);
  EXPECT_EQ(put(mdevType(v1, 474, "create"), kUuid2), 0);
  ASSERT_EQ(emu_->control("reboot"), 0);
  ASSERT_EQ(sriovManage("-e", a).code, 0);
  EXPECT_THAT(smi().out, HasSubstr("No GPU instances found")) << "the mode stays, instances go";
}

TEST_F(VgpuEmulator, SriovManageCanLieAboutFailing) {
  json layout = test::VgpuEmulator::defaultLayout();
  layout["sriovManageLies"] = true;  // vGPU 17.2: exit 0 although VF creation failed
  start(layout);
  ASSERT_EQ(emu_->control("nvml-client 0000:41:00.0 on"), 0);
  auto r = sriovManage("-e", kL40S);
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("Cannot obtain unbindLock"));
  EXPECT_FALSE(present(dev(kL40S) / "virtfn0")) << "only the links tell the truth";
}

TEST_F(VgpuEmulator, CountsEveryWriteToTheEmulatedSysfs) {
  enable(kL40S);
  EXPECT_EQ(emu_->writes(), json({{"total", 0}, {"files", json::object()}}))
      << "sriov-manage writes the control file, which is not counted";
  ASSERT_EQ(put(type("0000:41:00.4"), "1155"), 0);
  ASSERT_EQ(put(type("0000:41:00.4"), "1155"), EPERM);  // refused writes count too
  ASSERT_EQ(put(type("0000:41:00.5"), "1155"), 0);
  ASSERT_EQ(put(dev(kNic) / "sriov_numvfs", "2"), 0);
  (void)get(type("0000:41:00.4"));  // reads do not
  (void)get(creatable("0000:41:00.6"));
  EXPECT_EQ(emu_->writes(), json({{"total", 4},
                                  {"files",
                                   {{"bus/pci/devices/0000:41:00.4/nvidia/current_vgpu_type", 2},
                                    {"bus/pci/devices/0000:41:00.5/nvidia/current_vgpu_type", 1},
                                    {"bus/pci/devices/0000:5e:00.0/sriov_numvfs", 1}}}}));
  emu_->resetWrites();
  EXPECT_EQ(emu_->writes(), json({{"total", 0}, {"files", json::object()}}));
  ASSERT_EQ(put(type("0000:41:00.4"), "0"), 0);
  EXPECT_EQ(emu_->writes()["total"], 1);
}

TEST_F(VgpuEmulator, ABadLayoutIsRefusedWithTheFieldPath) {
  json layout = test::VgpuEmulator::defaultLayout();
  layout["pfs"][1]["board"] = "H100";
  std::string why;
  EXPECT_FALSE(test::VgpuEmulator::start(layout, &why));
  EXPECT_THAT(why, HasSubstr("pfs[1].board: unknown board \"H100\" (known: L40S, A100)"));
  layout = test::VgpuEmulator::defaultLayout();
  layout["pfs"][0]["totalVFs"] = 4;
  EXPECT_FALSE(test::VgpuEmulator::start(layout, &why));
  EXPECT_THAT(why, HasSubstr("pfs[0].totalVFs: unknown key"));
  layout = test::VgpuEmulator::defaultLayout();
  layout["pfs"][2]["address"] = "0000:41:00.4";
  EXPECT_FALSE(test::VgpuEmulator::start(layout, &why));
  EXPECT_THAT(why, HasSubstr("address 0000:41:00.4 of pfs[2] is also pfs[0] VF 0"));
}

TEST_F(VgpuEmulator, TwoEmulatorsAtOnceDoNotCollide) {
  std::string why;
  auto other = test::VgpuEmulator::start(test::VgpuEmulator::defaultLayout(), &why);
  ASSERT_TRUE(other) << why;
  EXPECT_NE(other->sysfsRoot(), emu_->sysfsRoot());
  enable(kL40S);
  EXPECT_EQ(get(other->sysfsRoot() / "bus/pci/devices" / kL40S / "sriov_numvfs").text, "0\n");
  EXPECT_EQ(get(dev(kL40S) / "sriov_numvfs").text, "4\n");
}

TEST_F(VgpuEmulator, SigtermUnmountsAndExitsZero) {
  const fs::path root = emu_->sysfsRoot();
  const pid_t pid = emu_->pid();
  auto held = emu_->hold("0000:5e:00.1");  // not there: nothing held
  EXPECT_FALSE(held);
  EXPECT_THAT(held.error(), HasSubstr("no VF or mdev 0000:5e:00.1"));
  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  auto exited = adoptChild(pid);  // waits through a pidfd
  auto status = waitExit(exited, 20s);
  ASSERT_TRUE(status) << "still running 20 s after SIGTERM";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << describeStatus(*status);
  EXPECT_THAT(slurp("/proc/self/mountinfo"), Not(HasSubstr(root.string())));
  const fs::path dir = root.parent_path();
  emu_.reset();
  EXPECT_FALSE(fs::exists(dir)) << "the temp dir is removed";
}

}  // namespace
}  // namespace nodeplane::testing
