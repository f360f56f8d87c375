// `nodeplane check`: runs the probes, reads the GPU inventory, renders the report.
#include "check.hpp"

#include <algorithm>
#include <array>

#include "plugin_host.hpp"

namespace nodeplane {
namespace {

std::string joinAddresses(const std::vector<host::PciFunction>& functions) {
  std::string out;
  for (const auto& f : functions) {
    if (!out.empty()) out += ",";
    out += f.address;
  }
  return out.empty() ? "-" : out;
}

Json addresses(const std::vector<host::PciFunction>& functions) {
  Json out = Json::array();
  for (const auto& f : functions) out.push_back(f.address);
  return out;
}

// Rows of cells printed in columns two spaces apart; the last column is not padded.
std::string renderTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()));
    for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    out += "  " + line + "\n";
  }
  return out;
}

}  // namespace

bool CheckReport::ok() const {
  return std::all_of(items.begin(), items.end(),
                     [](const CheckItem& c) { return c.ok || !c.required; });
}

CheckReport runChecks(const HostContext& host, PluginHost* plugins) {
  CheckReport report;
  report.items.push_back(probeSystemdBus(host.systemdBus));
  report.plugin.resize(report.items.size());
  if (plugins)
    for (const auto& p : plugins->plugins())
      for (auto& item : p->check()) {
        report.items.push_back(std::move(item));
        report.plugin.push_back(p->name());
      }
  if (auto gpus = host::readGpuInventory(host.sysfsRoot, host.procRoot)) {
    report.gpus = std::move(*gpus);
  } else {
    report.gpuError = gpus.error().str();
  }
  return report;
}

std::string renderCheckText(const CheckReport& report) {
  std::vector<std::vector<std::string>> checks;
  for (const auto& c : report.items) {
    checks.push_back({c.ok ? "ok" : (c.required ? "MISSING" : "warn"), c.name, c.detail});
  }
  std::string out = "Host checks:\n" + renderTable(checks);

  out += "\nGPUs:\n";
  if (!report.gpuError.empty()) {
    out += "  cannot read the PCI inventory: " + report.gpuError + "\n";
  } else if (report.gpus.empty()) {
    out += "  none found\n";
  } else {
    // MODEL only when the driver named one (it is the widest column, and often unknown).
    const bool models = std::any_of(report.gpus.begin(), report.gpus.end(),
                                    [](const host::Gpu& g) { return !g.model.empty(); });
    std::vector<std::vector<std::string>> rows{{"INDEX", "ADDRESS", "UUID", "VENDOR:DEVICE",
                                                "DRIVER", "NUMA", "GROUP", "COMPANIONS", "PEERS"}};
    if (models) rows[0].insert(rows[0].begin() + 3, "MODEL");
    for (const auto& gpu : report.gpus) {
      const auto& f = gpu.function;
      std::vector<std::string> row{gpu.index < 0 ? "-" : std::to_string(gpu.index),
                                   f.address,
                                   gpu.uuid.empty() ? "-" : gpu.uuid,
                                   f.vendor + ":" + f.device,
                                   f.driver.empty() ? "-" : f.driver,
                                   std::to_string(f.numaNode),
                                   f.iommuGroup ? std::to_string(*f.iommuGroup) : "-",
                                   joinAddresses(gpu.companions),
                                   joinAddresses(gpu.groupPeers)};
      if (models) row.insert(row.begin() + 3, gpu.model.empty() ? "-" : gpu.model);
      rows.push_back(std::move(row));
    }
    out += renderTable(rows);
  }
  out += report.ok() ? "\nready: every required check passed\n"
                     : "\nnot ready: a required check failed\n";
  return out;
}

Json checkToJson(const CheckReport& report) {
  Json checks = Json::array();
  for (std::size_t i = 0; i < report.items.size(); ++i) {
    const auto& c = report.items[i];
    Json item = {{"name", c.name}, {"ok", c.ok}, {"required", c.required}, {"detail", c.detail}};
    if (i < report.plugin.size() && !report.plugin[i].empty()) item["plugin"] = report.plugin[i];
    checks.push_back(std::move(item));
  }
  Json gpus = Json::array();
  for (const auto& gpu : report.gpus) {
    const auto& f = gpu.function;
    gpus.push_back({{"address", f.address},
                    {"index", gpu.index < 0 ? Json(nullptr) : Json(gpu.index)},
                    {"uuid", gpu.uuid.empty() ? Json(nullptr) : Json(gpu.uuid)},
                    {"model", gpu.model.empty() ? Json(nullptr) : Json(gpu.model)},
                    {"deviceMinor", gpu.deviceMinor ? Json(*gpu.deviceMinor) : Json(nullptr)},
                    {"vendor", f.vendor},
                    {"device", f.device},
                    {"driver", f.driver},
                    {"numaNode", f.numaNode},
                    {"iommuGroup", f.iommuGroup ? Json(*f.iommuGroup) : Json(nullptr)},
                    {"companions", addresses(gpu.companions)},
                    {"groupPeers", addresses(gpu.groupPeers)}});
  }
  Json out = {{"ok", report.ok()}, {"checks", checks}, {"gpus", gpus}};
  if (!report.gpuError.empty()) out["gpuError"] = report.gpuError;
  return out;
}

}  // namespace nodeplane
