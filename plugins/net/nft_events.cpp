#include "nft_events.hpp"

#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "nat_table.hpp"
#include "net_schema.hpp"

namespace nodeplane::net {

// NFPROTO_IPV4 (linux/netfilter.h, which clashes with glibc's netinet/in.h): AF_INET's value.
constexpr int kNfprotoIpv4 = AF_INET;

void touchedByNft(const nlmsghdr* h, Touched& out) {
  if ((h->nlmsg_type >> 8) != NFNL_SUBSYS_NFTABLES) return;
  switch (h->nlmsg_type & 0xff) {
    case NFT_MSG_NEWTABLE:
    case NFT_MSG_DELTABLE:
    case NFT_MSG_NEWCHAIN:
    case NFT_MSG_DELCHAIN:
    case NFT_MSG_NEWRULE:
    case NFT_MSG_DELRULE:
    case NFT_MSG_NEWSET:
    case NFT_MSG_DELSET:
      break;
    default:  // NFT_MSG_NEWGEN closes every transaction; elements, objects: not ours to watch
      return;
  }
  const std::size_t header = NLMSG_ALIGN(sizeof(nfgenmsg));
  if (h->nlmsg_len < NLMSG_LENGTH(header)) return;
  const auto* g = static_cast<const nfgenmsg*>(NLMSG_DATA(h));
  if (g->nfgen_family != kNfprotoIpv4) return;
  // Attribute 1 is the table's name in every one of these messages (NFTA_TABLE_NAME,
  // NFTA_CHAIN_TABLE, NFTA_RULE_TABLE, NFTA_SET_TABLE).
  const char* p = static_cast<const char*>(NLMSG_DATA(h)) + header;
  std::size_t left = h->nlmsg_len - NLMSG_LENGTH(header);
  while (left >= sizeof(nlattr)) {
    const auto* a = reinterpret_cast<const nlattr*>(p);
    if (a->nla_len < sizeof(nlattr) || a->nla_len > left) return;
    if ((a->nla_type & NLA_TYPE_MASK) == 1) {
      const char* name = p + NLA_HDRLEN;
      if (std::string(name, strnlen(name, a->nla_len - NLA_HDRLEN)) == kNatTable)
        out.kinds.insert(kBridge);
      return;
    }
    const std::size_t step = NLA_ALIGN(a->nla_len);
    if (step >= left) return;
    p += step;
    left -= step;
  }
}

NftEvents::~NftEvents() { close(); }

Result<EventSource> NftEvents::open() {
  close();
  const int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_NETFILTER);
  if (fd < 0)
    return fail(
        ErrorKind::kRetryable,
        std::string("cannot open a netlink socket for nftables events: ") + std::strerror(errno));
  // Bound first (the kernel picks the port id): an unbound socket is never sent the group's
  // messages (seen on 6.x: the membership alone delivers nothing).
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  const int group = NFNLGRP_NFTABLES;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
      ::setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, sizeof group) != 0) {
    const int err = errno;
    ::close(fd);
    return fail(ErrorKind::kRetryable,
                std::string("cannot subscribe to nftables events: ") + std::strerror(err));
  }
  fd_ = fd;
  return EventSource{"netlink nftables", fd};
}

void NftEvents::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Result<Touched> NftEvents::drain(int fd) {
  Touched out;
  alignas(nlmsghdr) char buf[32768];
  constexpr int kMaxReads = 64;  // as LinkEvents: a flood does not hold the poll thread
  for (int reads = 0; reads < kMaxReads; ++reads) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOBUFS) {
        out.kinds.insert(kBridge);
        continue;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) return out;
      return fail(ErrorKind::kRetryable,
                  std::string("reading nftables events: ") + std::strerror(errno));
    }
    if (n == 0) return out;
    int len = static_cast<int>(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len))
      touchedByNft(h, out);
  }
  return out;
}

}  // namespace nodeplane::net
