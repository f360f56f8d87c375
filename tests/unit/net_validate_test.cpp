// The net plugin's schema, validate() and normalize(): pure logic, no netlink.
#include <gtest/gtest.h>

#include <algorithm>

#include "engine.hpp"
#include "net_plugin.hpp"
#include "support/plugin_rig.hpp"

namespace nodeplane::net {
namespace {

Resource resource(const std::string& kind, const std::string& name, Json spec) {
  Resource r;
  r.id = ResourceId{kind, name};
  r.spec = std::move(spec);
  r.where = SourceLocation{"net.yaml", 1, 1};
  r.locations["spec.addresses[1]"] = SourceLocation{"net.yaml", 7, 7};
  return r;
}

std::vector<Error> check(const std::string& kind, const std::string& name, Json spec) {
  test::PluginRig rig;
  NetPlugin p{rig.services};
  return p.validate(resource(kind, name, std::move(spec)));
}

const FieldSchema* fieldOf(const KindSchema& k, const std::string& name) {
  for (const auto& f : k.spec)
    if (f.name == name) return &f;
  return nullptr;
}

TEST(NetSchema, DeclaresKindsFieldsAndReplaceRules) {
  test::PluginRig rig;
  NetPlugin p{rig.services};
  EXPECT_EQ(p.name(), "net");
  EXPECT_EQ(p.maxParallel(), 1u);
  auto kinds = p.kinds();
  ASSERT_EQ(kinds.size(), 3u);
  EXPECT_EQ(kinds[0].kind, "Bridge");
  EXPECT_EQ(kinds[1].kind, "Vxlan");
  EXPECT_EQ(kinds[2].kind, "Tap");

  const auto* mtu = fieldOf(kinds[0], "mtu");
  ASSERT_TRUE(mtu);
  EXPECT_EQ(mtu->minimum, 68);
  EXPECT_EQ(mtu->maximum, 65535);
  ASSERT_TRUE(fieldOf(kinds[0], "stp"));
  EXPECT_EQ(fieldOf(kinds[0], "addresses")->type, FieldType::kStringList);

  for (const char* f : {"vni", "local", "remote", "group", "device", "dstPort"})
    EXPECT_TRUE(fieldOf(kinds[1], f)->forcesReplace) << f;
  for (const char* f : {"learning", "mtu", "bridge", "up", "addresses"})
    EXPECT_FALSE(fieldOf(kinds[1], f)->forcesReplace) << f;
  EXPECT_EQ(fieldOf(kinds[1], "vni")->maximum, 16777215);
  EXPECT_TRUE(fieldOf(kinds[1], "vni")->required);
  EXPECT_EQ(fieldOf(kinds[1], "bridge")->references, "Bridge");
  EXPECT_EQ(fieldOf(kinds[2], "bridge")->references, "Bridge");
  for (const auto& k : kinds)  // metadata.adopt, for every kind
    EXPECT_EQ(fieldOf(k, "adopt"), nullptr) << k.kind;
}

TEST(NetValidate, AcceptsAGoodSpec) {
  EXPECT_TRUE(check("Bridge", "br0", {{"addresses", {"192.168.1.1/24", "fd00::1/64"}}}).empty());
  EXPECT_TRUE(check("Vxlan", "vx100",
                    {{"vni", 100},
                     {"local", "10.0.0.1"},
                     {"remote", "10.0.0.2"},
                     {"device", "eth0"},
                     {"bridge", "br0"}})
                  .empty());
  EXPECT_TRUE(
      check("Vxlan", "vx6", {{"vni", 1}, {"group", "ff05::1"}, {"device", "eth0"}}).empty());
  EXPECT_TRUE(check("Tap", "tap0", {{"bridge", "br0"}}).empty());
}

TEST(NetValidate, BadAddressNamesIndexAndLocation) {
  auto errors = check("Bridge", "br0", {{"addresses", {"10.0.0.1/24", "10.0.0.300/24"}}});
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].field, "spec.addresses[1]");
  EXPECT_EQ(errors[0].kind, ErrorKind::kInvalidInput);
  EXPECT_EQ(errors[0].resource, "Bridge/br0");
  EXPECT_EQ(errors[0].where.line, 7);
  EXPECT_EQ(errors[0].message,
            "expected an address with prefix length, e.g. 192.168.1.1/24 or fd00::1/64, got "
            "\"10.0.0.300/24\"");
}

TEST(NetValidate, AddressForms) {
  auto one = [](const std::string& a) {
    auto e = check("Bridge", "br0", {{"addresses", {a}}});
    return e.empty() ? std::string() : e[0].field + ": " + e[0].message;
  };
  EXPECT_EQ(one("10.0.0.1"),
            "spec.addresses[0]: expected an address with prefix length, e.g. 192.168.1.1/24 or "
            "fd00::1/64, got \"10.0.0.1\"");
  EXPECT_EQ(one("10.0.0.1/33"),
            "spec.addresses[0]: prefix length 33 is out of range for an IPv4 address (0-32), got "
            "\"10.0.0.1/33\"");
  EXPECT_EQ(one("fd00::1/129"),
            "spec.addresses[0]: prefix length 129 is out of range for an IPv6 address (0-128), "
            "got \"fd00::1/129\"");
  EXPECT_NE(one("10.0.0.1/2x"), "");
  EXPECT_NE(one("10.0.0.1/"), "");
  EXPECT_NE(one("fd00::g/64"), "");
  EXPECT_EQ(one("10.0.0.1/0"), "");
  EXPECT_EQ(one("fd00::1/128"), "");
  EXPECT_EQ(one("fe80::1/64"),
            "spec.addresses[0]: IPv6 link-local addresses (fe80::/10) are assigned by the kernel, "
            "not by nodeplane, got \"fe80::1/64\"");

  auto dup = check("Bridge", "br0", {{"addresses", {"fd00::1/64", "FD00:0::1/120"}}});
  ASSERT_EQ(dup.size(), 1u);
  EXPECT_EQ(dup[0].field, "spec.addresses[1]");
  EXPECT_EQ(dup[0].message, "address fd00::1 is listed twice (also spec.addresses[0])");
}

TEST(NetValidate, InterfaceNames) {
  auto name = [](const std::string& n) {
    auto e = check("Bridge", n, Json::object());
    return e.empty() ? std::string() : e[0].field + ": " + e[0].message;
  };
  EXPECT_EQ(name("br0"), "");
  EXPECT_EQ(name("a23456789012345"), "");
  EXPECT_EQ(name("a234567890123456"),
            "metadata.name: interface name \"a234567890123456\" is too long: at most 15 bytes, got "
            "16");
  // The limit is IFNAMSIZ bytes, not characters: 8 characters of 2 bytes each are too many.
  EXPECT_EQ(
      name("\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9"),
      "metadata.name: interface name \"\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\" is too "
      "long: at most 15 bytes, got 16");
  EXPECT_EQ(name("br-\u00e9t\u00e9"), "");
  EXPECT_EQ(name(""), "metadata.name: interface name must not be empty");
  EXPECT_EQ(
      name("."),
      "metadata.name: interface name \".\" is reserved (a directory entry in /sys/class/net)");
  EXPECT_EQ(name(".."),
            "metadata.name: interface name \"..\" is reserved (a directory entry in "
            "/sys/class/net)");
  EXPECT_EQ(name("all"),
            "metadata.name: interface name \"all\" is reserved (/proc/sys/net/ipv4/conf/ uses it "
            "for settings of every interface)");
  EXPECT_EQ(name("default"),
            "metadata.name: interface name \"default\" is reserved (/proc/sys/net/ipv4/conf/ uses "
            "it for settings of every interface)");
  EXPECT_EQ(name("bonding_masters"),
            "metadata.name: interface name \"bonding_masters\" is reserved "
            "(/sys/class/net/bonding_masters is the bonding driver's control file)");
  EXPECT_EQ(name("All"), "") << "the reserved names are case-sensitive, as in the kernel";
  const std::string rule =
      "; names may not contain '/', ':', '%', whitespace or control characters";
  EXPECT_EQ(name("a/b"), "metadata.name: interface name \"a/b\" contains '/'" + rule);
  EXPECT_EQ(name("a:b"), "metadata.name: interface name \"a:b\" contains ':'" + rule);
  EXPECT_EQ(name("a b"), "metadata.name: interface name \"a b\" contains whitespace" + rule);
  EXPECT_EQ(name("br%d"),
            "metadata.name: interface name \"br%d\" contains '%' (the kernel would read it as a "
            "template: \"br%d\" creates br0, br1, ...)" +
                rule);
  EXPECT_NE(name("100%"), "");
  // Control characters are refused, and shown escaped in the message itself.
  EXPECT_EQ(name("br\x1b[2J"),
            "metadata.name: interface name \"br\\x1b[2J\" contains a control character" + rule);
  EXPECT_EQ(name("a\nb"),
            "metadata.name: interface name \"a\\nb\" contains a control character" + rule);
  EXPECT_EQ(name("a\x7f"),
            "metadata.name: interface name \"a\\x7f\" contains a control character" + rule);
  EXPECT_EQ(name("a\u0085b"),
            "metadata.name: interface name \"a\\u0085b\" contains a control character" + rule);
  // Non-ASCII whitespace.
  EXPECT_EQ(name("a\u00a0b"),
            "metadata.name: interface name \"a\u00a0b\" contains whitespace" + rule);
  EXPECT_EQ(name("a\u2003b"),
            "metadata.name: interface name \"a\u2003b\" contains whitespace" + rule);
  EXPECT_EQ(name("a\u3000b"),
            "metadata.name: interface name \"a\u3000b\" contains whitespace" + rule);
  // The kernel's isspace() is Latin-1: the byte 0xa0 inside "\u00e0" (c3 a0) makes it refuse.
  EXPECT_EQ(name("voil\u00e0"),
            "metadata.name: interface name \"voil\u00e0\" contains the byte 0xa0 (in \"\u00e0\"), "
            "which the kernel treats as whitespace" +
                rule);
  EXPECT_EQ(name("br\xff"),
            "metadata.name: interface name \"br\\xff\" is not valid UTF-8 (nodeplane records "
            "names in JSON state and prints them)");
  EXPECT_NE(name("\xc0\xae"), "") << "an overlong '.'";

  auto dev = check("Vxlan", "vx0", {{"vni", 1}, {"remote", "10.0.0.2"}, {"device", "eth/0"}});
  ASSERT_EQ(dev.size(), 1u);
  EXPECT_EQ(dev[0].field, "spec.device");

  // Names in spec fields reach the kernel too (IFLA_MASTER, IFLA_VXLAN_LINK lookups).
  auto tmpl = check("Vxlan", "vx0", {{"vni", 1}, {"remote", "10.0.0.2"}, {"device", "eth%d"}});
  ASSERT_EQ(tmpl.size(), 1u);
  EXPECT_EQ(tmpl[0].field, "spec.device");
  auto bridge = check("Tap", "tap0", {{"bridge", "all"}});
  ASSERT_EQ(bridge.size(), 1u);
  EXPECT_EQ(bridge[0].field, "spec.bridge");
  EXPECT_EQ(bridge[0].message,
            "interface name \"all\" is reserved (/proc/sys/net/ipv4/conf/ uses it for settings of "
            "every interface)");
}

TEST(NetValidate, VxlanEndpoints) {
  auto fields = [](Json spec) {
    std::vector<std::string> out;
    for (const auto& e : check("Vxlan", "vx0", std::move(spec)))
      out.push_back(e.field + ": " + e.message);
    return out;
  };
  auto both = fields({{"vni", 1}, {"remote", "10.0.0.2"}, {"group", "239.1.1.1"}, {"device", "e"}});
  ASSERT_EQ(both.size(), 1u);
  EXPECT_EQ(both[0],
            "spec.group: remote and group are exclusive: set remote for a unicast "
            "(point-to-point) tunnel or group for a multicast one");

  auto unicastGroup = check("Vxlan", "vx0", {{"vni", 1}, {"group", "10.0.0.1"}, {"device", "e"}});
  ASSERT_EQ(unicastGroup.size(), 1u);
  EXPECT_EQ(unicastGroup[0].field, "spec.group");
  EXPECT_EQ(unicastGroup[0].message,
            "group must be a multicast address (224.0.0.0/4 or ff00::/8), got \"10.0.0.1\"");

  auto noDevice = fields({{"vni", 1}, {"group", "239.1.1.1"}});
  ASSERT_EQ(noDevice.size(), 1u);
  EXPECT_EQ(noDevice[0], "spec.group: a multicast group needs an underlay interface to join it on");

  auto multicastRemote = fields({{"vni", 1}, {"remote", "239.1.1.1"}});
  ASSERT_EQ(multicastRemote.size(), 1u);
  EXPECT_EQ(multicastRemote[0].rfind("spec.remote: remote must be a unicast address", 0), 0u);

  auto family = fields({{"vni", 1}, {"local", "10.0.0.1"}, {"remote", "fd00::2"}});
  ASSERT_EQ(family.size(), 1u);
  EXPECT_EQ(family[0],
            "spec.remote: local is IPv4 but remote is IPv6; both ends of a tunnel must use the "
            "same address family");

  auto notIp = fields({{"vni", 1}, {"local", "10.0.0.1/24"}});
  ASSERT_EQ(notIp.size(), 1u);
  EXPECT_EQ(notIp[0],
            "spec.local: expected an IP address without prefix length, e.g. 10.0.0.1 or fd00::1, "
            "got \"10.0.0.1/24\"");
}

TEST(NetValidate, ReportsEveryProblem) {
  auto errors = check("Vxlan", "bad/name",
                      {{"vni", 1},
                       {"addresses", {"x", "10.0.0.1/24", "y"}},
                       {"remote", "10.0.0.2"},
                       {"group", "239.0.0.1"}});
  std::vector<std::string> fields;
  for (const auto& e : errors) fields.push_back(e.field);
  EXPECT_EQ(fields, (std::vector<std::string>{"metadata.name", "spec.addresses[0]",
                                              "spec.addresses[2]", "spec.group", "spec.group"}));
}

// Bridge/x, Tap/x and Vxlan/x would all be the kernel interface x: each one after the first is an
// error naming both, with file:line, through the core's claim check (no net special case there).
TEST(NetValidate, TwoKindsCannotBeTheSameInterface) {
  test::PluginRig rig;
  NetPlugin p{rig.services};
  EXPECT_EQ(p.claims(resource("Tap", "x", Json::object())),
            (std::vector<Claim>{Claim{"interface", "x"}}));

  auto plugins = PluginHost::load(NODEPLANE_BUILD_PLUGIN_DIR, {});
  ASSERT_TRUE(plugins) << plugins.error().str();
  Engine engine(*plugins, {});
  const std::string head = "apiVersion: nodeplane.io/v1\n";
  Desired d = engine.prepare(parseYaml(head + "kind: Bridge\nmetadata: {name: x}\n---\n" + head +
                                           "kind: Tap\nmetadata: {name: x}\n---\n" + head +
                                           "kind: Vxlan\nmetadata: {name: x}\n"
                                           "spec: {vni: 1, remote: 10.0.0.2}\n---\n" +
                                           head + "kind: Tap\nmetadata: {name: y}\n",
                                       "net.yaml"));
  std::vector<std::string> errors;
  for (const auto& e : d.errors) errors.push_back(e.str());
  EXPECT_EQ(errors, (std::vector<std::string>{
                        "net.yaml:6:1: Tap/x: claims network interface \"x\", already claimed by "
                        "Bridge/x at net.yaml:2:1",
                        "net.yaml:10:1: Vxlan/x: claims network interface \"x\", already claimed "
                        "by Bridge/x at net.yaml:2:1"}));
}

TEST(NetNormalize, CanonicalSortedAddressesAndIps) {
  test::PluginRig rig;
  NetPlugin p{rig.services};
  Json spec = {{"addresses", {"FD00:0:0::1/64", "10.0.0.1/24", "192.168.000.1/24"}}, {"mtu", 1500}};
  Json n = p.normalize("Bridge", spec);
  // inet_pton rejects leading zeros in dotted quads: left as written for validate() to report.
  EXPECT_EQ(n["addresses"], Json({"10.0.0.1/24", "192.168.000.1/24", "fd00::1/64"}));
  EXPECT_EQ(n["mtu"], 1500);

  Json vx = p.normalize("Vxlan", {{"local", "FD00::0001"}, {"group", "FF05:0::1"}, {"vni", 5}});
  EXPECT_EQ(vx["local"], "fd00::1");
  EXPECT_EQ(vx["group"], "ff05::1");
  EXPECT_EQ(vx["vni"], 5);

  // Idempotent, and leaves unset fields unset.
  EXPECT_EQ(p.normalize("Vxlan", vx), vx);
  EXPECT_FALSE(vx.contains("addresses"));
  // Non-string junk does not throw.
  EXPECT_EQ(p.normalize("Bridge", {{"addresses", {1, "10.0.0.1/24"}}})["addresses"],
            Json({1, "10.0.0.1/24"}));
}

}  // namespace
}  // namespace nodeplane::net
