// systemd transient units over D-Bus (sdbus-c++): the unit a VM's QEMU runs in.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "nodeplane/error.hpp"

namespace sdbus {
class IConnection;
}

namespace nodeplane::qemu {

// "nodeplane-vm-<name>.service"
std::string vmUnitName(const std::string& vm);

struct TransientUnit {
  std::string name;               // "nodeplane-vm-vm1.service"
  std::string description;        // carries the ownership mark: "nodeplane VM vm1 (agent <id>)"
  std::vector<std::string> argv;  // ExecStart, argv[0] absolute
  bool memlockInfinity = false;   // LimitMEMLOCK=infinity (VFIO pins guest memory)
  std::vector<int> cpus;          // CPUAffinity, empty: any
  std::optional<int> numaNode;    // NUMAPolicy=bind, NUMAMask=<node>
  std::chrono::seconds stopTimeout{90};  // TimeoutStopSec
};

struct UnitState {
  std::string name;
  std::string activeState;  // active, activating, deactivating, inactive, failed
  std::string subState;     // running, exited, dead …
  std::string description;
  std::string invocationId;  // hex, "" when the unit is not loaded
  pid_t mainPid = 0;
  std::string result;  // "success", "exit-code", "signal" …
};

class UnitManager {
 public:
  explicit UnitManager(sdbus::IConnection& bus) : bus_(bus) {}
  // StartTransientUnit with mode "fail", KillMode=mixed, Restart=no, and waits for the job to
  // finish (JobRemoved) up to `timeout`.
  Result<void> start(const TransientUnit& unit, std::chrono::milliseconds timeout);
  // StopUnit, waiting for the job up to `timeout`. A unit that is not loaded: done.
  Result<void> stop(const std::string& name, std::chrono::milliseconds timeout);
  // ResetFailed, so a failed transient unit's name can be used again.
  Result<void> resetFailed(const std::string& name);
  // nullopt when no such unit is loaded.
  Result<std::optional<UnitState>> state(const std::string& name);
  // Every loaded unit whose name matches `pattern` ("nodeplane-vm-*.service").
  Result<std::vector<UnitState>> list(const std::string& pattern);

 private:
  sdbus::IConnection& bus_;
};

}  // namespace nodeplane::qemu
