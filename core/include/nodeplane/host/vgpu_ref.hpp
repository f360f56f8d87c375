// The contract between the vgpu plugin, which makes a Vgpu, and the qemu plugin, which hands it
// to a VM: the Vgpu's record, <stateDir>/vgpu/vgpus/<name>.json, written by the vgpu plugin when
// the vGPU exists (and removed when it goes). The record holds more (ownership, type ids); these
// keys are all the qemu plugin reads:
//   "device":   the sysfs directory to give QEMU as -device vfio-pci,sysfsdev=<device>: the VF
//               (SR-IOV model) or the mdev (mdev model), absolute, under the sysfs root
//   "gpu":      the PCI address of the GPU (the PF) it is a slice of
//   "ready":    true once the type or mdev is set and read back
#pragma once

#include <filesystem>
#include <fstream>
#include <string>

#include "nodeplane/error.hpp"
#include "nodeplane/record_store.hpp"
#include "nodeplane/resource.hpp"

namespace nodeplane::host {

inline std::filesystem::path vgpuRecordPath(const std::filesystem::path& stateDir,
                                            const std::string& name) {
  return stateDir / "vgpu" / "vgpus" / (name + ".json");
}

struct VgpuDevice {
  std::filesystem::path device;
  std::string gpu;
};

// The device of Vgpu `name`, or why it cannot be used yet (kRetryable: not made yet).
inline Result<VgpuDevice> readVgpuDevice(const std::filesystem::path& stateDir,
                                         const std::string& name) {
  // A VM names its Vgpus; the name becomes a path: only a plain file name (as every new record's).
  if (auto problem = recordNameProblem(name); !problem.empty())
    return fail(ErrorKind::kTerminal, "no Vgpu named \"" + name + "\": " + problem);
  const auto file = vgpuRecordPath(stateDir, name);
  std::ifstream in(file);
  if (!in)
    return fail(ErrorKind::kRetryable,
                "Vgpu/" + name + " is not made yet (no " + file.string() + ")");
  Json j = Json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("device") || !j["device"].is_string() ||
      !j.contains("gpu") || !j["gpu"].is_string())
    return fail(ErrorKind::kTerminal, file.string() + " is not a Vgpu record");
  if (!j.value("ready", false))
    return fail(ErrorKind::kRetryable, "Vgpu/" + name + " is not ready yet");
  return VgpuDevice{j["device"].get<std::string>(), j["gpu"].get<std::string>()};
}

}  // namespace nodeplane::host
