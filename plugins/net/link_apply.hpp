// Making links match a desired spec over rtnetlink: create, update in place, delete.
#pragma once

#include "netlink_socket.hpp"
#include "nodeplane/plugin.hpp"

namespace nodeplane::net {

// Creates the link, marks it with `mark` (ownerMark()), adds its addresses and brings it up (unless
// `up: false`). A link left half-made by a failure is removed again.
Result<void> createLink(NetlinkSocket& nl, const HostContext& host, const ResourceId& id,
                        const Json& desired, const std::string& mark);

// Changes what differs between the (normalized) desired and observed specs and sets `mark`.
Result<void> updateLink(NetlinkSocket& nl, const ResourceId& id, const Json& desired,
                        const Json& observed, const std::string& mark);

// Removes the ownership mark (the alias) of the link with `ifIndex` and leaves the link as it is:
// with the alias `restore` it had before it was adopted (none: empty).
Result<void> releaseLink(NetlinkSocket& nl, const ResourceId& id, int ifIndex,
                         const std::string& restore = "");

// Removes the link; one that is already gone counts as removed. With `ifIndex`, the request
// names that index, not the name: a link that took the name since it was read is not removed.
Result<void> deleteLink(NetlinkSocket& nl, const HostContext& host, const ResourceId& id,
                        int ifIndex = 0);

// The ifindex of `name`, or an error (ENODEV when there is none).
std::expected<int, NetlinkError> linkIndex(NetlinkSocket& nl, const std::string& name);

// An Error for a failed netlink request: "<what>: <strerror>: <kernel text>", with a kind that
// says whether a later pass can succeed.
Error netlinkFailure(const NetlinkError& e, const std::string& what);

// addr.cpp: add and remove interface addresses ("ip/prefix"). Adding one that is present and
// removing one that is gone both succeed.
Result<void> addAddress(NetlinkSocket& nl, int ifindex, const std::string& cidr,
                        const std::string& who);
Result<void> removeAddress(NetlinkSocket& nl, int ifindex, const std::string& cidr,
                           const std::string& who);

// tap.cpp: a persistent tap (IFF_TAP|IFF_NO_PI) through <devRoot>/net/tun; and the way back for
// kernels whose tun driver refuses RTM_DELLINK.
Result<void> createTap(const HostContext& host, const std::string& name);
Result<void> unpersistTap(const HostContext& host, const std::string& name);

}  // namespace nodeplane::net
