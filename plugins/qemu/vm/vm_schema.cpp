// The VirtualMachine schema: every field, its range, and which changes restart the VM
// (forcesRestart: what QEMU cannot change while it runs) and which are applied without a restart
// (state, the disk's size, cloud-init and the guest's address: the seed is regenerated for the
// next boot; keepBound, retainDisk, shutdownTimeoutSec: the agent's own behaviour).
#include "vm_spec.hpp"

namespace nodeplane::qemu {
namespace {

FieldSchema field(std::string name, FieldType type, std::string desc, bool restart = false) {
  FieldSchema f;
  f.name = std::move(name);
  f.type = type;
  f.description = std::move(desc);
  f.forcesRestart = restart;
  return f;
}

FieldSchema integer(std::string name, std::int64_t min, std::int64_t max, std::string desc,
                    bool restart) {
  FieldSchema f = field(std::move(name), FieldType::kInteger, std::move(desc), restart);
  f.minimum = min;
  f.maximum = max;
  return f;
}

FieldSchema oneOf(std::string name, std::vector<std::string> allowed, std::string desc,
                  bool restart) {
  FieldSchema f = field(std::move(name), FieldType::kString, std::move(desc), restart);
  f.allowed = std::move(allowed);
  return f;
}

// Vgpu resources (the vgpu plugin's kind), each given to QEMU as its VF or mdev: a reference,
// so a Vgpu is made before the VM that uses it and deleted after it.
FieldSchema vgpus() {
  FieldSchema f = field("vgpus", FieldType::kStringList,
                        "Vgpu resources (by name) the VM uses, each as -device "
                        "vfio-pci,sysfsdev=<its VF or mdev>; one VM per Vgpu",
                        true);
  f.references = "Vgpu";
  return f;
}

}  // namespace

KindSchema virtualMachineSchema() {
  FieldSchema base = field("base", FieldType::kString,
                           "base image name: <qemu.imagesDir>/<base>.qcow2 (the VM's disk is a "
                           "qcow2 overlay on it)",
                           true);
  base.required = true;
  FieldSchema disk = field("disk", FieldType::kObject, "the VM's disk");
  disk.required = true;
  disk.fields = {base, integer("sizeGiB", 1, 65536,
                               "virtual size of the overlay in GiB (default: the base image's); "
                               "grown when raised, never shrunk",
                               false)};

  FieldSchema bridge = field("bridge", FieldType::kString,
                             "the Bridge the VM's NIC is on (a Tap child is made on it)", true);
  bridge.required = true;
  bridge.references = "Bridge";
  FieldSchema network = field("network", FieldType::kObject, "one virtio NIC on a bridge");
  network.fields = {
      bridge,
      field("mac", FieldType::kString,
            "unicast MAC address (default: 52:54:00:xx:xx:xx derived from the VM name)", true),
      field("address", FieldType::kString,
            "static IPv4 or IPv6 address with prefix length (192.168.100.10/24), set by "
            "cloud-init; none: the guest's own configuration (DHCP)"),
      field("gateway", FieldType::kString, "default route of the guest, inside `address`"),
  };

  FieldSchema userData = field("userData", FieldType::kString,
                               "cloud-init user-data, verbatim (#cloud-config …); sensitive: "
                               "never shown, compared by its SHA-256");
  userData.sensitive = true;
  FieldSchema cloudInit =
      field("cloudInit", FieldType::kObject,
            "a NoCloud seed ISO (volume cidata), regenerated when this or `network` changes; "
            "read by the guest at its next boot");
  cloudInit.fields = {
      field("hostname", FieldType::kString, "the guest's host name (default: the VM name)"),
      field("sshAuthorizedKeys", FieldType::kStringList,
            "SSH public keys for the guest's default user"),
      userData,
  };

  KindSchema k;
  k.kind = kVirtualMachineKind;
  k.description =
      "a QEMU virtual machine in a systemd unit (nodeplane-vm-<name>.service) with whole GPUs "
      "passed through (VFIO); metadata.name: [a-z0-9][a-z0-9-]{0,62}";
  k.expandReadsHost = true;
  k.spec = {
      integer("vcpus", 1, 1024, "virtual CPUs (default 1; at most the host's CPUs)", true),
      integer("memoryMiB", 64, 16 * 1024 * 1024,
              "guest memory in MiB (default 1024; at most the host's memory)", true),
      disk,
      field("gpus", FieldType::kAny,
            "GPUs passed through, each with every function of its IOMMU group: a list of "
            "inventory indices (0, 1, … as nvidia-smi numbers them), PCI addresses "
            "(0000:3b:00.0) and GPU-… UUIDs",
            true),
      vgpus(),
      network,
      cloudInit,
      oneOf("firmware", {"uefi", "bios"},
            "uefi (OVMF, a per-VM copy of its variables) or bios "
            "(SeaBIOS; the default)",
            true),
      oneOf("accel", {"kvm", "tcg", "auto"},
            "kvm, tcg (emulation), or auto (default: qemu.accel, else kvm when /dev/kvm works)",
            true),
      field("numaAffinity", FieldType::kBoolean,
            "pin the vCPU threads and the memory to the NUMA node of the GPUs (default false)",
            true),
      oneOf("state", {"running", "stopped"},
            "running (default) or stopped; stopped gives the GPUs back to the host unless "
            "keepBound",
            false),
      integer("shutdownTimeoutSec", 1, 3600,
              "how long a stop waits for the guest to power off before QEMU is quit (default 60)",
              false),
      field("retainDisk", FieldType::kBoolean,
            "keep the disk overlay when the VM is deleted (default false)"),
      field("keepBound", FieldType::kBoolean,
            "keep the GPUs on vfio-pci while the VM is stopped (default false)"),
  };
  return k;
}

}  // namespace nodeplane::qemu
