// Builds one RTM_*LINK request: the ifinfomsg header and (nested) attributes. A failed put (the
// message ran out of room) is remembered and reported once by ok().
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "netlink_socket.hpp"

struct nlattr;

namespace nodeplane::net {

class LinkMsg {
 public:
  // `name` selects the link (IFLA_IFNAME), or `ifIndex` when it is not 0 (then give no name: with
  // both, RTM_NEWLINK would rename); `ifFlags`/`change` go to ifi_flags/ifi_change.
  LinkMsg(int type, int nlFlags, const std::string& name, unsigned ifFlags = 0, unsigned change = 0,
          int ifIndex = 0);

  LinkMsg& u8(int attr, std::uint8_t v);
  LinkMsg& u16(int attr, std::uint16_t v);
  LinkMsg& u32(int attr, std::uint32_t v);
  LinkMsg& str(int attr, const std::string& v);
  LinkMsg& bytes(int attr, const void* data, std::size_t size);
  LinkMsg& begin(int attr);  // opens a nest
  LinkMsg& end();            // closes the innermost nest

  bool ok() const { return msg_ && ok_ && nests_.empty(); }
  nl_msg* get() const { return msg_.get(); }

 private:
  NlMsg msg_;
  bool ok_ = true;
  std::vector<nlattr*> nests_;
};

}  // namespace nodeplane::net
