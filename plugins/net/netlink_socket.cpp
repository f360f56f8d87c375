#include "netlink_socket.hpp"

#include <linux/netlink.h>
#include <netlink/attr.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace nodeplane::net {
namespace {

constexpr int kSocketBuffer = 4 << 20;  // dumps of thousands of links come in bursts
constexpr int kDumpAttempts = 5;

// The kernel's extended-ack message, when it attached one (NETLINK_EXT_ACK).
std::string extackMessage(const nlmsghdr* h) {
  if (!(h->nlmsg_flags & NLM_F_ACK_TLVS)) return {};
  const auto* err = static_cast<const nlmsgerr*>(nlmsg_data(h));
  std::size_t offset = NLMSG_HDRLEN + sizeof(int);
  offset += (h->nlmsg_flags & NLM_F_CAPPED) ? sizeof(nlmsghdr) : NLMSG_ALIGN(err->msg.nlmsg_len);
  if (offset >= h->nlmsg_len) return {};
  auto* attrs =
      reinterpret_cast<nlattr*>(reinterpret_cast<char*>(const_cast<nlmsghdr*>(h)) + offset);
  nlattr* tb[NLMSGERR_ATTR_MAX + 1] = {};
  if (nla_parse(tb, NLMSGERR_ATTR_MAX, attrs, static_cast<int>(h->nlmsg_len - offset), nullptr) <
          0 ||
      !tb[NLMSGERR_ATTR_MSG])
    return {};
  const char* text = static_cast<const char*>(nla_data(tb[NLMSGERR_ATTR_MSG]));
  return std::string(text, strnlen(text, nla_len(tb[NLMSGERR_ATTR_MSG])));
}

NetlinkError libnlError(int nlerr, const char* what) {
  return NetlinkError{EIO, std::string(what) + ": " + nl_geterror(nlerr)};
}

}  // namespace

void NlMsgFree::operator()(nl_msg* m) const {
  if (m) nlmsg_free(m);
}

NlMsg makeMessage(int type, int flags, const void* header, std::size_t headerSize) {
  NlMsg m(nlmsg_alloc_simple(type, flags));
  if (m && headerSize &&
      nlmsg_append(m.get(), const_cast<void*>(header), headerSize, NLMSG_ALIGNTO) < 0)
    m.reset();
  return m;
}

std::string describe(const NetlinkError& e) {
  std::string s = e.detail.empty() ? std::strerror(e.errnum) : e.detail;
  return s;
}

NetlinkSocket::~NetlinkSocket() {
  if (sock_) nl_socket_free(sock_);
}

NlResult NetlinkSocket::open() {
  if (sock_) return {};
  nl_sock* s = nl_socket_alloc();
  if (!s)
    return std::unexpected(NetlinkError{ENOMEM, "allocating a netlink socket: out of memory"});
  nl_socket_disable_auto_ack(s);
  nl_socket_enable_msg_peek(s);
  if (int rc = nl_connect(s, protocol_); rc < 0) {
    nl_socket_free(s);
    return std::unexpected(libnlError(rc, protocol_ == NETLINK_ROUTE
                                              ? "opening a NETLINK_ROUTE socket"
                                              : "opening a NETLINK_NETFILTER socket"));
  }
  nl_socket_set_buffer_size(s, kSocketBuffer, kSocketBuffer);
  int on = 1;
  // Best effort: older kernels lack these and then errors carry only errno.
  setsockopt(nl_socket_get_fd(s), SOL_NETLINK, NETLINK_EXT_ACK, &on, sizeof on);
  setsockopt(nl_socket_get_fd(s), SOL_NETLINK, NETLINK_CAP_ACK, &on, sizeof on);
  sock_ = s;
  return {};
}

NlResult NetlinkSocket::request(nl_msg* msg, const Handler& onReply) {
  if (auto r = open(); !r) return r;
  nlmsg_hdr(msg)->nlmsg_flags |= NLM_F_ACK;
  bool interrupted = false;
  return exchange(msg, false, onReply, interrupted);
}

NlResult NetlinkSocket::dump(int type, const void* header, std::size_t headerSize,
                             const Handler& onReply, const std::function<void()>& reset) {
  if (auto r = open(); !r) return r;
  for (int attempt = 0; attempt < kDumpAttempts; ++attempt) {
    if (reset) reset();
    NlMsg msg = makeMessage(type, NLM_F_DUMP, header, headerSize);
    if (!msg)
      return std::unexpected(NetlinkError{ENOMEM, "building a dump request: out of memory"});
    bool interrupted = false;
    if (auto r = exchange(msg.get(), true, onReply, interrupted); !r) return r;
    if (!interrupted) return {};
  }
  return std::unexpected(
      NetlinkError{EAGAIN, "the link table kept changing while it was read; try again"});
}

NlResult NetlinkSocket::exchange(nl_msg* msg, bool isDump, const Handler& onReply,
                                 bool& interrupted) {
  if (int rc = nl_send_auto(sock_, msg); rc < 0)
    return std::unexpected(libnlError(rc, "sending a netlink request"));
  const std::uint32_t seq = nlmsg_hdr(msg)->nlmsg_seq;
  for (;;) {
    sockaddr_nl peer{};
    unsigned char* raw = nullptr;
    int n = nl_recv(sock_, &peer, &raw, nullptr);
    std::unique_ptr<unsigned char, decltype(&std::free)> buf(raw, &std::free);
    if (n < 0) return std::unexpected(libnlError(n, "reading the kernel's netlink answer"));
    if (n == 0) return std::unexpected(NetlinkError{EIO, "netlink socket closed by the kernel"});
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf.get()); nlmsg_ok(h, n); h = nlmsg_next(h, &n)) {
      if (h->nlmsg_seq != seq) continue;  // a late answer to an earlier request
      if (h->nlmsg_flags & NLM_F_DUMP_INTR) interrupted = true;
      if (h->nlmsg_type == NLMSG_DONE) {
        if (isDump) return {};
        continue;
      }
      if (h->nlmsg_type == NLMSG_ERROR) {
        const auto* err = static_cast<const nlmsgerr*>(nlmsg_data(h));
        if (err->error == 0) return {};
        NetlinkError e{-err->error, std::strerror(-err->error)};
        if (std::string ext = extackMessage(h); !ext.empty()) e.detail += ": " + ext;
        return std::unexpected(std::move(e));
      }
      if (h->nlmsg_type == NLMSG_NOOP || h->nlmsg_type == NLMSG_OVERRUN) continue;
      if (onReply) onReply(h);
    }
  }
}

}  // namespace nodeplane::net
