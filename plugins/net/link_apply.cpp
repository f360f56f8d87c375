// Create, update and delete of Bridge, Vxlan and Tap links. Every request is acked before the
// next, so an error names the step that failed.
#include "link_apply.hpp"

#include <arpa/inet.h>
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <netlink/msg.h>

#include <algorithm>
#include <cerrno>
#include <set>

#include "addr_text.hpp"
#include "link_msg.hpp"
#include "net_schema.hpp"

namespace nodeplane::net {
namespace {

std::string who(const ResourceId& id) {
  const char* word = id.kind == kBridge ? "bridge" : id.kind == kVxlan ? "vxlan" : "tap";
  return std::string(word) + " " + id.name;
}

Result<void> send(NetlinkSocket& nl, const LinkMsg& m, const std::string& what) {
  if (!m.ok()) return fail(ErrorKind::kRetryable, what + ": could not build the netlink request");
  if (auto r = nl.request(m.get()); !r) return std::unexpected(netlinkFailure(r.error(), what));
  return {};
}

// The ifindex of a link this one refers to (bridge, underlay), or an error naming it.
Result<int> referencedIndex(NetlinkSocket& nl, const std::string& name, const std::string& role,
                            const std::string& what) {
  auto idx = linkIndex(nl, name);
  if (idx) return *idx;
  if (idx.error().errnum == ENODEV)
    return fail(ErrorKind::kRetryable, what + ": " + role + " " + name + " does not exist", {},
                "create it first; a later pass retries");
  return std::unexpected(netlinkFailure(idx.error(), what + ": looking up " + role + " " + name));
}

std::optional<std::string> getString(const Json& spec, const char* key) {
  auto it = spec.find(key);
  if (it == spec.end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

void putIp(LinkMsg& m, int attr4, int attr6, const std::string& text) {
  auto ip = parseIp(text);
  if (!ip) return;
  m.bytes(ip->family == AF_INET ? attr4 : attr6, ip->bytes.data(), ip->size());
}

void putVxlanData(LinkMsg& m, const Json& spec, int underlay) {
  m.begin(IFLA_LINKINFO).str(IFLA_INFO_KIND, "vxlan").begin(IFLA_INFO_DATA);
  m.u32(IFLA_VXLAN_ID, spec.value("vni", 0u));
  if (auto v = getString(spec, "remote")) putIp(m, IFLA_VXLAN_GROUP, IFLA_VXLAN_GROUP6, *v);
  if (auto v = getString(spec, "group")) putIp(m, IFLA_VXLAN_GROUP, IFLA_VXLAN_GROUP6, *v);
  if (auto v = getString(spec, "local")) putIp(m, IFLA_VXLAN_LOCAL, IFLA_VXLAN_LOCAL6, *v);
  if (underlay > 0) m.u32(IFLA_VXLAN_LINK, static_cast<std::uint32_t>(underlay));
  m.u16(IFLA_VXLAN_PORT,
        htons(static_cast<std::uint16_t>(spec.value("dstPort", kDefaultVxlanPort))));
  if (spec.contains("learning")) m.u8(IFLA_VXLAN_LEARNING, spec.value("learning", true) ? 1 : 0);
  m.end().end();
}

// Enslaved ports carry no IP of their own: no IPv6 link-local either (with thousands of ports
// the addresses and their DAD traffic cost real time). Hosts without IPv6 refuse the attribute,
// and have nothing to switch off.
Result<void> disableAddrGen(NetlinkSocket& nl, const std::string& name, const std::string& what) {
  LinkMsg m(RTM_NEWLINK, 0, name);
  m.begin(IFLA_AF_SPEC).begin(AF_INET6).u8(IFLA_INET6_ADDR_GEN_MODE, IN6_ADDR_GEN_MODE_NONE);
  m.end().end();
  if (!m.ok()) return fail(ErrorKind::kRetryable, what + ": could not build the netlink request");
  auto r = nl.request(m.get());
  if (!r && r.error().errnum != EAFNOSUPPORT && r.error().errnum != EOPNOTSUPP)
    return std::unexpected(netlinkFailure(r.error(), what + ": setting addrgenmode none"));
  return {};
}

// Everything after the link exists: the mark first (so a crash leaves an owned link, not a
// conflict), then addrgenmode, addresses, and the link goes up last.
Result<void> configure(NetlinkSocket& nl, const ResourceId& id, const Json& spec, int master,
                       const std::string& what, const std::string& ownerMark) {
  LinkMsg mark(RTM_NEWLINK, 0, id.name);
  mark.str(IFLA_IFALIAS, ownerMark);
  if (id.kind == kTap) {  // the tun ioctl set nothing else
    if (spec.contains("mtu")) mark.u32(IFLA_MTU, spec.value("mtu", 1500u));
    if (master > 0) mark.u32(IFLA_MASTER, static_cast<std::uint32_t>(master));
  }
  if (auto r = send(nl, mark, what + ": setting the nodeplane mark"); !r) return r;
  if (master > 0)
    if (auto r = disableAddrGen(nl, id.name, what); !r) return r;
  if (auto it = spec.find("addresses"); it != spec.end() && it->is_array() && !it->empty()) {
    auto idx = linkIndex(nl, id.name);
    if (!idx) return std::unexpected(netlinkFailure(idx.error(), what + ": looking it up"));
    for (const Json& a : *it)
      if (auto r = addAddress(nl, *idx, a.get<std::string>(), id.name); !r) return r;
  }
  if (spec.value("up", true)) {
    LinkMsg up(RTM_NEWLINK, 0, id.name, IFF_UP, IFF_UP);
    if (auto r = send(nl, up, what + ": setting it up"); !r) return r;
  }
  return {};
}

Error conflict(const ResourceId& id) {
  Error e;
  e.kind = ErrorKind::kConflict;
  e.message = "a link named " + id.name + " already exists, not managed by nodeplane";
  e.hint = "set `metadata.adopt: true` to take it over, or remove it";
  return e;
}

}  // namespace

Error netlinkFailure(const NetlinkError& e, const std::string& what) {
  Error out;
  out.message = what + ": " + describe(e);
  switch (e.errnum) {
    case ENODEV:
    case EBUSY:
    case EAGAIN:
    case ENOBUFS:
    case ENOMEM:
    case EINTR:
    case EACCES:  // what the kernel answers for an IPv6 address where IPv6 is disabled
      out.kind = ErrorKind::kRetryable;
      break;
    case EPERM:
      out.kind = ErrorKind::kTerminal;
      out.hint = "nodeplane needs CAP_NET_ADMIN";
      break;
    default:
      out.kind = ErrorKind::kTerminal;
  }
  return out;
}

std::expected<int, NetlinkError> linkIndex(NetlinkSocket& nl, const std::string& name) {
  LinkMsg m(RTM_GETLINK, 0, name);
  if (!m.ok()) return std::unexpected(NetlinkError{ENOMEM, "out of memory"});
  int index = 0;
  auto r = nl.request(m.get(), [&](const nlmsghdr* h) {
    if (h->nlmsg_type == RTM_NEWLINK)
      index = static_cast<const ifinfomsg*>(nlmsg_data(const_cast<nlmsghdr*>(h)))->ifi_index;
  });
  if (!r) return std::unexpected(r.error());
  if (index <= 0) return std::unexpected(NetlinkError{ENODEV, "No such device"});
  return index;
}

Result<void> createLink(NetlinkSocket& nl, const HostContext& host, const ResourceId& id,
                        const Json& desired, const std::string& mark) {
  const std::string what = "creating " + who(id);
  int master = 0;
  if (auto b = getString(desired, "bridge")) {
    auto idx = referencedIndex(nl, *b, "bridge", what);
    if (!idx) return std::unexpected(idx.error());
    master = *idx;
  }

  if (id.kind == kTap) {
    // TUNSETIFF attaches to an existing tap instead of failing: look first.
    if (auto existing = linkIndex(nl, id.name); existing) return std::unexpected(conflict(id));
    if (auto r = createTap(host, id.name); !r) return r;
  } else {
    LinkMsg m(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, id.name);
    if (desired.contains("mtu")) m.u32(IFLA_MTU, desired.value("mtu", 1500u));
    if (master > 0) m.u32(IFLA_MASTER, static_cast<std::uint32_t>(master));
    if (id.kind == kBridge) {
      m.begin(IFLA_LINKINFO).str(IFLA_INFO_KIND, "bridge");
      if (desired.contains("stp"))
        m.begin(IFLA_INFO_DATA).u32(IFLA_BR_STP_STATE, desired.value("stp", false) ? 1 : 0).end();
      m.end();
    } else {
      int underlay = 0;
      if (auto d = getString(desired, "device")) {
        auto idx = referencedIndex(nl, *d, "underlay device", what);
        if (!idx) return std::unexpected(idx.error());
        underlay = *idx;
      }
      putVxlanData(m, desired, underlay);
    }
    if (!m.ok()) return fail(ErrorKind::kRetryable, what + ": could not build the netlink request");
    if (auto r = nl.request(m.get()); !r) {
      if (r.error().errnum == EEXIST) return std::unexpected(conflict(id));
      return std::unexpected(netlinkFailure(r.error(), what));
    }
  }

  if (auto r = configure(nl, id, desired, master, what, mark); !r) {
    (void)deleteLink(nl, host, id);  // half-made and maybe unmarked: do not leave it behind
    return r;
  }
  return {};
}

Result<void> updateLink(NetlinkSocket& nl, const ResourceId& id, const Json& desired,
                        const Json& observed, const std::string& mark) {
  const std::string what = "updating " + who(id);
  auto differs = [&](const char* key) {
    auto d = desired.find(key);
    if (d == desired.end()) return false;
    auto o = observed.find(key);
    return o == observed.end() || *o != *d;
  };
  if (id.kind == kVxlan) {
    for (const char* key : {"vni", "local", "remote", "group", "device", "dstPort"})
      if (differs(key))
        return fail(ErrorKind::kTerminal,
                    what + ": spec." + key + " cannot change in place; the link must be replaced");
  }

  int master = 0;
  if (id.kind != kBridge && differs("bridge")) {
    auto idx = referencedIndex(nl, desired["bridge"].get<std::string>(), "bridge", what);
    if (!idx) return std::unexpected(idx.error());
    master = *idx;
    if (auto r = disableAddrGen(nl, id.name, what); !r) return r;
  }

  unsigned flags = 0, change = 0;
  if (differs("up")) {
    change = IFF_UP;
    flags = desired.value("up", true) ? IFF_UP : 0;
  }
  LinkMsg m(RTM_NEWLINK, 0, id.name, flags, change);
  m.str(IFLA_IFALIAS, mark);  // sets the mark on adoption (or re-marks a legacy one)
  if (differs("mtu")) m.u32(IFLA_MTU, desired.value("mtu", 1500u));
  if (master > 0) m.u32(IFLA_MASTER, static_cast<std::uint32_t>(master));
  if (id.kind == kBridge && differs("stp")) {
    m.begin(IFLA_LINKINFO).str(IFLA_INFO_KIND, "bridge").begin(IFLA_INFO_DATA);
    m.u32(IFLA_BR_STP_STATE, desired.value("stp", false) ? 1 : 0).end().end();
  }
  if (id.kind == kVxlan && differs("learning")) {
    m.begin(IFLA_LINKINFO).str(IFLA_INFO_KIND, "vxlan").begin(IFLA_INFO_DATA);
    m.u8(IFLA_VXLAN_LEARNING, desired.value("learning", true) ? 1 : 0).end().end();
  }
  if (auto r = send(nl, m, what); !r) return r;

  if (differs("addresses")) {
    std::set<std::string> want, have;
    for (const Json& a : desired["addresses"]) want.insert(a.get<std::string>());
    // Taking a link down flushes its IPv6 addresses (unless keep_addr_on_down): add them back.
    const bool wentDown = change == IFF_UP && flags == 0;
    if (auto o = observed.find("addresses"); o != observed.end() && o->is_array())
      for (const Json& a : *o)
        if (!wentDown || a.get<std::string>().find(':') == std::string::npos)
          have.insert(a.get<std::string>());
    auto idx = linkIndex(nl, id.name);
    if (!idx) return std::unexpected(netlinkFailure(idx.error(), what + ": looking it up"));
    // Remove first: the same IP with a new prefix length is a remove plus an add.
    for (const auto& a : have)
      if (!want.count(a))
        if (auto r = removeAddress(nl, *idx, a, id.name); !r) return r;
    for (const auto& a : want)
      if (!have.count(a))
        if (auto r = addAddress(nl, *idx, a, id.name); !r) return r;
  }
  return {};
}

Result<void> releaseLink(NetlinkSocket& nl, const ResourceId& id, int ifIndex,
                         const std::string& restore) {
  LinkMsg m(RTM_NEWLINK, 0, std::string(), 0, 0, ifIndex);
  m.str(IFLA_IFALIAS, restore);  // an empty alias removes it
  return send(nl, m, "releasing " + who(id) + ": removing the nodeplane mark");
}

Result<void> deleteLink(NetlinkSocket& nl, const HostContext& host, const ResourceId& id,
                        int ifIndex) {
  const std::string what = "deleting " + who(id);
  LinkMsg m(RTM_DELLINK, 0, ifIndex > 0 ? std::string() : id.name, 0, 0, ifIndex);
  if (!m.ok()) return fail(ErrorKind::kRetryable, what + ": could not build the netlink request");
  auto r = nl.request(m.get());
  if (r || r.error().errnum == ENODEV) return {};
  if (id.kind == kTap && r.error().errnum == EOPNOTSUPP) return unpersistTap(host, id.name);
  return std::unexpected(netlinkFailure(r.error(), what));
}

}  // namespace nodeplane::net
