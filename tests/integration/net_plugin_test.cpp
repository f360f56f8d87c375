// The net plugin against the real kernel, in the private network namespace main() made.
#include "net_plugin.hpp"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/if_tun.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstring>
#include <iostream>
#include <map>
#include <optional>
#include <set>

#include "link_apply.hpp"
#include "link_state.hpp"
#include "netlink_socket.hpp"
#include "netns.hpp"
#include "support/plugin_rig.hpp"

namespace nodeplane::net {
namespace {

Change makeChange(Action action, const std::string& kind, const std::string& name,
                  const Json& desired, const Json& observed = Json::object()) {
  Change c;
  c.action = action;
  c.id = ResourceId{kind, name};
  c.desired = desired;
  c.observed = observed;
  return c;
}

std::optional<ObservedObject> find(NetPlugin& p, const std::string& kind, const std::string& name) {
  auto all = p.observe({kind});
  EXPECT_TRUE(all.has_value()) << (all ? "" : all.error().str());
  if (!all) return std::nullopt;
  for (auto& o : *all)
    if (o.id.name == name) return o;
  return std::nullopt;
}

// What the core's diff does: every field the desired spec sets equals the observed one, after
// both are normalized.
void expectInSync(NetPlugin& p, const std::string& kind, const std::string& name,
                  const Json& desired) {
  auto o = find(p, kind, name);
  ASSERT_TRUE(o.has_value()) << kind << "/" << name << " not observed";
  EXPECT_TRUE(o->marked) << kind << "/" << name;
  const Json d = p.normalize(kind, desired), obs = p.normalize(kind, o->spec);
  for (const auto& [key, value] : d.items()) {
    EXPECT_EQ(obs.value(key, Json()), value)
        << kind << "/" << name << " spec." << key << "; observed " << obs.dump();
  }
}

void applyOk(NetPlugin& p, const Change& c) {
  test::PluginRig rig;
  auto r = rig.apply(p, c);
  ASSERT_TRUE(r.has_value()) << toString(c.action) << " " << c.id.str() << ": " << r.error().str();
}

// Links made by hand, the way an operator would: libnl and the tun ioctl, not the plugin.
class HandMade {
 public:
  HandMade() {
    sk_ = nl_socket_alloc();
    if (sk_ && nl_connect(sk_, NETLINK_ROUTE) < 0) {
      nl_socket_free(sk_);
      sk_ = nullptr;
    }
  }
  ~HandMade() {
    if (sk_) nl_socket_free(sk_);
  }
  int add(const std::string& name, const char* type, bool up = false) {
    rtnl_link* l = rtnl_link_alloc();
    rtnl_link_set_name(l, name.c_str());
    int rc = rtnl_link_set_type(l, type);
    if (rc == 0) {
      if (up) rtnl_link_set_flags(l, IFF_UP);
      rc = rtnl_link_add(sk_, l, NLM_F_CREATE | NLM_F_EXCL);
    }
    rtnl_link_put(l);
    return rc;
  }
  int remove(const std::string& name) {
    rtnl_link* l = rtnl_link_alloc();
    rtnl_link_set_name(l, name.c_str());
    int rc = rtnl_link_delete(sk_, l);
    rtnl_link_put(l);
    return rc;
  }
  // Sets the interface alias (where nodeplane keeps its mark), as `ip link set alias` does.
  int alias(const std::string& name, const std::string& text) {
    rtnl_link *l = nullptr, *change = rtnl_link_alloc();
    int rc = rtnl_link_get_kernel(sk_, 0, name.c_str(), &l);
    if (rc == 0) {
      rtnl_link_set_ifalias(change, text.c_str());
      rc = rtnl_link_change(sk_, l, change, 0);
    }
    if (l) rtnl_link_put(l);
    rtnl_link_put(change);
    return rc;
  }
  int veth(const std::string& name, const std::string& peer) {
    return rtnl_link_veth_add(sk_, name.c_str(), peer.c_str(), getpid());
  }
  int up(const std::string& name) {
    rtnl_link *l = nullptr, *change = rtnl_link_alloc();
    int rc = rtnl_link_get_kernel(sk_, 0, name.c_str(), &l);
    if (rc == 0) {
      rtnl_link_set_flags(change, IFF_UP);
      rc = rtnl_link_change(sk_, l, change, 0);
    }
    if (l) rtnl_link_put(l);
    rtnl_link_put(change);
    return rc;
  }
  // A persistent tun device (IFF_TUN or IFF_TAP).
  static bool tun(const std::string& name, short mode) {
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0) return false;
    ifreq ifr{};
    ifr.ifr_flags = static_cast<short>(mode | IFF_NO_PI);
    std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
    bool ok = ioctl(fd, TUNSETIFF, &ifr) == 0 && ioctl(fd, TUNSETPERSIST, 1) == 0;
    close(fd);
    return ok;
  }

 private:
  nl_sock* sk_ = nullptr;
};

std::optional<LinkState> raw(const std::string& name) {
  NetlinkSocket nl;
  auto links = dumpLinks(nl);
  if (!links) return std::nullopt;
  for (auto& l : *links)
    if (l.name == name) return l;
  return std::nullopt;
}

// The socket is opened by start(), not by the constructor (`validate` and `plugins` construct
// plugins and never start them), and closed by stop().
TEST(NetPlugin, ObservesAndAppliesOnlyBetweenStartAndStop) {
  NODEPLANE_REQUIRE_NETNS();
  test::PluginRig rig;
  NetPlugin p{rig.services};
  const std::string notStarted = "the net plugin was not started (start() opens its socket)";
  auto before = p.observe({"Bridge"});
  ASSERT_FALSE(before);
  EXPECT_EQ(before.error().message, notStarted);
  auto refused =
      rig.apply(p, makeChange(Action::kCreate, "Bridge", "br-unstarted", Json::object()));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().message, notStarted);

  ASSERT_TRUE(p.start());
  auto started = p.observe({"Bridge"});
  ASSERT_TRUE(started) << started.error().str();
  for (const auto& o : *started) EXPECT_NE(o.id.name, "br-unstarted");
  p.stop();
  auto after = p.observe({"Bridge"});
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error().message, notStarted);
}

// The `netlink` item of `nodeplane check` is the net plugin's, and needs no start().
TEST(NetPlugin, CheckDumpsLinksOverItsOwnSocket) {
  NODEPLANE_REQUIRE_NETNS();
  test::PluginRig rig;
  NetPlugin p{rig.services};
  auto items = p.check();
  ASSERT_EQ(items.size(), 3u);  // and "nftables", "ip-forward": net_nat_test.cpp
  EXPECT_EQ(items[1].name, "nftables");
  EXPECT_EQ(items[2].name, "ip-forward");
  EXPECT_EQ(items[0].name, "netlink");
  EXPECT_TRUE(items[0].required);
  EXPECT_TRUE(items[0].ok) << items[0].detail;
  EXPECT_NE(items[0].detail.find("rtnetlink link dump: "), std::string::npos) << items[0].detail;
}

TEST(NetBridge, CreateObserveUpdateDelete) {
  NODEPLANE_REQUIRE_NETNS();
  test::PluginRig rig;
  NetPlugin p{rig.services};
  ASSERT_TRUE(p.start());
  Json desired = {
      {"mtu", 1400}, {"addresses", {"FD00:1::1/64", "10.1.0.1/24"}}, {"up", true}, {"stp", true}};
  applyOk(p, makeChange(Action::kCreate, "Bridge", "br-test", desired));
  expectInSync(p, "Bridge", "br-test", desired);
  auto before = find(p, "Bridge", "br-test");
  ASSERT_TRUE(before);
  EXPECT_EQ(before->spec["addresses"], Json({"10.1.0.1/24", "fd00:1::1/64"}));

  Json changed = {{"mtu", 1500},
                  {"addresses", {"10.1.0.2/24", "fd00:1::1/64", "10.2.0.1/16"}},
                  {"up", false},
                  {"stp", false}};
  applyOk(p, makeChange(Action::kUpdate, "Bridge", "br-test", changed, before->spec));
  expectInSync(p, "Bridge", "br-test", changed);

  applyOk(p, makeChange(Action::kDelete, "Bridge", "br-test", Json::object()));
  EXPECT_FALSE(find(p, "Bridge", "br-test").has_value());
  // Deleting what is already gone is not an error.
  applyOk(p, makeChange(Action::kDelete, "Bridge", "br-test", Json::object()));
}

TEST(NetVxlan, UnicastEnslavedLearningAndVniReplace) {
  NODEPLANE_REQUIRE_NETNS();
  HandMade hand;
  ASSERT_EQ(hand.veth("ul0", "ul0-peer"), 0);
  ASSERT_EQ(hand.up("ul0"), 0);
  test::PluginRig rig;
  NetPlugin p{rig.services};
  ASSERT_TRUE(p.start());
  applyOk(p, makeChange(Action::kCreate, "Bridge", "br-ov", {{"up", true}}));
  Json desired = {{"vni", 100},      {"local", "10.0.0.1"}, {"remote", "10.0.0.2"},
                  {"device", "ul0"}, {"dstPort", 4789},     {"learning", false},
                  {"mtu", 1400},     {"bridge", "br-ov"},   {"up", true}};
  applyOk(p, makeChange(Action::kCreate, "Vxlan", "vx100", desired));
  expectInSync(p, "Vxlan", "vx100", desired);

  // An enslaved port gets no IPv6 link-local address.
  auto l = raw("vx100");
  ASSERT_TRUE(l);
  EXPECT_EQ(l->addrGenMode, std::optional<std::uint8_t>(IN6_ADDR_GEN_MODE_NONE));
  EXPECT_FALSE(l->hasLinkLocalV6);
  EXPECT_EQ(l->alias, "nodeplane:00000000000000a1");

  Json learning = desired;
  learning["learning"] = true;
  auto obs = find(p, "Vxlan", "vx100");
  ASSERT_TRUE(obs);
  applyOk(p, makeChange(Action::kUpdate, "Vxlan", "vx100", learning, obs->spec));
  expectInSync(p, "Vxlan", "vx100", learning);

  // The kernel cannot change a VNI: update refuses, replace works.
  Json vni = learning;
  vni["vni"] = 200;
  obs = find(p, "Vxlan", "vx100");
  EXPECT_FALSE(
      rig.apply(p, makeChange(Action::kUpdate, "Vxlan", "vx100", vni, obs->spec)).has_value());
  applyOk(p, makeChange(Action::kReplace, "Vxlan", "vx100", vni, obs->spec));
  expectInSync(p, "Vxlan", "vx100", vni);

  applyOk(p, makeChange(Action::kDelete, "Vxlan", "vx100", Json::object()));
  EXPECT_FALSE(find(p, "Vxlan", "vx100").has_value());
}

TEST(NetVxlan, MulticastGroupV4AndV6) {
  NODEPLANE_REQUIRE_NETNS();
  HandMade hand;
  ASSERT_EQ(hand.veth("ul1", "ul1-peer"), 0);
  ASSERT_EQ(hand.up("ul1"), 0);
  test::PluginRig rig;
  NetPlugin p{rig.services};
  ASSERT_TRUE(p.start());
  Json v4 = {{"vni", 10},
             {"group", "239.1.1.1"},
             {"device", "ul1"},
             {"up", true},
             {"addresses", {"192.168.50.1/24"}}};
  applyOk(p, makeChange(Action::kCreate, "Vxlan", "vx-g4", v4));
  expectInSync(p, "Vxlan", "vx-g4", v4);
  auto o = find(p, "Vxlan", "vx-g4");
  ASSERT_TRUE(o);
  EXPECT_FALSE(o->spec.contains("remote"));
  EXPECT_EQ(o->spec.value("dstPort", 0), 4789);

  Json v6 = {{"vni", 11},
             {"group", "FF05::100"},
             {"local", "fd00::1"},
             {"device", "ul1"},
             {"dstPort", 8472}};
  applyOk(p, makeChange(Action::kCreate, "Vxlan", "vx-g6", v6));
  expectInSync(p, "Vxlan", "vx-g6", v6);
}

TEST(NetTap, CreateEnslavedPersistentDelete) {
  NODEPLANE_REQUIRE_NETNS();
  test::PluginRig rig;
  NetPlugin p{rig.services};
  ASSERT_TRUE(p.start());
  applyOk(p, makeChange(Action::kCreate, "Bridge", "br-vm", {{"up", true}}));
  Json desired = {{"bridge", "br-vm"}, {"mtu", 1400}, {"up", true}};
  applyOk(p, makeChange(Action::kCreate, "Tap", "tap-vm0", desired));
  expectInSync(p, "Tap", "tap-vm0", desired);  // persistent: it outlived the closed fd

  auto l = raw("tap-vm0");
  ASSERT_TRUE(l);
  EXPECT_EQ(l->kind, "tun");
  EXPECT_TRUE(l->isTap());
  EXPECT_EQ(l->addrGenMode, std::optional<std::uint8_t>(IN6_ADDR_GEN_MODE_NONE));
  EXPECT_FALSE(l->hasLinkLocalV6);

  // A second create of the same name must not silently attach to the existing tap.
  auto again = rig.apply(p, makeChange(Action::kCreate, "Tap", "tap-vm0", desired));
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().kind, ErrorKind::kConflict);

  applyOk(p, makeChange(Action::kDelete, "Tap", "tap-vm0", Json::object()));
  EXPECT_FALSE(find(p, "Tap", "tap-vm0").has_value());
  EXPECT_FALSE(raw("tap-vm0").has_value());
}

// The tun driver attaches to an existing tap of the name unless told IFF_TUN_EXCL: a tap made
// outside nodeplane (what `ip tuntap add` does) must never be taken over, even by createTap alone
// (the plugin's own existence check before it leaves a window).
TEST(NetTap, NeverAttachesToATapItDidNotMake) {
  NODEPLANE_REQUIRE_NETNS();
  ASSERT_TRUE(HandMade::tun("tap-other", IFF_TAP));
  auto r = createTap(HostContext{}, "tap-other");
  ASSERT_FALSE(r.has_value()) << "attached to someone else's tap";
  EXPECT_EQ(r.error().kind, ErrorKind::kConflict);
  EXPECT_EQ(r.error().message,
            "creating tap tap-other: an interface named tap-other already exists (TUNSETIFF with "
            "IFF_TUN_EXCL: Device or resource busy)");
  auto l = raw("tap-other");
  ASSERT_TRUE(l) << "the other tap is left alone";
  EXPECT_FALSE(l->alias.starts_with("nodeplane"));

  // The same for a link of another type with the name.
  HandMade hand;
  ASSERT_EQ(hand.add("br-not-tap", "bridge"), 0);
  auto b = createTap(HostContext{}, "br-not-tap");
  ASSERT_FALSE(b.has_value());
  EXPECT_EQ(b.error().kind, ErrorKind::kConflict);
}

// What a pass observed as nodeplane's link may be gone and replaced by someone else's of the
// same name by the time a step runs: the plugin checks the mark when it acts and deletes by the
// ifindex it just read, so the other link is never deleted, replaced or changed.
TEST(NetOwnership, StepsActOnlyOnTheLinkNodeplaneOwnsWhenTheyRun) {
  NODEPLANE_REQUIRE_NETNS();
  test::PluginRig rig;
  NetPlugin p{rig.services};
  ASSERT_TRUE(p.start());
  const Json spec = {{"mtu", 1500}};
  applyOk(p, makeChange(Action::kCreate, "Bridge", "br-swap", spec));
  auto observed = find(p, "Bridge", "br-swap");
  ASSERT_TRUE(observed && observed->marked);

  // Swapped by hand after the observation: a bridge without the mark, then a veth.
  HandMade hand;
  for (const char* type : {"bridge", "veth"}) {
    applyOk(p, makeChange(Action::kDelete, "Bridge", "br-swap", {}, observed->spec));
    ASSERT_EQ(std::string(type) == "veth" ? hand.veth("br-swap", "br-swap-peer")
                                          : hand.add("br-swap", type),
              0);
    const int index = raw("br-swap")->index;
    for (Action a : {Action::kDelete, Action::kUpdate, Action::kReplace}) {
      auto r = rig.apply(p, makeChange(a, "Bridge", "br-swap", {{"mtu", 1400}}, observed->spec));
      ASSERT_FALSE(r.has_value()) << toString(a) << " acted on a " << type << " it does not own";
      EXPECT_EQ(r.error().kind, ErrorKind::kConflict);
      EXPECT_EQ(r.error().message, std::string(toString(a)) +
                                       " refused: the link named br-swap is no longer the Bridge "
                                       "nodeplane manages (it changed since it was observed); not "
                                       "touched");
      auto now = raw("br-swap");
      ASSERT_TRUE(now) << toString(a) << " deleted someone else's " << type;
      EXPECT_EQ(now->index, index);
      EXPECT_NE(now->mtu, 1400u);
      EXPECT_FALSE(now->alias.starts_with("nodeplane"));
    }
    // Back to a bridge of ours for the next round.
    ASSERT_EQ(hand.remove("br-swap"), 0);
    applyOk(p, makeChange(Action::kCreate, "Bridge", "br-swap", spec));
  }
  // A link of ours that is already gone: the delete has nothing to do.
  applyOk(p, makeChange(Action::kDelete, "Bridge", "br-swap", {}, observed->spec));
  applyOk(p, makeChange(Action::kDelete, "Bridge", "br-swap", {}, observed->spec));
}

// Identity at act time: a step names the ifindex it was planned against (Change::uid), and a
// link made again under the same name and mark is another link; marks carry the agent id, so
// another agent's link and a legacy mark are told apart; a release removes the mark only.
TEST(NetIdentity, UidsMarksAndRelease) {
  NODEPLANE_REQUIRE_NETNS();
  test::PluginRig rig;
  NetPlugin p{rig.services};
  ASSERT_TRUE(p.start());
  applyOk(p, makeChange(Action::kCreate, "Bridge", "br-id", {{"mtu", 1500}}));
  auto first = find(p, "Bridge", "br-id");
  ASSERT_TRUE(first && first->marked);
  EXPECT_EQ(first->uid, std::to_string(raw("br-id")->index));

  HandMade hand;  // removed and made again by hand, with the same name and mark
  ASSERT_EQ(hand.remove("br-id"), 0);
  ASSERT_EQ(hand.add("br-id", "bridge"), 0);
  ASSERT_EQ(hand.alias("br-id", "nodeplane:00000000000000a1"), 0);
  ASSERT_TRUE(find(p, "Bridge", "br-id")->marked);
  for (Action a : {Action::kDelete, Action::kRelease, Action::kUpdate, Action::kReplace}) {
    Change c = makeChange(a, "Bridge", "br-id", {{"mtu", 1400}}, first->spec);
    c.uid = first->uid;
    auto r = rig.apply(p, c);
    ASSERT_FALSE(r.has_value()) << toString(a) << " acted on a link made again since";
    EXPECT_EQ(r.error().message, std::string(toString(a)) +
                                     " refused: the link named br-id is no longer the Bridge "
                                     "the plan was made against (ifindex " +
                                     first->uid + " then, " + std::to_string(raw("br-id")->index) +
                                     " now: re-created since); not touched");
    ASSERT_TRUE(raw("br-id"));
    EXPECT_NE(raw("br-id")->mtu, 1400u);
  }

  // Another agent's mark, and the legacy mark without an id.
  ASSERT_EQ(hand.alias("br-id", "nodeplane:00000000000000b2"), 0);
  auto other = find(p, "Bridge", "br-id");
  EXPECT_FALSE(other->marked);
  EXPECT_EQ(other->markedByOther, "00000000000000b2");
  Change take = makeChange(Action::kUpdate, "Bridge", "br-id", {{"mtu", 1400}}, other->spec);
  take.adopt = true;
  EXPECT_FALSE(rig.apply(p, take).has_value()) << "adopted another agent's link";
  ASSERT_EQ(hand.alias("br-id", "nodeplane"), 0);
  auto legacy = find(p, "Bridge", "br-id");
  EXPECT_FALSE(legacy->marked);
  EXPECT_TRUE(legacy->legacyMark);
  EXPECT_TRUE(legacy->markedByOther.empty());
  // Re-marked by an update (the core plans one only when its store records the link).
  applyOk(p, makeChange(Action::kUpdate, "Bridge", "br-id", {{"mtu", 1500}}, legacy->spec));
  EXPECT_EQ(raw("br-id")->alias, "nodeplane:00000000000000a1");

  // A release takes the mark off and leaves the link.
  Change release = makeChange(Action::kRelease, "Bridge", "br-id", {}, legacy->spec);
  release.uid = std::to_string(raw("br-id")->index);
  applyOk(p, release);
  ASSERT_TRUE(raw("br-id")) << "a release deleted the link";
  EXPECT_EQ(raw("br-id")->alias, "");
  EXPECT_FALSE(find(p, "Bridge", "br-id")->marked);
}

// A kernel name template ("br%d") makes the kernel pick br0, br1, ... on every create: the
// plugin refuses it even to a caller that skipped validate() (the engine never does).
TEST(NetNames, TemplateNamesCreateNothing) {
  NODEPLANE_REQUIRE_NETNS();
  test::PluginRig rig;
  NetPlugin p{rig.services};
  ASSERT_TRUE(p.start());
  auto before = p.observe({"Bridge", "Vxlan", "Tap"});
  ASSERT_TRUE(before);
  const std::vector<std::pair<std::string, Json>> cases = {
      {"Bridge", Json::object()},
      {"Tap", Json::object()},
      {"Vxlan", {{"vni", 7}, {"remote", "10.0.0.2"}}}};
  for (const auto& [kind, spec] : cases) {
    auto r = rig.apply(p, makeChange(Action::kCreate, kind, "np%d", spec));
    ASSERT_FALSE(r.has_value()) << kind;
    EXPECT_EQ(r.error().kind, ErrorKind::kInvalidInput);
    EXPECT_EQ(r.error().message.rfind("create refused: metadata.name: interface name \"np%d\" "
                                      "contains '%'",
                                      0),
              0u)
        << r.error().message;
  }
  auto bridged = rig.apply(p, makeChange(Action::kCreate, "Tap", "tap-t", {{"bridge", "br%d"}}));
  ASSERT_FALSE(bridged.has_value());
  EXPECT_EQ(bridged.error().message.rfind("create refused: spec.bridge: ", 0), 0u);
  for (const char* made : {"np0", "np1", "br0", "tap-t"}) EXPECT_FALSE(raw(made)) << made;
  auto after = p.observe({"Bridge", "Vxlan", "Tap"});
  ASSERT_TRUE(after);
  EXPECT_EQ(after->size(), before->size());
}

TEST(NetMark, HandMadeLinkIsUnmarkedUntilAdopted) {
  NODEPLANE_REQUIRE_NETNS();
  HandMade hand;
  ASSERT_EQ(hand.add("br-hand", "bridge"), 0);
  test::PluginRig rig;
  NetPlugin p{rig.services};
  ASSERT_TRUE(p.start());
  auto o = find(p, "Bridge", "br-hand");
  ASSERT_TRUE(o);
  EXPECT_FALSE(o->marked);

  auto create = rig.apply(p, makeChange(Action::kCreate, "Bridge", "br-hand", {{"mtu", 1400}}));
  ASSERT_FALSE(create.has_value());
  EXPECT_EQ(create.error().kind, ErrorKind::kConflict);
  EXPECT_FALSE(find(p, "Bridge", "br-hand")->marked);

  Json desired = {{"mtu", 1400}, {"addresses", {"10.9.0.1/24"}}};
  Change adopt = makeChange(Action::kUpdate, "Bridge", "br-hand", desired, o->spec);
  adopt.adopt = true;
  applyOk(p, adopt);
  expectInSync(p, "Bridge", "br-hand", desired);  // also checks marked
}

TEST(NetObserve, NeverMisreportsOtherLinkTypes) {
  NODEPLANE_REQUIRE_NETNS();
  HandMade hand;
  ASSERT_EQ(hand.add("vx-looks", "bridge"), 0);  // a bridge named like a vxlan
  ASSERT_EQ(hand.veth("veth-a", "veth-b"), 0);
  ASSERT_TRUE(HandMade::tun("tun-only", IFF_TUN));
  ASSERT_TRUE(HandMade::tun("tap-hand", IFF_TAP));
  const bool dummy = hand.add("dummy0", "dummy") == 0;  // not every kernel has the module

  test::PluginRig rig;
  NetPlugin p{rig.services};
  ASSERT_TRUE(p.start());
  auto names = [&](const std::string& kind) {
    std::set<std::string> out;
    auto all = p.observe({kind});
    EXPECT_TRUE(all.has_value());
    if (all)
      for (auto& o : *all)
        if (o.id.kind == kind) out.insert(o.id.name);
    return out;
  };
  // Other tests of this process may have left links of their own: look at ours only.
  const std::set<std::string> mine = {"vx-looks", "veth-a", "veth-b", "tun-only",
                                      "tap-hand", "dummy0", "lo"};
  auto ours = [&](const std::string& kind) {
    std::set<std::string> out;
    for (const auto& n : names(kind))
      if (mine.count(n)) out.insert(n);
    return out;
  };
  EXPECT_EQ(ours("Bridge"), std::set<std::string>({"vx-looks"}));
  EXPECT_TRUE(ours("Vxlan").empty());
  EXPECT_EQ(ours("Tap"), std::set<std::string>({"tap-hand"}));
  auto tap = find(p, "Tap", "tap-hand");
  ASSERT_TRUE(tap);
  EXPECT_FALSE(tap->marked);
  EXPECT_FALSE(p.observe({"Container"}).has_value());

  // The names they hold are reported as taken (empty kind), with what holds them.
  std::map<std::string, std::string> taken;
  auto bridges = p.observe({"Bridge"});
  ASSERT_TRUE(bridges);
  for (const auto& o : *bridges)
    if (o.id.kind.empty() && mine.count(o.id.name)) taken[o.id.name] = o.spec.value("type", "");
  std::map<std::string, std::string> want = {{"lo", "loopback"},
                                             {"veth-a", "veth"},
                                             {"veth-b", "veth"},
                                             {"tun-only", "tun"},
                                             {"tap-hand", "tun"}};
  if (dummy) want["dummy0"] = "dummy";
  EXPECT_EQ(taken, want);
  if (!dummy) GTEST_LOG_(INFO) << "no dummy link type in this kernel; checked the others";
}

TEST(NetErrors, MissingBridgeIsRetryableAndLeavesNothing) {
  NODEPLANE_REQUIRE_NETNS();
  test::PluginRig rig;
  NetPlugin p{rig.services};
  ASSERT_TRUE(p.start());
  auto r = rig.apply(p, makeChange(Action::kCreate, "Tap", "tap-orphan", {{"bridge", "br-none"}}));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().kind, ErrorKind::kRetryable);
  EXPECT_NE(r.error().message.find("br-none does not exist"), std::string::npos)
      << r.error().message;
  EXPECT_FALSE(raw("tap-orphan").has_value());

  // The kernel's own reason reaches the message (validate() would have caught this one).
  r = rig.apply(p, makeChange(Action::kCreate, "Vxlan", "vx-bad",
                              {{"vni", 5}, {"remote", "10.0.0.2"}, {"local", "fd00::1"}}));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().kind, ErrorKind::kTerminal);
  EXPECT_NE(r.error().message.find("creating vxlan vx-bad: "), std::string::npos)
      << r.error().message;
  std::cout << "kernel refusal reads: " << r.error().message << "\n";
  EXPECT_FALSE(raw("vx-bad").has_value());
}

}  // namespace
}  // namespace nodeplane::net
