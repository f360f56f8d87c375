// The net plugin's event source: a NETLINK_ROUTE socket of its own, bound to the link and address
// multicast groups (the observe/apply socket is another one), and what its messages may have
// changed.
#pragma once

#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "link_state.hpp"
#include "nodeplane/plugin.hpp"

struct nlmsghdr;

namespace nodeplane::net {

// What the event filter knows of a link: its name and the objects it is (Bridge/x), or, for a
// link of another type (a veth, a NIC), none.
struct KnownLink {
  std::string name;
  std::set<ResourceId> ids;  // empty: not one of the plugin's kinds
};

// Adds what one rtnetlink message may have changed to `out`, and keeps `known` (ifindex -> link)
// up to date with link messages:
//   a link of a net kind (created, changed, deleted, renamed) -> that object (Bridge/x);
//   a link of another type -> the net objects of its name (Bridge/x, Vxlan/x, Tap/x): the name
//     is taken or freed, which matters only where such an object is desired or owned;
//   an address of a net kind's link -> that object; of another link -> nothing;
//   the kernel's chatter about what it just made -> nothing: bridge-port state (family
//     AF_BRIDGE), IPv6 link-local addresses (which observe() ignores);
//   an address of a link not known yet, a message of another type -> everything.
void touchedBy(const nlmsghdr* h, std::map<int, KnownLink>& known, Touched& out);

class LinkEvents {
 public:
  LinkEvents() = default;
  ~LinkEvents();
  LinkEvents(const LinkEvents&) = delete;
  LinkEvents& operator=(const LinkEvents&) = delete;

  // Opens (again) the socket: RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR.
  Result<EventSource> open();
  void close();
  // Reads every pending message; ENOBUFS (messages lost) is "everything".
  Result<Touched> drain(int fd);
  // The links observe() saw, so that address events name their link.
  void noteLinks(const std::vector<LinkState>& links);

 private:
  int fd_ = -1;
  std::mutex mutex_;  // known_: drain() runs on the daemon's poll thread, observe() on the pass's
  std::map<int, KnownLink> known_;
};

}  // namespace nodeplane::net
