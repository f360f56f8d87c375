// QEMU's command line for a VM: argv only (no shell), every value checked before it is written.
#include <map>

#include "nodeplane/host/pci.hpp"
#include "nodeplane/host/tool.hpp"
#include "nodeplane/text.hpp"
#include "vm_spec.hpp"

namespace nodeplane::qemu {
namespace {

// A path QEMU reads inside a "key=value,…" option: absolute, no ',' (the option separator), no
// control characters.
Result<std::string> optionPath(const std::filesystem::path& p, const char* what) {
  const std::string s = p.string();
  if (s.empty() || s.front() != '/')
    return fail(ErrorKind::kTerminal,
                std::string(what) + " path \"" + printable(s) + "\" is not absolute");
  for (unsigned char c : s)
    if (c == ',' || c < 0x20 || c == 0x7f)
      return fail(ErrorKind::kTerminal,
                  std::string(what) + " path \"" + printable(s) +
                      "\" has a ',' or a control character, which QEMU's option syntax would "
                      "split",
                  "", "use qemu.instancesDir / qemu.firmwareDir / the run directory without ','");
  return s;
}

bool isInterfaceName(const std::string& s) {
  if (s.empty() || s.size() > 15 || s == "." || s == "..") return false;
  for (unsigned char c : s)
    if (c <= 0x20 || c == '/' || c == ',' || c == ':' || c == '=' || c >= 0x7f) return false;
  return true;
}

}  // namespace

Result<std::vector<std::string>> qemuArgv(const VmSpec& spec, const VmLayout& layout,
                                          const QemuConfig& config, const std::string& accel) {
  auto bad = [&](std::string message) {
    return fail(ErrorKind::kTerminal, "VirtualMachine/" + spec.name + ": " + message);
  };
  if (!isVmName(spec.name)) return bad("invalid VM name \"" + printable(spec.name) + "\"");
  if (accel != "kvm" && accel != "tcg")
    return bad("accelerator \"" + printable(accel) + "\" is not kvm or tcg");
  if (spec.vcpus < 1 || spec.vcpus > 1024) return bad("vcpus out of range 1..1024");
  if (spec.memoryMiB < 64 || spec.memoryMiB > 16 * 1024 * 1024)
    return bad("memoryMiB out of range 64..16777216");
  if (spec.firmware != "bios" && spec.firmware != "uefi")
    return bad("firmware \"" + printable(spec.firmware) + "\" is not uefi or bios");
  auto binary = host::findProgram(config.binary);
  if (!binary) return bad("QEMU: " + binary.error().message);

  auto overlay = optionPath(layout.overlay, "disk overlay");
  if (!overlay) return std::unexpected(overlay.error());
  auto qmp = optionPath(layout.qmp, "QMP socket");
  if (!qmp) return std::unexpected(qmp.error());
  auto console = optionPath(layout.console, "console log");
  if (!console) return std::unexpected(console.error());

  std::vector<std::string> a = {binary->string(),
                                "-name",
                                "guest=" + spec.name + ",debug-threads=on",
                                "-uuid",
                                vmUuid(spec.name),
                                "-machine",
                                "q35",
                                "-accel",
                                accel,
                                "-cpu",
                                accel == "kvm" ? "host" : "max",
                                "-m",
                                std::to_string(spec.memoryMiB) + "M",
                                "-smp",
                                std::to_string(spec.vcpus),
                                "-nodefaults",
                                "-no-user-config",
                                "-display",
                                "none",
                                "-chardev",
                                "file,id=console0,path=" + *console,
                                "-serial",
                                "chardev:console0",
                                "-qmp",
                                "unix:" + *qmp + ",server=on,wait=off"};

  if (spec.firmware == "uefi") {
    auto code = ovmfCode(config);
    if (!code) return std::unexpected(code.error());
    auto codePath = optionPath(*code, "OVMF code");
    if (!codePath) return std::unexpected(codePath.error());
    auto vars = optionPath(layout.vars, "UEFI variables");
    if (!vars) return std::unexpected(vars.error());
    a.insert(a.end(), {"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + *codePath,
                       "-drive", "if=pflash,format=raw,unit=1,file=" + *vars});
  }

  a.insert(a.end(), {"-drive", "file=" + *overlay + ",if=none,id=disk0,format=qcow2,discard=unmap",
                     "-device", "virtio-blk-pci,drive=disk0,bootindex=1"});
  if (spec.cloudInit) {
    auto seed = optionPath(layout.seed, "cloud-init seed");
    if (!seed) return std::unexpected(seed.error());
    a.insert(a.end(),
             {"-drive", "file=" + *seed + ",if=none,id=seed0,format=raw,media=cdrom,readonly=on",
              "-device", "ide-cd,drive=seed0,bus=ide.0"});
  }

  if (!spec.bridge.empty()) {
    if (!isInterfaceName(spec.tap))
      return bad("tap name \"" + printable(spec.tap) + "\" is not a valid interface name");
    if (auto p = macProblem(spec.mac)) return bad(*p);
    a.insert(a.end(), {"-netdev",
                       "tap,id=net0,ifname=" + spec.tap + ",script=no,downscript=no" +
                           (accel == "kvm" ? ",vhost=on" : ""),
                       "-device", "virtio-net-pci,netdev=net0,mac=" + spec.mac});
  }

  // Each slot of the host (domain:bus:device) gets a PCIe root port of its own; its functions
  // go on it in group order, function 0 of the slot multifunction when companions follow.
  std::vector<std::string> slots;
  std::map<std::string, std::vector<std::string>> bySlot;
  for (const auto& f : spec.functions) {
    if (!host::isPciAddress(f)) return bad("\"" + printable(f) + "\" is not a PCI address");
    const std::string slot = f.substr(0, f.rfind('.'));
    if (!bySlot.count(slot)) slots.push_back(slot);
    bySlot[slot].push_back(f);
  }
  for (std::size_t k = 0; k < slots.size(); ++k) {
    const std::string port = "rp" + std::to_string(k);
    a.insert(a.end(), {"-device", "pcie-root-port,id=" + port +
                                      ",chassis=" + std::to_string(k + 1) + ",slot=0"});
    const auto& fns = bySlot[slots[k]];
    if (fns.size() > 8) return bad("slot " + slots[k] + " has more than 8 functions");
    for (std::size_t j = 0; j < fns.size(); ++j) {
      std::string dev =
          "vfio-pci,host=" + fns[j] + ",bus=" + port + ",addr=0x0." + std::to_string(j);
      if (j == 0 && fns.size() > 1) dev += ",multifunction=on";
      a.insert(a.end(), {"-device", dev});
    }
  }
  // Each vGPU (a VF on the nvidia driver, or an mdev) on a root port of its own, by its sysfs
  // directory: QEMU opens it through its vfio-dev node or its group.
  for (std::size_t k = 0; k < spec.vgpuDevices.size(); ++k) {
    auto dev = optionPath(spec.vgpuDevices[k], "vGPU device");
    if (!dev) return std::unexpected(dev.error());
    const std::string port = "rpv" + std::to_string(k);
    a.insert(a.end(), {"-device",
                       "pcie-root-port,id=" + port +
                           ",chassis=" + std::to_string(slots.size() + k + 1) + ",slot=0",
                       "-device", "vfio-pci,sysfsdev=" + *dev + ",bus=" + port + ",addr=0x0"});
  }
  return a;
}

}  // namespace nodeplane::qemu
