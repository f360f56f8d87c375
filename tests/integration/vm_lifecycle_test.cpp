// A VirtualMachine's whole life through the real CLI: a real systemd --user manager runs QEMU
// (TCG, a blank 16 MiB disk: the guest never boots an OS, so it never answers a powerdown).
#include <gmock/gmock.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "vm_rig.hpp"

namespace nodeplane::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

using VmLifecycle = VmRig;

ino_t inode(const fs::path& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 ? st.st_ino : 0;
}

TEST_F(VmLifecycle, CreateDiffStopStartRestartAndDelete) {
  writeVm("vm1", tinyVm("  state: running\n"));
  auto created = apply();
  ASSERT_EQ(created.code, 0) << created.out << created.err;
  ASSERT_TRUE(unitActive("vm1")) << created.out << created.err;
  EXPECT_EQ(qmpStatus("vm1"), "running");
  auto u = unit("vm1");
  ASSERT_TRUE(u);
  EXPECT_THAT(u->description, HasSubstr("nodeplane VM vm1 (agent "));
  const fs::path dir = root_ / "instances/vm1";
  const fs::path overlay = dir / "disk.qcow2";
  ASSERT_TRUE(fs::exists(overlay));
  EXPECT_EQ(fs::status(dir).permissions() & fs::perms::all, fs::perms::owner_all);
  const ino_t disk = inode(overlay);
  const pid_t firstPid = u->mainPid;

  // status shows what the VM does now: its unit and what QMP says of the guest.
  auto status = np({"status"});
  ASSERT_EQ(status.code, 0) << status.out << status.err;
  EXPECT_THAT(status.out, HasSubstr("OWNED               NOW\n"
                                    "VirtualMachine/vm1  unit active/running, guest running\n"));
  auto statusJson = np({"--output", "json", "status"});
  ASSERT_EQ(statusJson.code, 0) << statusJson.err;
  EXPECT_THAT(statusJson.out, HasSubstr("\"now\": \"unit active/running, guest running\""));

  // Nothing to do: diff exits 0, and apply leaves the VM alone.
  auto same = np({"diff", "-f", (root_ / "desired").string()});
  EXPECT_EQ(same.code, 0) << same.out << same.err;
  ASSERT_EQ(apply().code, 0);
  EXPECT_EQ(unit("vm1")->mainPid, firstPid);

  // Stopped: the guest never answers the powerdown, so QEMU is made to quit after 2 s.
  writeVm("vm1", tinyVm("  state: stopped\n"));
  const auto t0 = Clock::now();
  auto stopped = apply();
  const auto took = Clock::now() - t0;
  ASSERT_EQ(stopped.code, 0) << stopped.out << stopped.err;
  EXPECT_FALSE(unit("vm1")) << "the unit is gone: " << unit("vm1")->activeState;
  EXPECT_GE(took, 2s) << "the guest had its shutdownTimeoutSec";
  EXPECT_TRUE(fs::exists(overlay));
  EXPECT_THAT(np({"status"}).out, HasSubstr("VirtualMachine/vm1  stopped (no unit)\n"));

  // Running again, on the same disk.
  writeVm("vm1", tinyVm("  state: running\n"));
  auto started = apply();
  ASSERT_EQ(started.code, 0) << started.out << started.err;
  ASSERT_TRUE(unitActive("vm1"));
  EXPECT_EQ(qmpStatus("vm1"), "running");
  EXPECT_EQ(inode(overlay), disk) << "the overlay was kept";

  // A field that restarts the VM: diff says so.
  root_.write("desired/vm1.yaml",
              "apiVersion: nodeplane.io/v1\nkind: VirtualMachine\nmetadata: {name: vm1}\nspec:\n" +
                  std::string("  vcpus: 1\n  memoryMiB: 160\n  disk: {base: blank}\n"
                              "  firmware: bios\n  accel: tcg\n  shutdownTimeoutSec: 2\n"
                              "  state: running\n"));
  auto diff = np({"diff", "-f", (root_ / "desired").string()});
  EXPECT_EQ(diff.code, 2) << diff.out << diff.err;
  EXPECT_THAT(diff.out, HasSubstr("~ VirtualMachine/vm1 restart (memoryMiB: 128 -> 160)\n"));
  const pid_t before = unit("vm1")->mainPid;
  auto restarted = apply();
  ASSERT_EQ(restarted.code, 0) << restarted.out << restarted.err;
  ASSERT_TRUE(unitActive("vm1"));
  EXPECT_NE(unit("vm1")->mainPid, before) << "a new QEMU";
  EXPECT_THAT(slurp("/proc/" + std::to_string(unit("vm1")->mainPid) + "/cmdline"),
              HasSubstr("160"));

  // Deleted: the unit and the disk go.
  fs::remove(root_ / "desired/vm1.yaml");
  auto deleted = np({"apply", "--allow-empty", "-f", (root_ / "desired").string()});
  ASSERT_EQ(deleted.code, 0) << deleted.out << deleted.err;
  EXPECT_FALSE(unit("vm1"));
  EXPECT_FALSE(fs::exists(dir));
}

// A unit named like a VM's that nodeplane has no record of is somebody else's: a VM file of that
// name is refused, and the unit is left alone.
TEST_F(VmLifecycle, AUnitNamedLikeAVmWithoutARecordIsNotTaken) {
  qemu::TransientUnit stray;
  stray.name = "nodeplane-vm-stray.service";
  stray.description = "started by hand";
  stray.argv = {"/bin/sleep", "1000"};
  auto units = this->units();
  ASSERT_TRUE(units.start(stray, 30s));
  const pid_t pid = unit("stray")->mainPid;
  writeVm("stray", tinyVm());
  auto r = apply();
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_THAT(r.out + r.err, HasSubstr("VirtualMachine/stray"));
  EXPECT_THAT(r.out + r.err, HasSubstr("exists, not managed by nodeplane"));
  ASSERT_TRUE(unitActive("stray"));
  EXPECT_EQ(unit("stray")->mainPid, pid);
  EXPECT_FALSE(fs::exists(root_ / "instances/stray"));
}

// deletionPolicy Orphan: removing the file releases the VM (its record loses the agent id, the
// unit runs on); a file of that name again is refused as unmanaged, and a record of another
// agent is refused as that agent's. Nothing is stopped on the way.
TEST_F(VmLifecycle, AReleasedVmRunsOnAndIsNoLongerTaken) {
  root_.write("desired/vm2.yaml",
              "apiVersion: nodeplane.io/v1\nkind: VirtualMachine\nmetadata: {name: vm2, "
              "deletionPolicy: Orphan}\nspec:\n" +
                  tinyVm());
  auto created = apply();
  ASSERT_EQ(created.code, 0) << created.out << created.err;
  ASSERT_TRUE(unitActive("vm2"));
  const pid_t pid = unit("vm2")->mainPid;
  const fs::path record = root_ / "instances/vm2/vm.json";
  auto rec = nlohmann::json::parse(slurp(record));
  EXPECT_FALSE(rec.value("agent", "").empty());
  const std::string instance = rec.value("instanceId", "");
  EXPECT_EQ(instance.size(), 16u);

  fs::remove(root_ / "desired/vm2.yaml");
  auto released = np({"apply", "--allow-empty", "-f", (root_ / "desired").string()});
  ASSERT_EQ(released.code, 0) << released.out << released.err;
  EXPECT_THAT(released.out, HasSubstr("VirtualMachine/vm2 released"));
  ASSERT_TRUE(unitActive("vm2"));
  EXPECT_EQ(unit("vm2")->mainPid, pid);
  rec = nlohmann::json::parse(slurp(record));
  EXPECT_EQ(rec.value("agent", "?"), "");
  EXPECT_EQ(rec.value("instanceId", ""), instance);

  writeVm("vm2", tinyVm());
  auto refused = apply();
  EXPECT_EQ(refused.code, 1) << refused.out << refused.err;
  EXPECT_THAT(refused.out + refused.err, HasSubstr("exists, not managed by nodeplane"));

  rec["agent"] = "00000000000000ff";
  writeFile(record, rec.dump());
  refused = apply();
  EXPECT_EQ(refused.code, 1) << refused.out << refused.err;
  EXPECT_THAT(refused.out + refused.err,
              HasSubstr("exists, managed by another nodeplane agent (agent id 00000000000000ff)"));
  ASSERT_TRUE(unitActive("vm2"));
  EXPECT_EQ(unit("vm2")->mainPid, pid);
}

// An apply killed inside create, after the record and before the disk overlay (the record is
// written first): the next apply finds a stopped VM of ours without its files, and must make
// them before it starts QEMU (the state change alone says nothing about the disk).
TEST_F(VmLifecycle, AVmWhoseCreateWasCutShortAfterItsRecordStartsOnTheNextApply) {
  writeVm("vm3", tinyVm("  state: stopped\n  cloudInit: {hostname: vm3}\n"));
  auto created = apply();
  ASSERT_EQ(created.code, 0) << created.out << created.err;
  const fs::path dir = root_ / "instances/vm3";
  ASSERT_TRUE(fs::exists(dir / "vm.json"));
  // What a kill -9 between the record and the overlay leaves.
  fs::remove(dir / "disk.qcow2");
  fs::remove(dir / "seed.iso");

  writeVm("vm3", tinyVm("  state: running\n  cloudInit: {hostname: vm3}\n"));
  auto started = apply();
  ASSERT_EQ(started.code, 0) << started.out << started.err;
  ASSERT_TRUE(unitActive("vm3"));
  EXPECT_EQ(qmpStatus("vm3"), "running");
  EXPECT_TRUE(fs::exists(dir / "disk.qcow2"));
  EXPECT_TRUE(fs::exists(dir / "seed.iso"));
}

// A vm.json that is not a record (edited by hand, garbage) makes that folder's name somebody
// else's: the other VMs are still observed, created and deleted, and the folder is left alone.
TEST_F(VmLifecycle, AGarbageRecordInOneFolderDoesNotStopTheOtherVms) {
  root_.write("instances/junk/vm.json", "{\"agent\": \"x\", \"spe");
  writeVm("vm4", tinyVm("  state: stopped\n"));
  auto created = apply();
  ASSERT_EQ(created.code, 0) << created.out << created.err;
  EXPECT_TRUE(fs::exists(root_ / "instances/vm4/vm.json"));

  writeVm("junk", tinyVm("  state: stopped\n"));
  auto refused = apply();
  EXPECT_EQ(refused.code, 1) << refused.out << refused.err;
  EXPECT_THAT(refused.out + refused.err,
              HasSubstr("VirtualMachine/junk: exists, not managed by nodeplane"));
  EXPECT_EQ(slurp(root_ / "instances/junk/vm.json"), "{\"agent\": \"x\", \"spe");
  // JSON, but not a record: the same.
  root_.write("instances/odd/vm.json", "{\"agent\": 5, \"instanceId\": []}");
  auto odd = apply();
  EXPECT_EQ(odd.code, 1) << odd.out << odd.err;
  EXPECT_THAT(odd.out + odd.err,
              HasSubstr("VirtualMachine/junk: exists, not managed by nodeplane"));
  EXPECT_THAT(odd.out + odd.err, ::testing::Not(HasSubstr("internal error")));

  fs::remove(root_ / "desired/junk.yaml");
  fs::remove(root_ / "desired/vm4.yaml");
  auto deleted = np({"apply", "--allow-empty", "-f", (root_ / "desired").string()});
  ASSERT_EQ(deleted.code, 0) << deleted.out << deleted.err;
  EXPECT_FALSE(fs::exists(root_ / "instances/vm4"));
  EXPECT_EQ(slurp(root_ / "instances/junk/vm.json"), "{\"agent\": \"x\", \"spe");
}

// retainDisk: the delete keeps the overlay and drops the record, so the disk is nobody's VM any
// more. A new VM of that name must neither boot on it nor, deleted in turn, remove it.
TEST_F(VmLifecycle, ARetainedDiskIsNotTakenByANewVmOfTheSameName) {
  writeVm("vm5", tinyVm("  state: stopped\n  retainDisk: true\n"));
  auto created = apply();
  ASSERT_EQ(created.code, 0) << created.out << created.err;
  const fs::path overlay = root_ / "instances/vm5/disk.qcow2";
  ASSERT_TRUE(fs::exists(overlay));
  const ino_t disk = inode(overlay);

  fs::remove(root_ / "desired/vm5.yaml");
  auto deleted = np({"apply", "--allow-empty", "-f", (root_ / "desired").string()});
  ASSERT_EQ(deleted.code, 0) << deleted.out << deleted.err;
  EXPECT_FALSE(fs::exists(root_ / "instances/vm5/vm.json"));
  ASSERT_EQ(inode(overlay), disk) << "retained";

  writeVm("vm5", tinyVm("  state: stopped\n"));
  auto refused = apply();
  EXPECT_EQ(refused.code, 1) << refused.out << refused.err;
  EXPECT_THAT(refused.out + refused.err,
              HasSubstr("vm5: " + overlay.string() + " is a disk nodeplane does not own"));
  EXPECT_FALSE(fs::exists(root_ / "instances/vm5/vm.json"));

  fs::remove(root_ / "desired/vm5.yaml");
  auto again = np({"apply", "--allow-empty", "-f", (root_ / "desired").string()});
  ASSERT_EQ(again.code, 0) << again.out << again.err;
  EXPECT_EQ(inode(overlay), disk) << "the retained disk is still there";
}

// A delete that cannot remove everything in the VM's folder (here a mount point in it) keeps the
// record: the VM is still ours and the next apply deletes the rest, rather than leaving a folder
// with a disk that nobody owns.
TEST_F(VmLifecycle, ADeleteCutShortKeepsTheRecordAndTheNextApplyFinishesIt) {
  const fs::path dir = root_ / "instances/vm6";
  const fs::path stuck = dir / "stuck";
  fs::create_directories(stuck);
  writeVm("vm6", tinyVm("  state: stopped\n"));
  auto created = apply();
  ASSERT_EQ(created.code, 0) << created.out << created.err;
  ASSERT_EQ(::mount("tmpfs", stuck.c_str(), "tmpfs", 0, nullptr), 0) << std::strerror(errno);

  fs::remove(root_ / "desired/vm6.yaml");
  auto cut = np({"apply", "--allow-empty", "-f", (root_ / "desired").string()});
  ::umount2(stuck.c_str(), MNT_DETACH);
  EXPECT_EQ(cut.code, 1) << cut.out << cut.err;
  EXPECT_THAT(cut.out + cut.err, HasSubstr("cannot remove " + stuck.string()));
  EXPECT_TRUE(fs::exists(dir / "vm.json")) << "the record is removed last";
  EXPECT_FALSE(fs::exists(dir / "disk.qcow2"));

  auto finished = np({"apply", "--allow-empty", "-f", (root_ / "desired").string()});
  ASSERT_EQ(finished.code, 0) << finished.out << finished.err;
  EXPECT_FALSE(fs::exists(dir));
}

}  // namespace
}  // namespace nodeplane::testing
