#include "sysfs_parse.hpp"

#include <cctype>
#include <charconv>

namespace nodeplane::host {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

}  // namespace

std::optional<std::string> parseSysfsHex(std::string_view text, std::size_t digits) {
  std::string_view s = trim(text);
  if (s.size() < 2 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X')) return std::nullopt;
  s.remove_prefix(2);
  if (s.size() != digits) return std::nullopt;
  std::string out;
  out.reserve(digits);
  for (char c : s) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) return std::nullopt;
    out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  return out;
}

std::optional<int> parseSysfsInt(std::string_view text) {
  std::string_view s = trim(text);
  if (s.empty()) return std::nullopt;
  int value = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return value;
}

std::string linkTargetName(const std::filesystem::path& target) {
  std::filesystem::path p = target;
  // A target written with a trailing slash has an empty filename; use the last real component.
  if (p.filename().empty()) p = p.parent_path();
  return p.filename().string();
}

std::string pciSlot(const std::string& address) {
  auto dot = address.rfind('.');
  return dot == std::string::npos ? address : address.substr(0, dot);
}

}  // namespace nodeplane::host
