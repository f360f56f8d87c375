// Vgpu's moves over a plain sysfs tree whose writes a fake driver answers (vgpu_fixture.hpp):
// exactly the writes needed (counted), `0` before a switch, read-back instead of errnos, a busy
// VF left alone naming its holder, a VF refused for a moment after a VM let go (retryable,
// logged once), a profile not creatable (terminal, listing what is), the record (ownership and
// the qemu plugin's contract), observe after a "reboot", and the mdev model's create/remove.
#include <gtest/gtest.h>

#include "nodeplane/host/vgpu_ref.hpp"
#include "vgpu_fixture.hpp"

namespace nodeplane::vgpu {
namespace {

namespace fs = std::filesystem;
using fixture::FakeDriver;
using fixture::Host;
using ::nodeplane::testing::countOf;
using ::nodeplane::testing::slurp;
using ::nodeplane::testing::writeFile;

constexpr const char* kPf = "0000:41:00.0";
constexpr const char* kMdevPf = "0000:3b:00.0";

struct Rig {
  Rig() : driver(host) {
    host.gpu(kPf, "sriov", fixture::l40s(), 4, 4, 30);
    host.gpu(kMdevPf, "mdev", fixture::a100(), 4, 4, 40);
    cfg = readVgpuConfig(driver.context());
    cfg.writeTimeout = std::chrono::milliseconds(200);
  }
  Host host;
  FakeDriver driver;
  VgpuConfig cfg;
  VgpuKind kind{driver, cfg};
  test::TestApplyContext ctx{driver};

  static Json spec(int vf, const std::string& profile, const std::string& pf = kPf) {
    return {{"parent", pf}, {"vf", vf}, {"profile", profile}};
  }
  Outcome run(Action a, const std::string& name, const Json& desired, const std::string& uid = "") {
    Change c;
    c.action = a;
    c.id = {"Vgpu", name};
    c.desired = desired;
    c.uid = uid;
    return kind.apply(c, ctx);
  }
  std::string type(const std::string& vf) {
    std::string s = slurp(host.dir(vf) / "nvidia/current_vgpu_type");
    return s.substr(0, s.find('\n'));
  }
  std::optional<ObservedObject> observed(const std::string& name) {
    auto all = kind.observe();
    EXPECT_TRUE(all) << all.error().str();
    if (all)
      for (auto& o : *all)
        if (o.id.name == name) return o;
    return std::nullopt;
  }
  Json record(const std::string& name) {
    return Json::parse(slurp(host::vgpuRecordPath(host.state, name)), nullptr, false);
  }
};

TEST(VgpuApply, CreateWritesTheTypeOnceAndRecordsTheDevice) {
  Rig r;
  Outcome o = r.run(Action::kCreate, "tenant-a", Rig::spec(1, "L40S-24Q"));
  ASSERT_TRUE(o.ok()) << o.error.str();
  EXPECT_EQ(
      r.driver.log,
      (std::vector<std::string>{"bus/pci/devices/0000:41:00.5/nvidia/current_vgpu_type=1155"}));
  EXPECT_EQ(r.type("0000:41:00.5"), "1155");
  auto dev = host::readVgpuDevice(r.host.state, "tenant-a");
  ASSERT_TRUE(dev) << dev.error().str();
  EXPECT_EQ(dev->device, r.host.dir("0000:41:00.5"));
  EXPECT_EQ(dev->gpu, kPf);
  const Json rec = r.record("tenant-a");
  EXPECT_EQ(rec["agent"], test::PluginRig::kAgentId);
  EXPECT_EQ(rec["typeId"], 1155);
  EXPECT_EQ(rec["profile"], "L40S-24Q");
  EXPECT_EQ(rec["model"], "sr-iov");

  auto seen = r.observed("tenant-a");
  ASSERT_TRUE(seen);
  EXPECT_TRUE(seen->marked);
  EXPECT_EQ(seen->spec, r.kind.normalize(Rig::spec(1, "1155")));
  EXPECT_EQ(seen->detail, "L40S-24Q (type 1155) on 0000:41:00.5");
  EXPECT_EQ(seen->busy, "");
  EXPECT_EQ(seen->holds,
            (std::vector<Claim>{{"pci", "0000:41:00.5", true, false}, {"pci", kPf, false, false}}));

  // Again: nothing to write.
  ASSERT_TRUE(r.run(Action::kCreate, "tenant-a", Rig::spec(1, "L40S-24Q")).ok());
  EXPECT_EQ(r.driver.total(), 1);
}

TEST(VgpuApply, ChangingOneWritesZeroThenTheNewIdOnThatVfOnly) {
  Rig r;
  ASSERT_TRUE(r.run(Action::kCreate, "a", Rig::spec(0, "L40S-12Q")).ok());
  ASSERT_TRUE(r.run(Action::kCreate, "b", Rig::spec(1, "L40S-12Q")).ok());
  r.driver.log.clear();
  auto seen = r.observed("a");
  ASSERT_TRUE(seen);
  Outcome o = r.run(Action::kUpdate, "a", Rig::spec(0, "L40S-12A"), seen->uid);
  ASSERT_TRUE(o.ok()) << o.error.str();
  EXPECT_EQ(r.driver.log, (std::vector<std::string>{
                              "bus/pci/devices/0000:41:00.4/nvidia/current_vgpu_type=0",
                              "bus/pci/devices/0000:41:00.4/nvidia/current_vgpu_type=1163"}));
  EXPECT_EQ(r.type("0000:41:00.4"), "1163");
  EXPECT_EQ(r.type("0000:41:00.5"), "1153");
  EXPECT_EQ(r.observed("a")->spec["profile"], "L40S-12A");
}

TEST(VgpuApply, ABusyVfIsNotChangedAndTheHolderIsNamed) {
  Rig r;
  ASSERT_TRUE(r.run(Action::kCreate, "a", Rig::spec(2, "L40S-24Q")).ok());
  r.host.opener(4242, r.host.dev / "vfio/devices/vfio2", "vm1");
  auto seen = r.observed("a");
  ASSERT_TRUE(seen);
  EXPECT_EQ(seen->busy, "in use by VirtualMachine/vm1");
  EXPECT_EQ(seen->detail, "L40S-24Q (type 1155) on 0000:41:00.6") << "status adds busy itself";
  r.driver.log.clear();
  Outcome o = r.run(Action::kUpdate, "a", Rig::spec(2, "L40S-24A"), seen->uid);
  EXPECT_EQ(o.cls, Outcome::kTerminal);
  EXPECT_EQ(o.error.kind, ErrorKind::kConflict);
  EXPECT_EQ(o.error.message,
            "update Vgpu/a: 0000:41:00.6 is in use by VirtualMachine/vm1: its vGPU is not changed "
            "until it is free");
  o = r.run(Action::kDelete, "a", Json::object(), seen->uid);
  EXPECT_EQ(o.error.kind, ErrorKind::kConflict) << o.error.str();
  EXPECT_TRUE(r.driver.log.empty()) << "nothing written under the VM";
  EXPECT_EQ(r.type("0000:41:00.6"), "1155");
  // The VM stops: it proceeds.
  fs::remove_all(r.host.proc / "4242");
  o = r.run(Action::kUpdate, "a", Rig::spec(2, "L40S-24A"), seen->uid);
  ASSERT_TRUE(o.ok()) << o.error.str();
  EXPECT_EQ(r.type("0000:41:00.6"), "1165");
}

TEST(VgpuApply, ARefusalRightAfterAVmLetGoIsRetriedAndLoggedOnce) {
  Rig r;
  ASSERT_TRUE(r.run(Action::kCreate, "a", Rig::spec(0, "L40S-24Q")).ok());
  const std::string uid = r.observed("a")->uid;
  r.driver.refuseZero = 2;
  const std::string msg =
      "0000:41:00.4 still has type 1155 after writing 0 (writing \"0\" to "
      "bus/pci/devices/0000:41:00.4/nvidia/current_vgpu_type: Operation not permitted): the "
      "driver refuses for a moment after a VM let go; retried";
  for (int pass = 0; pass < 2; ++pass) {
    Outcome o = r.run(Action::kUpdate, "a", Rig::spec(0, "L40S-24A"), uid);
    EXPECT_EQ(o.cls, Outcome::kRetryable) << o.error.str();
    EXPECT_EQ(o.error.message, "update Vgpu/a: " + msg);
  }
  std::string all;
  for (const auto& m : r.ctx.messages) all += m + "\n";
  EXPECT_EQ(countOf(all, msg), 1u) << all;
  Outcome o = r.run(Action::kUpdate, "a", Rig::spec(0, "L40S-24A"), uid);
  ASSERT_TRUE(o.ok()) << o.error.str();
  EXPECT_EQ(r.type("0000:41:00.4"), "1165");
  EXPECT_EQ(r.driver.writes["bus/pci/devices/0000:41:00.4/nvidia/current_vgpu_type"], 5)
      << "create, 0 refused twice, 0, the new id";
}

TEST(VgpuApply, AProfileNotCreatableNowIsAnErrorListingWhatIs) {
  Rig r;
  ASSERT_TRUE(r.run(Action::kCreate, "a", Rig::spec(0, "L40S-24Q")).ok());
  // Set by hand: not a vGPU of this agent, so nothing here will move it.
  writeFile(r.host.dir("0000:41:00.5") / "nvidia/current_vgpu_type", "1155\n");
  r.host.refresh(kPf);
  Outcome o = r.run(Action::kCreate, "c", Rig::spec(2, "L40S-12Q"));
  EXPECT_EQ(o.cls, Outcome::kTerminal);
  EXPECT_EQ(o.error.message,
            "create Vgpu/c: L40S-12Q is not creatable on 0000:41:00.6 now (writing \"1153\" to "
            "bus/pci/devices/0000:41:00.6/nvidia/current_vgpu_type: Input/output error) "
            "(creatable now: none); the GPU holds L40S-24Q on 0000:41:00.4, L40S-24Q on "
            "0000:41:00.5");
  EXPECT_EQ(r.type("0000:41:00.6"), "0");
  EXPECT_FALSE(r.record("c").value("ready", true)) << "the record says not ready";
}

// A whole GPU moved to another size: the first vGPU's VF is cleared, and it waits (retryable,
// naming them) while the others of this agent still hold the old size; their steps then proceed,
// and the first is set on the next try. Nothing is left half-made.
TEST(VgpuApply, MovingEveryVgpuOfAGpuToAnotherSizeWaitsForTheOthers) {
  Rig r;
  ASSERT_TRUE(r.run(Action::kCreate, "a", Rig::spec(0, "L40S-24Q")).ok());
  ASSERT_TRUE(r.run(Action::kCreate, "b", Rig::spec(1, "L40S-24Q")).ok());
  const std::string ua = r.observed("a")->uid, ub = r.observed("b")->uid;
  Outcome o = r.run(Action::kUpdate, "a", Rig::spec(0, "L40S-12Q"), ua);
  EXPECT_EQ(o.cls, Outcome::kRetryable) << o.error.str();
  EXPECT_EQ(o.error.message,
            "update Vgpu/a: L40S-12Q waits for Vgpu/b (L40S-24Q on 0000:41:00.5) to leave their "
            "size (writing \"1153\" to bus/pci/devices/0000:41:00.4/nvidia/current_vgpu_type: "
            "Input/output error): the GPU takes one framebuffer size at a time; 0000:41:00.4 is "
            "clear meanwhile, and the next pass or apply sets it");
  EXPECT_EQ(r.type("0000:41:00.4"), "0");
  o = r.run(Action::kUpdate, "b", Rig::spec(1, "L40S-12Q"), ub);
  ASSERT_TRUE(o.ok()) << o.error.str();
  o = r.run(Action::kUpdate, "a", Rig::spec(0, "L40S-12Q"), ua);
  ASSERT_TRUE(o.ok()) << o.error.str();
  EXPECT_EQ(r.type("0000:41:00.4"), "1153");
  EXPECT_EQ(r.type("0000:41:00.5"), "1153");
}

// Ours cleared by hand and another vGPU made on the VF, with a diff or status in between (observe
// then marks the record not ready): the new one is nobody's to change or clear.
// The wait is for a size change alone: a GPU full of this agent's vGPUs of the same size, or one
// in mixed-size mode, refuses for capacity: terminal, as for anyone's.
TEST(VgpuApply, AFullGpuOfOwnVgpusOrAMixedSizeOneIsATerminalRefusalNotAWait) {
  Rig r;
  ASSERT_TRUE(r.run(Action::kCreate, "a", Rig::spec(0, "L40S-24Q")).ok());
  ASSERT_TRUE(r.run(Action::kCreate, "b", Rig::spec(1, "L40S-24Q")).ok());
  Outcome o = r.run(Action::kCreate, "c", Rig::spec(2, "L40S-24A"));
  EXPECT_EQ(o.cls, Outcome::kTerminal) << o.error.str();
  r.cfg.mixedSize = {kPf};
  o = r.run(Action::kCreate, "d", Rig::spec(3, "L40S-12Q"));
  EXPECT_EQ(o.cls, Outcome::kTerminal) << o.error.str();
  EXPECT_EQ(r.type("0000:41:00.7"), "0");
}

TEST(VgpuApply, AVgpuMadeByHandWhereOursWasIsNeitherChangedNorCleared) {
  Rig r;
  ASSERT_TRUE(r.run(Action::kCreate, "a", Rig::spec(0, "L40S-24Q")).ok());
  const std::string uid = r.observed("a")->uid;
  writeFile(r.host.dir("0000:41:00.4") / "nvidia/current_vgpu_type", "0\n");
  r.host.refresh(kPf);
  EXPECT_FALSE(r.observed("a")) << "gone: absent";
  EXPECT_FALSE(r.record("a").value("ready", true));
  writeFile(r.host.dir("0000:41:00.4") / "nvidia/current_vgpu_type", "1165\n");
  r.host.refresh(kPf);
  r.driver.log.clear();
  Outcome o = r.run(Action::kUpdate, "a", Rig::spec(0, "L40S-12Q"), uid);
  EXPECT_EQ(o.error.kind, ErrorKind::kConflict) << o.error.str();
  EXPECT_EQ(o.error.message,
            "update Vgpu/a refused: 0000:41:00.4 has L40S-24A (type 1165), not the type 1155 "
            "nodeplane set: changed outside nodeplane; not touched");
  o = r.run(Action::kDelete, "a", Json::object(), uid);
  ASSERT_TRUE(o.ok()) << o.error.str();
  EXPECT_TRUE(r.driver.log.empty()) << "nothing written";
  EXPECT_EQ(r.type("0000:41:00.4"), "1165");
}

// A create cut short (here: refused by the driver) leaves a record that is not ready. What the VF
// holds later, set by someone else, is not what that record's change could have set: left alone
// by a delete and by a move to another VF.
TEST(VgpuApply, ARecordOfAChangeCutShortClearsOnlyWhatThatChangeCouldHaveSet) {
  Rig r;
  ASSERT_TRUE(r.run(Action::kCreate, "a", Rig::spec(0, "L40S-8Q")).ok());
  writeFile(r.host.dir("0000:41:00.5") / "nvidia/current_vgpu_type", "1152\n");
  r.host.refresh(kPf);
  Outcome o = r.run(Action::kCreate, "c", Rig::spec(2, "L40S-24Q"));
  ASSERT_EQ(o.cls, Outcome::kTerminal) << o.error.str();
  EXPECT_FALSE(r.record("c").value("ready", true));
  writeFile(r.host.dir("0000:41:00.6") / "nvidia/current_vgpu_type", "1152\n");
  r.host.refresh(kPf);
  r.driver.log.clear();
  o = r.run(Action::kReplace, "c", Rig::spec(3, "L40S-8Q"));
  ASSERT_TRUE(o.ok()) << o.error.str();
  EXPECT_EQ(r.type("0000:41:00.6"), "1152") << "not cleared";
  EXPECT_EQ(r.type("0000:41:00.7"), "1152");
  EXPECT_EQ(r.driver.log.size(), 1u) << "one write: the new VF";
}

TEST(VgpuApply, ATypeSetByHandIsNotTakenOver) {
  Rig r;
  writeFile(r.host.dir("0000:41:00.7") / "nvidia/current_vgpu_type", "1155\n");
  r.host.refresh(kPf);
  Outcome o = r.run(Action::kCreate, "a", Rig::spec(3, "L40S-24Q"));
  EXPECT_EQ(o.error.kind, ErrorKind::kConflict);
  EXPECT_EQ(o.error.message,
            "create Vgpu/a refused: 0000:41:00.7 already has L40S-24Q (type 1155), set outside "
            "nodeplane; not touched");
  EXPECT_EQ(r.driver.total(), 0);
}

TEST(VgpuApply, AnotherVgpusVfIsRefused) {
  Rig r;
  ASSERT_TRUE(r.run(Action::kCreate, "a", Rig::spec(0, "L40S-24Q")).ok());
  Outcome o = r.run(Action::kCreate, "b", {{"address", "0000:41:00.4"}, {"profile", "L40S-24Q"}});
  EXPECT_EQ(o.error.kind, ErrorKind::kConflict);
  EXPECT_EQ(o.error.message,
            std::string("create Vgpu/b refused: 0000:41:00.4 holds Vgpu/a (agent ") +
                test::PluginRig::kAgentId + "); not touched");
}

TEST(VgpuApply, DeleteClearsTheTypeAndDropsTheRecordReleaseOnlyTheRecord) {
  Rig r;
  ASSERT_TRUE(r.run(Action::kCreate, "a", Rig::spec(0, "L40S-24Q")).ok());
  ASSERT_TRUE(r.run(Action::kCreate, "b", Rig::spec(1, "L40S-24Q")).ok());
  Outcome o = r.run(Action::kDelete, "a", Json::object(), r.observed("a")->uid);
  ASSERT_TRUE(o.ok()) << o.error.str();
  EXPECT_EQ(r.type("0000:41:00.4"), "0");
  EXPECT_FALSE(fs::exists(host::vgpuRecordPath(r.host.state, "a")));
  o = r.run(Action::kRelease, "b", Json::object(), r.observed("b")->uid);
  ASSERT_TRUE(o.ok()) << o.error.str();
  EXPECT_EQ(r.type("0000:41:00.5"), "1155") << "released: left in place";
  EXPECT_FALSE(fs::exists(host::vgpuRecordPath(r.host.state, "b")));
  EXPECT_FALSE(r.observed("b"));
}

TEST(VgpuApply, AnotherAgentsVgpuIsNotTouched) {
  Rig r;
  ASSERT_TRUE(r.run(Action::kCreate, "a", Rig::spec(0, "L40S-24Q")).ok());
  Json rec = r.record("a");
  rec["agent"] = "00000000000000b2";
  writeFile(host::vgpuRecordPath(r.host.state, "a"), rec.dump());
  auto seen = r.observed("a");
  ASSERT_TRUE(seen);
  EXPECT_FALSE(seen->marked);
  EXPECT_EQ(seen->markedByOther, "00000000000000b2");
  Outcome o = r.run(Action::kDelete, "a", Json::object(), seen->uid);
  EXPECT_EQ(o.error.kind, ErrorKind::kConflict);
  EXPECT_EQ(r.type("0000:41:00.4"), "1155");
}

TEST(VgpuApply, AfterARebootTheVgpuIsAbsentAndCreatedAgain) {
  Rig r;
  ASSERT_TRUE(r.run(Action::kCreate, "a", Rig::spec(3, "L40S-24Q")).ok());
  // The driver lost every type (a reboot, with the VFs back: SriovPf's part).
  writeFile(r.host.dir("0000:41:00.7") / "nvidia/current_vgpu_type", "0\n");
  r.host.refresh(kPf);
  EXPECT_FALSE(r.observed("a")) << "absent: the plan creates it";
  EXPECT_FALSE(r.record("a")["ready"].get<bool>()) << "the qemu plugin sees it not ready";
  Outcome o = r.run(Action::kCreate, "a", Rig::spec(3, "L40S-24Q"));
  ASSERT_TRUE(o.ok()) << o.error.str();
  EXPECT_EQ(r.type("0000:41:00.7"), "1155");
  EXPECT_TRUE(r.record("a")["ready"].get<bool>());
}

TEST(VgpuApply, VfsNotEnabledYetIsRetryable) {
  Rig r;
  r.host.gpu("0000:61:00.0", "sriov", fixture::l40s(), 4, 0, 50);
  Outcome o = r.run(Action::kCreate, "a", Rig::spec(0, "L40S-24Q", "0000:61:00.0"));
  EXPECT_EQ(o.cls, Outcome::kRetryable);
  EXPECT_EQ(o.error.message,
            "create Vgpu/a: 0000:61:00.4 (vf 0 of 0000:61:00.0) is not there: the GPU's virtual "
            "functions are not enabled (a SriovPf of the GPU enables them)");
}

TEST(VgpuApplyMdev, CreateChangeAndRemoveOneMdev) {
  Rig r;
  Outcome o = r.run(Action::kCreate, "m", Rig::spec(1, "A100-10C", kMdevPf));
  ASSERT_TRUE(o.ok()) << o.error.str();
  const std::string uuid = mdevUuidFor(test::PluginRig::kAgentId, "m");
  EXPECT_EQ(r.driver.log,
            (std::vector<std::string>{
                "bus/pci/devices/0000:3b:00.5/mdev_supported_types/nvidia-471/create=" + uuid}));
  auto dev = host::readVgpuDevice(r.host.state, "m");
  ASSERT_TRUE(dev) << dev.error().str();
  EXPECT_EQ(dev->device, r.host.sys / "bus/mdev/devices" / uuid);
  auto seen = r.observed("m");
  ASSERT_TRUE(seen);
  EXPECT_EQ(seen->spec["profile"], "A100-10C");
  EXPECT_EQ(seen->detail, "A100-10C (type 471) on mdev " + uuid + " on 0000:3b:00.5");

  // Busy: its group node open.
  r.host.opener(4300, r.host.dev / "vfio/42", "vm2");
  EXPECT_EQ(r.observed("m")->busy, "in use by VirtualMachine/vm2");
  o = r.run(Action::kDelete, "m", Json::object(), seen->uid);
  EXPECT_EQ(o.error.kind, ErrorKind::kConflict) << o.error.str();
  fs::remove_all(r.host.proc / "4300");

  r.driver.log.clear();
  o = r.run(Action::kUpdate, "m", Rig::spec(1, "A100-20C", kMdevPf), seen->uid);
  ASSERT_TRUE(o.ok()) << o.error.str();
  EXPECT_EQ(r.driver.log,
            (std::vector<std::string>{
                "bus/mdev/devices/" + uuid + "/remove=1",
                "bus/pci/devices/0000:3b:00.5/mdev_supported_types/nvidia-472/create=" + uuid}))
      << "the same UUID: the VM's device path stays";
  EXPECT_EQ(r.observed("m")->spec["profile"], "A100-20C");

  o = r.run(Action::kDelete, "m", Json::object(), seen->uid);
  ASSERT_TRUE(o.ok()) << o.error.str();
  EXPECT_FALSE(fs::exists(r.host.sys / "bus/mdev/devices" / uuid));
  EXPECT_FALSE(fs::exists(host::vgpuRecordPath(r.host.state, "m")));
}

TEST(VgpuApplyMdev, NoInstanceAvailableListsWhatIs) {
  Rig r;
  ASSERT_TRUE(r.run(Action::kCreate, "m0", Rig::spec(0, "A100-20C", kMdevPf)).ok());
  ASSERT_TRUE(r.run(Action::kCreate, "m1", Rig::spec(1, "A100-20C", kMdevPf)).ok());
  Outcome o = r.run(Action::kCreate, "m2", Rig::spec(2, "A100-10C", kMdevPf));
  EXPECT_EQ(o.cls, Outcome::kTerminal);
  EXPECT_EQ(o.error.message,
            "create Vgpu/m2: A100-10C cannot be made on 0000:3b:00.6 now (available_instances of "
            "nvidia-471 is 0; available: none)");
  EXPECT_EQ(r.driver.total(), 2);
}

}  // namespace
}  // namespace nodeplane::vgpu
