// What the kernel says about the links of the current network namespace: one link dump and one
// address dump, parsed from the raw rtnetlink attributes so that type-specific data is read only
// for the type that carries it.
#pragma once

#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <vector>

#include "netlink_socket.hpp"
#include "nodeplane/resource.hpp"

namespace nodeplane::net {

struct LinkState {
  int index = 0;
  std::string name;
  std::string kind;  // IFLA_INFO_KIND: "bridge", "vxlan", "tun", "veth", ... ("" = none)
  std::string alias;
  unsigned flags = 0;  // IFF_*
  unsigned short arpType = 0;
  std::uint32_t mtu = 0;
  int master = 0;                           // ifindex of the master (bridge), 0 = none
  std::optional<std::uint8_t> addrGenMode;  // IFLA_INET6_ADDR_GEN_MODE, when IPv6 is on

  std::optional<bool> stp;     // bridge
  std::optional<int> tunType;  // tun: IFF_TUN or IFF_TAP (IFLA_TUN_TYPE)

  std::optional<std::uint32_t> vni;  // vxlan
  std::string local;                 // canonical IP, "" = unset
  std::string peer;                  // remote or group, "" = unset
  bool peerIsGroup = false;
  int underlay = 0;  // IFLA_VXLAN_LINK
  std::optional<std::uint16_t> dstPort;
  std::optional<bool> learning;

  std::vector<std::string> addresses;  // canonical "ip/prefix", permanent, no IPv6 link-local
  bool hasLinkLocalV6 = false;         // an fe80::/10 address is present (kernel-generated)

  bool isTap() const;
};

// Every link of the namespace with its addresses.
std::expected<std::vector<LinkState>, NetlinkError> dumpLinks(NetlinkSocket& nl);

// The link named `name` as the kernel has it now (no addresses); ENODEV when there is none.
std::expected<LinkState, NetlinkError> getLink(NetlinkSocket& nl, const std::string& name);

// One RTM_NEWLINK or RTM_DELLINK message (a dump's answer, or an event), without addresses.
std::optional<LinkState> parseLinkMessage(const nlmsghdr* h);

// True when `link` is a link of nodeplane kind `kind` (Bridge, Vxlan, Tap).
bool linkIsKind(const LinkState& link, const std::string& kind);

// The observed spec, in the shape of the desired one (already canonical).
Json observedSpec(const std::string& kind, const LinkState& link,
                  const std::vector<LinkState>& all);

}  // namespace nodeplane::net
