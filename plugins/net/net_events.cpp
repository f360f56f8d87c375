#include "net_events.hpp"

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "net_schema.hpp"

namespace nodeplane::net {
namespace {

KnownLink knownOf(const LinkState& l) {
  KnownLink k{l.name, {}};
  for (const char* kind : {kBridge, kVxlan, kTap})
    if (linkIsKind(l, kind)) k.ids.insert(ResourceId{kind, l.name});
  return k;
}

void touchName(const std::string& name, Touched& out) {
  for (const char* kind : {kBridge, kVxlan, kTap}) out.resources.insert(ResourceId{kind, name});
}

}  // namespace

void touchedBy(const nlmsghdr* h, std::map<int, KnownLink>& known, Touched& out) {
  switch (h->nlmsg_type) {
    case RTM_NEWLINK:
    case RTM_DELLINK: {
      if (h->nlmsg_len < NLMSG_LENGTH(sizeof(ifinfomsg))) return;
      const auto* ifi = static_cast<const ifinfomsg*>(NLMSG_DATA(h));
      if (ifi->ifi_family == AF_BRIDGE) return;  // a bridge port's STP state, not the link
      auto link = parseLinkMessage(h);
      if (!link) {
        out.everything = true;
        return;
      }
      KnownLink now = knownOf(*link);
      if (auto was = known.find(link->index); was != known.end() && was->second.name != now.name) {
        // Renamed: the old name is freed, and an object of it is gone.
        if (was->second.ids.empty()) touchName(was->second.name, out);
        out.resources.insert(was->second.ids.begin(), was->second.ids.end());
      }
      if (now.ids.empty())
        touchName(now.name, out);
      else
        out.resources.insert(now.ids.begin(), now.ids.end());
      if (h->nlmsg_type == RTM_DELLINK)
        known.erase(link->index);
      else
        known[link->index] = std::move(now);
      return;
    }
    case RTM_NEWADDR:
    case RTM_DELADDR: {
      if (h->nlmsg_len < NLMSG_LENGTH(sizeof(ifaddrmsg))) return;
      const auto* ifa = static_cast<const ifaddrmsg*>(NLMSG_DATA(h));
      if (ifa->ifa_family == AF_INET6 && ifa->ifa_scope == RT_SCOPE_LINK) return;
      auto link = known.find(static_cast<int>(ifa->ifa_index));
      if (link == known.end()) {
        out.everything = true;
        return;
      }
      out.resources.insert(link->second.ids.begin(), link->second.ids.end());
      return;
    }
    case NLMSG_NOOP:
      return;
    default:
      out.everything = true;
  }
}

LinkEvents::~LinkEvents() { close(); }

Result<EventSource> LinkEvents::open() {
  close();
  const int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
  if (fd < 0)
    return fail(
        ErrorKind::kRetryable,
        std::string("cannot open a netlink socket for link events: ") + std::strerror(errno));
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  sa.nl_groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    const int err = errno;
    ::close(fd);
    return fail(ErrorKind::kRetryable,
                std::string("cannot subscribe to link and address events: ") + std::strerror(err));
  }
  fd_ = fd;
  return EventSource{"netlink link+address", fd};
}

void LinkEvents::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Result<Touched> LinkEvents::drain(int fd) {
  Touched out;
  alignas(nlmsghdr) char buf[32768];
  std::lock_guard lock(mutex_);
  // At most this many reads per call: under a flood the poll thread goes back to serving signals
  // and the watchdog, and poll() reports the socket readable again at once.
  constexpr int kMaxReads = 64;
  for (int reads = 0; reads < kMaxReads; ++reads) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOBUFS) {  // the kernel dropped messages: anything may have changed
        out.everything = true;
        continue;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) return out;
      return fail(ErrorKind::kRetryable,
                  std::string("reading link events: ") + std::strerror(errno));
    }
    if (n == 0) return out;
    int len = static_cast<int>(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len))
      touchedBy(h, known_, out);
  }
  return out;
}

void LinkEvents::noteLinks(const std::vector<LinkState>& links) {
  std::map<int, KnownLink> now;
  for (const auto& l : links) now[l.index] = knownOf(l);
  std::lock_guard lock(mutex_);
  known_ = std::move(now);
}

}  // namespace nodeplane::net
