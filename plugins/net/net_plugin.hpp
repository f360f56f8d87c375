// The net plugin: Bridge, Vxlan and Tap links (with addresses, MTU, master) over rtnetlink, and
// NAT for bridges (nat_table.hpp).
#pragma once

#include <memory>

#include "nodeplane/plugin.hpp"

namespace nodeplane::net {

class NetlinkSocket;
class LinkEvents;
class NftEvents;

class NetPlugin : public Plugin {
 public:
  explicit NetPlugin(HostServices& services);
  ~NetPlugin() override;

  std::string name() const override { return "net"; }
  // The `net:` section of the agent config takes no settings: its schema is empty.
  // start() opens the NETLINK_ROUTE socket every observe and apply uses; stop() closes it.
  Result<void> start() override;
  void stop() override;
  // "netlink" (required): a NETLINK_ROUTE socket of its own opens and dumps the links.
  // "nftables" (optional, for `masquerade`): nf_tables answers, and table ip nodeplane is absent
  // or this agent's. "ip-forward" (optional): net.ipv4.ip_forward is 1, which a NAT bridge needs;
  // reported with how to turn it on, never switched on by nodeplane.
  std::vector<CheckItem> check() override;
  std::vector<KindSchema> kinds() const override;
  std::vector<Error> validate(const Resource& r) const override;
  // Every kind names one kernel interface: Bridge/x, Vxlan/x and Tap/x (or another plugin's
  // object that claims the same interface name) cannot all be x.
  std::vector<Claim> claims(const Resource& r) const override;
  Json normalize(const std::string& kind, const Json& spec) const override;
  Result<std::vector<ObservedObject>> observe(const std::vector<std::string>& kinds) override;
  Outcome apply(const Change& change, ApplyContext& context) override;
  // Link and address events (a socket of their own, see net_events.hpp): a link of a net kind
  // touches that object, a link of another type the objects of its name. And nftables events
  // (nft_events.hpp): a change to table ip nodeplane touches every Bridge. A host whose kernel
  // refuses the nftables subscription gets the link events alone.
  Result<std::vector<EventSource>> openEvents() override;
  Result<Touched> drainEvents(int fd) override;
  void closeEvents() override;
  // One netlink socket, one request in flight: the executor must not call apply() concurrently.
  unsigned maxParallel() const override { return 1; }

 private:
  Result<void> applyNow(const Change& change, ApplyContext& context);
  void observeMasquerade(std::vector<ObservedObject>& objects);

  HostServices& services_;
  HostContext host_;
  std::unique_ptr<NetlinkSocket> nl_;  // open from start() to stop()
  std::unique_ptr<LinkEvents> events_;
  std::unique_ptr<NftEvents> nftEvents_;
};

}  // namespace nodeplane::net
