// VirtualMachine: QEMU in a systemd transient unit (nodeplane-vm-<name>.service), a qcow2 overlay
// on a base image, a cloud-init seed, QMP on <runDir>/qemu/<name>.qmp. The VM's record
// (<instancesDir>/<name>/vm.json: agent id, instance id, the applied spec) is its ownership mark
// and survives stop; the unit exists only while it runs. The spec side is vm_spec.hpp.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "nodeplane/plugin.hpp"
#include "qemu_config.hpp"

namespace sdbus {
class IConnection;
}

namespace nodeplane::qemu {

class VmKind {
 public:
  VmKind(HostServices& services, const QemuConfig& config);
  ~VmKind();

  // Spec side (vm_spec.cpp through vm_kind_spec.cpp).
  KindSchema schema() const;
  std::vector<Error> validate(const Resource& r) const;
  Result<std::vector<Resource>> expand(const Resource& r) const;
  std::vector<Claim> claims(const Resource& r) const;
  Json normalize(const Json& spec) const;

  // Run side (vm_run.cpp).
  Result<void> start();
  void stop();
  Result<std::vector<ObservedObject>> observe();
  Outcome apply(const Change& change, ApplyContext& context);
  // The units' PropertiesChanged / JobRemoved on a connection of its own.
  Result<std::vector<EventSource>> openEvents();
  Result<Touched> drainEvents(int fd);
  void closeEvents();
  // QEMU binary and version, KVM usable, OVMF present, ISO tool, qemu-img.
  std::vector<CheckItem> check();

 private:
  HostServices& services_;
  const QemuConfig& config_;
  std::unique_ptr<sdbus::IConnection> events_;  // openEvents() to closeEvents()
  // Run side (vm_run.cpp).
  Result<sdbus::IConnection*> bus();
  // ObservedObject::detail: "unit active/running, guest running" (asks QMP when it runs).
  std::string liveLine(const std::string& name, const std::string& unit, bool running);
  Outcome create(const Change& change, ApplyContext& context);
  Outcome update(const Change& change, ApplyContext& context);
  Outcome remove(const Change& change, ApplyContext& context, bool keepRecord);
  Outcome release(const Change& change);
  Outcome startVm(const std::string& name, const Json& spec, const std::string& instanceId,
                  ApplyContext& context);
  // Powers the guest down (QMP), forced after shutdownTimeoutSec, then stops the unit. Returns
  // inProgress when the step's deadline or the stop token comes first.
  Outcome stopVm(const std::string& name, int shutdownTimeoutSec, ApplyContext& context);
  std::string resolveAccel(const std::string& accel) const;
  // The unit signals (openEvents to closeEvents, used on the poll thread only).
  std::vector<std::unique_ptr<void, std::function<void(void*)>>> eventSlots_;
  std::set<std::string> touchedVms_;
  // When each VM was asked to power down (stopVm across calls that returned inProgress).
  std::map<std::string, std::chrono::steady_clock::time_point> powerdownSent_;
};

}  // namespace nodeplane::qemu
