// SriovPf's moves over a copy of the sriov-host fixture, with a fake of the kernel's
// sriov_numvfs (kernel semantics: N -> M EBUSY, above the total ERANGE, VFs made and removed
// with their virtfn/physfn links) and sriov-manage stand-ins (scripts). The real kernel's answers
// are asserted in tests/e2e, the NVIDIA driver's through the emulator in the integration tests.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "sriov_kind.hpp"
#include "support/files.hpp"
#include "support/plugin_rig.hpp"

namespace nodeplane::vgpu {
namespace {
namespace fs = std::filesystem;

using ::nodeplane::testing::procFixture;
using ::nodeplane::testing::slurp;
using ::nodeplane::testing::sysfsFixture;
using ::nodeplane::testing::TempDir;

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// sriov_numvfs as the kernel's sriov_numvfs_store answers (drivers/pci/iov.c), over a tree.
class FakeKernel final : public HostServices {
 public:
  explicit FakeKernel(HostContext host)
      : shared_(std::make_shared<SharedHostServices>(std::move(host))), real_(shared_) {
    shared_->setAgentId(test::PluginRig::kAgentId);
  }
  const HostContext& context() const override { return real_.context(); }
  const Json& config() const override { return real_.config(); }
  std::string agentId() const override { return real_.agentId(); }
  Result<std::vector<host::PciFunction>> pciFunctions() override { return real_.pciFunctions(); }
  Result<std::vector<host::Gpu>> gpus() override { return real_.gpus(); }
  Result<sdbus::IConnection*> systemdBus() override {
    return fail(ErrorKind::kTerminal, "no bus in this test");
  }
  Result<void> writeSysfs(const fs::path& file, std::string_view value,
                          std::chrono::milliseconds) override {
    const std::string rel = file.string(), v = trimmed(std::string(value));
    log.push_back(rel + "=" + v);
    std::vector<std::string> part;
    for (const auto& p : file) part.push_back(p.string());
    if (part.size() != 5 || part[4] != "sriov_numvfs")
      return fail(ErrorKind::kTerminal, "the fake kernel has no file " + rel);
    auto err = [&](const char* what) {  // as HostServices::writeSysfs classifies errno
      const bool notNow = std::string_view(what) == "Device or resource busy";
      return fail(notNow ? ErrorKind::kRetryable : ErrorKind::kTerminal,
                  "writing \"" + v + "\" to " + rel + ": " + what);
    };
    const fs::path pf = dir(part[3]);
    if (trimmed(slurp(pf / "vendor")) == "0x10de") return err("No such file or directory");
    int want = 0;
    try {
      want = std::stoi(v);
    } catch (...) {
      return err("Invalid argument");
    }
    const int total = std::stoi(slurp(pf / "sriov_totalvfs")), now = numVfs(part[3]);
    if (want < 0) return err("Invalid argument");
    if (want > total) return err("Numerical result out of range");
    if (want == now || ignoreWrites) return {};
    if (now != 0 && want != 0) return err("Device or resource busy");
    setVfs(part[3], want);
    return {};
  }

  fs::path dir(const std::string& a) const {
    return context().sysfsRoot / "devices/pci0000:00" / a;
  }
  int numVfs(const std::string& pf) const { return std::stoi(slurp(dir(pf) / "sriov_numvfs")); }
  int links(const std::string& pf) const {
    int n = 0;
    for (const auto& e : fs::directory_iterator(dir(pf)))
      n += e.path().filename().string().starts_with("virtfn");
    return n;
  }
  // VF k at devfn(PF) + 1 + k, as QEMU's NVMe and most NICs place them.
  void setVfs(const std::string& pf, int n) {
    const fs::path sys = context().sysfsRoot;
    for (const auto& e : fs::directory_iterator(dir(pf))) {
      if (!e.path().filename().string().starts_with("virtfn")) continue;
      const std::string vf = fs::read_symlink(e.path()).filename().string();
      fs::remove_all(dir(vf));
      fs::remove(sys / "bus/pci/devices" / vf);
      fs::remove(e.path());
    }
    const int bus = std::stoi(pf.substr(5, 2), nullptr, 16);
    const int devfn = std::stoi(pf.substr(8, 2), nullptr, 16) * 8 + (pf[11] - '0');
    for (int k = 0; k < n; ++k) {
      char a[16];
      std::snprintf(a, sizeof a, "0000:%02x:%02x.%d", bus, (devfn + 1 + k) / 8,
                    (devfn + 1 + k) % 8);
      fs::create_directories(dir(a));
      fs::copy_file(dir(pf) / "vendor", dir(a) / "vendor");
      fs::copy_file(dir(pf) / "device", dir(a) / "device");
      fs::copy_file(dir(pf) / "class", dir(a) / "class");
      fs::create_symlink("../" + pf, dir(a) / "physfn");
      fs::create_symlink("../" + std::string(a), dir(pf) / ("virtfn" + std::to_string(k)));
      fs::create_symlink("../../../devices/pci0000:00/" + std::string(a),
                         sys / "bus/pci/devices" / a);
    }
    std::ofstream(dir(pf) / "sriov_numvfs") << n << "\n";
  }

  std::vector<std::string> log;
  bool ignoreWrites = false;  // every write succeeds and changes nothing

 private:
  std::shared_ptr<SharedHostServices> shared_;
  PluginServices real_;
};

struct Rig {
  TempDir tmp;
  HostContext host;
  std::unique_ptr<FakeKernel> kernel;
  VgpuConfig config;
  std::unique_ptr<SriovKind> kind;
  std::unique_ptr<test::TestApplyContext> ctx;

  Rig() {
    const auto how = fs::copy_options::recursive | fs::copy_options::copy_symlinks;
    fs::copy(sysfsFixture("sriov-host"), tmp / "sys", how);
    fs::copy(procFixture("sriov-host"), tmp / "proc", how);
    host.sysfsRoot = tmp / "sys";
    host.procRoot = tmp / "proc";
    host.devRoot = "/dev";
    kernel = std::make_unique<FakeKernel>(host);
    config.stateDir = tmp / "state/vgpu";
    config.writeTimeout = std::chrono::milliseconds(200);
    kind = std::make_unique<SriovKind>(*kernel, config);
    ctx = std::make_unique<test::TestApplyContext>(*kernel);
  }
  static Change change(Action a, const std::string& name, const std::string& device, int n,
                       std::string uid = "") {
    Change c;
    c.action = a;
    c.id = {"SriovPf", name};
    c.desired = {{"device", device}, {"numVfs", n}};
    c.uid = std::move(uid);
    return c;
  }
  Outcome apply(const Change& c) { return kind->apply(c, *ctx); }
  std::optional<SriovRecord> record(const std::string& name) {
    auto r = readSriovRecord(config.stateDir, name);
    EXPECT_TRUE(r) << r.error().str();
    return r ? *r : std::nullopt;
  }
  // A stand-in for NVIDIA's sriov-manage: logs its argv, prints `say`, exits `rc`.
  void sriovManage(const std::string& say, int rc) {
    config.sriovManage = tmp / "sriov-manage";
    testing::writeFile(config.sriovManage, "#!/bin/sh\necho \"$@\" >>" + (tmp / "argv").string() +
                                               "\necho '" + say + "'\nexit " + std::to_string(rc) +
                                               "\n");
    fs::permissions(config.sriovManage, fs::perms::owner_all);
  }
};

const std::string kNic = "0000:5e:00.0";
const std::string kNvme = "0000:05:00.0";

TEST(SriovPfApply, RaisesChangesThroughZeroAndPutsTheCountBack) {
  Rig rig;
  auto o = rig.apply(Rig::change(Action::kCreate, "nic", kNic, 4));
  ASSERT_TRUE(o.ok()) << o.error.str();
  EXPECT_EQ(rig.kernel->log,
            (std::vector<std::string>{"bus/pci/devices/" + kNic + "/sriov_numvfs=4"}));
  EXPECT_EQ(rig.kernel->links(kNic), 4);
  auto rec = rig.record("nic");
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->device, kNic);
  EXPECT_EQ(rec->agent, test::PluginRig::kAgentId);
  EXPECT_EQ(rec->originalNumVfs, 0);
  EXPECT_EQ(rig.ctx->undo_, Json({{"device", kNic}, {"numVfs", 0}}));

  rig.kernel->log.clear();
  o = rig.apply(Rig::change(Action::kUpdate, "nic", kNic, 2, rec->uid));
  ASSERT_TRUE(o.ok()) << o.error.str();
  EXPECT_EQ(rig.kernel->log,
            (std::vector<std::string>{"bus/pci/devices/" + kNic + "/sriov_numvfs=0",
                                      "bus/pci/devices/" + kNic + "/sriov_numvfs=2"}))
      << "the kernel refuses 4 -> 2: through 0";
  EXPECT_EQ(rig.kernel->links(kNic), 2);

  rig.kernel->log.clear();
  o = rig.apply(Rig::change(Action::kUpdate, "nic", kNic, 2, rec->uid));
  ASSERT_TRUE(o.ok()) << o.error.str();
  EXPECT_TRUE(rig.kernel->log.empty()) << "equal: not written";

  o = rig.apply(Rig::change(Action::kDelete, "nic", kNic, 0, rec->uid));
  ASSERT_TRUE(o.ok()) << o.error.str();
  EXPECT_EQ(rig.kernel->numVfs(kNic), 0);
  EXPECT_EQ(rig.kernel->links(kNic), 0);
  EXPECT_FALSE(rig.record("nic"));
}

TEST(SriovPfApply, TakesTheCountItFindsAndGivesThatBack) {
  Rig rig;
  fs::remove(rig.host.procRoot / "4300/fd/7");  // the VM let go of its VF
  ASSERT_TRUE(rig.apply(Rig::change(Action::kCreate, "nvme", kNvme, 2)).ok());
  EXPECT_TRUE(rig.kernel->log.empty());
  ASSERT_TRUE(rig.record("nvme"));
  EXPECT_EQ(rig.record("nvme")->originalNumVfs, 2);
  ASSERT_TRUE(rig.apply(Rig::change(Action::kUpdate, "nvme", kNvme, 3)).ok());
  EXPECT_EQ(rig.kernel->links(kNvme), 3);
  auto o = rig.apply(Rig::change(Action::kDelete, "nvme", kNvme, 0));
  ASSERT_TRUE(o.ok()) << o.error.str();
  EXPECT_EQ(rig.kernel->numVfs(kNvme), 2) << "back to the count it had before";
  EXPECT_EQ(rig.kernel->links(kNvme), 2);
}

TEST(SriovPfApply, RefusesToChangeACountWhileAVfIsUsedAndSaysByWhom) {
  Rig rig;
  // Taken when it had none (the VFs made by nodeplane), a VM holding VF 0 now.
  ASSERT_TRUE(
      writeSriovRecord(rig.config.stateDir, {"nvme", kNvme, test::PluginRig::kAgentId, 0, "u"}));
  for (const auto& [action, n] : {std::pair{Action::kUpdate, 3}, {Action::kDelete, 0}}) {
    auto o = rig.apply(Rig::change(action, "nvme", kNvme, n));
    EXPECT_EQ(o.cls, Outcome::kTerminal);
    EXPECT_EQ(o.error.kind, ErrorKind::kConflict);
    EXPECT_EQ(o.error.message, std::string(toString(action)) +
                                   " SriovPf/nvme: 0000:05:00.0 from 2 to " + std::to_string(n) +
                                   " VFs refused: VF 0000:05:00.1 in use by VirtualMachine/vm1; "
                                   "not changed");
  }
  EXPECT_TRUE(rig.kernel->log.empty());
  EXPECT_EQ(rig.kernel->links(kNvme), 2);
  EXPECT_TRUE(rig.record("nvme"));
}

TEST(SriovPfApply, ACreateRefusedBeforeAnyWriteLeavesNoRecord) {
  Rig rig;
  auto o = rig.apply(Rig::change(Action::kCreate, "nvme", kNvme, 4));
  EXPECT_EQ(o.error.kind, ErrorKind::kConflict) << o.error.str();
  EXPECT_FALSE(rig.record("nvme"));
}

TEST(SriovPfApply, TouchesOnlyItsOwnRecord) {
  Rig rig;
  ASSERT_TRUE(writeSriovRecord(rig.config.stateDir, {"nic", kNic, "00000000000000b2", 0, "u1"}));
  rig.kernel->setVfs(kNic, 3);
  for (Action a : {Action::kCreate, Action::kUpdate, Action::kDelete, Action::kRelease}) {
    auto o = rig.apply(Rig::change(a, "nic", kNic, 1, "u1"));
    EXPECT_EQ(o.error.kind, ErrorKind::kConflict) << toString(a);
    EXPECT_NE(o.error.message.find(kNic +
                                   " was taken by another nodeplane agent (00000000000000b2), not "
                                   "this one (" +
                                   test::PluginRig::kAgentId + "); not touched"),
              std::string::npos)
        << o.error.message;
  }
  EXPECT_TRUE(rig.kernel->log.empty());
  EXPECT_TRUE(rig.record("nic"));

  // Ours, but not the record the plan saw: not touched either.
  ASSERT_TRUE(
      writeSriovRecord(rig.config.stateDir, {"nic", kNic, test::PluginRig::kAgentId, 0, "u2"}));
  auto o = rig.apply(Rig::change(Action::kDelete, "nic", kNic, 0, "u1"));
  EXPECT_EQ(o.error.kind, ErrorKind::kConflict);
  EXPECT_NE(o.error.message.find("(uid u1 then, u2 now)"), std::string::npos) << o.error.message;
  EXPECT_TRUE(rig.kernel->log.empty());

  // A second SriovPf of the same PF.
  o = rig.apply(Rig::change(Action::kCreate, "nic2", kNic, 3));
  EXPECT_EQ(o.error.kind, ErrorKind::kConflict);
  EXPECT_NE(o.error.message.find(kNic + " is already SriovPf/nic's; not touched"),
            std::string::npos)
      << o.error.message;
  EXPECT_FALSE(rig.record("nic2"));
}

TEST(SriovPfApply, AReleaseForgetsTheRecordAndLeavesTheVfs) {
  Rig rig;
  ASSERT_TRUE(rig.apply(Rig::change(Action::kCreate, "nic", kNic, 4)).ok());
  rig.kernel->log.clear();
  ASSERT_TRUE(rig.apply(Rig::change(Action::kRelease, "nic", kNic, 4)).ok());
  EXPECT_FALSE(rig.record("nic"));
  EXPECT_TRUE(rig.kernel->log.empty());
  EXPECT_EQ(rig.kernel->links(kNic), 4);
}

TEST(SriovPfApply, VfsThatNeverAppearAreAnErrorWithWhatSysfsSays) {
  Rig rig;
  rig.kernel->ignoreWrites = true;
  auto o = rig.apply(Rig::change(Action::kCreate, "nic", kNic, 4));
  EXPECT_EQ(o.cls, Outcome::kRetryable);
  EXPECT_EQ(o.error.message,
            "create SriovPf/nic: 0000:5e:00.0 reads sriov_numvfs 0, 0 virtfn links after 200 ms, "
            "not 4 VFs");
}

TEST(SriovPfApply, APfWithNoDriverIsRefusedBeforeAnyWrite) {
  Rig rig;
  fs::remove(rig.kernel->dir(kNic) / "driver");
  auto o = rig.apply(Rig::change(Action::kCreate, "nic", kNic, 4));
  EXPECT_EQ(o.cls, Outcome::kTerminal);
  EXPECT_EQ(o.error.message,
            "create SriovPf/nic: 0000:5e:00.0 has no driver: the kernel changes its VFs only "
            "through the PF's driver (writing sriov_numvfs would fail with ENOENT); not changed");
  EXPECT_EQ(o.error.hint, "bind the PF to its driver first");
  EXPECT_TRUE(rig.kernel->log.empty());
  EXPECT_FALSE(rig.record("nic"));
}

TEST(SriovPfApply, AnNvidiaGpuGoesThroughSriovManageAndIsCheckedAfter) {
  Rig rig;
  // Exit 0 and nothing done (vGPU 17.2's sriov-manage): the links say it failed.
  rig.sriovManage("Enabling VFs on 0000:3b:00.0", 0);
  auto o = rig.apply(Rig::change(Action::kCreate, "gpu", "0", 4));
  EXPECT_EQ(o.cls, Outcome::kRetryable);
  EXPECT_EQ(o.error.message,
            "create SriovPf/gpu: " + rig.config.sriovManage.string() +
                " -e 0000:3b:00.0 exited 0, but 0000:3b:00.0 reads sriov_numvfs 0, 0 virtfn "
                "links after 200 ms, not 4 VFs (it said: Enabling VFs on 0000:3b:00.0)");
  EXPECT_EQ(slurp(rig.tmp / "argv"), "-e 0000:3b:00.0\n");
  EXPECT_TRUE(rig.kernel->log.empty()) << "never a raw sriov_numvfs write on an NVIDIA GPU";
  EXPECT_FALSE(rig.record("gpu")) << "nothing changed: no record left";

  rig.sriovManage("Cannot obtain unbindLock for 0000:3b:00.0", 1);
  o = rig.apply(Rig::change(Action::kCreate, "gpu", "0", 4));
  EXPECT_EQ(o.cls, Outcome::kRetryable);
  EXPECT_EQ(o.error.message, "create SriovPf/gpu: " + rig.config.sriovManage.string() +
                                 " -e 0000:3b:00.0 failed (exit code 1): Cannot obtain "
                                 "unbindLock for 0000:3b:00.0");

  rig.config.sriovManage = rig.tmp / "absent";
  o = rig.apply(Rig::change(Action::kCreate, "gpu", "0", 4));
  EXPECT_NE(
      o.error.message.find("cannot run " + (rig.tmp / "absent").string() + " -e 0000:3b:00.0"),
      std::string::npos)
      << o.error.message;
}

TEST(SriovPfApply, AnNvidiaGpuWithVgpusIsNotTouched) {
  Rig rig;
  rig.sriovManage("", 0);
  ASSERT_TRUE(writeSriovRecord(rig.config.stateDir,
                               {"l40s", "0000:41:00.0", test::PluginRig::kAgentId, 0, "u"}));
  auto o = rig.apply(Rig::change(Action::kDelete, "l40s", "0000:41:00.0", 0));
  EXPECT_EQ(o.error.kind, ErrorKind::kConflict);
  EXPECT_EQ(o.error.message,
            "delete SriovPf/l40s: 0000:41:00.0 from 4 to 0 VFs refused: has vGPUs (VF "
            "0000:41:00.5: type 1155); not changed");
  EXPECT_FALSE(fs::exists(rig.tmp / "argv")) << "sriov-manage was not run";
}

}  // namespace
}  // namespace nodeplane::vgpu
