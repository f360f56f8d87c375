#include "qemu_config.hpp"

#include <fnmatch.h>

namespace nodeplane::qemu {

std::vector<FieldSchema> qemuConfigSchema() {
  auto str = [](const char* name, const char* what) {
    FieldSchema f;
    f.name = name;
    f.description = what;
    return f;
  };
  FieldSchema accel = str("accel", "default accelerator of VMs whose spec says auto");
  accel.allowed = {"kvm", "tcg", "auto"};
  return {str("binary", "qemu-system-x86_64, by name (PATH) or absolute path"),
          str("imgBinary", "qemu-img, by name or absolute path"),
          str("isoBinary", "genisoimage (or mkisofs), for the cloud-init seed"),
          str("imagesDir", "where base images live: <imagesDir>/<base>.qcow2"),
          str("instancesDir", "per-VM folders: disk overlay, seed ISO, UEFI variables"),
          str("firmwareDir", "where OVMF_CODE*.fd and OVMF_VARS*.fd are"),
          accel};
}

std::vector<FieldSchema> vfioConfigSchema() {
  FieldSchema allow;
  allow.name = "allow";
  allow.type = FieldType::kStringList;
  allow.description =
      "PCI functions that may go to vfio-pci: vendor:device (\"10de:*\") or an address";
  FieldSchema timeout;
  timeout.name = "bindTimeoutSeconds";
  timeout.type = FieldType::kInteger;
  timeout.minimum = 1;
  timeout.maximum = 600;
  timeout.description = "limit of each sysfs write and of each wait for a driver";
  return {allow, timeout};
}

QemuConfig readQemuConfig(const HostContext& host) {
  QemuConfig c;
  c.binary = host.qemuBinary;
  c.imagesDir = host.imagesDir;
  c.instancesDir = host.instancesDir;
  c.runDir = host.runDir / "qemu";
  c.stateDir = host.stateDir / "qemu";
  const Json& cfg = host.config;
  auto str = [](const Json& section, const char* key, auto& out) {
    if (section.is_object() && section.contains(key) && section[key].is_string())
      out = section[key].get<std::string>();
  };
  if (cfg.is_object() && cfg.contains("qemu")) {
    const Json& q = cfg["qemu"];
    str(q, "binary", c.binary);
    str(q, "imgBinary", c.imgBinary);
    str(q, "isoBinary", c.isoBinary);
    str(q, "imagesDir", c.imagesDir);
    str(q, "instancesDir", c.instancesDir);
    str(q, "firmwareDir", c.firmwareDir);
    str(q, "accel", c.accel);
  }
  if (cfg.is_object() && cfg.contains("vfio") && cfg["vfio"].is_object()) {
    const Json& v = cfg["vfio"];
    if (v.contains("allow") && v["allow"].is_array())
      for (const auto& a : v["allow"])
        if (a.is_string()) c.vfioAllow.push_back(a.get<std::string>());
    if (v.contains("bindTimeoutSeconds") && v["bindTimeoutSeconds"].is_number_integer())
      c.bindTimeout = std::chrono::seconds(v["bindTimeoutSeconds"].get<int>());
  }
  return c;
}

bool vfioAllowed(const std::vector<std::string>& allow, const host::PciFunction& f) {
  for (const auto& pattern : allow) {
    if (host::isPciAddress(pattern) || pattern.find('.') != std::string::npos) {
      if (::fnmatch(pattern.c_str(), f.address.c_str(), 0) == 0) return true;
      continue;
    }
    const std::string id = f.vendor + ":" + f.device;
    if (::fnmatch(pattern.c_str(), id.c_str(), FNM_CASEFOLD) == 0) return true;
  }
  return false;
}

}  // namespace nodeplane::qemu
