// The VirtualMachine spec side: schema (which fields restart the VM), validation against the host
// (inventory, bridges declared, base image, host memory and CPUs), normal form, expansion into
// VfioDevice and Tap children, claims, and the typed VmSpec the run side works from. No host
// writes here.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "nodeplane/plugin.hpp"
#include "qemu_config.hpp"

namespace nodeplane::qemu {

inline constexpr const char* kVirtualMachineKind = "VirtualMachine";

// A normalized VirtualMachine spec, typed. gpus are PCI addresses (function 0 of each GPU, as
// resolved from index / UUID / address); `functions` every function of their IOMMU groups, in
// group order (what QEMU gets as -device vfio-pci,host=…).
struct VmSpec {
  std::string name;
  int vcpus = 1;
  std::int64_t memoryMiB = 1024;
  std::string diskBase;          // <imagesDir>/<diskBase>.qcow2
  std::int64_t diskSizeGiB = 0;  // 0: the base image's size
  std::vector<std::string> gpus;
  std::vector<std::string> functions;
  std::vector<std::string> vgpus;  // Vgpu resource names, as written
  // Their devices (host/vgpu_ref.hpp: the VF or mdev sysfs directory of each), in `vgpus`
  // order; filled by parseVmSpec from the Vgpus' records, which exist once they are made.
  std::vector<std::filesystem::path> vgpuDevices;
  std::optional<int> numaNode;  // numaAffinity: the GPUs' node
  std::string bridge;           // "" when no network
  std::string mac;              // always set when bridge is: given, or derived from the name
  std::string tap;              // the Tap child's interface name
  std::string address;          // "192.168.100.10/24" or ""
  std::string gateway;
  bool cloudInit = false;  // a seed ISO is attached
  std::string hostname;
  std::vector<std::string> sshAuthorizedKeys;
  std::string userData;           // sensitive
  std::string firmware = "bios";  // bios | uefi
  std::string accel = "auto";     // kvm | tcg | auto (resolved by the run side)
  bool running = true;            // state
  int shutdownTimeoutSec = 60;
  bool retainDisk = false;
  bool keepBound = false;
};

KindSchema virtualMachineSchema();
// Everything beyond the schema, each problem with its field path and what was expected: the
// name ([a-z0-9][a-z0-9-]{0,62}), `gpus` from the host inventory (index, UUID, address; every
// function of each GPU's IOMMU group admitted by vfio.allow), the base image
// <imagesDir>/<base>.qcow2, vcpus and memoryMiB within the host's, numaAffinity (GPUs on one
// node), MAC, CIDR address and gateway, cloud-init values, OVMF for uefi. A GPU's UUID is known
// only while the nvidia driver has it: the UUIDs seen are remembered in
// <stateDir>/qemu/gpu-uuids.json (best effort), so a VM's GPU named by UUID still resolves, by
// its address, while the VM runs.
std::vector<Error> validateVm(const Resource& r, HostServices& services, const QemuConfig& config);
// Defaults filled (vcpus 1, memoryMiB 1024, gpus [], firmware bios, accel auto, numaAffinity
// false, state running, shutdownTimeoutSec 60, retainDisk and keepBound false,
// cloudInit.sshAuthorizedKeys []), gpus as sorted PCI addresses (entries the inventory cannot
// resolve kept as written, after them), the MAC lower-case. A MAC left out stays out (normalize
// has no name to derive it from; the diff ignores a field the desired spec leaves out):
// parseVmSpec derives it. disk.sizeGiB left out stays out (the base image's size).
Json normalizeVm(const Json& spec, HostServices& services);
// One VfioDevice per function of each GPU's group (bound unless state is stopped without
// keepBound; when not bound, the child depends on the VM so the VM stops first), and a Tap on
// network.bridge.
Result<std::vector<Resource>> expandVm(const Resource& r, HostServices& services);
std::vector<Claim> vmClaims(const Resource& r, HostServices& services);
// From a normalized spec (what normalizeVm made); the host is read for the groups and NUMA node.
Result<VmSpec> parseVmSpec(const std::string& name, const Json& normalized, HostServices& services);
// 52:54:00:xx:xx:xx from a hash of the name: stable, locally administered, unicast.
std::string derivedMac(const std::string& name);
// The SMBIOS UUID of a VM (-uuid): stable, derived from the name (version 4 / variant 1 bits).
std::string vmUuid(const std::string& name);
// [a-z0-9][a-z0-9-]{0,62}: a VM name that is a valid part of a unit name.
bool isVmName(const std::string& name);
// What is wrong with a MAC address for a NIC (malformed, multicast, all zero), or nullopt.
std::optional<std::string> macProblem(const std::string& mac);
// The host's memory (MemTotal of <procRoot>/meminfo) and online CPUs
// (<sysfsRoot>/devices/system/cpu/online, else the processors of <procRoot>/cpuinfo); nullopt
// when the host does not say.
std::optional<std::int64_t> hostMemoryMiB(const std::filesystem::path& procRoot);
std::optional<int> hostCpus(const std::filesystem::path& sysfsRoot,
                            const std::filesystem::path& procRoot);
// The Tap interface name of a VM (at most 15 characters, stable, unique per VM name).
std::string tapName(const std::string& vm);

// Where a VM's files are.
struct VmLayout {
  std::filesystem::path dir;      // <instancesDir>/<name>
  std::filesystem::path overlay;  // dir/disk.qcow2
  std::filesystem::path seed;     // dir/seed.iso
  std::filesystem::path vars;     // dir/OVMF_VARS.fd
  std::filesystem::path record;   // dir/vm.json: ownership and the applied spec
  std::filesystem::path qmp;      // <runDir>/<name>.qmp
  std::filesystem::path console;  // dir/console.log: the guest's serial console
};
VmLayout vmLayout(const QemuConfig& config, const std::string& name);

// The QEMU command line (argv[0] is the binary, resolved on PATH: absolute), no shell. `accel`
// is resolved (kvm or tcg). Every value is checked (names, MAC, addresses, paths without ',' or
// control characters): an error rather than an argument QEMU would read differently.
Result<std::vector<std::string>> qemuArgv(const VmSpec& spec, const VmLayout& layout,
                                          const QemuConfig& config, const std::string& accel);

// Cloud-init NoCloud seed: the files of the ISO (volume label "cidata").
struct SeedFiles {
  std::string userData;
  std::string metaData;       // instance-id, local-hostname
  std::string networkConfig;  // version 2, static address on the MAC; "" when none
};
SeedFiles seedFiles(const VmSpec& spec, const std::string& instanceId);
// Writes the seed ISO atomically through config.isoBinary (argv, no shell).
Result<void> writeSeedIso(const SeedFiles& files, const std::filesystem::path& iso,
                          const QemuConfig& config);
// qemu-img: creates the overlay once (-F qcow2 -b base), grows it when sizeGiB grows, never
// shrinks it.
Result<void> ensureOverlay(const VmSpec& spec, const VmLayout& layout, const QemuConfig& config);
// UEFI: the OVMF code file, and the per-VM copy of the VARS file (made once).
Result<std::filesystem::path> ovmfCode(const QemuConfig& config);
Result<void> ensureVars(const VmLayout& layout, const QemuConfig& config);

}  // namespace nodeplane::qemu
