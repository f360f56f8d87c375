// Reads links and addresses from raw rtnetlink dumps. Type-specific attributes (IFLA_INFO_DATA)
// are parsed only under the IFLA_INFO_KIND that defines them, never through a typed accessor
// that would trust the link to be of that type.
#include <arpa/inet.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/if_tun.h>
#include <linux/rtnetlink.h>
#include <netlink/attr.h>
#include <netlink/msg.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>

#include "addr_text.hpp"
#include "link_msg.hpp"
#include "link_state.hpp"
#include "net_schema.hpp"

namespace nodeplane::net {
namespace {

// Attribute readers that check the payload size first: a short attribute reads as absent.
std::optional<std::uint32_t> u32(const nlattr* a) {
  if (!a || nla_len(a) < 4) return std::nullopt;
  std::uint32_t v;
  std::memcpy(&v, nla_data(a), 4);
  return v;
}
std::optional<std::uint8_t> u8(const nlattr* a) {
  if (!a || nla_len(a) < 1) return std::nullopt;
  return *static_cast<const std::uint8_t*>(nla_data(a));
}
std::string str(const nlattr* a) {
  if (!a) return {};
  const char* p = static_cast<const char*>(nla_data(a));
  return std::string(p, strnlen(p, nla_len(a)));
}
std::optional<IpAddress> ip(const nlattr* a, int family) {
  const int size = family == AF_INET ? 4 : 16;
  if (!a || nla_len(a) < size) return std::nullopt;
  IpAddress out;
  out.family = family;
  std::memcpy(out.bytes.data(), nla_data(a), size);
  return out;
}
bool isZero(const IpAddress& a) {
  return std::all_of(a.bytes.begin(), a.bytes.begin() + a.size(), [](auto b) { return b == 0; });
}
nlattr* mut(const nlattr* a) { return const_cast<nlattr*>(a); }

void parseVxlan(const nlattr* data, LinkState& l) {
  nlattr* tb[IFLA_VXLAN_MAX + 1] = {};
  if (nla_parse_nested(tb, IFLA_VXLAN_MAX, mut(data), nullptr) < 0) return;
  l.vni = u32(tb[IFLA_VXLAN_ID]);
  auto peer = ip(tb[IFLA_VXLAN_GROUP], AF_INET);
  if (!peer || isZero(*peer)) peer = ip(tb[IFLA_VXLAN_GROUP6], AF_INET6);
  if (peer && !isZero(*peer)) {
    l.peer = peer->str();
    l.peerIsGroup = peer->isMulticast();
  }
  auto local = ip(tb[IFLA_VXLAN_LOCAL], AF_INET);
  if (!local || isZero(*local)) local = ip(tb[IFLA_VXLAN_LOCAL6], AF_INET6);
  if (local && !isZero(*local)) l.local = local->str();
  l.underlay = static_cast<int>(u32(tb[IFLA_VXLAN_LINK]).value_or(0));
  if (tb[IFLA_VXLAN_PORT] && nla_len(tb[IFLA_VXLAN_PORT]) >= 2) {
    std::uint16_t port;
    std::memcpy(&port, nla_data(tb[IFLA_VXLAN_PORT]), 2);
    l.dstPort = ntohs(port);
  }
  if (auto v = u8(tb[IFLA_VXLAN_LEARNING])) l.learning = *v != 0;
}

void parseLinkInfo(const nlattr* info, LinkState& l) {
  nlattr* tb[IFLA_INFO_MAX + 1] = {};
  if (nla_parse_nested(tb, IFLA_INFO_MAX, mut(info), nullptr) < 0) return;
  l.kind = str(tb[IFLA_INFO_KIND]);
  const nlattr* data = tb[IFLA_INFO_DATA];
  if (!data) return;
  if (l.kind == "bridge") {
    nlattr* br[IFLA_BR_MAX + 1] = {};
    if (nla_parse_nested(br, IFLA_BR_MAX, mut(data), nullptr) < 0) return;
    if (auto v = u32(br[IFLA_BR_STP_STATE])) l.stp = *v != 0;
  } else if (l.kind == "vxlan") {
    parseVxlan(data, l);
  } else if (l.kind == "tun") {
    nlattr* tun[IFLA_TUN_MAX + 1] = {};
    if (nla_parse_nested(tun, IFLA_TUN_MAX, mut(data), nullptr) < 0) return;
    if (auto v = u8(tun[IFLA_TUN_TYPE])) l.tunType = *v;
  }
}

void parseAfSpec(const nlattr* spec, LinkState& l) {
  nlattr* af;
  int rem;
  nla_for_each_nested(af, mut(spec), rem) {
    if (nla_type(af) != AF_INET6) continue;
    nlattr* tb[IFLA_INET6_MAX + 1] = {};
    if (nla_parse_nested(tb, IFLA_INET6_MAX, af, nullptr) < 0) continue;
    l.addrGenMode = u8(tb[IFLA_INET6_ADDR_GEN_MODE]);
  }
}

void parseLink(const nlmsghdr* h, std::vector<LinkState>& out) {
  if (h->nlmsg_type != RTM_NEWLINK && h->nlmsg_type != RTM_DELLINK) return;  // DELLINK: events
  auto* hdr = const_cast<nlmsghdr*>(h);
  nlattr* tb[IFLA_MAX + 1] = {};
  if (nlmsg_parse(hdr, sizeof(ifinfomsg), tb, IFLA_MAX, nullptr) < 0) return;
  const auto* ifi = static_cast<const ifinfomsg*>(nlmsg_data(h));
  LinkState l;
  l.index = ifi->ifi_index;
  l.flags = ifi->ifi_flags;
  l.arpType = ifi->ifi_type;
  l.name = str(tb[IFLA_IFNAME]);
  l.alias = str(tb[IFLA_IFALIAS]);
  l.mtu = u32(tb[IFLA_MTU]).value_or(0);
  l.master = static_cast<int>(u32(tb[IFLA_MASTER]).value_or(0));
  if (tb[IFLA_LINKINFO]) parseLinkInfo(tb[IFLA_LINKINFO], l);
  if (tb[IFLA_AF_SPEC]) parseAfSpec(tb[IFLA_AF_SPEC], l);
  out.push_back(std::move(l));
}

void parseAddress(const nlmsghdr* h, std::map<int, LinkState*>& byIndex) {
  if (h->nlmsg_type != RTM_NEWADDR) return;
  auto* hdr = const_cast<nlmsghdr*>(h);
  nlattr* tb[IFA_MAX + 1] = {};
  if (nlmsg_parse(hdr, sizeof(ifaddrmsg), tb, IFA_MAX, nullptr) < 0) return;
  const auto* ifa = static_cast<const ifaddrmsg*>(nlmsg_data(h));
  auto link = byIndex.find(static_cast<int>(ifa->ifa_index));
  if (link == byIndex.end()) return;
  if (ifa->ifa_family != AF_INET && ifa->ifa_family != AF_INET6) return;
  // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on point-to-point links.
  auto addr = ip(tb[IFA_LOCAL] ? tb[IFA_LOCAL] : tb[IFA_ADDRESS], ifa->ifa_family);
  if (!addr) return;
  if (addr->isLinkLocalV6()) {
    link->second->hasLinkLocalV6 = true;
    return;
  }
  const std::uint32_t flags = u32(tb[IFA_FLAGS]).value_or(ifa->ifa_flags);
  if (!(flags & IFA_F_PERMANENT)) return;  // SLAAC, DHCP leases: not configuration
  link->second->addresses.push_back(Cidr{*addr, ifa->ifa_prefixlen}.str());
}

const LinkState* byIndex(const std::vector<LinkState>& all, int index) {
  if (index <= 0) return nullptr;
  for (const auto& l : all)
    if (l.index == index) return &l;
  return nullptr;
}

}  // namespace

std::optional<LinkState> parseLinkMessage(const nlmsghdr* h) {
  std::vector<LinkState> one;
  parseLink(h, one);
  if (one.empty()) return std::nullopt;
  return std::move(one.front());
}

bool LinkState::isTap() const {
  if (kind != "tun") return false;
  if (tunType) return *tunType == IFF_TAP;
  return arpType == 1;  // ARPHRD_ETHER: kernels before IFLA_TUN_TYPE (4.15)
}

std::expected<std::vector<LinkState>, NetlinkError> dumpLinks(NetlinkSocket& nl) {
  std::vector<LinkState> links;
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  auto r = nl.dump(
      RTM_GETLINK, &ifi, sizeof ifi, [&](const nlmsghdr* h) { parseLink(h, links); },
      [&] { links.clear(); });
  if (!r) return std::unexpected(r.error());

  std::map<int, LinkState*> index;
  auto reset = [&] {
    index.clear();
    for (auto& l : links) {
      l.addresses.clear();
      l.hasLinkLocalV6 = false;
      index[l.index] = &l;
    }
  };
  ifaddrmsg ifa{};
  ifa.ifa_family = AF_UNSPEC;
  r = nl.dump(
      RTM_GETADDR, &ifa, sizeof ifa, [&](const nlmsghdr* h) { parseAddress(h, index); }, reset);
  if (!r) return std::unexpected(r.error());
  for (auto& l : links) std::sort(l.addresses.begin(), l.addresses.end());
  return links;
}

std::expected<LinkState, NetlinkError> getLink(NetlinkSocket& nl, const std::string& name) {
  LinkMsg m(RTM_GETLINK, 0, name);
  if (!m.ok()) return std::unexpected(NetlinkError{ENOMEM, "out of memory"});
  std::vector<LinkState> found;
  auto r = nl.request(m.get(), [&](const nlmsghdr* h) { parseLink(h, found); });
  if (!r) return std::unexpected(r.error());
  if (found.empty()) return std::unexpected(NetlinkError{ENODEV, "No such device"});
  return std::move(found.front());
}

bool linkIsKind(const LinkState& link, const std::string& kind) {
  if (kind == kBridge) return link.kind == "bridge";
  if (kind == kVxlan) return link.kind == "vxlan";
  if (kind == kTap) return link.isTap();
  return false;
}

Json observedSpec(const std::string& kind, const LinkState& l, const std::vector<LinkState>& all) {
  Json s = Json::object();
  s["mtu"] = l.mtu;
  s["up"] = (l.flags & IFF_UP) != 0;
  s["addresses"] = l.addresses;
  if (kind == kBridge) {
    if (l.stp) s["stp"] = *l.stp;
    return s;
  }
  if (const LinkState* m = byIndex(all, l.master)) s["bridge"] = m->name;
  if (kind == kVxlan) {
    if (l.vni) s["vni"] = *l.vni;
    if (!l.local.empty()) s["local"] = l.local;
    if (!l.peer.empty()) s[l.peerIsGroup ? "group" : "remote"] = l.peer;
    if (const LinkState* d = byIndex(all, l.underlay)) s["device"] = d->name;
    if (l.dstPort) s["dstPort"] = *l.dstPort;
    if (l.learning) s["learning"] = *l.learning;
  }
  return s;
}

}  // namespace nodeplane::net
