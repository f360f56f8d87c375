// The in-use guard: is the host using this PCI function right now? Read from sysfs and proc under
// injected roots, so the tests run it over fixture trees. Run at validate and again at the moment
// a VfioDevice is bound.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "nodeplane/host/pci.hpp"

namespace nodeplane::qemu {

struct HostRoots {
  std::filesystem::path sysfsRoot = "/sys";
  std::filesystem::path procRoot = "/proc";
};

// Who uses `f` (a function on a host driver), one sentence each; empty when nobody does:
//  - a block device below it (or a device-mapper holder of one) that is mounted (mountinfo of
//    <procRoot>/self, else <procRoot>/1): "nvme0n1p1 (259:1) is mounted on /boot";
//  - a network interface of it that carries the default route (<procRoot>/net/route,
//    net/ipv6_route): "eno1 carries the default route";
//  - an open /dev/nvidia<minor> (`deviceMinor` from the GPU inventory) in any process under
//    <procRoot>: "pid 1234 (Xorg) has /dev/nvidia0 open";
//  - the boot display (boot_vga = 1) with a framebuffer console on it (a graphics/fb* device
//    under the function): moving it takes the console away, and the framebuffer driver keeps its
//    memory regions, so vfio-pci could not take the BARs cleanly.
// A function already on vfio-pci is not the host's: nothing is reported.
std::vector<std::string> hostUses(const HostRoots& roots, const host::PciFunction& f,
                                  std::optional<int> nvidiaMinor);

// "a USB controller", "an Ethernet controller", "an audio device", … from a class code.
std::string describePciClass(const std::string& classCode);

}  // namespace nodeplane::qemu
