// VfioDevice's moves against a writable copy of the g-passthrough fixture, through a HostServices
// whose writeSysfs does what the kernel does with driver_override, unbind and drivers_probe (the
// `driver` link moves, /dev/vfio/<group> appears), and its bad answers: drivers_probe succeeding
// with nothing bound, a driver that binds only when named, a write that never returns. The real
// kernel is tests/e2e's.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "host_services.hpp"
#include "support/files.hpp"
#include "support/plugin_rig.hpp"
#include "vfio_kind.hpp"
#include "vfio_records.hpp"

namespace nodeplane::qemu {
namespace {
namespace fs = std::filesystem;

using ::nodeplane::testing::procFixture;
using ::nodeplane::testing::slurp;
using ::nodeplane::testing::sysfsFixture;
using ::nodeplane::testing::TempDir;

constexpr const char* kAgent = "00000000000000a1";

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// The kernel's PCI core as far as VfioDevice sees it, over a sysfs tree it may change.
class FakeKernel final : public HostServices {
 public:
  explicit FakeKernel(HostContext host)
      : shared_(std::make_shared<SharedHostServices>(std::move(host))), real_(shared_) {
    shared_->setAgentId(kAgent);
    auto functions = host::readPciFunctions(sysfs());
    EXPECT_TRUE(functions) << functions.error().str();
    if (functions)
      for (const auto& f : *functions) native_[f.address] = f.driver;
  }
  const HostContext& context() const override { return real_.context(); }
  const Json& config() const override { return real_.config(); }
  std::string agentId() const override { return real_.agentId(); }
  Result<std::vector<host::PciFunction>> pciFunctions() override { return real_.pciFunctions(); }
  Result<std::vector<host::Gpu>> gpus() override { return real_.gpus(); }
  Result<sdbus::IConnection*> systemdBus() override {
    ++busCalls;
    return fail(ErrorKind::kTerminal, "no bus in this test");
  }

  Result<void> writeSysfs(const fs::path& file, std::string_view value,
                          std::chrono::milliseconds timeout) override {
    const std::string rel = file.string();
    log.push_back(rel + "=" + trimmed(std::string(value)));
    if (hang.count(rel)) return real_.writeSysfs(file, value, timeout);  // a FIFO: blocks
    std::vector<std::string> part;
    for (const auto& p : file) part.push_back(p.string());
    const std::string v = trimmed(std::string(value));
    auto enodev = [&] {
      return fail(ErrorKind::kTerminal, "writing \"" + v + "\" to " + rel + ": No such device");
    };
    if (part.size() == 5 && part[2] == "devices" && part[4] == "driver_override") {
      std::ofstream(sysfs() / rel) << (v.empty() ? "(null)" : v) << "\n";
      return {};
    }
    if (part.size() == 5 && part[2] == "drivers" && part[4] == "unbind") {
      if (driverOf(v) != part[3]) return enodev();
      fs::remove(deviceDir(v) / "driver");
      fs::remove(sysfs() / "bus/pci/drivers" / part[3] / v);
      return {};
    }
    if (rel == "bus/pci/drivers_probe") {
      if (!fs::exists(deviceDir(v))) return enodev();
      if (!driverOf(v).empty() || probeBindsNothing) return {};  // success either way
      std::string over = trimmed(slurp(deviceDir(v) / "driver_override"));
      if (over == "(null)") over.clear();
      std::string want = over.empty() ? native_[v] : over;
      if (over.empty() && onlyWhenNamed.count(v)) want.clear();
      if (want.empty() || !fs::is_directory(sysfs() / "bus/pci/drivers" / want)) return {};
      fs::create_symlink(sysfs() / "bus/pci/drivers" / want, deviceDir(v) / "driver");
      fs::create_symlink(deviceDir(v), sysfs() / "bus/pci/drivers" / want / v);
      if (want == "vfio-pci") {
        auto f = host::readPciFunction(sysfs(), v);
        fs::create_directories(context().devRoot / "vfio");
        std::ofstream(context().devRoot / "vfio" / std::to_string(*f->iommuGroup));
      }
      return {};
    }
    return fail(ErrorKind::kTerminal, "the fake kernel has no file " + rel);
  }

  fs::path sysfs() const { return context().sysfsRoot; }
  fs::path deviceDir(const std::string& a) const { return sysfs() / "bus/pci/devices" / a; }
  std::string driverOf(const std::string& a) const {
    std::error_code ec;
    auto t = fs::read_symlink(deviceDir(a) / "driver", ec);
    return ec ? std::string() : t.filename().string();
  }
  std::string overrideOf(const std::string& a) const {
    return trimmed(slurp(deviceDir(a) / "driver_override"));
  }

  std::vector<std::string> log;
  bool probeBindsNothing = false;       // drivers_probe: success, and nothing binds
  std::set<std::string> onlyWhenNamed;  // functions whose driver binds only through the override
  std::set<std::string> hang;           // files made FIFOs: the write blocks
  int busCalls = 0;

 private:
  std::shared_ptr<SharedHostServices> shared_;
  PluginServices real_;
  std::map<std::string, std::string> native_;
};

struct Rig {
  TempDir tmp;
  HostContext host;
  std::unique_ptr<FakeKernel> kernel;
  QemuConfig config;
  std::unique_ptr<VfioKind> kind;
  std::unique_ptr<test::TestApplyContext> ctx;

  Rig() {
    fs::copy(sysfsFixture("g-passthrough"), tmp / "sys",
             fs::copy_options::recursive | fs::copy_options::copy_symlinks);
    host.sysfsRoot = tmp / "sys";
    host.procRoot = procFixture("g-passthrough");
    host.devRoot = tmp / "dev";
    fs::create_directories(host.devRoot);
    kernel = std::make_unique<FakeKernel>(host);
    config.stateDir = tmp / "state/qemu";
    config.vfioAllow = {"10de:*", "8086:*"};
    config.bindTimeout = std::chrono::milliseconds(300);
    kind = std::make_unique<VfioKind>(*kernel, config);
    ctx = std::make_unique<test::TestApplyContext>(*kernel);
  }
  FakeKernel& k() { return *kernel; }

  static Change change(Action a, const std::string& name, const std::string& device,
                       bool bound = true, std::string uid = "") {
    Change c;
    c.action = a;
    c.id = {"VfioDevice", name};
    c.desired = {{"device", device}, {"bound", bound}};
    c.uid = std::move(uid);
    return c;
  }
  Outcome apply(const Change& c) { return kind->apply(c, *ctx); }
  std::optional<VfioRecord> record(const std::string& name) {
    auto r = readVfioRecord(config.stateDir, name);
    EXPECT_TRUE(r) << r.error().str();
    return r ? *r : std::nullopt;
  }
  std::string uid(const std::string& name) {
    auto r = record(name);
    return r ? r->uid : std::string();
  }
};

const std::string kGpu = "0000:01:00.0";
const std::string kAudio = "0000:01:00.1";

TEST(VfioApply, BindsTheWholeGroupAndGivesItBack) {
  Rig rig;
  auto& k = rig.k();
  for (const auto& [name, a] : {std::pair{"vm1-gpu", kGpu}, std::pair{"vm1-audio", kAudio}}) {
    Outcome o = rig.apply(Rig::change(Action::kCreate, name, a));
    ASSERT_EQ(o.cls, Outcome::kDone) << o.error.str();
  }
  EXPECT_EQ(k.driverOf(kGpu), "vfio-pci");
  EXPECT_EQ(k.driverOf(kAudio), "vfio-pci");
  EXPECT_EQ(k.overrideOf(kGpu), "vfio-pci");
  EXPECT_TRUE(fs::exists(rig.host.devRoot / "vfio/1"));
  EXPECT_EQ(k.log, (std::vector<std::string>{
                       "bus/pci/devices/0000:01:00.0/driver_override=vfio-pci",
                       "bus/pci/drivers/nvidia/unbind=0000:01:00.0",
                       "bus/pci/drivers_probe=0000:01:00.0",
                       "bus/pci/devices/0000:01:00.1/driver_override=vfio-pci",
                       "bus/pci/drivers/snd_hda_intel/unbind=0000:01:00.1",
                       "bus/pci/drivers_probe=0000:01:00.1",
                   }));
  auto rec = rig.record("vm1-audio");
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->device, kAudio);
  EXPECT_EQ(rec->agent, kAgent);
  EXPECT_EQ(rec->originalDriver, "snd_hda_intel");
  EXPECT_EQ(rec->intent, "");
  EXPECT_EQ(rec->uid.size(), 16u);
  EXPECT_EQ(rig.ctx->undo_, Json({{"device", kAudio}, {"driver", "snd_hda_intel"}}));
  EXPECT_EQ(rig.ctx->messages[0], "setting driver_override of 0000:01:00.0 to vfio-pci");
  EXPECT_EQ(rig.ctx->messages[1], "unbinding 0000:01:00.0 from nvidia");

  auto seen = rig.kind->observe();
  ASSERT_TRUE(seen) << seen.error().str();
  ASSERT_EQ(seen->size(), 2u);
  const auto& audio = (*seen)[0];  // sorted by name
  EXPECT_EQ(audio.id.str(), "VfioDevice/vm1-audio");
  EXPECT_EQ(audio.spec, Json({{"device", kAudio}, {"bound", true}}));
  EXPECT_TRUE(audio.marked);
  EXPECT_EQ(audio.uid, rec->uid);
  EXPECT_EQ(audio.holds, (std::vector<Claim>{{"pci", kAudio, true, false}}));

  // A second create of the same (a pass after a lost result): nothing written again.
  k.log.clear();
  EXPECT_TRUE(rig.apply(Rig::change(Action::kCreate, "vm1-gpu", kGpu)).ok());
  EXPECT_TRUE(k.log.empty());

  // bound: false (the VM stopped): back on the host driver, still ours.
  const std::string uid = rig.uid("vm1-gpu");
  Outcome off = rig.apply(Rig::change(Action::kUpdate, "vm1-gpu", kGpu, false, uid));
  ASSERT_EQ(off.cls, Outcome::kDone) << off.error.str();
  EXPECT_EQ(k.driverOf(kGpu), "nvidia");
  EXPECT_EQ(k.overrideOf(kGpu), "(null)");
  EXPECT_EQ(rig.uid("vm1-gpu"), uid);
  seen = rig.kind->observe();
  EXPECT_EQ((*seen)[1].spec, Json({{"device", kGpu}, {"bound", false}}));
  EXPECT_TRUE((*seen)[1].holds.empty());

  // bound again: the same binding (uid kept).
  ASSERT_TRUE(rig.apply(Rig::change(Action::kUpdate, "vm1-gpu", kGpu, true, uid)).ok());
  EXPECT_EQ(k.driverOf(kGpu), "vfio-pci");
  EXPECT_EQ(rig.uid("vm1-gpu"), uid);

  // delete: the original drivers, driver_override cleared, records gone.
  k.log.clear();
  for (const auto& [name, a] : {std::pair{"vm1-gpu", kGpu}, std::pair{"vm1-audio", kAudio}}) {
    Outcome o = rig.apply(Rig::change(Action::kDelete, name, a, true, rig.uid(name)));
    ASSERT_EQ(o.cls, Outcome::kDone) << o.error.str();
  }
  EXPECT_EQ(k.driverOf(kGpu), "nvidia");
  EXPECT_EQ(k.driverOf(kAudio), "snd_hda_intel");
  EXPECT_EQ(k.overrideOf(kAudio), "(null)");
  EXPECT_EQ(k.log, (std::vector<std::string>{
                       "bus/pci/drivers/vfio-pci/unbind=0000:01:00.0",
                       "bus/pci/devices/0000:01:00.0/driver_override=",
                       "bus/pci/drivers_probe=0000:01:00.0",
                       "bus/pci/drivers/vfio-pci/unbind=0000:01:00.1",
                       "bus/pci/devices/0000:01:00.1/driver_override=",
                       "bus/pci/drivers_probe=0000:01:00.1",
                   }));
  EXPECT_FALSE(rig.record("vm1-gpu"));
  EXPECT_TRUE(rig.kind->observe()->empty());
  EXPECT_EQ(k.busCalls, 0) << "VfioDevice never needs the systemd bus";
}

TEST(VfioApply, CreatedUnboundIsARecordAlone) {
  Rig rig;
  ASSERT_TRUE(rig.apply(Rig::change(Action::kCreate, "g", kGpu, false)).ok());
  EXPECT_TRUE(rig.k().log.empty());
  EXPECT_EQ(rig.k().driverOf(kGpu), "nvidia");
  auto rec = rig.record("g");
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->originalDriver, "nvidia");
  auto seen = rig.kind->observe();
  ASSERT_EQ(seen->size(), 1u);
  EXPECT_EQ((*seen)[0].spec, Json({{"device", kGpu}, {"bound", false}}));
}

TEST(VfioApply, RefusesAFunctionOnVfioPciItDidNotBind) {
  Rig rig;
  Outcome o = rig.apply(Rig::change(Action::kCreate, "x", "0000:08:00.0"));
  ASSERT_EQ(o.cls, Outcome::kTerminal);
  EXPECT_EQ(o.error.message,
            "0000:08:00.0 is already on vfio-pci, not bound by nodeplane (no record in " +
                (rig.config.stateDir / "vfio").string() + "); not touched");
  EXPECT_TRUE(rig.k().log.empty());
  EXPECT_FALSE(rig.record("x"));
  EXPECT_TRUE(rig.kind->observe()->empty()) << "a function with no record is not observed";
}

TEST(VfioApply, RefusesWhenVfioPciIsNotLoaded) {
  Rig rig;
  fs::remove_all(rig.host.sysfsRoot / "bus/pci/drivers/vfio-pci");
  Outcome o = rig.apply(Rig::change(Action::kCreate, "g", kGpu));
  ASSERT_EQ(o.cls, Outcome::kTerminal);
  EXPECT_EQ(o.error.str(), "binding 0000:01:00.0 to vfio-pci: vfio-pci is not loaded (" +
                               (rig.host.sysfsRoot / "bus/pci/drivers/vfio-pci").string() +
                               " not found) (modprobe vfio-pci; add it to /etc/modules-load.d "
                               "to keep it)");
  EXPECT_TRUE(rig.k().log.empty());
  EXPECT_FALSE(rig.record("g"));
}

TEST(VfioApply, GuardsAgainAtTheMomentOfActing) {
  Rig rig;
  Outcome used = rig.apply(Rig::change(Action::kCreate, "g", "0000:04:00.0"));
  ASSERT_EQ(used.cls, Outcome::kTerminal);
  EXPECT_EQ(used.error.str(),
            "binding 0000:04:00.0 to vfio-pci refused: the host is using 0000:04:00.0 (on "
            "nvidia): pid 4242 (Xorg) has /dev/nvidia2 open (stop that use first; nothing was "
            "changed)");
  rig.config.vfioAllow = {"0000:01:00.1"};
  Outcome refused = rig.apply(Rig::change(Action::kCreate, "g", kGpu));
  ASSERT_EQ(refused.cls, Outcome::kTerminal);
  EXPECT_EQ(refused.error.message,
            "binding 0000:01:00.0 to vfio-pci refused: 0000:01:00.0 (10de:2204) is not admitted "
            "by vfio.allow");
  EXPECT_TRUE(rig.k().log.empty());
  EXPECT_FALSE(rig.record("g"));
}

TEST(VfioApply, TouchesOnlyItsOwnBinding) {
  Rig rig;
  ASSERT_TRUE(rig.apply(Rig::change(Action::kCreate, "g", kGpu)).ok());
  const std::string uid = rig.uid("g");
  rig.k().log.clear();
  Outcome stale = rig.apply(Rig::change(Action::kDelete, "g", kGpu, true, "0123456789abcdef"));
  ASSERT_EQ(stale.cls, Outcome::kTerminal);
  EXPECT_EQ(stale.error.kind, ErrorKind::kConflict);
  EXPECT_EQ(stale.error.message,
            "delete VfioDevice/g refused: the binding is not the one the plan was made against "
            "(uid 0123456789abcdef then, " +
                uid + " now); not touched");

  auto rec = *rig.record("g");
  rec.agent = "00000000000000b2";
  ASSERT_TRUE(writeVfioRecord(rig.config.stateDir, rec));
  Outcome other = rig.apply(Rig::change(Action::kDelete, "g", kGpu, true, uid));
  ASSERT_EQ(other.cls, Outcome::kTerminal);
  EXPECT_EQ(other.error.message,
            "delete VfioDevice/g refused: 0000:01:00.0 was bound by another nodeplane agent "
            "(00000000000000b2), not this one (00000000000000a1); not touched");
  EXPECT_TRUE(rig.k().log.empty());
  EXPECT_EQ(rig.k().driverOf(kGpu), "vfio-pci");
  auto seen = rig.kind->observe();
  ASSERT_EQ(seen->size(), 1u);
  EXPECT_FALSE((*seen)[0].marked);
  EXPECT_EQ((*seen)[0].markedByOther, "00000000000000b2");
}

// drivers_probe says success and nothing binds (vfio-pci not really there): the bind is judged by
// the driver link, undone, and the undo's own failure reported; the record keeps the function.
TEST(VfioApply, ProbeThatBindsNothing) {
  Rig rig;
  auto& k = rig.k();
  k.probeBindsNothing = true;
  Outcome o = rig.apply(Rig::change(Action::kCreate, "g", kGpu));
  ASSERT_EQ(o.cls, Outcome::kRetryable);
  EXPECT_EQ(o.error.message,
            "binding 0000:01:00.0 to vfio-pci: drivers_probe returned, but 0000:01:00.0 has no "
            "driver, not vfio-pci, after 300 ms; putting it back on nvidia failed too: "
            "drivers_probe returned, but 0000:01:00.0 has no driver, not its original driver "
            "nvidia");
  EXPECT_EQ(k.driverOf(kGpu), "");
  EXPECT_EQ(k.overrideOf(kGpu), "(null)") << "driver_override is never left set";
  auto rec = rig.record("g");
  ASSERT_TRUE(rec) << "the record keeps the function it left without a driver";
  EXPECT_EQ(rec->intent, "restore");

  // The kernel answers again: recovery (or the next delete) gives it back.
  k.probeBindsNothing = false;
  Interrupted in{Action::kCreate, {"VfioDevice", "g"}, {{"device", kGpu}, {"driver", "nvidia"}}};
  ASSERT_TRUE(rig.kind->recover(in, *rig.ctx));
  EXPECT_EQ(k.driverOf(kGpu), "nvidia");
  EXPECT_FALSE(rig.record("g"));
}

// The research note's case: after vfio-pci the function's driver does not take it back on a
// plain probe; it is asked for by name through driver_override, then the override is cleared.
TEST(VfioApply, RestoreAsksForTheDriverByName) {
  Rig rig;
  auto& k = rig.k();
  ASSERT_TRUE(rig.apply(Rig::change(Action::kCreate, "a", kAudio)).ok());
  k.onlyWhenNamed.insert(kAudio);
  k.log.clear();
  Outcome o = rig.apply(Rig::change(Action::kDelete, "a", kAudio, true, rig.uid("a")));
  ASSERT_EQ(o.cls, Outcome::kDone) << o.error.str();
  EXPECT_EQ(k.driverOf(kAudio), "snd_hda_intel");
  EXPECT_EQ(k.overrideOf(kAudio), "(null)");
  EXPECT_EQ(k.log, (std::vector<std::string>{
                       "bus/pci/drivers/vfio-pci/unbind=0000:01:00.1",
                       "bus/pci/devices/0000:01:00.1/driver_override=",
                       "bus/pci/drivers_probe=0000:01:00.1",
                       "bus/pci/devices/0000:01:00.1/driver_override=snd_hda_intel",
                       "bus/pci/drivers_probe=0000:01:00.1",
                       "bus/pci/devices/0000:01:00.1/driver_override=",
                   }));
  EXPECT_FALSE(rig.record("a"));
}

// An unbind that never returns: abandoned after the timeout, the function put back, nothing kept.
TEST(VfioApply, AWriteThatHangsIsAbandoned) {
  Rig rig;
  auto& k = rig.k();
  const fs::path unbind = rig.host.sysfsRoot / "bus/pci/drivers/nvidia/unbind";
  ASSERT_EQ(::mkfifo(unbind.c_str(), 0600), 0);
  k.hang.insert("bus/pci/drivers/nvidia/unbind");
  const auto start = std::chrono::steady_clock::now();
  Outcome o = rig.apply(Rig::change(Action::kCreate, "g", kGpu));
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_EQ(o.cls, Outcome::kRetryable);
  EXPECT_EQ(o.error.message, "binding 0000:01:00.0 to vfio-pci: writing \"0000:01:00.0\" to " +
                                 unbind.string() +
                                 " did not return within 300 ms (put back on nvidia)");
  EXPECT_LT(took, std::chrono::seconds(5));
  EXPECT_EQ(k.driverOf(kGpu), "nvidia");
  EXPECT_EQ(k.overrideOf(kGpu), "(null)");
  EXPECT_FALSE(rig.record("g"));
  // Let the abandoned writer finish: open the FIFO's other end and take what it wrote.
  int fd = ::open(unbind.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  char buf[64];
  EXPECT_EQ(::read(fd, buf, sizeof buf), 12);
  ::close(fd);
}

// Runs `change` in a child that SIGKILLs itself after `step` (NODEPLANE_TEST_VFIO_CRASH_AT).
void crashIn(Rig& rig, const Change& change, const std::string& step) {
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::setenv("NODEPLANE_TEST_VFIO_CRASH_AT", step.c_str(), 1);
    rig.apply(change);
    ::_exit(3);  // the step was never reached
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
      << step << ": the child was not killed there (status " << status << ")";
}

TEST(VfioRecover, ACrashBetweenAnyTwoStepsOfABindIsSettled) {
  for (const std::string step :
       {"after-record", "after-override", "after-unbind", "after-probe", "after-verify"}) {
    SCOPED_TRACE(step);
    Rig rig;
    auto& k = rig.k();
    crashIn(rig, Rig::change(Action::kCreate, "g", kGpu), step);
    auto left = rig.record("g");
    ASSERT_TRUE(left);
    EXPECT_EQ(left->intent, "bind");
    Interrupted in{Action::kCreate, {"VfioDevice", "g"}, {{"device", kGpu}, {"driver", "nvidia"}}};
    ASSERT_TRUE(rig.kind->recover(in, *rig.ctx));
    if (step == "after-probe" || step == "after-verify") {  // on vfio-pci: finished
      EXPECT_EQ(k.driverOf(kGpu), "vfio-pci");
      ASSERT_TRUE(rig.record("g"));
      EXPECT_EQ(rig.record("g")->intent, "");
    } else {  // undone: as it was before the create
      EXPECT_EQ(k.driverOf(kGpu), "nvidia");
      EXPECT_NE(k.overrideOf(kGpu), "vfio-pci");
      EXPECT_FALSE(rig.record("g"));
      ASSERT_TRUE(rig.apply(Rig::change(Action::kCreate, "g", kGpu)).ok()) << "and binds again";
      EXPECT_EQ(k.driverOf(kGpu), "vfio-pci");
    }
  }
}

TEST(VfioRecover, ACrashBetweenAnyTwoStepsOfARestoreIsFinished) {
  for (const std::string step : {"restore-after-record", "restore-after-unbind",
                                 "restore-after-clear", "restore-after-probe"}) {
    SCOPED_TRACE(step);
    Rig rig;
    auto& k = rig.k();
    ASSERT_TRUE(rig.apply(Rig::change(Action::kCreate, "g", kGpu)).ok());
    crashIn(rig, Rig::change(Action::kDelete, "g", kGpu, true, rig.uid("g")), step);
    ASSERT_TRUE(rig.record("g")) << "the record goes only once the function is back";
    Interrupted in{Action::kDelete, {"VfioDevice", "g"}, {{"device", kGpu}, {"driver", "nvidia"}}};
    ASSERT_TRUE(rig.kind->recover(in, *rig.ctx));
    EXPECT_EQ(k.driverOf(kGpu), "nvidia");
    EXPECT_EQ(k.overrideOf(kGpu), "(null)");
    EXPECT_FALSE(rig.record("g"));
  }
  // An update to bound: false interrupted the same way keeps its record, settled.
  Rig rig;
  ASSERT_TRUE(rig.apply(Rig::change(Action::kCreate, "g", kGpu)).ok());
  const std::string uid = rig.uid("g");
  crashIn(rig, Rig::change(Action::kUpdate, "g", kGpu, false, uid), "restore-after-unbind");
  Interrupted in{Action::kUpdate, {"VfioDevice", "g"}, {{"device", kGpu}, {"driver", "nvidia"}}};
  ASSERT_TRUE(rig.kind->recover(in, *rig.ctx));
  EXPECT_EQ(rig.k().driverOf(kGpu), "nvidia");
  ASSERT_TRUE(rig.record("g"));
  EXPECT_EQ(rig.record("g")->intent, "");
  EXPECT_EQ(rig.uid("g"), uid);
}

}  // namespace
}  // namespace nodeplane::qemu
