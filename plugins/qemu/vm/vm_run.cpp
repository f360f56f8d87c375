// Stub: VmKind's run side (start, observe, apply, events, check).
#include <sdbus-c++/sdbus-c++.h>

#include "vm_kind.hpp"
#include "vm_spec.hpp"

namespace nodeplane::qemu {

VmKind::VmKind(HostServices& services, const QemuConfig& config)
    : services_(services), config_(config) {}
VmKind::~VmKind() = default;

Result<void> VmKind::start() { return {}; }
void VmKind::stop() { closeEvents(); }
Result<std::vector<ObservedObject>> VmKind::observe() { return std::vector<ObservedObject>{}; }
Outcome VmKind::apply(const Change&, ApplyContext&) {
  return Outcome::failed(Error{ErrorKind::kTerminal, "VirtualMachine: not implemented"});
}
Result<std::vector<EventSource>> VmKind::openEvents() { return std::vector<EventSource>{}; }
Result<Touched> VmKind::drainEvents(int) { return Touched{}; }
void VmKind::closeEvents() { events_.reset(); }
std::vector<CheckItem> VmKind::check() { return {}; }

}  // namespace nodeplane::qemu
