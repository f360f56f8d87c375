// VfioDevice's spec side (schema, validate, claims, normalize), observe and check. The moves
// (apply, recover) are in vfio_apply.cpp.
#include "vfio_kind.hpp"

#include <algorithm>
#include <cctype>
#include <system_error>

#include "host_checks.hpp"
#include "nodeplane/record_store.hpp"
#include "vfio_guard.hpp"

namespace nodeplane::qemu {
namespace fs = std::filesystem;
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string deviceOf(const Json& spec) {
  return spec.is_object() && spec.contains("device") && spec["device"].is_string()
             ? lower(spec["device"].get<std::string>())
             : std::string();
}

std::string driverLink(const fs::path& sysfsRoot, const std::string& address) {
  std::error_code ec;
  fs::path target = fs::read_symlink(sysfsRoot / "bus/pci/devices" / address / "driver", ec);
  return ec ? std::string() : target.filename().string();
}

}  // namespace

VfioKind::VfioKind(HostServices& services, const QemuConfig& config)
    : services_(services), config_(config) {}

KindSchema VfioKind::schema() const {
  KindSchema k;
  k.kind = kVfioDeviceKind;
  k.description = "a PCI function on vfio-pci (usually a child of a VirtualMachine)";
  FieldSchema device;
  device.name = "device";
  device.required = true;
  device.forcesReplace = true;
  device.description = "PCI address of the function, domain:bus:device.function (0000:3b:00.1)";
  FieldSchema bound;
  bound.name = "bound";
  bound.type = FieldType::kBoolean;
  bound.description =
      "true (default): on vfio-pci; false: back on its host driver, still owned by nodeplane";
  k.spec = {device, bound};
  return k;
}

std::optional<int> VfioKind::nvidiaMinor(const std::string& address) const {
  auto gpus = services_.gpus();
  if (!gpus) return std::nullopt;
  for (const auto& g : *gpus)
    if (g.function.address == address) return g.deviceMinor;
  return std::nullopt;
}

std::vector<Error> VfioKind::validate(const Resource& r) const {
  std::vector<Error> out;
  if (auto problem = recordNameProblem(r.id.name); !problem.empty())
    out.push_back(r.error(ErrorKind::kInvalidInput, "metadata.name",
                          "invalid VfioDevice name \"" + r.id.name + "\": " + problem +
                              " (the name is its ownership record's file name)"));
  const std::string field = "spec.device";
  const std::string address = deviceOf(r.spec);
  if (!host::isPciAddress(address)) {
    out.push_back(r.error(ErrorKind::kInvalidInput, field,
                          "'" +
                              (r.spec.contains("device") && r.spec["device"].is_string()
                                   ? r.spec["device"].get<std::string>()
                                   : std::string()) +
                              "' is not a PCI address (want domain:bus:device.function, e.g. "
                              "0000:3b:00.0)"));
    return out;
  }
  const fs::path& sysfs = services_.context().sysfsRoot;
  std::error_code ec;
  if (!fs::exists(sysfs / "bus/pci/devices" / address, ec)) {
    out.push_back(r.error(ErrorKind::kInvalidInput, field,
                          "no PCI function " + address + " on this host (" +
                              (sysfs / "bus/pci/devices" / address).string() + " not found)"));
    return out;
  }
  auto f = host::readPciFunction(sysfs, address);
  if (!f) {
    out.push_back(r.error(ErrorKind::kInvalidInput, field, f.error().message));
    return out;
  }
  if (f->isBridge()) {
    out.push_back(r.error(ErrorKind::kInvalidInput, field,
                          address + " is a PCI bridge (class 0x" + f->classCode +
                              "): bridges stay with the host; name the devices behind it"));
    return out;
  }
  if (!vfioAllowed(config_.vfioAllow, *f)) {
    const std::string id = f->vendor + ":" + f->device;
    out.push_back(r.error(
        ErrorKind::kInvalidInput, field,
        address + " (" + id + ") is not admitted by vfio.allow" +
            (config_.vfioAllow.empty() ? " (empty: no device may go to vfio-pci)" : ""),
        "add \"" + id + "\" or \"" + address + "\" to vfio: {allow: [...]} in the agent config"));
  }
  if (!f->iommuGroup) {
    out.push_back(r.error(ErrorKind::kInvalidInput, field,
                          address + " has no IOMMU group: the IOMMU is off",
                          "turn VT-d / AMD-Vi on in the firmware and boot with intel_iommu=on "
                          "(or amd_iommu=on) iommu=pt"));
  }
  const bool bound =
      !r.spec.contains("bound") || !r.spec["bound"].is_boolean() || r.spec["bound"].get<bool>();
  if (bound) {
    HostRoots roots{sysfs, services_.context().procRoot};
    for (const auto& use : hostUses(roots, *f, nvidiaMinor(address)))
      out.push_back(r.error(ErrorKind::kInvalidInput, field,
                            "the host is using " + address + " (on " + f->driver + "): " + use,
                            "stop that use first, or pass another device"));
  }
  return out;
}

std::vector<Claim> VfioKind::claims(const Resource& r) const {
  const std::string address = deviceOf(r.spec);
  if (address.empty()) return {};
  return {Claim{"pci", address, true, false}};
}

Json VfioKind::normalize(const Json& spec) const {
  Json out = spec.is_object() ? spec : Json::object();
  if (out.contains("device") && out["device"].is_string()) out["device"] = deviceOf(out);
  if (!out.contains("bound")) out["bound"] = true;
  return out;
}

Result<std::vector<ObservedObject>> VfioKind::observe() {
  auto records = listVfioRecords(config_.stateDir);
  if (!records) return std::unexpected(records.error());
  const std::string agent = services_.agentId();
  std::vector<ObservedObject> out;
  for (const auto& rec : *records) {
    ObservedObject o;
    o.id = {kVfioDeviceKind, rec.name};
    const bool bound = driverLink(services_.context().sysfsRoot, rec.device) == "vfio-pci";
    o.spec = {{"device", rec.device}, {"bound", bound}};
    if (!agent.empty() && rec.agent == agent)
      o.marked = true;
    else
      o.markedByOther = rec.agent.empty() ? std::string("(no agent id)") : rec.agent;
    o.uid = rec.uid;
    if (bound) o.holds.push_back(Claim{"pci", rec.device, true, false});
    out.push_back(std::move(o));
  }
  return out;
}

std::vector<CheckItem> VfioKind::check() {
  const HostContext& host = services_.context();
  std::vector<CheckItem> items{probeIommu(host.sysfsRoot), probeVfio(host.sysfsRoot),
                               probeAcsOverride(host.procRoot)};
  auto gpus = services_.gpus();
  if (gpus) {
    auto more = passthroughChecks({host.sysfsRoot, host.procRoot}, *gpus, config_.vfioAllow);
    items.insert(items.end(), more.begin(), more.end());
  }
  return items;
}

}  // namespace nodeplane::qemu
