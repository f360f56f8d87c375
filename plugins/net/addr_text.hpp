// Parsing and canonical text of interface names, IP addresses and CIDR interface addresses.
// Pure functions: the same canonical form is used for desired and observed specs, so the core's
// JSON comparison sees no change when the host matches.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace nodeplane::net {

struct IpAddress {
  int family = 0;                        // AF_INET or AF_INET6
  std::array<std::uint8_t, 16> bytes{};  // network order; 4 used for AF_INET

  std::size_t size() const { return family == AF_INET ? 4 : 16; }
  bool isMulticast() const;
  bool isLinkLocalV6() const;
  std::string str() const;  // inet_ntop: dotted quad, lower-case compressed IPv6
};

struct Cidr {
  IpAddress address;
  int prefix = 0;

  std::string str() const { return address.str() + "/" + std::to_string(prefix); }
};

std::optional<IpAddress> parseIp(std::string_view text);

// Why `text` is not an interface address with prefix, or nullopt when it is one.
std::optional<std::string> cidrProblem(std::string_view text);
std::optional<Cidr> parseCidr(std::string_view text);

// Why `name` cannot be a Linux interface name, or nullopt when it can.
std::optional<std::string> ifNameProblem(std::string_view name);

}  // namespace nodeplane::net
