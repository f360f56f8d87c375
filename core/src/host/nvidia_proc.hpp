// The NVIDIA driver's per-GPU information file, /proc/driver/nvidia/gpus/<address>/information:
// "Key: <tabs and spaces> value" lines. Parsed from its text (tests feed strings); pci.cpp reads
// it.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace nodeplane::host {

struct NvidiaGpuInfo {
  std::string uuid;                // "GPU UUID"      "GPU-9a1e3c5f-2b7d-4e8a-b6c1-0f2d3e4a5b6c"
  std::string model;               // "Model"         "NVIDIA H100 80GB HBM3"
  std::string busLocation;         // "Bus Location"  "0000:3b:00.0" (lower-cased)
  std::optional<int> deviceMinor;  // "Device Minor"  0
};

// Tolerant: keys compared without case and with inner whitespace collapsed, values trimmed
// (tabs, spaces, CR); unknown keys, lines without a colon, and a Device Minor that is not a
// non-negative integer are ignored. Never fails: what is missing stays empty.
NvidiaGpuInfo parseNvidiaGpuInformation(std::string_view text);

}  // namespace nodeplane::host
