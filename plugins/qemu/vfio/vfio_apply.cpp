// VfioDevice's moves: apply (create, update of `bound`, replace, delete, release) and recover.
// Each sysfs write goes through HostServices::writeSysfs with QemuConfig::bindTimeout; each step
// is judged by reading sysfs back (drivers_probe says success even when nothing bound).
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <system_error>
#include <thread>

#include "vfio_guard.hpp"
#include "vfio_kind.hpp"

namespace nodeplane::qemu {
namespace fs = std::filesystem;
namespace {

constexpr const char* kVfioPci = "vfio-pci";

// NODEPLANE_TEST_VFIO_CRASH_AT=<step>: die by SIGKILL right after that step (vfio_kind.hpp).
void crashPoint(const char* step) {
  const char* at = std::getenv("NODEPLANE_TEST_VFIO_CRASH_AT");
  if (at && std::string_view(at) == step) ::kill(::getpid(), SIGKILL);
}

std::string readTrimmed(const fs::path& p) {
  std::ifstream in(p);
  if (!in) return {};
  std::stringstream text;
  text << in.rdbuf();
  std::string s = text.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

Error withContext(Error e, const std::string& what) {
  e.message = what + ": " + e.message;
  return e;
}

// What the kernel says of one function, read fresh on every call.
struct Function {
  fs::path sysfs;
  std::string address;
  fs::path dir() const { return sysfs / "bus/pci/devices" / address; }
  bool exists() const {
    std::error_code ec;
    return fs::exists(dir(), ec);
  }
  std::string driver() const {
    std::error_code ec;
    fs::path t = fs::read_symlink(dir() / "driver", ec);
    return ec ? std::string() : t.filename().string();
  }
  // "" when cleared (the kernel shows "(null)").
  std::string overrideName() const {
    std::string s = readTrimmed(dir() / "driver_override");
    return s == "(null)" ? std::string() : s;
  }
  std::string devices(const char* file) const { return "bus/pci/devices/" + address + "/" + file; }
};

std::string describe(const std::string& driver) {
  return driver.empty() ? std::string("no driver") : driver;
}

}  // namespace

Result<void> VfioKind::owned(const std::optional<VfioRecord>& record, const Change& change) const {
  const std::string what = std::string(toString(change.action)) + " " + change.id.str();
  if (!record) return {};
  const std::string agent = services_.agentId();
  if (record->agent != agent)
    return fail(ErrorKind::kConflict,
                what + " refused: " + record->device + " was bound by another nodeplane agent (" +
                    (record->agent.empty() ? std::string("no agent id") : record->agent) +
                    "), not this one (" + agent + "); not touched");
  if (!change.uid.empty() && record->uid != change.uid)
    return fail(ErrorKind::kConflict,
                what + " refused: the binding is not the one the plan was made against (uid " +
                    change.uid + " then, " + record->uid + " now); not touched",
                {}, "run the apply again to see the host as it is now");
  return {};
}

Outcome VfioKind::apply(const Change& change, ApplyContext& context) {
  return Outcome::from(applyNow(change, context));
}

Result<void> VfioKind::applyNow(const Change& change, ApplyContext& context) {
  const std::string& name = change.id.name;
  const std::string what = std::string(toString(change.action)) + " " + change.id.str();
  if (services_.agentId().empty())
    return fail(ErrorKind::kTerminal, what +
                                          " refused: no agent id (the state store was not "
                                          "opened), so the record could not name its owner");
  auto record = readVfioRecord(config_.stateDir, name);
  if (!record) return std::unexpected(withContext(record.error(), what));
  const Json desired = normalize(change.desired);
  const std::string device = desired.value("device", std::string());
  const bool bound = desired.value("bound", true);

  switch (change.action) {
    case Action::kCreate: {
      if (*record && (*record)->agent != services_.agentId()) return owned(*record, change);
      if (*record && (*record)->device != device) {  // a leftover of ours for another device
        auto r = restore(**record, context);
        if (!r) return std::unexpected(withContext(r.error(), what));
        if (auto rm = removeVfioRecord(config_.stateDir, name); !rm) return rm;
        record->reset();
      }
      if (bound) return bind(name, device, *record, context);
      // Owned, left on its host driver: the record alone.
      Function f{services_.context().sysfsRoot, device};
      if (!f.exists())
        return fail(ErrorKind::kTerminal, what + ": no PCI function " + device + " on this host");
      if (f.driver() == kVfioPci && !*record)
        return fail(ErrorKind::kTerminal,
                    what + " refused: " + device +
                        " is already on vfio-pci, not bound by "
                        "nodeplane; not touched",
                    {}, "give it back to its driver by hand, or leave it out of the files");
      VfioRecord rec =
          *record ? **record
                  : VfioRecord{name, device, services_.agentId(), f.driver(), newVfioUid(), ""};
      return writeVfioRecord(config_.stateDir, rec);
    }
    case Action::kUpdate: {
      if (!*record)
        return fail(ErrorKind::kRetryable,
                    what + ": no record of " + change.id.str() + " (deleted since the plan)");
      if (auto ok = owned(*record, change); !ok) return ok;
      if (bound) return bind(name, (*record)->device, *record, context);
      VfioRecord rec = **record;
      if (auto r = restore(rec, context); !r) return std::unexpected(withContext(r.error(), what));
      rec.intent.clear();
      return writeVfioRecord(config_.stateDir, rec);
    }
    case Action::kReplace:
    case Action::kDelete: {
      if (*record) {
        if (auto ok = owned(*record, change); !ok) return ok;
        VfioRecord rec = **record;
        if (auto r = restore(rec, context); !r)
          return std::unexpected(withContext(r.error(), what));
        if (auto rm = removeVfioRecord(config_.stateDir, name); !rm) return rm;
      }
      if (change.action == Action::kDelete) return {};
      return bind(name, device, std::nullopt, context);
    }
    case Action::kRelease: {
      if (!*record) return {};
      if (auto ok = owned(*record, change); !ok) return ok;
      return removeVfioRecord(config_.stateDir, name);
    }
  }
  return fail(ErrorKind::kTerminal, what + ": unknown action");
}

namespace {

// Polls `done` every few milliseconds until it holds, the timeout passes or a stop is requested.
template <class F>
bool waitUntil(F done, std::chrono::milliseconds timeout, const std::stop_token& stop) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (done()) return true;
    if (stop.stop_requested() || std::chrono::steady_clock::now() >= deadline) return done();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace

Result<void> VfioKind::bind(const std::string& name, const std::string& address,
                            std::optional<VfioRecord> existing, ApplyContext& context) {
  const fs::path& sysfs = services_.context().sysfsRoot;
  const auto timeout = config_.bindTimeout;
  const auto stop = context.stopToken();
  Function f{sysfs, address};
  const std::string what = "binding " + address + " to vfio-pci";
  auto fn = host::readPciFunction(sysfs, address);
  if (!fn) return std::unexpected(withContext(fn.error(), what));
  const fs::path devnode = services_.context().devRoot / "vfio" /
                           (fn->iommuGroup ? std::to_string(*fn->iommuGroup) : std::string("?"));

  if (fn->driver == kVfioPci) {
    if (!existing)
      return fail(ErrorKind::kTerminal,
                  address + " is already on vfio-pci, not bound by nodeplane (no record in " +
                      vfioRecordDir(config_.stateDir).string() + "); not touched",
                  {}, "give it back to its driver by hand, or leave it out of the files");
  } else {
    if (!fs::is_directory(sysfs / "bus/pci/drivers" / kVfioPci))
      return fail(ErrorKind::kTerminal,
                  what + ": vfio-pci is not loaded (" +
                      (sysfs / "bus/pci/drivers/vfio-pci").string() + " not found)",
                  {}, "modprobe vfio-pci; add it to /etc/modules-load.d to keep it");
    if (!vfioAllowed(config_.vfioAllow, *fn))
      return fail(ErrorKind::kTerminal, what + " refused: " + address + " (" + fn->vendor + ":" +
                                            fn->device + ") is not admitted by vfio.allow");
    if (!fn->iommuGroup)
      return fail(ErrorKind::kTerminal, what + ": " + address +
                                            " has no IOMMU group: the IOMMU "
                                            "is off");
    auto uses = hostUses({sysfs, services_.context().procRoot}, *fn, nvidiaMinor(address));
    if (!uses.empty())
      return fail(ErrorKind::kTerminal,
                  what + " refused: the host is using " + address + " (on " + fn->driver +
                      "): " + uses.front(),
                  {}, "stop that use first; nothing was changed");
  }

  VfioRecord rec = existing ? *existing : VfioRecord{name,       address,      services_.agentId(),
                                                     fn->driver, newVfioUid(), ""};
  if (fn->driver == kVfioPci) {  // ours, already bound (or a bind that got this far)
    if (!waitUntil([&] { return fs::exists(devnode); }, timeout, stop))
      return fail(ErrorKind::kRetryable, what + ": " + devnode.string() + " did not appear");
    if (rec.intent.empty()) return {};
    rec.intent.clear();
    return writeVfioRecord(config_.stateDir, rec);
  }

  // Before the first write: the record (ownership, original driver) and the undo record.
  rec.intent = "bind";
  if (auto ok = writeVfioRecord(config_.stateDir, rec); !ok) return ok;
  if (auto ok = context.recordUndo(Json{{"device", address}, {"driver", rec.originalDriver}}); !ok)
    return ok;
  crashPoint("after-record");

  auto moved = [&]() -> Result<void> {
    context.progress("setting driver_override of " + address + " to vfio-pci");
    if (auto ok = services_.writeSysfs(f.devices("driver_override"), kVfioPci, timeout); !ok)
      return ok;
    if (f.overrideName() != kVfioPci)
      return fail(ErrorKind::kRetryable, "driver_override of " + address + " reads '" +
                                             f.overrideName() + "' after writing vfio-pci");
    crashPoint("after-override");
    if (const std::string from = f.driver(); !from.empty()) {
      context.progress("unbinding " + address + " from " + from);
      if (auto ok = services_.writeSysfs("bus/pci/drivers/" + from + "/unbind", address, timeout);
          !ok)
        return ok;
      if (!waitUntil([&] { return f.driver().empty(); }, timeout, stop))
        return fail(ErrorKind::kRetryable,
                    address + " is still on " + f.driver() + " after unbind");
    }
    crashPoint("after-unbind");
    context.progress("probing " + address + " (drivers_probe)");
    if (auto ok = services_.writeSysfs("bus/pci/drivers_probe", address, timeout); !ok) return ok;
    crashPoint("after-probe");
    if (!waitUntil([&] { return f.driver() == kVfioPci; }, timeout, stop))
      return fail(ErrorKind::kRetryable, "drivers_probe returned, but " + address + " has " +
                                             describe(f.driver()) + ", not vfio-pci, after " +
                                             std::to_string(timeout.count()) + " ms");
    crashPoint("after-verify");
    context.progress("waiting for " + devnode.string());
    if (!waitUntil([&] { return fs::exists(devnode); }, timeout, stop))
      return fail(ErrorKind::kRetryable, address + " is on vfio-pci but " + devnode.string() +
                                             " did not appear within " +
                                             std::to_string(timeout.count()) + " ms");
    return {};
  }();
  if (moved) {
    rec.intent.clear();
    return writeVfioRecord(config_.stateDir, rec);
  }
  // Put it back where it was; a create leaves no record behind when that worked.
  Error e = withContext(moved.error(), what);
  if (auto back = restore(rec, context); !back) {
    e.message += "; putting it back on " + describe(rec.originalDriver) +
                 " failed too: " + back.error().message;
    e.hint = "the record in " + vfioRecordDir(config_.stateDir).string() +
             " keeps it; the next apply tries again";
    return std::unexpected(e);
  }
  e.message += " (put back on " + describe(rec.originalDriver) + ")";
  if (!existing) {
    if (auto rm = removeVfioRecord(config_.stateDir, name); !rm) return rm;
  } else {
    rec.intent.clear();
    if (auto ok = writeVfioRecord(config_.stateDir, rec); !ok) return ok;
  }
  return std::unexpected(e);
}

Result<void> VfioKind::restore(VfioRecord& rec, ApplyContext& context) {
  const fs::path& sysfs = services_.context().sysfsRoot;
  const auto timeout = config_.bindTimeout;
  const auto stop = context.stopToken();
  Function f{sysfs, rec.device};
  const std::string& address = rec.device;
  const std::string& original = rec.originalDriver;
  if (!f.exists()) {  // removed from the bus: nothing left to give back
    context.progress(address + " is gone from the bus: nothing to restore");
    return {};
  }
  if (f.driver() == original && f.overrideName().empty() && rec.intent.empty()) return {};
  if (rec.intent != "restore") {
    rec.intent = "restore";
    if (auto ok = writeVfioRecord(config_.stateDir, rec); !ok) return ok;
  }
  crashPoint("restore-after-record");

  if (const std::string now = f.driver(); now == kVfioPci) {
    context.progress("unbinding " + address + " from vfio-pci");
    if (auto ok = services_.writeSysfs("bus/pci/drivers/vfio-pci/unbind", address, timeout); !ok)
      return ok;
    if (!waitUntil([&] { return f.driver().empty(); }, timeout, stop))
      return fail(ErrorKind::kRetryable, address + " is still on " + f.driver() + " after unbind");
  } else if (!now.empty() && now != original) {
    return fail(ErrorKind::kTerminal, address + " is on " + now +
                                          " now, neither vfio-pci nor its original driver " +
                                          describe(original) + "; not touched");
  }
  crashPoint("restore-after-unbind");
  auto clearOverride = [&]() -> Result<void> {
    if (f.overrideName().empty()) return {};
    context.progress("clearing driver_override of " + address);
    if (auto ok = services_.writeSysfs(f.devices("driver_override"), "\n", timeout); !ok) return ok;
    if (!f.overrideName().empty())
      return fail(ErrorKind::kRetryable, "driver_override of " + address + " still reads '" +
                                             f.overrideName() + "' after clearing it");
    return {};
  };
  if (auto ok = clearOverride(); !ok) return ok;
  crashPoint("restore-after-clear");
  if (original.empty() || !f.driver().empty()) {
    if (f.driver() != original)
      return fail(ErrorKind::kRetryable,
                  address + " has " + describe(f.driver()) + ", not " + describe(original));
    return {};
  }
  context.progress("probing " + address + " for " + original + " (drivers_probe)");
  if (auto ok = services_.writeSysfs("bus/pci/drivers_probe", address, timeout); !ok) return ok;
  crashPoint("restore-after-probe");
  // drivers_probe binds synchronously when the driver wants the device; a driver that does not
  // match by id (or autoprobe off) leaves it bare: then ask for the driver by name.
  const auto first = std::min<std::chrono::milliseconds>(timeout, std::chrono::seconds(2));
  if (!waitUntil([&] { return !f.driver().empty(); }, first, stop)) {
    context.progress(address + " has no driver after drivers_probe: asking for " + original +
                     " through driver_override");
    if (auto ok = services_.writeSysfs(f.devices("driver_override"), original, timeout); !ok)
      return ok;
    auto probed = services_.writeSysfs("bus/pci/drivers_probe", address, timeout);
    waitUntil([&] { return !f.driver().empty(); }, timeout, stop);
    if (auto ok = clearOverride(); !ok) return ok;
    if (!probed) return probed;
  }
  if (const std::string now = f.driver(); now != original)
    return fail(ErrorKind::kRetryable, "drivers_probe returned, but " + address + " has " +
                                           describe(now) + ", not its original driver " + original);
  return {};
}

Result<void> VfioKind::recover(const Interrupted& interrupted, ApplyContext& context) {
  const std::string& name = interrupted.id.name;
  auto record = readVfioRecord(config_.stateDir, name);
  if (!record) return std::unexpected(record.error());
  // No record: nothing was written yet, or a delete had finished (the record goes last).
  if (!*record || (*record)->agent != services_.agentId()) return {};
  VfioRecord rec = **record;
  const bool undoCreates =
      interrupted.action == Action::kCreate || interrupted.action == Action::kReplace;
  if (rec.intent == "bind") {
    Function f{services_.context().sysfsRoot, rec.device};
    if (f.driver() == kVfioPci && f.exists()) {  // the bind got through: finish it
      context.progress("recovering " + interrupted.id.str() + ": " + rec.device +
                       " is on vfio-pci; finishing the bind");
      return bind(name, rec.device, rec, context);
    }
    context.progress("recovering " + interrupted.id.str() + ": putting " + rec.device +
                     " back on " + describe(rec.originalDriver));
    if (auto ok = restore(rec, context); !ok) return ok;
    if (undoCreates) return removeVfioRecord(config_.stateDir, name);
    rec.intent.clear();
    return writeVfioRecord(config_.stateDir, rec);
  }
  if (rec.intent == "restore") {
    context.progress("recovering " + interrupted.id.str() + ": finishing the restore of " +
                     rec.device + " to " + describe(rec.originalDriver));
    if (auto ok = restore(rec, context); !ok) return ok;
    // Only an update to bound: false keeps the object; a delete, a replace, or a create that
    // failed and was being put back leaves nothing.
    if (interrupted.action != Action::kUpdate) return removeVfioRecord(config_.stateDir, name);
    rec.intent.clear();
    return writeVfioRecord(config_.stateDir, rec);
  }
  return {};
}

}  // namespace nodeplane::qemu
