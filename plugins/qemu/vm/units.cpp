// Stub: transient units over sdbus-c++.
#include "units.hpp"

#include <sdbus-c++/sdbus-c++.h>

namespace nodeplane::qemu {

std::string vmUnitName(const std::string& vm) { return "nodeplane-vm-" + vm + ".service"; }
Result<void> UnitManager::start(const TransientUnit&, std::chrono::milliseconds) {
  return fail(ErrorKind::kTerminal, "not implemented");
}
Result<void> UnitManager::stop(const std::string&, std::chrono::milliseconds) {
  return fail(ErrorKind::kTerminal, "not implemented");
}
Result<void> UnitManager::resetFailed(const std::string&) {
  return fail(ErrorKind::kTerminal, "not implemented");
}
Result<std::optional<UnitState>> UnitManager::state(const std::string&) {
  return fail(ErrorKind::kTerminal, "not implemented");
}
Result<std::vector<UnitState>> UnitManager::list(const std::string&) {
  return fail(ErrorKind::kTerminal, "not implemented");
}

}  // namespace nodeplane::qemu
