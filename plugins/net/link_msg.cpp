#include "link_msg.hpp"

#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <netlink/attr.h>
#include <netlink/msg.h>

namespace nodeplane::net {

LinkMsg::LinkMsg(int type, int nlFlags, const std::string& name, unsigned ifFlags, unsigned change,
                 int ifIndex) {
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  ifi.ifi_index = ifIndex;
  ifi.ifi_flags = ifFlags;
  ifi.ifi_change = change;
  msg_ = makeMessage(type, nlFlags, &ifi, sizeof ifi);
  if (!name.empty()) str(IFLA_IFNAME, name);
}

LinkMsg& LinkMsg::bytes(int attr, const void* data, std::size_t size) {
  if (msg_ && nla_put(msg_.get(), attr, static_cast<int>(size), data) < 0) ok_ = false;
  return *this;
}
LinkMsg& LinkMsg::u8(int attr, std::uint8_t v) { return bytes(attr, &v, sizeof v); }
LinkMsg& LinkMsg::u16(int attr, std::uint16_t v) { return bytes(attr, &v, sizeof v); }
LinkMsg& LinkMsg::u32(int attr, std::uint32_t v) { return bytes(attr, &v, sizeof v); }
LinkMsg& LinkMsg::str(int attr, const std::string& v) {
  return bytes(attr, v.c_str(), v.size() + 1);
}

LinkMsg& LinkMsg::begin(int attr) {
  nlattr* n = msg_ ? nla_nest_start(msg_.get(), attr) : nullptr;
  if (!n) ok_ = false;
  nests_.push_back(n);
  return *this;
}

LinkMsg& LinkMsg::end() {
  if (nests_.empty()) {
    ok_ = false;
    return *this;
  }
  if (msg_ && nests_.back()) nla_nest_end(msg_.get(), nests_.back());
  nests_.pop_back();
  return *this;
}

}  // namespace nodeplane::net
