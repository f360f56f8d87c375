// One long-lived NETLINK_ROUTE socket: every request is sent and its ack awaited before the next
// one (like `ip -batch`), so a failure is reported against the request that caused it.
#pragma once

#include <expected>
#include <functional>
#include <memory>
#include <string>

struct nl_sock;
struct nl_msg;
struct nlmsghdr;

namespace nodeplane::net {

// The kernel's answer to a failed request.
struct NetlinkError {
  int errnum = 0;      // positive errno (EIO when libnl itself failed)
  std::string detail;  // "File exists", plus the kernel's extended-ack text when it gave one
};

using NlResult = std::expected<void, NetlinkError>;

// Owns an nl_msg; nullptr-safe.
struct NlMsgFree {
  void operator()(nl_msg* m) const;
};
using NlMsg = std::unique_ptr<nl_msg, NlMsgFree>;

// Allocates a message of `type` with `flags` and a zeroed family header of `headerSize` bytes
// copied from `header`.
NlMsg makeMessage(int type, int flags, const void* header, std::size_t headerSize);

class NetlinkSocket {
 public:
  // NETLINK_ROUTE (0) by default; the NAT table's probe uses NETLINK_NETFILTER.
  explicit NetlinkSocket(int protocol = 0) : protocol_(protocol) {}
  ~NetlinkSocket();
  NetlinkSocket(const NetlinkSocket&) = delete;
  NetlinkSocket& operator=(const NetlinkSocket&) = delete;

  using Handler = std::function<void(const nlmsghdr*)>;

  // Connects (once); request() and dump() open it themselves when it is not.
  NlResult open();

  // Sends `msg` with NLM_F_ACK and waits for the ack. Replies (a GET's answer) go to `onReply`.
  NlResult request(nl_msg* msg, const Handler& onReply = {});

  // Sends a dump request (NLM_F_DUMP) and passes every reply to `onReply`. Retries a dump the
  // kernel flags as interrupted (NLM_F_DUMP_INTR), a few times, with `reset` called before each.
  NlResult dump(int type, const void* header, std::size_t headerSize, const Handler& onReply,
                const std::function<void()>& reset = {});

 private:
  NlResult exchange(nl_msg* msg, bool isDump, const Handler& onReply, bool& interrupted);

  int protocol_ = 0;
  nl_sock* sock_ = nullptr;
};

// "File exists: <extack>" for messages.
std::string describe(const NetlinkError& e);

}  // namespace nodeplane::net
