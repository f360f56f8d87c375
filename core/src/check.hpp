// `nodeplane check`: host readiness report.
#pragma once

#include <string>
#include <vector>

#include "nodeplane/host/pci.hpp"
#include "nodeplane/plugin.hpp"

namespace nodeplane {

struct CheckItem {
  std::string name;    // "netlink", "systemd-bus", "kvm", "cpu-virtualization", "iommu", "vfio"
  bool ok = false;
  bool required = false;  // a missing required piece makes `check` exit 1
  std::string detail;     // what was found, or what is missing and how to fix it
};

struct CheckReport {
  std::vector<CheckItem> items;
  std::vector<host::Gpu> gpus;
  std::string gpuError;  // set when the inventory could not be read
  bool ok() const;       // every required item ok
};

CheckReport runChecks(const HostContext& host);
std::string renderCheckText(const CheckReport& report);
Json checkToJson(const CheckReport& report);  // {"ok":..,"checks":[..],"gpus":[..]}

}  // namespace nodeplane
