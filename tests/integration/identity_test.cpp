// Identity and ownership across agents, with the real binary and real bridges in this process's
// private network namespace: a saved plan acts only on the object it was made against (its
// ifindex), two agents (two state directories) keep to their own links, and metadata.adopt /
// metadata.deletionPolicy decide whether a pruned link is released or deleted.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "cli_util.hpp"
#include "netns.hpp"

namespace nodeplane::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
namespace fs = std::filesystem;

std::string bridgeDoc(const std::string& name, const std::string& metadata = "") {
  return "apiVersion: nodeplane.io/v1\nkind: Bridge\nmetadata: {name: " + name +
         (metadata.empty() ? "" : ", " + metadata) + "}\nspec: {mtu: 1500, up: true}\n";
}

std::string alias(const std::string& link) {
  auto info = linkInfo(link);
  return info.is_object() ? info.value("ifalias", "") : "(no such link)";
}

class Identity : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!inPrivateNetns()) GTEST_SKIP() << "needs root to create a private network namespace";
    deleteAllLinksButLo();
    config_.write("agent.yaml", "lockTimeoutSeconds: 1\n");
  }

  // nodeplane with state directory `agent` (one per agent).
  CliResult np(const std::string& agent, std::vector<std::string> args) {
    std::vector<std::string> argv = {NODEPLANE_BINARY, "--state-dir", (state_ / agent).string(),
                                     "--config", (config_ / "agent.yaml").string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv);
  }

  // A directory holding exactly these documents.
  std::string files(const std::string& dir, const std::vector<std::string>& docs) {
    const fs::path d = desired_ / dir;
    fs::remove_all(d);
    fs::create_directories(d);
    for (std::size_t i = 0; i < docs.size(); ++i)
      desired_.write(dir + "/" + std::to_string(i) + ".yaml", docs[i]);
    return d.string();
  }

  TempDir state_, config_, desired_;
};

TEST_F(Identity, ASavedPlanDoesNotDeleteABridgeMadeAgainUnderTheSameNameAndMark) {
  ASSERT_EQ(
      np("a", {"apply", "-f", files("one", {bridgeDoc("br-old"), bridgeDoc("br-keep")})}).code, 0);
  const std::string mark = alias("br-old");
  ASSERT_THAT(mark, HasSubstr("nodeplane:"));
  const int index = linkInfo("br-old").value("ifindex", 0);

  auto d = np("a", {"--output", "json", "diff", "-f", files("two", {bridgeDoc("br-keep")})});
  ASSERT_EQ(d.code, 2) << d.out << d.err;
  desired_.write("plan.json", d.out);
  auto plan = nlohmann::json::parse(d.out);
  ASSERT_EQ(plan["changes"][0]["action"], "delete");
  EXPECT_EQ(plan["changes"][0]["uid"], std::to_string(index));

  // By hand: removed and made again, with the same name, spec and mark.
  ASSERT_EQ(
      sh("ip link del br-old && ip link add br-old type bridge && ip link set br-old alias '" +
         mark + "' up")
          .code,
      0);
  ASSERT_NE(linkInfo("br-old").value("ifindex", 0), index);

  auto a = np("a", {"apply", "--plan", (desired_ / "plan.json").string()});
  EXPECT_EQ(a.code, 1) << a.out << a.err;
  EXPECT_THAT(a.out, HasSubstr("Bridge/br-old: refused to delete it: it is not the object the plan "
                               "was made against (uid " +
                               std::to_string(index) + " then, "));
  EXPECT_TRUE(linkExists("br-old")) << "the bridge made by hand was deleted";
}

TEST_F(Identity, TwoAgentsInOneNamespacePruneOnlyTheirOwnBridges) {
  ASSERT_EQ(np("a", {"apply", "-f", files("a1", {bridgeDoc("br-a1")})}).code, 0);
  ASSERT_EQ(np("b", {"apply", "-f", files("b1", {bridgeDoc("br-b1")})}).code, 0);
  EXPECT_NE(alias("br-a1"), alias("br-b1")) << "each agent marks with its own id";

  // Each agent's desired state now holds another bridge: each prunes its own old one only.
  auto a = np("a", {"apply", "-f", files("a2", {bridgeDoc("br-a2")})});
  EXPECT_EQ(a.code, 0) << a.out << a.err;
  EXPECT_THAT(a.out, HasSubstr("Bridge/br-a1 deleted"));
  EXPECT_TRUE(linkExists("br-b1")) << "agent a pruned agent b's bridge";
  auto b = np("b", {"apply", "-f", files("b2", {bridgeDoc("br-b2")})});
  EXPECT_EQ(b.code, 0) << b.out << b.err;
  EXPECT_TRUE(linkExists("br-a2")) << "agent b pruned agent a's bridge";
  EXPECT_FALSE(linkExists("br-b1"));

  // Neither takes the other's, even when asked to adopt it.
  auto take =
      np("a", {"diff", "-f", files("a3", {bridgeDoc("br-a2"), bridgeDoc("br-b2", "adopt: true")})});
  EXPECT_EQ(take.code, 1) << take.out << take.err;
  EXPECT_THAT(take.out, HasSubstr("Bridge/br-b2: exists, managed by another nodeplane agent "
                                  "(agent id "));
  auto e = np("a", {"export", "--kind", "Bridge"});
  EXPECT_EQ(e.code, 0) << e.err;
  EXPECT_THAT(e.out, HasSubstr("name: br-a2"));
  EXPECT_THAT(e.out, Not(HasSubstr("br-b2"))) << "export offered agent b's bridge to agent a";
}

TEST_F(Identity, AnAdoptedBridgeIsReleasedWhenItsFileGoesUnlessItAskedForDelete) {
  ASSERT_EQ(sh("ip link add br-host type bridge && ip link set br-host up").code, 0);
  ASSERT_EQ(sh("ip link add br-del type bridge && ip link set br-del up").code, 0);
  auto a = np("a", {"apply", "-f",
                    files("with", {bridgeDoc("br-host", "adopt: true"),
                                   bridgeDoc("br-del", "adopt: true, deletionPolicy: Delete"),
                                   bridgeDoc("br-made")})});
  ASSERT_EQ(a.code, 0) << a.out << a.err;
  EXPECT_THAT(alias("br-host"), HasSubstr("nodeplane:"));

  auto d = np("a", {"diff", "-f", files("without", {bridgeDoc("br-other")})});
  EXPECT_EQ(d.code, 2) << d.out << d.err;
  EXPECT_THAT(d.out,
              HasSubstr("~- Bridge/br-host release (the mark is removed, the object stays)\n"));
  EXPECT_THAT(d.out, HasSubstr("- Bridge/br-del delete\n"));
  EXPECT_THAT(d.out, HasSubstr("- Bridge/br-made delete\n"));

  auto pruned = np("a", {"apply", "-f", (desired_ / "without").string()});
  EXPECT_EQ(pruned.code, 0) << pruned.out << pruned.err;
  EXPECT_THAT(pruned.out, HasSubstr("Bridge/br-host released"));
  EXPECT_TRUE(linkExists("br-host")) << "an adopted host bridge is released, not deleted";
  EXPECT_EQ(alias("br-host"), "") << "released: no mark left";
  EXPECT_FALSE(linkExists("br-del")) << "deletionPolicy: Delete";
  EXPECT_FALSE(linkExists("br-made")) << "what nodeplane made is deleted";
  auto again = np("a", {"diff", "-f", (desired_ / "without").string()});
  EXPECT_EQ(again.code, 0) << again.out << "the released bridge is no longer nodeplane's";
}

TEST_F(Identity, SpecAdoptIsAnErrorThatSaysWhereItMoved) {
  auto v = np("a", {"validate", "-f",
                    files("old", {"apiVersion: nodeplane.io/v1\nkind: Bridge\nmetadata: {name: "
                                  "br0}\nspec:\n  mtu: 1500\n  adopt: true\n"})});
  EXPECT_EQ(v.code, 1);
  EXPECT_THAT(v.err + v.out,
              HasSubstr("0.yaml:6:3: Bridge/br0 spec.adopt: unknown field \"adopt\""));
  EXPECT_THAT(v.err + v.out, HasSubstr("moved to metadata.adopt"));
}

// `export` writes what it observes; a sensitive field's value (a password) must never leave the
// process in text, so an object holding one is not exported (named on stderr), the others are.
TEST_F(Identity, ExportNeverWritesASensitiveValue) {
  const std::string widgets = std::string(NODEPLANE_TEST_PLUGIN_DIR) + "/widget";
  const std::string seed =
      "NODEPLANE_TEST_WIDGET={\"existing\": ["
      "{\"name\": \"s\", \"marked\": true, \"spec\": {\"size\": 3, \"secret\": "
      "\"hunter2-pw\"}}, {\"name\": \"plain\", \"marked\": true, \"spec\": {\"size\": 2}}]}";
  for (const char* output : {"text", "json"}) {
    auto e = run(
        {NODEPLANE_BINARY, "--state-dir", (state_ / "a").string(), "--config",
         (config_ / "agent.yaml").string(), "--plugin-dir", widgets, "--output", output, "export"},
        {seed});
    EXPECT_EQ(e.code, 1) << e.out << e.err;
    EXPECT_THAT(e.out + e.err, Not(HasSubstr("hunter2-pw"))) << output;
    EXPECT_THAT(e.out, HasSubstr("plain")) << output;
    EXPECT_THAT(e.err, HasSubstr("Widget/s: not exported: spec.secret is sensitive, and export "
                                 "never writes a sensitive value (write this object's file by "
                                 "hand)"))
        << output;
  }
}

// The agent-id file removed (a new id is made): the store still records the bridges, which carry
// the old id. They are left alone, and the error says why, not "changed or re-created by hand".
TEST_F(Identity, ANewAgentIdSaysTheIdFileWasReplacedAndTouchesNothing) {
  auto a = np("a", {"apply", "-f", files("two", {bridgeDoc("br-kept"), bridgeDoc("br-gone")})});
  ASSERT_EQ(a.code, 0) << a.out << a.err;
  const std::string old = alias("br-kept");
  ASSERT_TRUE(fs::remove(state_ / "a" / "agent-id"));
  auto b = np("a", {"apply", "-f", files("one", {bridgeDoc("br-kept")})});
  EXPECT_EQ(b.code, 1) << b.out << b.err;
  const std::string said =
      "recorded as owned in this agent's state store, but it carries the mark of agent id " +
      old.substr(std::string("nodeplane:").size()) +
      ", not this agent's: was the agent-id file in the state directory replaced or removed? "
      "nodeplane leaves it alone";
  EXPECT_THAT(b.out + b.err, HasSubstr("Bridge/br-kept: " + said + " (if it is this agent's"));
  EXPECT_THAT(b.out + b.err, HasSubstr("Bridge/br-gone: " + said + "; not deleted"));
  EXPECT_TRUE(linkExists("br-gone"));
  EXPECT_EQ(alias("br-kept"), old);
  EXPECT_EQ(alias("br-gone"), old);
}

// The mark is the alias: adopting a bridge that had one (a person's note, another tool's) takes
// it, and releasing the bridge puts it back, so the bridge is left as nodeplane found it.
TEST_F(Identity, AReleasedBridgeGetsBackTheAliasItHadBeforeItWasAdopted) {
  ASSERT_EQ(sh("ip link add br-note type bridge && ip link set br-note alias 'ops: uplink'").code,
            0);
  auto a = np("a", {"apply", "-f", files("with", {bridgeDoc("br-note", "adopt: true")})});
  ASSERT_EQ(a.code, 0) << a.out << a.err;
  EXPECT_THAT(alias("br-note"), HasSubstr("nodeplane:"));
  auto r = np("a", {"apply", "-f", files("without", {bridgeDoc("br-other")})});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("Bridge/br-note released"));
  EXPECT_EQ(alias("br-note"), "ops: uplink");
}

}  // namespace
}  // namespace nodeplane::testing
