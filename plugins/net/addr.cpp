// Interface addresses over RTM_NEWADDR / RTM_DELADDR.
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <netlink/attr.h>
#include <netlink/msg.h>

#include <cerrno>

#include "addr_text.hpp"
#include "link_apply.hpp"

namespace nodeplane::net {
namespace {

NlMsg addressMessage(int type, int flags, int ifindex, const Cidr& c) {
  ifaddrmsg ifa{};
  ifa.ifa_family = static_cast<unsigned char>(c.address.family);
  ifa.ifa_prefixlen = static_cast<unsigned char>(c.prefix);
  ifa.ifa_index = static_cast<unsigned>(ifindex);
  NlMsg m = makeMessage(type, flags, &ifa, sizeof ifa);
  const int size = static_cast<int>(c.address.size());
  // IFA_LOCAL is the interface's address; IFA_ADDRESS the same on a broadcast link.
  if (m && (nla_put(m.get(), IFA_LOCAL, size, c.address.bytes.data()) < 0 ||
            nla_put(m.get(), IFA_ADDRESS, size, c.address.bytes.data()) < 0))
    m.reset();
  return m;
}

Result<void> change(NetlinkSocket& nl, int type, int flags, int ifindex, const std::string& cidr,
                    const std::string& what, int harmlessErrno) {
  auto c = parseCidr(cidr);
  if (!c) return fail(ErrorKind::kInvalidInput, what + ": not an address with prefix length");
  NlMsg m = addressMessage(type, flags, ifindex, *c);
  if (!m) return fail(ErrorKind::kRetryable, what + ": out of memory building the request");
  auto r = nl.request(m.get());
  if (!r && r.error().errnum != harmlessErrno)
    return std::unexpected(netlinkFailure(r.error(), what));
  return {};
}

}  // namespace

Result<void> addAddress(NetlinkSocket& nl, int ifindex, const std::string& cidr,
                        const std::string& who) {
  return change(nl, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, ifindex, cidr,
                "adding address " + cidr + " to " + who, EEXIST);
}

Result<void> removeAddress(NetlinkSocket& nl, int ifindex, const std::string& cidr,
                           const std::string& who) {
  return change(nl, RTM_DELADDR, 0, ifindex, cidr, "removing address " + cidr + " from " + who,
                EADDRNOTAVAIL);
}

}  // namespace nodeplane::net
