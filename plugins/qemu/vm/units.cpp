// systemd transient units over sdbus-c++: StartTransientUnit / StopUnit and the job each returns,
// waited for on its JobRemoved signal (the connection is processed here, no thread of its own).
#include "units.hpp"

#include <poll.h>
#include <sdbus-c++/sdbus-c++.h>

#include <climits>
#include <cstdint>
#include <map>

namespace nodeplane::qemu {
namespace {

using Clock = std::chrono::steady_clock;
constexpr const char* kService = "org.freedesktop.systemd1";
constexpr const char* kManagerPath = "/org/freedesktop/systemd1";
constexpr const char* kManager = "org.freedesktop.systemd1.Manager";

using Property = sdbus::Struct<std::string, sdbus::Variant>;
using ExecCommand = sdbus::Struct<std::string, std::vector<std::string>, bool>;

std::string busError(const sdbus::Error& e) { return e.getName() + ": " + e.getMessage(); }

// A CPU set as systemd's bitmask: byte i, bit j is CPU 8i+j.
std::vector<std::uint8_t> cpuMask(const std::vector<int>& cpus) {
  std::vector<std::uint8_t> mask;
  for (int c : cpus) {
    if (c < 0) continue;
    auto byte = static_cast<std::size_t>(c / 8);
    if (mask.size() <= byte) mask.resize(byte + 1, 0);
    mask[byte] |= static_cast<std::uint8_t>(1u << (c % 8));
  }
  return mask;
}

// Collects JobRemoved signals on `bus` from its creation on; wait() processes the connection
// until the given job is gone or the deadline passes.
class JobWatch {
 public:
  explicit JobWatch(sdbus::IConnection& bus) : bus_(bus) {
    // Subscribe makes the manager send its signals; a second Subscribe of one client is refused.
    try {
      auto manager = sdbus::createProxy(bus_, kService, kManagerPath);
      manager->callMethod("Subscribe").onInterface(kManager);
    } catch (const sdbus::Error& e) {
      if (e.getName() != "org.freedesktop.systemd1.AlreadySubscribed") throw;
    }
    slot_ = bus_.addMatch(
        "type='signal',sender='org.freedesktop.systemd1',path='/org/freedesktop/systemd1',"
        "interface='org.freedesktop.systemd1.Manager',member='JobRemoved'",
        [this](sdbus::Message& m) {
          std::uint32_t id = 0;
          sdbus::ObjectPath job;
          std::string unit, result;
          m >> id >> job >> unit >> result;
          results_[job] = result;
        });
  }

  // The job's result ("done", "failed", "canceled", "timeout", "dependency", "skipped"), or ""
  // when it did not end by `deadline`.
  std::string wait(const std::string& job, Clock::time_point deadline) {
    for (;;) {
      while (bus_.processPendingRequest()) {
      }
      if (auto it = results_.find(job); it != results_.end()) return it->second;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return "";
      auto poll = bus_.getEventLoopPollData();
      pollfd p{poll.fd, poll.events, 0};
      int t = poll.getPollTimeout();
      int ms = static_cast<int>(std::min<long long>(left.count(), INT_MAX));
      ::poll(&p, 1, t < 0 ? ms : std::min(t, ms));
    }
  }

 private:
  sdbus::IConnection& bus_;
  sdbus::Slot slot_;
  std::map<std::string, std::string> results_;
};

}  // namespace

std::string vmUnitName(const std::string& vm) { return "nodeplane-vm-" + vm + ".service"; }

Result<void> UnitManager::start(const TransientUnit& unit, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  if (unit.argv.empty() || unit.argv[0].empty() || unit.argv[0][0] != '/')
    return fail(ErrorKind::kTerminal, unit.name + ": ExecStart needs an absolute program path");
  try {
    // A failed unit of that name (QEMU killed) keeps the name until it is reset.
    (void)resetFailed(unit.name);
    JobWatch watch(bus_);
    std::vector<Property> props;
    props.emplace_back("Description", sdbus::Variant(unit.description));
    props.emplace_back(
        "ExecStart",
        sdbus::Variant(std::vector<ExecCommand>{ExecCommand(unit.argv[0], unit.argv, false)}));
    // exec: the start job ends once execve() worked, so a missing binary fails the start.
    props.emplace_back("Type", sdbus::Variant(std::string("exec")));
    // mixed: SIGTERM to QEMU alone, SIGKILL to whatever is left after TimeoutStopSec.
    props.emplace_back("KillMode", sdbus::Variant(std::string("mixed")));
    props.emplace_back("Restart", sdbus::Variant(std::string("no")));
    props.emplace_back(
        "TimeoutStopUSec",
        sdbus::Variant(static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(unit.stopTimeout).count())));
    if (unit.memlockInfinity) {
      props.emplace_back("LimitMEMLOCK", sdbus::Variant(std::uint64_t(UINT64_MAX)));
      props.emplace_back("LimitMEMLOCKSoft", sdbus::Variant(std::uint64_t(UINT64_MAX)));
    }
    if (!unit.cpus.empty()) props.emplace_back("CPUAffinity", sdbus::Variant(cpuMask(unit.cpus)));
    if (unit.numaNode) {
      props.emplace_back("NUMAPolicy", sdbus::Variant(std::int32_t(2)));  // MPOL_BIND
      props.emplace_back("NUMAMask", sdbus::Variant(cpuMask({*unit.numaNode})));
    }
    std::vector<sdbus::Struct<std::string, std::vector<Property>>> aux;
    sdbus::ObjectPath job;
    auto manager = sdbus::createProxy(bus_, kService, kManagerPath);
    manager->callMethod("StartTransientUnit")
        .onInterface(kManager)
        .withTimeout(timeout)
        .withArguments(unit.name, std::string("fail"), props, aux)
        .storeResultsTo(job);
    std::string result = watch.wait(job, deadline);
    if (result.empty())
      return fail(ErrorKind::kRetryable, "starting " + unit.name + ": the job did not end within " +
                                             std::to_string(timeout.count()) + " ms");
    if (result != "done") {
      std::string why;
      if (auto s = state(unit.name); s && *s)
        why = " (" + (*s)->activeState + ", result " + (*s)->result + ")";
      return fail(ErrorKind::kTerminal, "starting " + unit.name + ": job " + result + why);
    }
    return {};
  } catch (const sdbus::Error& e) {
    return fail(ErrorKind::kRetryable, "starting " + unit.name + ": " + busError(e));
  }
}

Result<void> UnitManager::stop(const std::string& name, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  try {
    JobWatch watch(bus_);
    sdbus::ObjectPath job;
    auto manager = sdbus::createProxy(bus_, kService, kManagerPath);
    try {
      manager->callMethod("StopUnit")
          .onInterface(kManager)
          .withTimeout(timeout)
          .withArguments(name, std::string("replace"))
          .storeResultsTo(job);
    } catch (const sdbus::Error& e) {
      if (e.getName() == "org.freedesktop.systemd1.NoSuchUnit") return {};
      throw;
    }
    std::string result = watch.wait(job, deadline);
    if (result.empty())
      return fail(ErrorKind::kRetryable, "stopping " + name + ": the job did not end within " +
                                             std::to_string(timeout.count()) + " ms");
    if (result != "done")
      return fail(ErrorKind::kRetryable, "stopping " + name + ": job " + result);
    return {};
  } catch (const sdbus::Error& e) {
    return fail(ErrorKind::kRetryable, "stopping " + name + ": " + busError(e));
  }
}

Result<void> UnitManager::resetFailed(const std::string& name) {
  try {
    auto manager = sdbus::createProxy(bus_, kService, kManagerPath);
    manager->callMethod("ResetFailedUnit").onInterface(kManager).withArguments(name);
    return {};
  } catch (const sdbus::Error& e) {
    if (e.getName() == "org.freedesktop.systemd1.NoSuchUnit") return {};
    return fail(ErrorKind::kRetryable, "resetting " + name + ": " + busError(e));
  }
}

Result<std::optional<UnitState>> UnitManager::state(const std::string& name) {
  try {
    auto manager = sdbus::createProxy(bus_, kService, kManagerPath);
    sdbus::ObjectPath path;
    try {
      manager->callMethod("GetUnit").onInterface(kManager).withArguments(name).storeResultsTo(path);
    } catch (const sdbus::Error& e) {
      if (e.getName() == "org.freedesktop.systemd1.NoSuchUnit") return std::optional<UnitState>();
      throw;
    }
    auto unit = sdbus::createProxy(bus_, kService, path);
    auto get = [&](const char* interface, const char* property) {
      return unit->getProperty(property).onInterface(interface);
    };
    UnitState s;
    s.name = name;
    const char* u = "org.freedesktop.systemd1.Unit";
    const char* svc = "org.freedesktop.systemd1.Service";
    s.activeState = get(u, "ActiveState").get<std::string>();
    s.subState = get(u, "SubState").get<std::string>();
    s.description = get(u, "Description").get<std::string>();
    static constexpr char kHex[] = "0123456789abcdef";
    for (std::uint8_t b : get(u, "InvocationID").get<std::vector<std::uint8_t>>()) {
      s.invocationId += kHex[b >> 4];
      s.invocationId += kHex[b & 15];
    }
    s.mainPid = static_cast<pid_t>(get(svc, "MainPID").get<std::uint32_t>());
    s.result = get(svc, "Result").get<std::string>();
    return std::optional<UnitState>(std::move(s));
  } catch (const sdbus::Error& e) {
    return fail(ErrorKind::kRetryable, "reading unit " + name + ": " + busError(e));
  }
}

Result<std::vector<UnitState>> UnitManager::list(const std::string& pattern) {
  try {
    auto manager = sdbus::createProxy(bus_, kService, kManagerPath);
    using Row =
        sdbus::Struct<std::string, std::string, std::string, std::string, std::string, std::string,
                      sdbus::ObjectPath, std::uint32_t, std::string, sdbus::ObjectPath>;
    std::vector<Row> rows;
    manager->callMethod("ListUnitsByPatterns")
        .onInterface(kManager)
        .withArguments(std::vector<std::string>{}, std::vector<std::string>{pattern})
        .storeResultsTo(rows);
    std::vector<UnitState> out;
    for (const auto& r : rows) {
      UnitState s;
      s.name = std::get<0>(r);
      s.description = std::get<1>(r);
      s.activeState = std::get<3>(r);
      s.subState = std::get<4>(r);
      out.push_back(std::move(s));
    }
    return out;
  } catch (const sdbus::Error& e) {
    return fail(ErrorKind::kRetryable, "listing units " + pattern + ": " + busError(e));
  }
}

}  // namespace nodeplane::qemu
