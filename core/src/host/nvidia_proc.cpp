#include "nvidia_proc.hpp"

#include <algorithm>
#include <cctype>

#include "sysfs_parse.hpp"

namespace nodeplane::host {
namespace {

bool space(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

// "GPU   UUID" -> "gpu uuid".
std::string normalKey(std::string_view key) {
  std::string out;
  for (char c : trim(key)) {
    if (space(c)) {
      if (!out.empty() && out.back() != ' ') out.push_back(' ');
    } else {
      out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    }
  }
  return out;
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

}  // namespace

NvidiaGpuInfo parseNvidiaGpuInformation(std::string_view text) {
  NvidiaGpuInfo info;
  while (!text.empty()) {
    auto eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view{} : text.substr(eol + 1);
    auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    const std::string key = normalKey(line.substr(0, colon));
    const std::string_view value = trim(line.substr(colon + 1));
    if (key == "gpu uuid") {
      info.uuid = std::string(value);
    } else if (key == "model") {
      info.model = std::string(value);
    } else if (key == "bus location") {
      info.busLocation = lower(value);
    } else if (key == "device minor") {
      if (auto n = parseSysfsInt(value); n && *n >= 0) info.deviceMinor = *n;
    }
  }
  return info;
}

}  // namespace nodeplane::host
