// MIG GPU instances (research note §5). A MIG-backed vGPU type (A100-1-5C) lives in a GPU
// instance of its own profile (1g.5gb), one vGPU per instance; the operator makes the instances
// (`nvidia-smi mig -cgi`) once MIG mode is on and, on SR-IOV GPUs, after `sriov-manage -e`
// (whose rebind removes them). sysfs shows only whether such a type is creatable now, not how
// many instances there are: `nvidia-smi mig -lgi -i <gpu>` lists them.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "nodeplane/error.hpp"

namespace nodeplane::vgpu {

struct GpuInstance {
  int id = 0;           // the GPU instance id
  std::string profile;  // "1g.5gb", "1g.10gb+me"
};

struct MigState {
  bool on = false;  // MIG mode
  std::vector<GpuInstance> instances;
  int count(const std::string& profile) const;  // instances of that profile
};

// The GPU instance profile a MIG-backed type needs, from its name (<board>-<slices>-<GB><series>
// [ME|MEALL|NOME|GFX], §4): A100-1-5C -> "1g.5gb", A100-1-5CME -> "1g.5gb+me", …MEALL "+me.all",
// …GFX "+gfx", …NOME "-me" (the suffixes are nvidia-smi's, the last three inferred from the
// names). "" for a time-sliced type.
std::string giProfileOf(const std::string& typeName);

// `nvidia-smi mig -lgi` for one GPU, read leniently: each row "| <gpu> MIG <profile> <profile id>
// <instance id> <start>:<size> |" is an instance (borders and headers skipped); no row and "No GPU
// instances found" is MIG on with none; "No MIG-enabled devices found" is MIG off; anything else
// is an error that quotes it.
Result<MigState> parseGpuInstances(const std::string& output);

// Runs `<nvidiaSmi> mig -lgi -i <gpu>` (argv, no shell, `timeout`) and parses what it prints.
// `-i` takes the PCI address as sysfs writes it: NVML reads a bus id as "%x:%x:%x.%x"
// (nvmlDeviceGetHandleByPciBusId), so 0000:3b:00.0 and 00000000:3B:00.0 are the same GPU.
Result<MigState> readMig(const std::filesystem::path& nvidiaSmi, const std::string& gpu,
                         std::chrono::milliseconds timeout);

}  // namespace nodeplane::vgpu
