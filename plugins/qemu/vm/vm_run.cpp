// VmKind's run side: the VM's record (its ownership mark), its systemd transient unit, QMP, and
// the unit signals that bring a VM whose QEMU died back through the daemon.
#include <fcntl.h>
#include <linux/kvm.h>
#include <poll.h>
#include <sdbus-c++/sdbus-c++.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "nodeplane/digest.hpp"
#include "nodeplane/host/tool.hpp"
#include "nodeplane/plugin_util.hpp"
#include "qmp.hpp"
#include "units.hpp"
#include "vm_kind.hpp"
#include "vm_spec.hpp"

namespace nodeplane::qemu {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr const char* kUnitPrefix = "nodeplane-vm-";
constexpr const char* kUnitSuffix = ".service";
constexpr auto kUnitJobTimeout = 30s;  // a start or stop job of the manager
constexpr auto kBootWait = 30s;        // from the unit's start to QMP saying "running"
constexpr auto kLiveQmpWait = 300ms;   // observe's question for status: the guest's run state

// <instancesDir>/<name>/vm.json: {agent, instanceId, spec}. The agent id is the ownership mark
// ("" once released); instanceId is the VM's uid; spec is what was applied, normalized, with the
// user data as its digest (it is sensitive: never written in clear outside the seed).
struct VmRecord {
  std::string agent;
  std::string instanceId;
  Json spec = Json::object();
};

Result<std::optional<VmRecord>> readRecord(const fs::path& file) {
  std::ifstream in(file);
  if (!in) {
    if (errno == ENOENT) return std::optional<VmRecord>();
    return fail(ErrorKind::kRetryable,
                "cannot read " + file.string() + ": " + std::strerror(errno));
  }
  Json j = Json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return fail(ErrorKind::kTerminal, file.string() + " is not a VM record (not a JSON object)");
  for (const char* key : {"agent", "instanceId"})
    if (j.contains(key) && !j[key].is_string())
      return fail(ErrorKind::kTerminal,
                  file.string() + " is not a VM record (" + key + " is not a string)");
  VmRecord r;
  r.agent = j.value("agent", std::string());
  r.instanceId = j.value("instanceId", std::string());
  if (j.contains("spec") && j["spec"].is_object()) r.spec = j["spec"];
  return std::optional<VmRecord>(std::move(r));
}

Result<void> writeRecord(const fs::path& file, const VmRecord& r) {
  Json j = {{"agent", r.agent}, {"instanceId", r.instanceId}, {"spec", r.spec}};
  return writeFileAtomically(file, j.dump(2) + "\n");
}

// The spec as the record keeps it: cloudInit.userData as its digest.
Json recordedSpec(Json spec) {
  if (spec.contains("cloudInit") && spec["cloudInit"].is_object() &&
      spec["cloudInit"].contains("userData") && spec["cloudInit"]["userData"].is_string())
    spec["cloudInit"]["userData"] = observedDigest(spec["cloudInit"]["userData"]);
  return spec;
}

std::string newInstanceId() {
  unsigned char b[8];
  std::size_t got = 0;
  while (got < sizeof b) {
    ssize_t n = ::getrandom(b + got, sizeof b - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::runtime_error(std::string("getrandom: ") + std::strerror(errno));
    got += static_cast<std::size_t>(n);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id;
  for (unsigned char c : b) {
    id += kHex[c >> 4];
    id += kHex[c & 15];
  }
  return id;
}

bool unitRunning(const std::string& activeState) {
  return activeState == "active" || activeState == "activating" || activeState == "reloading";
}

// "nodeplane-vm-vm1.service" -> "vm1"; "" for another unit.
std::string vmOfUnit(const std::string& unit) {
  const std::string prefix = kUnitPrefix, suffix = kUnitSuffix;
  if (unit.size() <= prefix.size() + suffix.size() || !unit.starts_with(prefix) ||
      !unit.ends_with(suffix))
    return "";
  return unit.substr(prefix.size(), unit.size() - prefix.size() - suffix.size());
}

// A unit's object path ends in its name escaped (every byte but [A-Za-z0-9] as _xx).
std::string unitOfPath(const std::string& path) {
  std::string last = path.substr(path.rfind('/') + 1), out;
  for (std::size_t i = 0; i < last.size(); ++i) {
    if (last[i] == '_' && i + 2 < last.size() + 0 && std::isxdigit(last[i + 1]) &&
        std::isxdigit(last[i + 2])) {
      out += static_cast<char>(std::stoi(last.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += last[i];
    }
  }
  return out;
}

std::unique_ptr<sdbus::IConnection> connectBus(const std::string& bus) {
  if (bus == "system") return sdbus::createSystemBusConnection();
  if (bus == "user") return sdbus::createSessionBusConnection();
  if (bus.starts_with("unix:")) return sdbus::createSessionBusConnectionWithAddress(bus);
  throw std::runtime_error("unknown systemd bus \"" + bus +
                           "\" (want system, user or a unix: address)");
}

// /dev/kvm opens and answers KVM_GET_API_VERSION, and the CPU shows vmx or svm (a /dev/kvm
// without them, as kvm_pvm gives, cannot run a guest: QEMU would hang, not fail). "" when usable,
// else why not.
std::string kvmUnusable(const HostContext& host) {
  const fs::path dev = host.devRoot / "kvm";
  int fd = ::open(dev.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return "cannot open " + dev.string() + ": " + std::strerror(errno);
  int version = ::ioctl(fd, KVM_GET_API_VERSION, 0);
  int e = errno;
  ::close(fd);
  if (version < 0) return "KVM_GET_API_VERSION on " + dev.string() + ": " + std::strerror(e);
  if (version != KVM_API_VERSION)
    return dev.string() + " speaks KVM API " + std::to_string(version) + ", not " +
           std::to_string(KVM_API_VERSION);
  std::ifstream cpuinfo(host.procRoot / "cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (!line.starts_with("flags")) continue;
    std::istringstream flags(line.substr(line.find(':') + 1));
    std::string f;
    while (flags >> f)
      if (f == "vmx" || f == "svm") return "";
    break;
  }
  return "the CPU shows no vmx or svm flag in " + (host.procRoot / "cpuinfo").string();
}

// The CPUs of a NUMA node (<sysfs>/devices/system/node/node<N>/cpulist: "0-3,8-11"); empty when
// unreadable (the unit then runs on any CPU, its memory still bound to the node).
std::vector<int> nodeCpus(const fs::path& sysfsRoot, int node) {
  std::ifstream in(sysfsRoot / ("devices/system/node/node" + std::to_string(node)) / "cpulist");
  std::string list;
  std::getline(in, list);
  std::vector<int> cpus;
  std::istringstream parts(list);
  std::string part;
  while (std::getline(parts, part, ',')) {
    int a = 0, b = 0;
    char dash = 0;
    std::istringstream range(part);
    if (!(range >> a)) continue;
    b = a;
    if (range >> dash && dash == '-') range >> b;
    for (int c = a; c <= b && c - a < 4096; ++c) cpus.push_back(c);
  }
  return cpus;
}

Outcome conflict(const std::string& message) {
  return Outcome::failed(Error{ErrorKind::kConflict, message});
}

}  // namespace

VmKind::VmKind(HostServices& services, const QemuConfig& config)
    : services_(services), config_(config) {}
VmKind::~VmKind() = default;

Result<sdbus::IConnection*> VmKind::bus() { return services_.systemdBus(); }

Result<void> VmKind::start() {
  std::error_code ec;
  fs::create_directories(config_.runDir, ec);
  if (ec)
    return fail(ErrorKind::kTerminal,
                "cannot create " + config_.runDir.string() + ": " + ec.message());
  fs::permissions(config_.runDir, fs::perms::owner_all, fs::perm_options::replace, ec);
  if (ec)
    return fail(ErrorKind::kTerminal,
                "cannot make " + config_.runDir.string() + " private: " + ec.message());
  // The bus is opened when a VM is observed or applied: a host without systemd can still plan
  // (and bind VfioDevices).
  return {};
}

void VmKind::stop() { closeEvents(); }

std::string VmKind::resolveAccel(const std::string& accel) const {
  std::string a = accel == "auto" || accel.empty() ? config_.accel : accel;
  if (a != "auto" && !a.empty()) return a;
  return kvmUnusable(services_.context()).empty() ? "kvm" : "tcg";
}

Result<std::vector<ObservedObject>> VmKind::observe() {
  std::map<std::string, std::string> unitState;  // VM name -> ActiveState
  std::map<std::string, std::string> unitLine;   // VM name -> "unit active/running"
  auto b = bus();
  if (b) {
    auto listed = UnitManager(**b).list(std::string(kUnitPrefix) + "*" + kUnitSuffix);
    if (!listed) return std::unexpected(listed.error());
    for (const auto& u : *listed)
      if (auto vm = vmOfUnit(u.name); !vm.empty()) {
        unitState[vm] = u.activeState;
        unitLine[vm] = "unit " + u.activeState + "/" + u.subState;
      }
  }

  std::vector<ObservedObject> out;
  std::set<std::string> recorded;
  const std::string agent = services_.agentId();
  std::error_code ec;
  for (fs::directory_iterator it(config_.instancesDir, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    std::error_code dirEc;
    if (!it->is_directory(dirEc)) continue;
    const std::string name = it->path().filename().string();
    auto rec = readRecord(vmLayout(config_, name).record);
    if (!rec && rec.error().kind != ErrorKind::kTerminal) return std::unexpected(rec.error());
    if (!rec) {
      // Not a record (garbage, edited by hand): the name is somebody else's, never touched; the
      // other VMs are observed as usual.
      ObservedObject o;
      o.id = {kVirtualMachineKind, name};
      o.spec = {
          {"state", unitState.count(name) && unitRunning(unitState[name]) ? "running" : "stopped"}};
      o.incomplete = rec.error().message;
      recorded.insert(name);
      out.push_back(std::move(o));
      continue;
    }
    if (!*rec) continue;  // a retained disk, or not a VM's folder
    // A VM of ours exists: whether it runs only the manager knows.
    if (!b) return std::unexpected(b.error());
    ObservedObject o;
    o.id = {kVirtualMachineKind, name};
    o.spec = (*rec)->spec;
    const bool running = unitState.count(name) && unitRunning(unitState[name]);
    o.spec["state"] = running ? "running" : "stopped";
    o.detail = liveLine(name, unitLine.count(name) ? unitLine[name] : "stopped (no unit)", running);
    o.uid = (*rec)->instanceId;
    if (!(*rec)->agent.empty()) {
      if ((*rec)->agent == agent)
        o.marked = true;
      else
        o.markedByOther = (*rec)->agent;
    }
    if (running && o.spec.contains("gpus") && o.spec["gpus"].is_array())
      for (const auto& g : o.spec["gpus"])
        if (g.is_string()) o.holds.push_back(Claim{"pci", g.get<std::string>(), true, true});
    if (running && o.spec.contains("vgpus") && o.spec["vgpus"].is_array())
      for (const auto& v : o.spec["vgpus"])
        if (v.is_string()) o.holds.push_back(Claim{"vgpu", v.get<std::string>()});
    recorded.insert(name);
    out.push_back(std::move(o));
  }
  // A unit named like ours without a record: not ours (a desired VM of that name is a conflict).
  for (const auto& [name, state] : unitState) {
    if (recorded.count(name)) continue;
    ObservedObject o;
    o.id = {kVirtualMachineKind, name};
    o.spec = {{"state", unitRunning(state) ? "running" : "stopped"}};
    o.incomplete = "a unit " + vmUnitName(name) + " without a nodeplane VM record";
    out.push_back(std::move(o));
  }
  return out;
}

std::string VmKind::liveLine(const std::string& name, const std::string& unit, bool running) {
  if (!running) return unit;
  // QEMU answers one monitor client at a time and none is held between steps: a short question.
  auto client = QmpClient::connect(vmLayout(config_, name).qmp, kLiveQmpWait);
  if (!client) return unit + ", QMP not answering (" + client.error().message + ")";
  auto status = client->execute("query-status", Json::object(), kLiveQmpWait);
  if (!status) return unit + ", QMP: " + status.error().message;
  return unit + ", guest " + status->value("status", std::string("?"));
}

Outcome VmKind::apply(const Change& change, ApplyContext& context) {
  switch (change.action) {
    case Action::kCreate:
      return create(change, context);
    case Action::kUpdate:
      return update(change, context);
    case Action::kReplace: {
      Outcome gone = remove(change, context, /*keepRecord=*/false);
      if (gone.cls != Outcome::kDone) return gone;
      return create(change, context);
    }
    case Action::kDelete:
      return remove(change, context, false);
    case Action::kRelease:
      return release(change);
  }
  return Outcome::failed(Error{ErrorKind::kTerminal, "unknown action"});
}

Outcome VmKind::create(const Change& change, ApplyContext& context) {
  const std::string& name = change.id.name;
  const VmLayout layout = vmLayout(config_, name);
  auto spec = parseVmSpec(name, change.desired, services_);
  if (!spec) return Outcome::failed(spec.error());
  auto existing = readRecord(layout.record);
  if (!existing) return Outcome::failed(existing.error());
  if (*existing && (*existing)->agent != services_.agentId())
    return conflict(
        layout.record.string() + " belongs to " +
        ((*existing)->agent.empty() ? std::string("no agent") : "agent " + (*existing)->agent));
  // A disk without a record (create writes the record first): the disk a deleted VM left for a
  // person (retainDisk), or somebody else's. Not ours: a new VM neither boots on it nor, deleted,
  // takes it along.
  std::error_code ec;
  if (!*existing && fs::exists(layout.overlay, ec))
    return conflict(name + ": " + layout.overlay.string() +
                    " is a disk nodeplane does not own (a deleted VM's retained disk?): move it "
                    "away, or name the VM otherwise");
  // The record first: whatever happens next is found, and cleaned up, as ours.
  VmRecord rec;
  rec.agent = services_.agentId();
  rec.instanceId = *existing ? (*existing)->instanceId : newInstanceId();
  rec.spec = recordedSpec(change.desired);
  fs::create_directories(layout.dir, ec);
  fs::permissions(layout.dir, fs::perms::owner_all, fs::perm_options::replace, ec);
  if (auto w = writeRecord(layout.record, rec); !w) return Outcome::failed(w.error());
  context.progress("creating the disk overlay " + layout.overlay.string());
  if (auto r = ensureOverlay(*spec, layout, config_); !r) return Outcome::failed(r.error());
  if (spec->firmware == "uefi")
    if (auto r = ensureVars(layout, config_); !r) return Outcome::failed(r.error());
  if (spec->cloudInit) {
    context.progress("writing the cloud-init seed " + layout.seed.string());
    if (auto r = writeSeedIso(seedFiles(*spec, rec.instanceId), layout.seed, config_); !r)
      return Outcome::failed(r.error());
  }
  if (!spec->running) return Outcome::done();
  return startVm(name, change.desired, rec.instanceId, context);
}

Outcome VmKind::startVm(const std::string& name, const Json& desired, const std::string& instanceId,
                        ApplyContext& context) {
  (void)instanceId;
  auto b = bus();
  if (!b) return Outcome::failed(b.error());
  UnitManager units(**b);
  const VmLayout layout = vmLayout(config_, name);
  auto spec = parseVmSpec(name, desired, services_);
  if (!spec) return Outcome::failed(spec.error());
  const std::string accel = resolveAccel(spec->accel);
  auto argv = qemuArgv(*spec, layout, config_, accel);
  if (!argv) return Outcome::failed(argv.error());
  TransientUnit unit;
  unit.name = vmUnitName(name);
  unit.description = "nodeplane VM " + name + " (agent " + services_.agentId() + ")";
  unit.argv = *argv;
  unit.memlockInfinity = !spec->functions.empty();  // VFIO pins all guest memory
  unit.numaNode = spec->numaNode;
  if (spec->numaNode) unit.cpus = nodeCpus(services_.context().sysfsRoot, *spec->numaNode);
  // systemd's own stop (a person's `systemctl stop`) gets the guest's time, then some.
  unit.stopTimeout = std::chrono::seconds(spec->shutdownTimeoutSec + 10);
  std::error_code ec;
  fs::remove(layout.qmp, ec);  // a socket a killed QEMU left
  context.progress("starting " + unit.name + " (accel " + accel + ")");
  if (auto r = units.start(unit, kUnitJobTimeout); !r) return Outcome::failed(r.error());
  powerdownSent_.erase(name);

  // QEMU makes its QMP socket before the guest runs: ask it until it says "running".
  const auto deadline = std::min(Clock::now() + kBootWait, context.deadline());
  std::string last = "no QMP socket yet";
  while (Clock::now() < deadline && !context.stopToken().stop_requested()) {
    auto client = QmpClient::connect(layout.qmp, 2s);
    if (client) {
      auto status = client->execute("query-status", Json::object(), 2s);
      if (status && status->value("status", std::string()) == "running") return Outcome::done();
      last = status ? "QMP status " + status->value("status", std::string("?"))
                    : status.error().message;
    } else {
      last = client.error().message;
      auto st = units.state(unit.name);
      // Retryable: a person may have stopped it meanwhile; a QEMU that cannot run fails again,
      // each time after a longer backoff.
      if (st && (!*st || !unitRunning((*st)->activeState)))
        return Outcome::failed(
            Error{ErrorKind::kRetryable, unit.name + " ended while starting (" +
                                             (*st ? (*st)->result : std::string("unit gone")) +
                                             "): see journalctl -u " + unit.name});
    }
    ::poll(nullptr, 0, 20);  // the interval between two questions to a QEMU that starts
  }
  return Outcome::inProgress(1s, "the guest to reach running (" + last + ")");
}

Outcome VmKind::stopVm(const std::string& name, int shutdownTimeoutSec, ApplyContext& context) {
  auto b = bus();
  if (!b) return Outcome::failed(b.error());
  UnitManager units(**b);
  const std::string unit = vmUnitName(name);
  const VmLayout layout = vmLayout(config_, name);
  auto st = units.state(unit);
  if (!st) return Outcome::failed(st.error());
  if (!*st || !unitRunning((*st)->activeState)) {
    powerdownSent_.erase(name);
    if (*st) (void)units.resetFailed(unit);
    return Outcome::done();
  }
  // system_powerdown (ACPI), SHUTDOWN up to shutdownTimeoutSec, then quit, then StopUnit.
  auto client = QmpClient::connect(layout.qmp, 2s);
  if (client) {
    auto sent = powerdownSent_.find(name);
    if (sent == powerdownSent_.end()) {
      context.progress("asking the guest of " + name + " to power down");
      if (auto r = client->execute("system_powerdown"); r)
        sent = powerdownSent_.emplace(name, Clock::now()).first;
    }
    if (sent != powerdownSent_.end()) {
      const auto giveUp = sent->second + std::chrono::seconds(shutdownTimeoutSec);
      bool down = false;
      while (!down && Clock::now() < giveUp) {
        if (context.stopToken().stop_requested() || Clock::now() >= context.deadline())
          return Outcome::inProgress(1s, "the guest of " + name + " to power down");
        auto slice = std::min({giveUp, context.deadline(), Clock::now() + 200ms});
        auto ev = client->waitEvent(
            "SHUTDOWN", std::chrono::ceil<std::chrono::milliseconds>(slice - Clock::now()));
        if (!ev) break;  // the connection ended: QEMU is gone
        down = ev->has_value();
      }
      if (!down) {
        context.progress("the guest of " + name + " did not power down within " +
                         std::to_string(shutdownTimeoutSec) + " s: quitting QEMU");
        (void)client->execute("quit", Json::object(), 2s);
      }
    }
  }
  if (auto r = units.stop(unit, kUnitJobTimeout); !r) return Outcome::failed(r.error());
  (void)units.resetFailed(unit);
  powerdownSent_.erase(name);
  std::error_code ec;
  fs::remove(layout.qmp, ec);
  return Outcome::done();
}

Outcome VmKind::update(const Change& change, ApplyContext& context) {
  const std::string& name = change.id.name;
  const VmLayout layout = vmLayout(config_, name);
  auto rec = readRecord(layout.record);
  if (!rec) return Outcome::failed(rec.error());
  if (!*rec) return conflict(name + ": no VM record at " + layout.record.string());
  const std::string agent = services_.agentId();
  if ((*rec)->agent != agent && !(change.adopt && (*rec)->agent.empty()))
    return conflict(name + ": the VM belongs to " +
                    ((*rec)->agent.empty() ? std::string("no agent") : "agent " + (*rec)->agent));
  if (!change.uid.empty() && (*rec)->instanceId != change.uid)
    return conflict(name + ": the VM is instance " + (*rec)->instanceId + ", not " + change.uid +
                    " as planned");
  auto spec = parseVmSpec(name, change.desired, services_);
  if (!spec) return Outcome::failed(spec.error());

  bool seed = false, disk = false;
  for (const auto& f : change.fields) {
    if (f.path.starts_with("cloudInit") || f.path.starts_with("network")) seed = true;
    if (f.path.starts_with("disk")) disk = true;
  }
  if (restarts(change)) {
    Outcome stopped = stopVm(name, spec->shutdownTimeoutSec, context);
    if (stopped.cls != Outcome::kDone) return stopped;
  }
  if (!spec->running) {
    Outcome stopped = stopVm(name, spec->shutdownTimeoutSec, context);
    if (stopped.cls != Outcome::kDone) return stopped;
  }
  VmRecord next = **rec;
  next.agent = agent;
  next.spec = recordedSpec(change.desired);
  if (auto w = writeRecord(layout.record, next); !w) return Outcome::failed(w.error());
  // A file missing (an apply killed inside create, after the record) is made as create would.
  if (disk || !fs::exists(layout.overlay))
    if (auto r = ensureOverlay(*spec, layout, config_); !r) return Outcome::failed(r.error());
  if (spec->firmware == "uefi")
    if (auto r = ensureVars(layout, config_); !r) return Outcome::failed(r.error());
  if ((seed || !fs::exists(layout.seed)) && spec->cloudInit) {
    context.progress("writing the cloud-init seed " + layout.seed.string());
    if (auto r = writeSeedIso(seedFiles(*spec, next.instanceId), layout.seed, config_); !r)
      return Outcome::failed(r.error());
  }
  if (!spec->running) return Outcome::done();
  auto b = bus();
  if (!b) return Outcome::failed(b.error());
  auto st = UnitManager(**b).state(vmUnitName(name));
  if (!st) return Outcome::failed(st.error());
  if (*st && unitRunning((*st)->activeState)) return Outcome::done();
  return startVm(name, change.desired, next.instanceId, context);
}

Outcome VmKind::remove(const Change& change, ApplyContext& context, bool keepRecord) {
  const std::string& name = change.id.name;
  const VmLayout layout = vmLayout(config_, name);
  auto rec = readRecord(layout.record);
  if (!rec) return Outcome::failed(rec.error());
  if (!*rec) return conflict(name + ": no VM record at " + layout.record.string());
  // Checked at the moment of acting: the VM is still ours, and still the instance planned on.
  if ((*rec)->agent != services_.agentId())
    return conflict(name + ": the VM belongs to " +
                    ((*rec)->agent.empty() ? std::string("no agent") : "agent " + (*rec)->agent));
  if (!change.uid.empty() && (*rec)->instanceId != change.uid)
    return conflict(name + ": the VM is instance " + (*rec)->instanceId + ", not " + change.uid +
                    " as planned");
  const Json& spec = (*rec)->spec;
  const int timeout = spec.value("shutdownTimeoutSec", 60);
  Outcome stopped = stopVm(name, timeout, context);
  if (stopped.cls != Outcome::kDone) return stopped;
  if (keepRecord) return Outcome::done();
  std::error_code ec;
  if (spec.value("retainDisk", false)) {
    // The overlay stays for a person to use; without the record it is no VM of ours any more.
    fs::remove(layout.record, ec);
    if (ec)
      return Outcome::failed(Error{
          ErrorKind::kRetryable, "cannot remove " + layout.record.string() + ": " + ec.message()});
    return Outcome::done();
  }
  context.progress("removing " + layout.dir.string());
  // The record last: a delete cut short leaves a VM of ours that the next pass deletes again,
  // not a folder with a disk nobody owns.
  for (fs::directory_iterator it(layout.dir, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    if (it->path() == layout.record) continue;
    fs::remove_all(it->path(), ec);
    if (ec)
      return Outcome::failed(Error{ErrorKind::kRetryable,
                                   "cannot remove " + it->path().string() + ": " + ec.message()});
  }
  if (!ec) fs::remove_all(layout.dir, ec);
  if (ec)
    return Outcome::failed(
        Error{ErrorKind::kRetryable, "cannot remove " + layout.dir.string() + ": " + ec.message()});
  return Outcome::done();
}

Outcome VmKind::release(const Change& change) {
  const VmLayout layout = vmLayout(config_, change.id.name);
  auto rec = readRecord(layout.record);
  if (!rec) return Outcome::failed(rec.error());
  if (!*rec) return Outcome::done();
  if ((*rec)->agent != services_.agentId())
    return conflict(change.id.name + ": the VM belongs to " +
                    ((*rec)->agent.empty() ? std::string("no agent") : "agent " + (*rec)->agent));
  VmRecord next = **rec;
  next.agent.clear();  // the mark goes; the unit and the disk stay
  return Outcome::from(writeRecord(layout.record, next));
}

Result<std::vector<EventSource>> VmKind::openEvents() {
  closeEvents();
  try {
    events_ = connectBus(services_.context().systemdBus);
    auto manager =
        sdbus::createProxy(*events_, "org.freedesktop.systemd1", "/org/freedesktop/systemd1");
    manager->callMethod("Subscribe").onInterface("org.freedesktop.systemd1.Manager");
    auto touch = [this](const std::string& unit) {
      if (auto vm = vmOfUnit(unit); !vm.empty()) touchedVms_.insert(vm);
    };
    eventSlots_.push_back(events_->addMatch(
        "type='signal',sender='org.freedesktop.systemd1',interface='org.freedesktop.DBus."
        "Properties',member='PropertiesChanged',path_namespace='/org/freedesktop/systemd1/unit'",
        [touch](sdbus::Message& m) { touch(unitOfPath(m.getPath())); }));
    eventSlots_.push_back(events_->addMatch(
        "type='signal',sender='org.freedesktop.systemd1',interface='org.freedesktop.systemd1."
        "Manager',member='UnitRemoved'",
        [touch](sdbus::Message& m) {
          std::string unit;
          m >> unit;
          touch(unit);
        }));
    eventSlots_.push_back(events_->addMatch(
        "type='signal',sender='org.freedesktop.systemd1',interface='org.freedesktop.systemd1."
        "Manager',member='JobRemoved'",
        [touch](sdbus::Message& m) {
          std::uint32_t id;
          sdbus::ObjectPath job;
          std::string unit;
          m >> id >> job >> unit;
          touch(unit);
        }));
    // What came with the replies above is queued already: take it now (the fd will not say).
    while (events_->processPendingRequest()) {
    }
    auto poll = events_->getEventLoopPollData();
    return std::vector<EventSource>{
        {"systemd units nodeplane-vm-* on the " + services_.context().systemdBus + " bus",
         poll.fd}};
  } catch (const sdbus::Error& e) {
    closeEvents();
    return fail(ErrorKind::kRetryable, "watching systemd units on the " +
                                           services_.context().systemdBus + " bus: " + e.getName() +
                                           ": " + e.getMessage());
  } catch (const std::exception& e) {
    closeEvents();
    return fail(ErrorKind::kRetryable, "watching systemd units on the " +
                                           services_.context().systemdBus + " bus: " + e.what());
  }
}

Result<Touched> VmKind::drainEvents(int) {
  if (!events_) return fail(ErrorKind::kRetryable, "systemd unit events are not open");
  try {
    while (events_->processPendingRequest()) {
    }
  } catch (const sdbus::Error& e) {
    return fail(ErrorKind::kRetryable,
                "reading systemd unit events: " + e.getName() + ": " + e.getMessage());
  }
  Touched t;
  for (const auto& vm : touchedVms_) t.resources.insert(ResourceId{kVirtualMachineKind, vm});
  touchedVms_.clear();
  return t;
}

void VmKind::closeEvents() {
  eventSlots_.clear();
  events_.reset();
  touchedVms_.clear();
}

std::vector<CheckItem> VmKind::check() {
  std::vector<CheckItem> items;
  items.reserve(5);  // item() hands out references: no reallocation
  auto item = [&](const char* name, bool required) -> CheckItem& {
    items.push_back(CheckItem{name, false, required, ""});
    return items.back();
  };
  // The first line a tool prints for its version ("QEMU emulator version 7.2.0 (…)").
  auto version = [](const std::string& binary, const char* flag, CheckItem& c, const char* fix) {
    auto r = host::runToolOk({binary, flag}, 10s);
    if (!r) {
      c.detail = r.error().message + " (" + fix + ")";
      return;
    }
    std::string first = r->out.substr(0, r->out.find('\n'));
    c.ok = true;
    c.detail = first.empty() ? binary : first;
  };
  version(config_.binary, "-version", item("qemu", true),
          "apt-get install qemu-system-x86, or set qemu.binary");
  version(config_.imgBinary, "--version", item("qemu-img", true),
          "apt-get install qemu-utils, or set qemu.imgBinary");

  CheckItem& accel = item("qemu-accel", false);
  const std::string why = kvmUnusable(services_.context());
  accel.ok = why.empty();
  accel.detail = accel.ok ? "KVM usable: VMs with accel auto use kvm"
                          : why + ": VMs with accel auto use TCG (emulation, slow)";
  if (config_.accel != "auto") accel.detail += "; qemu.accel is " + config_.accel;

  CheckItem& ovmf = item("ovmf", false);
  if (auto code = ovmfCode(config_)) {
    ovmf.ok = true;
    ovmf.detail = code->string();
  } else {
    ovmf.detail = code.error().message + " (apt-get install ovmf: needed by firmware: uefi)";
  }

  CheckItem& iso = item("iso-tool", false);
  if (auto tool = host::findProgram(config_.isoBinary)) {
    iso.ok = true;
    iso.detail = tool->string();
  } else {
    iso.detail = tool.error().message + " (apt-get install genisoimage: needed by cloudInit)";
  }
  return items;
}

}  // namespace nodeplane::qemu
