// NAT for bridges (`Bridge.spec.masquerade`) against the real nftables of the private network
// namespace main() made: what the plugin writes, read back with `nft -j list table`; drift fixed by
// the next apply and by the daemon's next pass; the rule and the table removed; a table nodeplane
// did not make never touched; the `ip-forward` and `nftables` check items; libnftables loaded only
// by a process that needs it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>

#include <chrono>
#include <fstream>
#include <functional>

#include "cli_util.hpp"
#include "nat_table.hpp"
#include "net_plugin.hpp"
#include "netns.hpp"
#include "support/plugin_rig.hpp"

namespace nodeplane::net {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
namespace fs = std::filesystem;
namespace nt = ::nodeplane::testing;
using namespace std::chrono_literals;

constexpr const char* kNft = "/usr/sbin/nft";

// `nft -j list table ip nodeplane`, null when the table is absent.
Json listing() {
  auto r = nt::run({kNft, "-j", "list", "table", "ip", "nodeplane"});
  if (r.code != 0) return nullptr;
  return Json::parse(r.out);
}
bool tableExists() { return nt::run({kNft, "list", "table", "ip", "nodeplane"}).code == 0; }

// The rules of the table whose comment is "bridge <name>".
std::vector<Json> rulesOf(const std::string& bridge) {
  std::vector<Json> out;
  Json l = listing();
  if (l.is_null()) return out;
  for (const Json& item : l["nftables"])
    if (item.contains("rule") && item["rule"].value("comment", "") == "bridge " + bridge)
      out.push_back(item["rule"]);
  return out;
}

// The expressions of the rule nodeplane writes for `bridge` and one subnet.
Json expectedExpr(const std::string& bridge, const std::string& addr, int len) {
  Json saddr = Json::parse(R"({"match": {"op": "==",
      "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": {"prefix": {}}}})");
  saddr["match"]["right"]["prefix"] = {{"addr", addr}, {"len", len}};
  Json out = Json::parse(R"({"match": {"op": "!=", "left": {"meta": {"key": "oifname"}}}})");
  out["match"]["right"] = bridge;
  return Json::array({saddr, out, Json::parse(R"({"masquerade": null})")});
}

Change makeChange(Action action, const std::string& name, const Json& desired,
                  const Json& observed = Json::object()) {
  Change c;
  c.action = action;
  c.id = ResourceId{"Bridge", name};
  c.desired = desired;
  c.observed = observed;
  return c;
}

std::optional<ObservedObject> observed(NetPlugin& p, const std::string& name) {
  auto all = p.observe({"Bridge"});
  EXPECT_TRUE(all.has_value()) << (all ? "" : all.error().str());
  if (!all) return std::nullopt;
  for (auto& o : *all)
    if (o.id.kind == "Bridge" && o.id.name == name) return o;
  return std::nullopt;
}

Json masqueradeOf(NetPlugin& p, const std::string& name) {
  auto o = observed(p, name);
  return o ? o->spec.value("masquerade", Json()) : Json("not observed");
}

void applyOk(NetPlugin& p, const Change& c) {
  test::PluginRig rig;
  auto r = rig.apply(p, c);
  ASSERT_TRUE(r.has_value()) << toString(c.action) << " " << c.id.str() << ": " << r.error().str();
}

// Every test starts from a namespace with no table and no link but lo.
class NetNat : public ::testing::Test {
 protected:
  void SetUp() override {
    NODEPLANE_REQUIRE_NETNS();
    if (tableExists()) nt::run({kNft, "delete", "table", "ip", "nodeplane"});
    nt::deleteAllLinksButLo();
    ASSERT_TRUE(p_.start());
  }
  void TearDown() override { p_.stop(); }

  test::PluginRig rig_;
  NetPlugin p_{rig_.services};
};

TEST_F(NetNat, ApplyReadBackDriftAndRemove) {
  Json desired = {
      {"addresses", {"192.168.100.1/24", "fd00:100::1/64"}}, {"up", true}, {"masquerade", true}};
  applyOk(p_, makeChange(Action::kCreate, "br-nat", desired));

  // Read back with nft: one table, marked with this agent's id; a nat chain on postrouting; one
  // rule for the bridge's IPv4 subnet leaving through any other interface.
  auto text = nt::run({kNft, "list", "table", "ip", "nodeplane"});
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_THAT(text.out, HasSubstr("comment \"nodeplane:00000000000000a1\""));
  bool chainSeen = false;
  const Json table = listing();
  ASSERT_FALSE(table.is_null());
  for (const Json& item : table["nftables"])
    if (item.contains("chain")) {
      chainSeen = true;
      EXPECT_EQ(item["chain"]["name"], "postrouting");
      EXPECT_EQ(item["chain"]["type"], "nat");
      EXPECT_EQ(item["chain"]["hook"], "postrouting");
      EXPECT_EQ(item["chain"]["prio"], 100);
    }
  EXPECT_TRUE(chainSeen);
  auto rules = rulesOf("br-nat");
  ASSERT_EQ(rules.size(), 1u) << listing().dump();
  EXPECT_EQ(rules[0]["expr"], expectedExpr("br-nat", "192.168.100.0", 24));
  EXPECT_EQ(masqueradeOf(p_, "br-nat"), Json(true));

  // Drift: the rule deleted by hand. Observe says so; the next apply puts it back.
  ASSERT_EQ(nt::run({kNft, "delete", "rule", "ip", "nodeplane", "postrouting", "handle",
                     std::to_string(rules[0]["handle"].get<std::uint64_t>())})
                .code,
            0);
  EXPECT_TRUE(rulesOf("br-nat").empty());
  auto drifted = observed(p_, "br-nat");
  ASSERT_TRUE(drifted);
  EXPECT_EQ(drifted->spec["masquerade"], false);
  applyOk(p_, makeChange(Action::kUpdate, "br-nat", desired, drifted->spec));
  ASSERT_EQ(rulesOf("br-nat").size(), 1u);
  EXPECT_EQ(masqueradeOf(p_, "br-nat"), Json(true));

  // The rule follows the bridge's addresses (one transaction: never two rules).
  Json moved = desired;
  moved["addresses"] = {"10.50.0.1/16"};
  applyOk(p_, makeChange(Action::kUpdate, "br-nat", moved, observed(p_, "br-nat")->spec));
  rules = rulesOf("br-nat");
  ASSERT_EQ(rules.size(), 1u);
  EXPECT_EQ(rules[0]["expr"], expectedExpr("br-nat", "10.50.0.0", 16));
  EXPECT_EQ(masqueradeOf(p_, "br-nat"), Json(true));

  // masquerade: false removes the rule, and with it the table (its last rule).
  Json off = moved;
  off["masquerade"] = false;
  applyOk(p_, makeChange(Action::kUpdate, "br-nat", off, observed(p_, "br-nat")->spec));
  EXPECT_FALSE(tableExists());
  EXPECT_EQ(masqueradeOf(p_, "br-nat"), Json(false));
  EXPECT_TRUE(nt::linkExists("br-nat"));
}

TEST_F(NetNat, TheTableGoesWithItsLastRule) {
  for (auto [name, addr] : {std::pair{"br-a", "10.1.0.1/24"}, std::pair{"br-b", "10.2.0.1/24"}})
    applyOk(p_, makeChange(Action::kCreate, name,
                           {{"addresses", {addr}}, {"up", true}, {"masquerade", true}}));
  EXPECT_EQ(rulesOf("br-a").size(), 1u);
  EXPECT_EQ(rulesOf("br-b").size(), 1u);

  applyOk(p_, makeChange(Action::kDelete, "br-a", Json::object(), observed(p_, "br-a")->spec));
  EXPECT_FALSE(nt::linkExists("br-a"));
  EXPECT_TRUE(rulesOf("br-a").empty());
  ASSERT_EQ(rulesOf("br-b").size(), 1u) << "the other bridge's rule stays";
  EXPECT_EQ(masqueradeOf(p_, "br-b"), Json(true));

  applyOk(p_, makeChange(Action::kDelete, "br-b", Json::object(), observed(p_, "br-b")->spec));
  EXPECT_FALSE(nt::linkExists("br-b"));
  EXPECT_FALSE(tableExists());
}

// A table named nodeplane that nodeplane did not make (no mark, or another agent's): masquerade
// is refused before anything changes, and nothing ever touches the table.
TEST_F(NetNat, NeverTouchesATableItDidNotMake) {
  ASSERT_EQ(nt::sh("nft add table ip nodeplane && nft 'add chain ip nodeplane postrouting { type "
                   "nat hook postrouting priority srcnat; }' && nft add rule ip nodeplane "
                   "postrouting oifname eth9 masquerade comment '\"bridge br-hand\"'")
                .code,
            0);
  const Json before = listing();
  ASSERT_FALSE(before.is_null());

  test::PluginRig rig;
  auto refused = rig.apply(p_, makeChange(Action::kCreate, "br-hand",
                                          {{"addresses", {"10.3.0.1/24"}}, {"masquerade", true}}));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().kind, ErrorKind::kConflict);
  EXPECT_EQ(refused.error().message,
            "nftables table ip nodeplane exists and nodeplane did not make it (it has no "
            "comment); not touched, so masquerade cannot be set");
  EXPECT_EQ(refused.error().hint,
            "remove or rename that table (nft delete table ip nodeplane), or set masquerade: "
            "false");
  EXPECT_FALSE(nt::linkExists("br-hand")) << "refused before the link was made";

  // A bridge of that name without masquerade, observed and deleted: the table is left alone.
  applyOk(p_, makeChange(Action::kCreate, "br-hand", {{"addresses", {"10.3.0.1/24"}}}));
  EXPECT_EQ(masqueradeOf(p_, "br-hand"), Json(false));
  applyOk(p_,
          makeChange(Action::kDelete, "br-hand", Json::object(), observed(p_, "br-hand")->spec));
  EXPECT_EQ(listing(), before);

  // Another agent's table: refused too, and said so.
  ASSERT_EQ(nt::sh("nft delete table ip nodeplane && nft add table ip nodeplane "
                   "'{ comment \"nodeplane:00000000000000b2\"; }'")
                .code,
            0);
  auto other = rig.apply(p_, makeChange(Action::kCreate, "br-hand",
                                        {{"addresses", {"10.3.0.1/24"}}, {"masquerade", true}}));
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().message,
            "nftables table ip nodeplane exists and it carries another nodeplane agent's mark "
            "(00000000000000b2); not touched, so masquerade cannot be set");
  EXPECT_TRUE(tableExists());
}

CheckItem item(const std::vector<CheckItem>& items, const std::string& name) {
  for (const auto& i : items)
    if (i.name == name) return i;
  return CheckItem{"missing: " + name};
}

// check() reports forwarding and never changes it.
TEST_F(NetNat, CheckSaysWhetherForwardingIsOn) {
  const char* kForward = "/proc/sys/net/ipv4/ip_forward";  // this namespace's own
  std::ofstream(kForward) << "0\n";
  auto off = item(p_.check(), "ip-forward");
  EXPECT_FALSE(off.ok);
  EXPECT_FALSE(off.required);
  EXPECT_EQ(off.detail,
            "net.ipv4.ip_forward is 0: a Bridge with masquerade: true gives its guests no way "
            "out; turn it on with `sysctl -w net.ipv4.ip_forward=1` and keep it with a file in "
            "/etc/sysctl.d/ (nodeplane never changes it)");
  EXPECT_EQ(nt::slurp(kForward), "0\n");

  std::ofstream(kForward) << "1\n";
  auto on = item(p_.check(), "ip-forward");
  EXPECT_TRUE(on.ok) << on.detail;
  EXPECT_EQ(on.detail, "net.ipv4.ip_forward is 1 (NAT bridges can forward)");

  auto nft = item(p_.check(), "nftables");
  EXPECT_TRUE(nft.ok) << nft.detail;
  EXPECT_FALSE(nft.required);
  EXPECT_EQ(nft.detail,
            "nf_tables answers; table ip nodeplane absent (made when a Bridge sets masquerade)");
  ASSERT_EQ(nt::sh("nft add table ip nodeplane").code, 0);
  auto foreign = item(p_.check(), "nftables");
  EXPECT_FALSE(foreign.ok);
  EXPECT_EQ(foreign.detail,
            "table ip nodeplane exists and nodeplane did not make it: masquerade is refused "
            "until it is removed or renamed (nft delete table ip nodeplane)");
}

// ---------------------------------------------------------------------------------------------
// The real binary: diff and apply, drift, prune, bad input, and which process loads libnftables.

constexpr const char* kPlain = R"(apiVersion: nodeplane.io/v1
kind: Bridge
metadata: {name: br-plain}
spec: {addresses: [10.9.0.1/24], up: true}
)";
constexpr const char* kNat = R"(apiVersion: nodeplane.io/v1
kind: Bridge
metadata: {name: br-nat}
spec:
  addresses: [192.168.100.1/24, fd00:100::1/64]
  up: true
  masquerade: true
)";

class NatCli : public ::testing::Test {
 protected:
  void SetUp() override {
    NODEPLANE_REQUIRE_NETNS();
    if (tableExists()) nt::run({kNft, "delete", "table", "ip", "nodeplane"});
    nt::deleteAllLinksButLo();
    config_.write("agent.yaml", "lockTimeoutSeconds: 1\n");
  }
  nt::CliResult np(std::vector<std::string> args, const std::vector<std::string>& env = {}) {
    std::vector<std::string> argv = {NODEPLANE_BINARY, "--state-dir", (state_ / "state").string(),
                                     "--config", (config_ / "agent.yaml").string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return nt::run(argv, env);
  }
  nt::TempDir state_, config_, desired_;
};

TEST_F(NatCli, DiffApplyDriftPruneAndTheLibraryOnlyWhereNeeded) {
  // LD_DEBUG=files: the dynamic loader names every library it loads, dlopen()ed ones too.
  const std::vector<std::string> traceLoads = {"LD_DEBUG=files"};
  desired_.write("plain.yaml", kPlain);
  auto plain = np({"apply", "-f", desired_.path()}, traceLoads);
  ASSERT_EQ(plain.code, 0) << plain.out << plain.err;
  EXPECT_THAT(plain.err, Not(HasSubstr("libnftables"))) << "no table, no masquerade: not loaded";
  EXPECT_FALSE(tableExists());

  desired_.write("nat.yaml", kNat);
  auto d1 = np({"diff", "-f", desired_.path()});
  EXPECT_EQ(d1.code, 2) << d1.err;
  EXPECT_THAT(d1.out, HasSubstr("+ Bridge/br-nat create\n"));
  auto a1 = np({"apply", "-f", desired_.path()}, traceLoads);
  ASSERT_EQ(a1.code, 0) << a1.out << a1.err;
  EXPECT_THAT(a1.err, HasSubstr("libnftables.so.1"));
  ASSERT_EQ(rulesOf("br-nat").size(), 1u);
  auto d2 = np({"diff", "-f", desired_.path()});
  EXPECT_EQ(d2.code, 0) << d2.out << d2.err;
  EXPECT_THAT(d2.out, HasSubstr("No changes"));

  // Drift: deleted by hand, shown by diff, put back by apply.
  const auto handle = rulesOf("br-nat")[0]["handle"].get<std::uint64_t>();
  ASSERT_EQ(nt::run({kNft, "delete", "rule", "ip", "nodeplane", "postrouting", "handle",
                     std::to_string(handle)})
                .code,
            0);
  auto d3 = np({"diff", "-f", desired_.path()});
  EXPECT_EQ(d3.code, 2);
  EXPECT_EQ(d3.out,
            "~ Bridge/br-nat update masquerade: false -> true\n"
            "Plan: 0 to create, 1 to update, 0 to replace, 0 to delete, 1 in sync.\n");
  ASSERT_EQ(np({"apply", "-f", desired_.path()}).code, 0);
  EXPECT_EQ(rulesOf("br-nat").size(), 1u);
  EXPECT_EQ(np({"diff", "-f", desired_.path()}).code, 0);

  // Pruned with its bridge: the table goes with its last rule.
  fs::remove(desired_ / "nat.yaml");
  auto pruned = np({"apply", "-f", desired_.path()});
  ASSERT_EQ(pruned.code, 0) << pruned.out << pruned.err;
  EXPECT_FALSE(nt::linkExists("br-nat"));
  EXPECT_FALSE(tableExists());
  EXPECT_TRUE(nt::linkExists("br-plain"));
}

TEST_F(NatCli, MasqueradeWithoutAnIPv4AddressIsRefused) {
  desired_.write("bad.yaml", R"(apiVersion: nodeplane.io/v1
kind: Bridge
metadata: {name: br-v6}
spec:
  addresses: [fd00:6::1/64]
  masquerade: true
)");
  for (const char* cmd : {"validate", "apply"}) {
    auto r = np({cmd, "-f", desired_.path()});
    EXPECT_EQ(r.code, 1) << cmd;
    EXPECT_THAT(r.err + r.out,
                HasSubstr("Bridge/br-v6 spec.masquerade: masquerade needs an IPv4 address on the "
                          "bridge: the NAT rule matches the bridge's IPv4 subnets, and "
                          "spec.addresses has none"))
        << cmd;
    EXPECT_THAT(r.err + r.out, HasSubstr("bad.yaml:")) << cmd;
  }
  EXPECT_FALSE(nt::linkExists("br-v6"));
  EXPECT_FALSE(tableExists());
}

// The daemon, with the resync an hour away: only the nftables event can bring the rule back.
TEST_F(NatCli, TheDaemonPutsBackARuleDeletedByHand) {
  config_.write("agent.yaml", "resyncSeconds: 3600\ndebounceMilliseconds: 100\n");
  // IPv6 duplicate address detection would announce the bridge's address a second later: an
  // event that wakes the daemon too (see daemon_test.cpp). Off in this namespace only.
  for (const char* conf : {"all", "default"})
    std::ofstream(std::string("/proc/sys/net/ipv6/conf/") + conf + "/accept_dad") << "0\n";
  desired_.write("nat.yaml", kNat);
  const fs::path log = state_ / "daemon.log";
  nt::Spawned daemon = nt::spawnLogged(
      {NODEPLANE_BINARY, "--state-dir", (state_ / "state").string(), "--config",
       (config_ / "agent.yaml").string(), "--log-level", "debug", "run", "-f", desired_.path()},
      log, log);
  ASSERT_TRUE(daemon) << daemon.error;
  auto eventually = [&](const std::string& what, const std::function<bool()>& cond) {
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (!cond()) {
      if (!nt::running(daemon) || std::chrono::steady_clock::now() >= deadline)
        return ::testing::AssertionFailure() << "no " << what << "; log:\n" << nt::slurp(log);
      ::poll(nullptr, 0, 20);  // polling interval of the condition, not a synchronisation
    }
    return ::testing::AssertionSuccess();
  };
  ASSERT_TRUE(eventually("rule for br-nat", [] { return rulesOf("br-nat").size() == 1; }));
  // Then a pass that finds nothing to do: the daemon is idle, and no link or address event is
  // still on its way (DAD is off in this namespace), so only an nftables event can wake it.
  ASSERT_TRUE(eventually("a pass in sync", [&] {
    return nt::slurp(log).find("in sync: 1 resources") != std::string::npos;
  }));
  const auto handle = rulesOf("br-nat")[0]["handle"].get<std::uint64_t>();
  ASSERT_EQ(nt::run({kNft, "delete", "rule", "ip", "nodeplane", "postrouting", "handle",
                     std::to_string(handle)})
                .code,
            0);
  EXPECT_TRUE(eventually("rule put back", [&] {
    auto r = rulesOf("br-nat");
    return r.size() == 1 && r[0]["handle"].get<std::uint64_t>() != handle;
  }));
  ASSERT_TRUE(nt::sendSignal(daemon, SIGTERM));
  EXPECT_EQ(nt::waitExitCode(daemon, 30s), 0) << nt::slurp(log);
}

}  // namespace
}  // namespace nodeplane::net
