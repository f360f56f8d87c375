#include "addr_text.hpp"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cctype>
#include <charconv>
#include <cstring>

#include "nodeplane/text.hpp"

namespace nodeplane::net {
namespace {

constexpr std::size_t kIfNameMax = 15;  // IFNAMSIZ - 1

std::string quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

// Unicode's White_Space property (PropList.txt).
bool isUnicodeSpace(char32_t cp) {
  return (cp >= 0x09 && cp <= 0x0d) || cp == 0x20 || cp == 0x85 || cp == 0xa0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 || cp == 0x202f ||
         cp == 0x205f || cp == 0x3000;
}

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
  // Shown escaped: the message must not carry a control character to a terminal or log.
  const std::string shown = "\"" + printable(name) + "\"";
  if (!isValidUtf8(name))
    return "interface name " + shown +
           " is not valid UTF-8 (nodeplane records names in JSON state and prints them)";
  if (name.size() > kIfNameMax)
    return "interface name " + shown + " is too long: at most 15 bytes, got " +
           std::to_string(name.size());
  if (name == "." || name == "..")
    return "interface name " + shown + " is reserved (a directory entry in /sys/class/net)";
  if (name == "all" || name == "default")
    return "interface name " + shown +
           " is reserved (/proc/sys/net/ipv4/conf/ uses it for settings of every interface)";
  if (name == "bonding_masters")
    return "interface name " + shown +
           " is reserved (/sys/class/net/bonding_masters is the bonding driver's control file)";
  constexpr const char* kRule =
      "; names may not contain '/', ':', '%', whitespace or control characters";
  for (std::size_t i = 0; i < name.size();) {
    const std::size_t len = utf8SequenceLength(name, i);
    const char32_t cp = utf8CodePoint(name, i, len);
    std::string what;
    if (cp == '/' || cp == ':')
      what = std::string("'") + static_cast<char>(cp) + "'";
    else if (cp == '%')
      what = "'%' (the kernel would read it as a template: \"br%d\" creates br0, br1, ...)";
    else if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0))
      what = "a control character";
    else if (isUnicodeSpace(cp))
      what = "whitespace";
    else if (name.substr(i, len).find('\xa0') != std::string_view::npos)
      // The kernel's isspace() is Latin-1: it refuses the byte 0xa0 wherever it appears.
      what = "the byte 0xa0 (in \"" + std::string(name.substr(i, len)) +
             "\"), which the kernel treats as whitespace";
    if (!what.empty()) return "interface name " + shown + " contains " + what + kRule;
    i += len;
  }
  return std::nullopt;
}

}  // namespace nodeplane::net
