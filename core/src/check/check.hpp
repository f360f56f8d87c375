// `nodeplane check`: host readiness report.
#pragma once

#include <chrono>
#include <filesystem>
#include <istream>
#include <string>
#include <vector>

#include "nodeplane/host/pci.hpp"
#include "nodeplane/plugin.hpp"

namespace nodeplane {

class PluginHost;

struct CheckReport {
  std::vector<CheckItem> items;
  // Per item, the plugin that reported it ("" or absent: the core's own probes).
  std::vector<std::string> plugin;
  std::vector<host::Gpu> gpus;
  std::string gpuError;  // set when the inventory could not be read
  bool ok() const;       // every required item ok
};

// The core's probe (the systemd bus), then the items of every loaded plugin's check() (KVM, IOMMU
// and VFIO are the qemu plugin's). Plugins are not started for it: check() says what start() and
// apply would need, without needing it.
CheckReport runChecks(const HostContext& host, PluginHost* plugins = nullptr);
std::string renderCheckText(const CheckReport& report);
Json checkToJson(const CheckReport& report);  // {"ok":..,"checks":[..],"gpus":[..]}

// The core's probe behind runChecks() (check_probes.cpp).
// `bus`: "system", "user", or a D-Bus address ("unix:path=/run/x/bus").
CheckItem probeSystemdBus(const std::string& bus,
                          std::chrono::milliseconds timeout = std::chrono::seconds(3));

}  // namespace nodeplane
