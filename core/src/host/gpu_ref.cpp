#include "nodeplane/host/gpu_ref.hpp"

#include <algorithm>
#include <cctype>
#include <optional>

#include "nodeplane/text.hpp"

namespace nodeplane::host {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string quoted(const std::string& s) { return "\"" + printable(s) + "\""; }

bool allDigits(const std::string& s) {
  return !s.empty() && s.size() <= 9 &&
         std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

}  // namespace

std::string describeValue(const Json& v) {
  if (v.is_string()) return "string " + quoted(v.get<std::string>());
  if (v.is_boolean()) return std::string("boolean ") + (v.get<bool>() ? "true" : "false");
  if (v.is_number_integer()) return "integer " + v.dump();
  if (v.is_number()) return "number " + v.dump();
  if (v.is_array()) return "a list";
  if (v.is_object()) return "a mapping";
  return "null";
}

std::string describeGpus(const std::vector<Gpu>& inventory) {
  std::string s;
  for (const auto& g : inventory) {
    if (!g.isNvidia()) continue;
    s += (s.empty() ? "" : ", ") + g.function.address;
    if (g.index >= 0) s += " (index " + std::to_string(g.index) + ")";
  }
  return s.empty() ? "this host has no NVIDIA GPUs" : "NVIDIA GPUs here: " + s;
}

GpuRef resolveGpuRef(const Json& v, const std::vector<Gpu>& inventory,
                     const std::map<std::string, std::string>& rememberedUuids) {
  std::optional<long> index;
  if (v.is_number_integer()) {
    index = v.get<long>();
  } else if (v.is_string() && allDigits(v.get<std::string>())) {
    index = std::stol(v.get<std::string>());
  }
  if (index) {
    for (const auto& g : inventory)
      if (g.isNvidia() && g.index == *index) return {&g, {}};
    return {nullptr, "no NVIDIA GPU with index " + std::to_string(*index) + " on this host (" +
                         describeGpus(inventory) + ")"};
  }
  if (!v.is_string())
    return {nullptr,
            "expected a GPU index, a PCI address or a GPU-… UUID, got " + describeValue(v)};
  const std::string s = v.get<std::string>();
  if (lower(s).rfind("gpu-", 0) == 0) {
    for (const auto& g : inventory)
      if (!g.uuid.empty() && lower(g.uuid) == lower(s)) return {&g, {}};
    if (auto it = rememberedUuids.find(lower(s)); it != rememberedUuids.end())
      for (const auto& g : inventory)
        if (g.function.address == it->second && g.uuid.empty()) return {&g, {}};
    return {nullptr, "no NVIDIA GPU with UUID " + quoted(s) +
                         " on this host (UUIDs are known for GPUs the nvidia driver has; " +
                         describeGpus(inventory) + ")"};
  }
  const std::string addr = lower(s);
  if (isPciAddress(addr)) {
    for (const auto& g : inventory)
      if (g.function.address == addr) return {&g, {}};
    return {nullptr,
            "no GPU at PCI address " + addr + " on this host (" + describeGpus(inventory) + ")"};
  }
  if (s.find(':') != std::string::npos)
    return {nullptr, "malformed PCI address " + quoted(s) +
                         ": expected <domain>:<bus>:<device>.<function> in hex, e.g. "
                         "0000:3b:00.0"};
  return {nullptr,
          "expected a GPU index (0, 1, …), a PCI address (0000:3b:00.0) or a GPU-… UUID, got " +
              describeValue(v)};
}

}  // namespace nodeplane::host
