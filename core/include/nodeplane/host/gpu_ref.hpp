// A GPU as a spec names it (`gpus:` of a Container or a VirtualMachine): an inventory index (0, or
// "1"), a PCI address, or a GPU-… UUID (in any case). One resolver for every plugin, so a GPU that
// one kind accepts another accepts too, and the messages say the same thing.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "nodeplane/host/pci.hpp"
#include "nodeplane/resource.hpp"

namespace nodeplane::host {

struct GpuRef {
  const Gpu* gpu = nullptr;  // into the inventory given
  std::string problem;       // when gpu is null: what is wrong, and which GPUs there are
};

// `rememberedUuids`: lower-case UUID -> PCI address of a GPU once seen with it (the driver shows a
// UUID only while it has the GPU: on vfio-pci it shows none), used when the inventory has no GPU
// with that UUID now. A PCI address that is not a GPU's is "no GPU at PCI address …"; a GPU of
// another vendor is resolved (the caller decides whether it may take it).
GpuRef resolveGpuRef(const Json& ref, const std::vector<Gpu>& inventory,
                     const std::map<std::string, std::string>& rememberedUuids = {});

// "NVIDIA GPUs here: 0000:1b:00.0 (index 0), …", or "this host has no NVIDIA GPUs".
std::string describeGpus(const std::vector<Gpu>& inventory);

// How a message shows a JSON value it did not expect: `string "x"`, `integer 3`, `a list` …
std::string describeValue(const Json& v);

}  // namespace nodeplane::host
