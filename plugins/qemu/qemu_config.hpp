// The qemu plugin's settings: the agent config's `qemu:` and `vfio:` sections, read once at
// construction (both are checked against the schemas below before the plugin is used).
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "nodeplane/plugin.hpp"

namespace nodeplane::qemu {

struct QemuConfig {
  // qemu:
  std::string binary = "qemu-system-x86_64";  // a name (searched on PATH) or an absolute path
  std::string imgBinary = "qemu-img";
  std::string isoBinary = "genisoimage";                          // makes the cloud-init seed ISO
  std::filesystem::path imagesDir = "/var/lib/nodeplane/images";  // <base>.qcow2
  std::filesystem::path instancesDir = "/var/lib/nodeplane/instances";  // <vm>/: overlay, seed…
  std::filesystem::path firmwareDir = "/usr/share/OVMF";  // OVMF_CODE*.fd, OVMF_VARS*.fd
  std::string accel = "auto";                             // kvm | tcg | auto
  // vfio:
  // Which PCI functions may ever go to vfio-pci: "vendor:device" with `*` for either part
  // ("10de:*"), or a PCI address ("0000:3b:00.1"). Empty: none may.
  std::vector<std::string> vfioAllow;
  std::chrono::milliseconds bindTimeout{10000};  // each sysfs write and each wait for a driver
  // From HostContext: <runDir>/qemu holds QMP sockets; <stateDir>/qemu the plugin's records.
  std::filesystem::path runDir = "/run/nodeplane/qemu";
  std::filesystem::path stateDir = "/var/lib/nodeplane/qemu";
};

std::vector<FieldSchema> qemuConfigSchema();  // the `qemu:` section
std::vector<FieldSchema> vfioConfigSchema();  // the `vfio:` section
// Defaults filled from `host` (run and state directories, HostContext::qemuBinary …), then the
// sections of host.config. Sections were validated by the core: a field of the wrong type here
// keeps its default.
QemuConfig readQemuConfig(const HostContext& host);

// Does `allow` (QemuConfig::vfioAllow) admit this function?
bool vfioAllowed(const std::vector<std::string>& allow, const host::PciFunction& f);

}  // namespace nodeplane::qemu
