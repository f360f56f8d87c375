// The NAT table's event source: a NETLINK_NETFILTER socket bound to the nf_tables multicast group.
// A change to table ip nodeplane (a rule deleted by hand with `nft`, the table flushed or removed)
// touches the Bridge kind, so the daemon's next pass sees the drift without waiting for a resync.
#pragma once

#include "nodeplane/plugin.hpp"

struct nlmsghdr;

namespace nodeplane::net {

// Adds what one nf_tables notification may have changed to `out`: a table, chain, rule or set
// message about table ip nodeplane -> every Bridge; any other table, a generation message ->
// nothing.
void touchedByNft(const nlmsghdr* h, Touched& out);

class NftEvents {
 public:
  NftEvents() = default;
  ~NftEvents();
  NftEvents(const NftEvents&) = delete;
  NftEvents& operator=(const NftEvents&) = delete;

  Result<EventSource> open();
  void close();
  int fd() const { return fd_; }
  // Reads every pending message; ENOBUFS (messages lost) touches every Bridge.
  Result<Touched> drain(int fd);

 private:
  int fd_ = -1;
};

}  // namespace nodeplane::net
