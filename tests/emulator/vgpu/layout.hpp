// The emulator's layout file: which PFs exist, of which kind and board (README.md "Layout").
// Every field is checked; a bad one is an error naming the file and the field path.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "boards.hpp"

namespace nodeplane::vgpuemu {

enum class PfKind { kNvidiaSriov, kNvidiaMdev, kGeneric };

struct PfConfig {
  std::string address;  // "0000:41:00.0"
  PfKind kind = PfKind::kGeneric;
  const Board* board = nullptr;  // NVIDIA kinds only
  int totalVfs = 0;
  int numaNode = 0;
  int iommuGroup = 0;
  std::vector<int> vfIommuGroups;        // [k]: VF k's group
  std::vector<std::string> vfAddresses;  // [k]: PF + offset + k * stride (routing ids)
  // Attribute values without "0x", lower-case hex.
  std::string vendor, device, classCode, subsystemVendor, subsystemDevice, revision;
  std::string vfDevice, vfSubsystemDevice;
  std::string driver, vfDriver;
  int vfOffset = 0, vfStride = 0;
  // The devices/ path of the PF's parent bridge, "pci0000:40/0000:40:01.1".
  std::string upstream;
  bool isNvidia() const { return kind != PfKind::kGeneric; }
};

struct Layout {
  std::vector<PfConfig> pfs;
  bool sriovManageLies = false;
  nlohmann::json source;  // as read, for .emu/layout
};

// `why` gets "<file>: pfs[1].board: ..." when the layout is not usable.
std::optional<Layout> parseLayout(const nlohmann::json& j, const std::string& file,
                                  std::string* why);
std::optional<Layout> readLayout(const std::string& file, std::string* why);

}  // namespace nodeplane::vgpuemu
