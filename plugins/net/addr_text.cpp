#include "addr_text.hpp"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cctype>
#include <charconv>
#include <cstring>

namespace nodeplane::net {
namespace {

constexpr std::size_t kIfNameMax = 15;  // IFNAMSIZ - 1

std::string quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

}  // namespace

bool IpAddress::isMulticast() const {
  if (family == AF_INET) return (bytes[0] & 0xf0) == 0xe0;  // 224.0.0.0/4
  return bytes[0] == 0xff;                                  // ff00::/8
}

bool IpAddress::isLinkLocalV6() const {
  return family == AF_INET6 && bytes[0] == 0xfe && (bytes[1] & 0xc0) == 0x80;  // fe80::/10
}

std::string IpAddress::str() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (!inet_ntop(family, bytes.data(), buf, sizeof buf)) return {};
  return buf;
}

std::optional<IpAddress> parseIp(std::string_view text) {
  std::string s(text);
  IpAddress a;
  if (s.find(':') == std::string::npos) {
    if (inet_pton(AF_INET, s.c_str(), a.bytes.data()) != 1) return std::nullopt;
    a.family = AF_INET;
  } else {
    if (inet_pton(AF_INET6, s.c_str(), a.bytes.data()) != 1) return std::nullopt;
    a.family = AF_INET6;
  }
  return a;
}

std::optional<std::string> cidrProblem(std::string_view text) {
  const std::string expected =
      "expected an address with prefix length, e.g. 192.168.1.1/24 or fd00::1/64, got " +
      quoted(text);
  auto slash = text.find('/');
  if (slash == std::string_view::npos) return expected;
  auto ip = parseIp(text.substr(0, slash));
  if (!ip) return expected;
  std::string_view len = text.substr(slash + 1);
  int prefix = -1;
  auto [end, ec] = std::from_chars(len.data(), len.data() + len.size(), prefix);
  if (len.empty() || ec != std::errc() || end != len.data() + len.size()) return expected;
  const int max = ip->family == AF_INET ? 32 : 128;
  if (prefix < 0 || prefix > max)
    return "prefix length " + std::to_string(prefix) + " is out of range for an " +
           (ip->family == AF_INET ? "IPv4" : "IPv6") + " address (0-" + std::to_string(max) +
           "), got " + quoted(text);
  return std::nullopt;
}

std::optional<Cidr> parseCidr(std::string_view text) {
  if (cidrProblem(text)) return std::nullopt;
  auto slash = text.find('/');
  Cidr c;
  c.address = *parseIp(text.substr(0, slash));
  std::string_view len = text.substr(slash + 1);
  std::from_chars(len.data(), len.data() + len.size(), c.prefix);
  return c;
}

std::optional<std::string> ifNameProblem(std::string_view name) {
  if (name.empty()) return "interface name must not be empty";
  if (name.size() > kIfNameMax)
    return "interface name " + quoted(name) + " is " + std::to_string(name.size()) +
           " characters long; Linux allows at most 15";
  if (name == "." || name == "..") return "interface name " + quoted(name) + " is reserved";
  for (char c : name) {
    if (c == '/' || c == ':' || std::isspace(static_cast<unsigned char>(c)) || c == '\0') {
      std::string shown = c == '/' || c == ':' ? std::string("'") + c + "'" : "whitespace";
      return "interface name " + quoted(name) + " contains " + shown +
             "; names may not contain '/', ':' or whitespace";
    }
  }
  return std::nullopt;
}

}  // namespace nodeplane::net
