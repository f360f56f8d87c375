// The core's own readiness probe of `nodeplane check`: the systemd bus. (KVM, CPU virtualization,
// IOMMU and VFIO are the qemu plugin's: plugins/qemu/host_checks.hpp.)
#include <sdbus-c++/sdbus-c++.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <system_error>

#include "check.hpp"

namespace nodeplane {
namespace fs = std::filesystem;
namespace {

CheckItem item(std::string name, bool required) {
  CheckItem c;
  c.name = std::move(name);
  c.required = required;
  return c;
}

}  // namespace

CheckItem probeSystemdBus(const std::string& bus, std::chrono::milliseconds timeout) {
  CheckItem c = item("systemd-bus", false);
  try {
    std::unique_ptr<sdbus::IConnection> connection;
    if (bus == "system") {
      connection = sdbus::createSystemBusConnection();
    } else if (bus == "user") {
      connection = sdbus::createSessionBusConnection();
    } else if (bus.starts_with("unix:")) {
      connection = sdbus::createSessionBusConnectionWithAddress(bus);
    } else {
      c.detail = "unknown systemd bus '" + bus + "' (want system, user or a unix: address)";
      return c;
    }
    // A proxy over a borrowed connection runs no event-loop thread; the call below is synchronous.
    auto proxy =
        sdbus::createProxy(*connection, "org.freedesktop.systemd1", "/org/freedesktop/systemd1");
    sdbus::Variant version;
    proxy->callMethod("Get")
        .onInterface("org.freedesktop.DBus.Properties")
        .withTimeout(timeout)
        .withArguments(std::string("org.freedesktop.systemd1.Manager"), std::string("Version"))
        .storeResultsTo(version);
    c.ok = true;
    c.detail = "systemd " + version.get<std::string>() + " on the " + bus + " bus";
  } catch (const sdbus::Error& e) {
    c.detail = "cannot read the systemd manager version on the " + bus + " bus: " + e.getName() +
               ": " + e.getMessage();
  } catch (const std::exception& e) {
    c.detail = "cannot read the systemd manager version on the " + bus + " bus: " + e.what();
  }
  return c;
}

}  // namespace nodeplane
