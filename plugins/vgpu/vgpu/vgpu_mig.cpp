#include "vgpu_mig.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <regex>
#include <sstream>

#include "nodeplane/host/tool.hpp"
#include "vgpu_types.hpp"

namespace nodeplane::vgpu {

namespace {

bool allDigits(const std::string& s) {
  return !s.empty() &&
         std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
}

bool contains(const std::string& text, const char* what) {
  std::string a = text, b = what;
  auto low = [](std::string& s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  };
  low(a);
  low(b);
  return a.find(b) != std::string::npos;
}

}  // namespace

int MigState::count(const std::string& profile) const {
  return static_cast<int>(
      std::count_if(instances.begin(), instances.end(),
                    [&](const GpuInstance& g) { return g.profile == profile; }));
}

std::string giProfileOf(const std::string& typeName) {
  auto info = parseTypeName(typeName);  // the grammar's checks first
  if (!info || !info->migBacked) return "";
  std::vector<std::string> part;
  std::stringstream in(typeName);
  for (std::string p; std::getline(in, p, '-');) part.push_back(p);
  if (part.size() < 3 || !allDigits(part[part.size() - 2])) return "";
  const std::string& last = part.back();
  std::size_t i = 0;
  while (i < last.size() && std::isdigit(static_cast<unsigned char>(last[i]))) ++i;
  if (i == 0 || i >= last.size()) return "";
  const std::string suffix = last.substr(i + 1);  // after the series letter
  std::string gi = part[part.size() - 2] + "g." + last.substr(0, i) + "gb";
  if (suffix == "ME") return gi + "+me";
  if (suffix == "MEALL") return gi + "+me.all";
  if (suffix == "GFX") return gi + "+gfx";
  if (suffix == "NOME") return gi + "-me";
  return suffix.empty() ? gi : "";
}

Result<MigState> parseGpuInstances(const std::string& output) {
  // "|   0  MIG 1g.10gb         19        9          2:1     |" (NVIDIA/DCGM#138, the MIG user
  // guide): GPU, name, profile id, instance id, placement.
  static const std::regex row(R"(^\|\s*(\d+)\s+MIG\s+(\S+)\s+(\d+)\s+(\d+)\s+\d+:\d+\s*\|)");
  MigState state;
  std::stringstream in(output);
  bool rows = false;
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (!std::regex_search(line, m, row)) continue;
    int id = 0;
    const std::string digits = m[4].str();
    if (std::from_chars(digits.data(), digits.data() + digits.size(), id).ec != std::errc())
      continue;
    rows = true;
    state.instances.push_back({id, m[2].str()});
  }
  if (rows || contains(output, "No GPU instances found")) {
    state.on = true;
    return state;
  }
  if (contains(output, "No MIG-enabled devices found")) return state;  // MIG off
  std::string quoted = output.substr(0, 300);
  std::replace(quoted.begin(), quoted.end(), '\n', ' ');
  return fail(ErrorKind::kRetryable,
              "nvidia-smi mig -lgi printed no GPU instances and no reason: \"" + quoted + "\"");
}

Result<MigState> readMig(const std::filesystem::path& nvidiaSmi, const std::string& gpu,
                         std::chrono::milliseconds timeout) {
  auto run = host::runTool({nvidiaSmi.string(), "mig", "-lgi", "-i", gpu}, timeout);
  if (!run) return std::unexpected(run.error());
  // It exits non-zero when there is nothing to list: judged by what it says, not by the code.
  auto state = parseGpuInstances(run->out + "\n" + run->err);
  if (!state) {
    Error e = state.error();
    e.message = nvidiaSmi.string() + " mig -lgi -i " + gpu + " (exit " +
                std::to_string(run->exitCode) + "): " + e.message;
    return std::unexpected(e);
  }
  return state;
}

}  // namespace nodeplane::vgpu
