// The vGPU types a GPU offers, read from sysfs, and what their names say (research note §1.2,
// §2, §4). SR-IOV model: <VF>/nvidia/creatable_vgpu_types ("ID    : vGPU Name" header optional,
// rows "<id> : NVIDIA <name>", ids of 3-6 digits); it lists only what is creatable now, so the
// table read while the GPU held no vGPU is kept (<stateDir>/types/<gpu>.json) and used when the
// list has shrunk. mdev model: <parent>/mdev_supported_types/<driver>-<id>/{name, description,
// available_instances}: every type is always listed, whatever is creatable.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "nodeplane/error.hpp"
#include "nodeplane/resource.hpp"

namespace nodeplane::vgpu {

enum class Model { kUnknown, kSriov, kMdev };
const char* toString(Model m);  // "sr-iov", "mdev", "unknown"

struct VgpuType {
  long id = 0;
  std::string name;         // the short name: "L40S-24Q" (last token of "NVIDIA L40S-24Q")
  long framebufferMiB = 0;  // from the mdev description, else from the name; 0 when unknown
  int maxInstances = 0;     // per GPU; 0 when unknown
  bool migBacked = false;   // <board>-<slices>-<GB><series>: needs a MIG GPU instance
  std::string typeDir;      // mdev model: the directory name under mdev_supported_types
};

// The short name: the last whitespace-separated token ("NVIDIA L40S-24Q" -> "L40S-24Q").
std::string shortName(const std::string& name);

// What a short name says (§4): "L40S-24Q" 24 GiB time-sliced; "A100-1-5C" MIG-backed (1 slice,
// 5 GiB), "-0Q" is 512 MiB; suffixes ME, NOME, MEALL, GFX allowed. nullopt when it is neither.
struct NameInfo {
  long framebufferMiB = 0;
  bool migBacked = false;
  int slices = 0;               // MIG-backed only
  bool mediaExtension = false;  // ...ME: one per GPU
};
std::optional<NameInfo> parseTypeName(const std::string& shortName);

// creatable_vgpu_types, parsed leniently: a header line (anything starting with "ID") skipped,
// rows `<3-6 digit id> : <name>` kept (name = last token), anything else ignored.
std::vector<VgpuType> parseCreatable(const std::string& text);

// "num_heads=4, frl_config=60, framebuffer=4096M, max_resolution=…, max_instance=4": framebuffer in
// MiB and max_instance (0 when absent).
void parseMdevDescription(const std::string& text, VgpuType& type);

// "24 GiB", "512 MiB".
std::string describeSize(long mib);

// A GPU's table of types and how it is read.
struct TypeTable {
  std::string gpu;  // the PF address
  Model model = Model::kUnknown;
  std::vector<VgpuType> types;  // sorted by id
  // Every type the GPU has (read while it held no vGPU, or the mdev model's full list); false:
  // only what was creatable when read.
  bool complete = false;
  int totalVfs = 0;

  const VgpuType* byId(long id) const;
  const VgpuType* byName(const std::string& shortName) const;  // case-insensitive
  // A profile as a spec writes it: a name ("L40S-24Q", "NVIDIA L40S-24Q") or a numeric type id.
  const VgpuType* resolve(const std::string& profile) const;
  // The GPU's framebuffer: the largest time-sliced type's (48 GiB for an L40S), 0 when unknown.
  long framebufferMiB() const;
  // "L40S-1B, L40S-2B, …" (names, in id order), or "none".
  std::string names() const;
  // Offers MIG-backed types only (and some): the GPU's MIG mode is on (§5: time-sliced types are
  // not offered then).
  bool migMode() const;
};

Json toJson(const TypeTable& t);
std::optional<TypeTable> typeTableFromJson(const Json& j);

}  // namespace nodeplane::vgpu
