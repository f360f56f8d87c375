// Parsers for the small text files and links of sysfs. They take the file's text (or a link
// target), never a path, so tests feed them strings; the readers in pci.cpp open the files.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace nodeplane::host {

// "0x10de\n" -> "10de"; the value is lower-cased and must have exactly `digits` hex digits.
// Returns nullopt for anything else (empty, no 0x, wrong width, non-hex).
std::optional<std::string> parseSysfsHex(std::string_view text, std::size_t digits);

// "-1\n" -> -1, "0\n" -> 0; nullopt when the text is not one decimal integer.
std::optional<int> parseSysfsInt(std::string_view text);

// The last component of a link target: "../../../bus/pci/drivers/vfio-pci" -> "vfio-pci".
std::string linkTargetName(const std::filesystem::path& target);

// "0000:01:00.1" -> "0000:01:00" (domain:bus:device), the slot the function belongs to.
std::string pciSlot(const std::string& address);

}  // namespace nodeplane::host
