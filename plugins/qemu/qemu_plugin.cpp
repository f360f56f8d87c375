#include "qemu_plugin.hpp"

#include "host_checks.hpp"
#include "nodeplane/plugin_util.hpp"
#include "vfio_kind.hpp"
#include "vm_kind.hpp"
#include "vm_spec.hpp"

namespace nodeplane::qemu {

QemuPlugin::QemuPlugin(HostServices& services)
    : services_(services),
      config_(readQemuConfig(services.context())),
      vfio_(std::make_unique<VfioKind>(services, config_)),
      vm_(std::make_unique<VmKind>(services, config_)) {}

QemuPlugin::~QemuPlugin() = default;

std::vector<KindSchema> QemuPlugin::kinds() const { return {vm_->schema(), vfio_->schema()}; }

std::vector<FieldSchema> QemuPlugin::configSchema() const { return qemuConfigSchema(); }

std::vector<std::pair<std::string, std::vector<FieldSchema>>> QemuPlugin::moreConfigSections()
    const {
  return {{"vfio", vfioConfigSchema()}};
}

Result<void> QemuPlugin::start() {
  // The sections were checked after construction: read them again.
  config_ = readQemuConfig(services_.context());
  return catchAll("starting the qemu plugin", [&] { return vm_->start(); });
}

void QemuPlugin::stop() { vm_->stop(); }

std::vector<CheckItem> QemuPlugin::check() {
  // KVM and the CPU's virtualization flags (the core probed them before this plugin existed).
  const HostContext& host = services_.context();
  std::vector<CheckItem> items{probeKvm(host.devRoot), probeCpuVirtualization(host.procRoot)};
  auto vm = vm_->check();
  items.insert(items.end(), vm.begin(), vm.end());
  auto more = vfio_->check();
  items.insert(items.end(), more.begin(), more.end());
  return items;
}

std::vector<Error> QemuPlugin::validate(const Resource& r) const {
  if (r.id.kind == kVfioDeviceKind) return vfio_->validate(r);
  return vm_->validate(r);
}

Result<std::vector<Resource>> QemuPlugin::expand(const Resource& r) const {
  if (r.id.kind == kVirtualMachineKind) return vm_->expand(r);
  return std::vector<Resource>{};
}

std::vector<Claim> QemuPlugin::claims(const Resource& r) const {
  if (r.id.kind == kVfioDeviceKind) return vfio_->claims(r);
  return vm_->claims(r);
}

Json QemuPlugin::normalize(const std::string& kind, const Json& spec) const {
  if (kind == kVfioDeviceKind) return vfio_->normalize(spec);
  return vm_->normalize(spec);
}

Result<std::vector<ObservedObject>> QemuPlugin::observe(const std::vector<std::string>& kinds) {
  return catchAll("observing VMs and VFIO devices", [&]() -> Result<std::vector<ObservedObject>> {
    std::vector<ObservedObject> out;
    for (const auto& kind : kinds) {
      auto part = kind == kVfioDeviceKind ? vfio_->observe() : vm_->observe();
      if (!part) return part;
      out.insert(out.end(), std::make_move_iterator(part->begin()),
                 std::make_move_iterator(part->end()));
    }
    return out;
  });
}

Outcome QemuPlugin::apply(const Change& change, ApplyContext& context) {
  auto r = catchAll(std::string(toString(change.action)) + " " + change.id.str(),
                    [&]() -> Result<Outcome> {
                      return change.id.kind == kVfioDeviceKind ? vfio_->apply(change, context)
                                                               : vm_->apply(change, context);
                    });
  return r ? *r : Outcome::failed(r.error());
}

Result<void> QemuPlugin::recover(const Interrupted& interrupted, ApplyContext& context) {
  return catchAll("recovering " + interrupted.id.str(), [&]() -> Result<void> {
    if (interrupted.id.kind == kVfioDeviceKind) return vfio_->recover(interrupted, context);
    return {};
  });
}

Result<std::vector<EventSource>> QemuPlugin::openEvents() {
  return catchAll("opening systemd unit events", [&] { return vm_->openEvents(); });
}

Result<Touched> QemuPlugin::drainEvents(int fd) {
  return catchAll("reading systemd unit events", [&] { return vm_->drainEvents(fd); });
}

void QemuPlugin::closeEvents() { vm_->closeEvents(); }

}  // namespace nodeplane::qemu
