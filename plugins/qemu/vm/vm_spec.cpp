// Stub: the VirtualMachine spec side.
#include "vm_spec.hpp"

namespace nodeplane::qemu {

KindSchema virtualMachineSchema() {
  KindSchema k;
  k.kind = kVirtualMachineKind;
  k.description = "a QEMU/KVM virtual machine with whole GPUs passed through (VFIO)";
  k.expandReadsHost = true;
  FieldSchema vcpus;
  vcpus.name = "vcpus";
  vcpus.type = FieldType::kInteger;
  k.spec = {vcpus};
  return k;
}
std::vector<Error> validateVm(const Resource&, HostServices&, const QemuConfig&) { return {}; }
Json normalizeVm(const Json& spec, HostServices&) { return spec; }
Result<std::vector<Resource>> expandVm(const Resource&, HostServices&) {
  return std::vector<Resource>{};
}
std::vector<Claim> vmClaims(const Resource&, HostServices&) { return {}; }
Result<VmSpec> parseVmSpec(const std::string&, const Json&, HostServices&) {
  return fail(ErrorKind::kTerminal, "not implemented");
}
std::string derivedMac(const std::string&) { return "52:54:00:00:00:00"; }
std::string tapName(const std::string& vm) { return "vm-" + vm.substr(0, 12); }
VmLayout vmLayout(const QemuConfig& config, const std::string& name) {
  VmLayout l;
  l.dir = config.instancesDir / name;
  l.overlay = l.dir / "disk.qcow2";
  l.seed = l.dir / "seed.iso";
  l.vars = l.dir / "OVMF_VARS.fd";
  l.record = l.dir / "vm.json";
  l.qmp = config.runDir / (name + ".qmp");
  return l;
}
Result<std::vector<std::string>> qemuArgv(const VmSpec&, const VmLayout&, const QemuConfig&,
                                          const std::string&) {
  return fail(ErrorKind::kTerminal, "not implemented");
}
SeedFiles seedFiles(const VmSpec&, const std::string&) { return {}; }
Result<void> writeSeedIso(const SeedFiles&, const std::filesystem::path&, const QemuConfig&) {
  return fail(ErrorKind::kTerminal, "not implemented");
}
Result<void> ensureOverlay(const VmSpec&, const VmLayout&, const QemuConfig&) {
  return fail(ErrorKind::kTerminal, "not implemented");
}
Result<std::filesystem::path> ovmfCode(const QemuConfig&) {
  return fail(ErrorKind::kTerminal, "not implemented");
}
Result<void> ensureVars(const VmLayout&, const QemuConfig&) {
  return fail(ErrorKind::kTerminal, "not implemented");
}

}  // namespace nodeplane::qemu
