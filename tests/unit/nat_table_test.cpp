// NAT for bridges without a kernel: reading back `nft -j list table ip nodeplane` output, the
// subnets a bridge's rule matches, the validation of `masquerade`, and which nf_tables
// notifications wake the daemon.
#include "nat_table.hpp"

#include <gtest/gtest.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <sys/socket.h>

#include <cstring>
#include <set>

#include "net_plugin.hpp"
#include "nft_events.hpp"
#include "support/plugin_rig.hpp"

namespace nodeplane::net {
namespace {

// What nft 1.0.6 prints for a table nodeplane wrote (two bridges: a set of two subnets, one /24),
// plus a rule a person wrote with a comment naming a third bridge.
constexpr const char* kListing = R"({"nftables": [
 {"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}},
 {"table": {"family": "ip", "name": "nodeplane", "handle": 1}},
 {"chain": {"family": "ip", "table": "nodeplane", "name": "postrouting", "handle": 1,
   "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}},
 {"rule": {"family": "ip", "table": "nodeplane", "chain": "postrouting", "handle": 3,
   "comment": "bridge br-vm", "expr": [
   {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
     "right": {"set": [{"prefix": {"addr": "10.1.0.0", "len": 16}},
                       {"prefix": {"addr": "192.168.100.0", "len": 24}}]}}},
   {"match": {"op": "!=", "left": {"meta": {"key": "oifname"}}, "right": "br-vm"}},
   {"masquerade": null}]}},
 {"rule": {"family": "ip", "table": "nodeplane", "chain": "postrouting", "handle": 4,
   "comment": "bridge br2", "expr": [
   {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
     "right": {"prefix": {"addr": "10.9.0.0", "len": 24}}}},
   {"match": {"op": "!=", "left": {"meta": {"key": "oifname"}}, "right": "br2"}},
   {"masquerade": null}]}},
 {"rule": {"family": "ip", "table": "nodeplane", "chain": "postrouting", "handle": 5,
   "comment": "bridge br3", "expr": [
   {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
     "right": "10.7.0.1"}},
   {"counter": {"packets": 0, "bytes": 0}},
   {"masquerade": null}]}}
]})";

TEST(NatListing, MapsEveryRuleBackToItsBridge) {
  auto t = parseNatListing(Json::parse(kListing));
  ASSERT_TRUE(t) << t.error().str();
  EXPECT_EQ(t->owner, NatTable::kOurs);
  EXPECT_TRUE(t->onlyOurChain);
  ASSERT_EQ(t->rules.size(), 3u);
  EXPECT_EQ(t->rules[0].handle, 3u);
  EXPECT_EQ(t->rules[0].comment, "bridge br-vm");
  EXPECT_EQ(t->rules[0].subnets, (std::vector<std::string>{"10.1.0.0/16", "192.168.100.0/24"}));
  EXPECT_EQ(t->rules[0].outNot, "br-vm");
  EXPECT_EQ(t->rules[1].subnets, (std::vector<std::string>{"10.9.0.0/24"}));
  EXPECT_FALSE(t->rules[2].subnets.has_value()) << "a counter makes it another rule";

  EXPECT_TRUE(hasMasquerade(*t, "br-vm", {"10.1.0.0/16", "192.168.100.0/24"}));
  EXPECT_FALSE(hasMasquerade(*t, "br-vm", {"192.168.100.0/24"})) << "the subnets changed";
  EXPECT_TRUE(hasMasquerade(*t, "br2", {"10.9.0.0/24"}));
  EXPECT_FALSE(hasMasquerade(*t, "br3", {"10.7.0.1/32"})) << "edited by hand";
  EXPECT_FALSE(hasMasquerade(*t, "br-none", {"10.8.0.0/24"}));
  NatTable absent;
  EXPECT_FALSE(hasMasquerade(absent, "br2", {"10.9.0.0/24"}));
}

TEST(NatListing, AnythingButOurChainKeepsTheTable) {
  Json listing = Json::parse(kListing);
  listing["nftables"].push_back(
      {{"set",
        {{"family", "ip"}, {"table", "nodeplane"}, {"name", "mine"}, {"type", "ipv4_addr"}}}});
  auto t = parseNatListing(listing);
  ASSERT_TRUE(t);
  EXPECT_FALSE(t->onlyOurChain);

  auto bad = parseNatListing(Json::parse(R"({"tables": []})"));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message, "nftables listing without an \"nftables\" array");
}

TEST(NatSubnets, IPv4NetworksOfTheAddressesWithoutOverlaps) {
  EXPECT_EQ(masqueradeSubnets({"192.168.100.1/24", "fd00:100::1/64"}),
            (std::vector<std::string>{"192.168.100.0/24"}));
  EXPECT_EQ(masqueradeSubnets(
                {"10.1.2.3/16", "10.1.9.9/24", "10.1.200.1/16", "172.16.0.5/12", "192.168.1.7/32"}),
            (std::vector<std::string>{"10.1.0.0/16", "172.16.0.0/12", "192.168.1.7/32"}));
  EXPECT_TRUE(masqueradeSubnets({"fd00::1/64"}).empty());
  EXPECT_TRUE(masqueradeSubnets({}).empty());
}

Resource bridge(Json spec) {
  Resource r;
  r.id = ResourceId{"Bridge", "br-nat"};
  r.spec = std::move(spec);
  r.where = SourceLocation{"nat.yaml", 3, 1};
  return r;
}

TEST(NatValidate, MasqueradeNeedsAnIPv4Address) {
  test::PluginRig rig;
  NetPlugin p{rig.services};
  for (const Json& spec :
       {Json{{"masquerade", true}}, Json{{"masquerade", true}, {"addresses", {"fd00:1::1/64"}}}}) {
    auto errors = p.validate(bridge(spec));
    ASSERT_EQ(errors.size(), 1u) << spec.dump();
    EXPECT_EQ(errors[0].field, "spec.masquerade");
    EXPECT_EQ(errors[0].message,
              "masquerade needs an IPv4 address on the bridge: the NAT rule matches the bridge's "
              "IPv4 subnets, and spec.addresses has none");
    EXPECT_EQ(errors[0].hint,
              "add the gateway address of the guests' subnet, e.g. addresses: [192.168.100.1/24]");
    EXPECT_EQ(errors[0].where.str(), "nat.yaml:3:1");
  }
  EXPECT_TRUE(
      p.validate(bridge({{"masquerade", true}, {"addresses", {"192.168.100.1/24"}}})).empty());
  EXPECT_TRUE(p.validate(bridge({{"masquerade", false}})).empty());
}

TEST(NatSchema, BridgeDeclaresMasquerade) {
  test::PluginRig rig;
  NetPlugin p{rig.services};
  auto kinds = p.kinds();
  const FieldSchema* found = nullptr;
  for (const auto& f : kinds[0].spec)
    if (f.name == "masquerade") found = &f;
  ASSERT_TRUE(found);
  EXPECT_EQ(found->type, FieldType::kBoolean);
  EXPECT_FALSE(found->forcesReplace);
  for (std::size_t k = 1; k < kinds.size(); ++k)
    for (const auto& f : kinds[k].spec) EXPECT_NE(f.name, "masquerade") << kinds[k].kind;
}

// One nf_tables notification: header, nfgenmsg, and attribute 1 (the table's name).
std::vector<char> nftMessage(int msg, int family, const std::string& table) {
  const std::size_t attrLen = NLA_HDRLEN + table.size() + 1;
  const std::size_t len = NLMSG_LENGTH(NLMSG_ALIGN(sizeof(nfgenmsg)) + NLA_ALIGN(attrLen));
  std::vector<char> buf(len, 0);
  auto* h = reinterpret_cast<nlmsghdr*>(buf.data());
  h->nlmsg_len = static_cast<std::uint32_t>(len);
  h->nlmsg_type = static_cast<std::uint16_t>((NFNL_SUBSYS_NFTABLES << 8) | msg);
  auto* g = static_cast<nfgenmsg*>(NLMSG_DATA(h));
  g->nfgen_family = static_cast<std::uint8_t>(family);
  auto* a =
      reinterpret_cast<nlattr*>(static_cast<char*>(NLMSG_DATA(h)) + NLMSG_ALIGN(sizeof(nfgenmsg)));
  a->nla_len = static_cast<std::uint16_t>(attrLen);
  a->nla_type = 1;
  std::memcpy(reinterpret_cast<char*>(a) + NLA_HDRLEN, table.c_str(), table.size() + 1);
  return buf;
}

Touched touched(const std::vector<char>& m) {
  Touched t;
  touchedByNft(reinterpret_cast<const nlmsghdr*>(m.data()), t);
  return t;
}

TEST(NatEvents, OnlyChangesToTableIpNodeplaneTouchTheBridges) {
  for (int msg : {NFT_MSG_NEWRULE, NFT_MSG_DELRULE, NFT_MSG_DELTABLE, NFT_MSG_DELCHAIN})
    EXPECT_EQ(touched(nftMessage(msg, AF_INET, "nodeplane")).kinds, std::set<std::string>{"Bridge"})
        << msg;
  EXPECT_TRUE(touched(nftMessage(NFT_MSG_DELRULE, AF_INET, "filter")).empty());
  EXPECT_TRUE(touched(nftMessage(NFT_MSG_DELRULE, AF_INET6, "nodeplane")).empty());
  EXPECT_TRUE(touched(nftMessage(NFT_MSG_NEWGEN, AF_INET, "nodeplane")).empty());
}

}  // namespace
}  // namespace nodeplane::net
