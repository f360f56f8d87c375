// The real `nodeplane` binary against the real kernel, in this process's private network
// namespace: exit codes, output formats, fail-closed validation, ownership, saved plans, export,
// crash recovery, the lock.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "cli_util.hpp"
#include "netns.hpp"
#include "store.hpp"

namespace nodeplane::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
namespace fs = std::filesystem;

const std::string kExamples = std::string(NODEPLANE_SOURCE_DIR) + "/examples/net";

constexpr const char* kBridge = R"(apiVersion: nodeplane.io/v1
kind: Bridge
metadata: {name: %NAME%}
spec: {mtu: %MTU%, up: true}
)";

std::string bridge(const std::string& name, int mtu) {
  std::string s = kBridge;
  s.replace(s.find("%NAME%"), 6, name);
  s.replace(s.find("%MTU%"), 5, std::to_string(mtu));
  return s;
}

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!inPrivateNetns()) GTEST_SKIP() << "needs root to create a private network namespace";
    // Tests in one process share its namespace: start each from nothing but lo.
    for (const auto& l : nlohmann::json::parse(run({"/usr/sbin/ip", "-j", "link", "show"}).out))
      if (l.value("ifname", "") != "lo")
        sh("ip link del " + l.value("ifname", "") + " 2>/dev/null");
    sh("ip link set lo up");
    config_.write("agent.yaml", "lockTimeoutSeconds: 1\n");
  }

  CliResult np(std::vector<std::string> args, const std::vector<std::string>& env = {}) {
    std::vector<std::string> argv = {NODEPLANE_BINARY, "--state-dir", (state_ / "state").string(),
                                     "--config", (config_ / "agent.yaml").string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, env);
  }

  int mtu(const std::string& link) { return linkInfo(link).value("mtu", -1); }

  TempDir state_, config_, desired_;
};

TEST_F(Cli, ExamplesDiffApplyDiff) {
  auto v = np({"validate", "-f", kExamples});
  EXPECT_EQ(v.code, 0) << v.err;
  EXPECT_THAT(v.out, HasSubstr("valid: 4 resource(s) in 3 file(s)"));

  auto d1 = np({"diff", "-f", kExamples});
  EXPECT_EQ(d1.code, 2) << d1.err;
  EXPECT_THAT(d1.out, HasSubstr("+ Bridge/br-vm create\n"));
  EXPECT_THAT(d1.out, HasSubstr("Plan: 4 to create"));

  auto a = np({"apply", "-f", kExamples});
  ASSERT_EQ(a.code, 0) << a.out << a.err;
  EXPECT_TRUE(linkExists("br-vm"));
  EXPECT_TRUE(linkExists("vx100"));
  EXPECT_TRUE(linkExists("tap-vm0"));
  EXPECT_EQ(linkInfo("vx100").value("master", ""), "br-overlay");

  auto d2 = np({"diff", "-f", kExamples});
  EXPECT_EQ(d2.code, 0) << d2.out << d2.err;
  EXPECT_THAT(d2.out, HasSubstr("No changes"));

  auto st = np({"--output", "json", "status"});
  ASSERT_EQ(st.code, 0);
  auto j = nlohmann::json::parse(st.out);
  EXPECT_EQ(j["owned"].size(), 4u);
}

TEST_F(Cli, DiffShowsUpdateReplaceAndDelete) {
  desired_.write("a.yaml", bridge("br-a", 1500));
  desired_.write("b.yaml", bridge("br-b", 1500));
  desired_.write("vx.yaml", R"(apiVersion: nodeplane.io/v1
kind: Vxlan
metadata: {name: vx-a}
spec: {vni: 100, local: 10.0.0.1, remote: 10.0.0.2, bridge: br-a}
)");
  ASSERT_EQ(np({"apply", "-f", desired_.path()}).code, 0);

  desired_.write("a.yaml", bridge("br-a", 1400));
  desired_.write("vx.yaml", R"(apiVersion: nodeplane.io/v1
kind: Vxlan
metadata: {name: vx-a}
spec: {vni: 200, local: 10.0.0.1, remote: 10.0.0.2, bridge: br-a}
)");
  fs::remove(desired_ / "b.yaml");
  auto d = np({"diff", "-f", desired_.path()});
  EXPECT_EQ(d.code, 2);
  EXPECT_EQ(d.out,
            "- Bridge/br-b delete\n"
            "~ Bridge/br-a update mtu: 1500 -> 1400\n"
            "-/+ Vxlan/vx-a replace vni: 100 -> 200\n"
            "Plan: 0 to create, 1 to update, 1 to replace, 1 to delete, 0 in sync.\n");

  auto noPrune = np({"diff", "--no-prune", "-f", desired_.path()});
  EXPECT_THAT(noPrune.out, Not(HasSubstr("- Bridge/br-b delete")));

  auto json = np({"--output", "json", "diff", "-f", desired_.path()});
  auto j = nlohmann::json::parse(json.out);
  EXPECT_EQ(j["summary"]["replace"], 1);
  EXPECT_EQ(j["changes"][2]["fields"][0]["path"], "vni");
  EXPECT_EQ(j["changes"][2]["fields"][0]["forcesReplace"], true);

  ASSERT_EQ(np({"apply", "-f", desired_.path()}).code, 0);
  EXPECT_FALSE(linkExists("br-b"));
  EXPECT_EQ(mtu("br-a"), 1400);
  EXPECT_EQ(linkInfo("vx-a")["linkinfo"]["info_data"].value("id", 0), 200);
  EXPECT_EQ(np({"diff", "-f", desired_.path()}).code, 0);
}

// One bad file: exit 1, every error listed with file:line, nothing applied, nothing pruned.
TEST_F(Cli, ABadFileChangesNothing) {
  desired_.write("good.yaml", bridge("br-keep", 1500));
  ASSERT_EQ(np({"apply", "-f", desired_.path()}).code, 0);

  desired_.write("new.yaml", bridge("br-new", 1500));
  fs::remove(desired_ / "good.yaml");  // would be pruned...
  desired_.write("bad.yaml", R"(apiVersion: nodeplane.io/v1
kind: Bridge
metadata: {name: br-bad}
spec:
  mtu: 20
  addresses: ["10.0.0.300/24"]
)");
  auto v = np({"validate", "-f", desired_.path()});
  EXPECT_EQ(v.code, 1);
  EXPECT_THAT(v.err, HasSubstr("bad.yaml:5:3: Bridge/br-bad spec.mtu: "));
  EXPECT_THAT(v.err, HasSubstr("out of range 68..65535"));

  auto a = np({"apply", "-f", desired_.path()});
  EXPECT_EQ(a.code, 1);
  EXPECT_THAT(a.err, HasSubstr("bad.yaml:5"));
  EXPECT_THAT(a.err, HasSubstr("nothing was applied or pruned"));
  EXPECT_TRUE(linkExists("br-keep")) << "...but one bad file means nothing is pruned";
  EXPECT_FALSE(linkExists("br-new")) << "...and nothing is applied";
  EXPECT_FALSE(linkExists("br-bad"));

  auto d = np({"diff", "-f", desired_.path()});
  EXPECT_EQ(d.code, 1);
}

struct BadCase {
  const char* name;
  const char* yaml;
  const char* expected;  // substring of stderr, file:line included
};
void PrintTo(const BadCase& c, std::ostream* os) { *os << c.name; }

class CliBadInput : public Cli, public ::testing::WithParamInterface<BadCase> {};

TEST_P(CliBadInput, IsRefusedWithLocation) {
  desired_.write("bad.yaml", GetParam().yaml);
  auto v = np({"validate", "-f", (desired_ / "bad.yaml").string()});
  EXPECT_EQ(v.code, 1) << v.out;
  EXPECT_THAT(v.err, HasSubstr(GetParam().expected));
  auto a = np({"apply", "-f", (desired_ / "bad.yaml").string()});
  EXPECT_EQ(a.code, 1);
  auto links = run({"/usr/sbin/ip", "-j", "link", "show"});
  EXPECT_EQ(nlohmann::json::parse(links.out).size(), 1u) << "only lo: " << links.out;
}

const char* const kHead = "apiVersion: nodeplane.io/v1\n";

INSTANTIATE_TEST_SUITE_P(
    Cases, CliBadInput,
    ::testing::Values(
        BadCase{"UnknownKind", "apiVersion: nodeplane.io/v1\nkind: Brdge\nmetadata: {name: x}\n",
                "bad.yaml:2:1: Brdge/x kind: unknown kind \"Brdge\" (known: Bridge, Tap, Vxlan)"},
        BadCase{
            "UnknownField",
            "apiVersion: nodeplane.io/v1\nkind: Bridge\nmetadata: {name: x}\nspec:\n  mtux: 9000\n",
            "bad.yaml:5:3: Bridge/x spec.mtux: unknown field \"mtux\""},
        BadCase{
            "WrongType",
            "apiVersion: nodeplane.io/v1\nkind: Bridge\nmetadata: {name: x}\nspec:\n  mtu: big\n",
            "bad.yaml:5:3: Bridge/x spec.mtu: expected an integer"},
        BadCase{
            "BadInterfaceName",
            "apiVersion: nodeplane.io/v1\nkind: Bridge\nmetadata: {name: a-name-far-too-long}\n",
            "bad.yaml:3"},
        BadCase{"BadCidr",
                "apiVersion: nodeplane.io/v1\nkind: Bridge\nmetadata: {name: x}\nspec:\n"
                "  addresses: [10.0.0.1/24, 10.0.0.1/33]\n",
                "spec.addresses[1]"},
        BadCase{"VniOutOfRange",
                "apiVersion: nodeplane.io/v1\nkind: Vxlan\nmetadata: {name: x}\nspec:\n"
                "  vni: 16777216\n  remote: 10.0.0.2\n",
                "bad.yaml:5:3: Vxlan/x spec.vni: "},
        BadCase{"DanglingReference",
                "apiVersion: nodeplane.io/v1\nkind: Tap\nmetadata: {name: t0}\nspec:\n"
                "  bridge: br-nowhere\n",
                "bad.yaml:5:3: Tap/t0 spec.bridge: Bridge \"br-nowhere\" is not defined"},
        BadCase{"DuplicateKey",
                "apiVersion: nodeplane.io/v1\nkind: Bridge\nmetadata: {name: x}\nspec:\n"
                "  mtu: 1500\n  mtu: 1400\n",
                "bad.yaml:6"},
        BadCase{"SyntaxError", "apiVersion: nodeplane.io/v1\nkind: [Bridge\n", "bad.yaml:"},
        BadCase{"Tab", "apiVersion: nodeplane.io/v1\nkind: Bridge\nmetadata:\n\tname: x\n",
                "bad.yaml:4"},
        BadCase{"WrongApiVersion", "apiVersion: v2\nkind: Bridge\nmetadata: {name: x}\n",
                "bad.yaml:1"},
        BadCase{"NotAMapping", "- just\n- a list\n", "bad.yaml:1"},
        BadCase{"BinaryGarbage", "\x7f\x45\x4c\x46\x02\x01\xfe\xff\x01\x02garbage\n", "bad.yaml:1"},
        BadCase{"AliasBomb",
                "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, "
                "*c, *c]\n"
                "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, "
                "*e, *e]\n"
                "g: [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n",
                "alias expansion limit"},
        BadCase{"DuplicateResource",
                "apiVersion: nodeplane.io/v1\nkind: Bridge\nmetadata: {name: x}\n---\n"
                "apiVersion: nodeplane.io/v1\nkind: Bridge\nmetadata: {name: x}\n",
                "bad.yaml:7"}),
    [](const ::testing::TestParamInfo<BadCase>& i) { return std::string(i.param.name); });

TEST_F(Cli, RefusesAnUnmanagedLinkUntilAdopted) {
  ASSERT_EQ(sh("ip link add br-hand type bridge && ip link set br-hand mtu 1500").code, 0);
  desired_.write("b.yaml", bridge("br-hand", 1400));
  auto a = np({"apply", "-f", desired_.path()});
  EXPECT_EQ(a.code, 1);
  EXPECT_THAT(a.out, HasSubstr("Bridge/br-hand: exists, not managed by nodeplane (set `adopt: "
                               "true` in its spec"));
  EXPECT_EQ(mtu("br-hand"), 1500) << "an unmanaged link is never changed";

  desired_.write("b.yaml", bridge("br-hand", 1400) + "  # adopted below\n");
  std::string adopted = bridge("br-hand", 1400);
  adopted.replace(adopted.find("up: true"), 8, "up: true, adopt: true");
  desired_.write("b.yaml", adopted);
  auto d = np({"diff", "-f", desired_.path()});
  EXPECT_THAT(d.out, HasSubstr("~ Bridge/br-hand update (adopt) mtu: 1500 -> 1400"));
  ASSERT_EQ(np({"apply", "-f", desired_.path()}).code, 0);
  EXPECT_EQ(mtu("br-hand"), 1400);
  EXPECT_EQ(linkInfo("br-hand").value("ifalias", ""), "nodeplane");
}

TEST_F(Cli, NeverPrunesWhatItDoesNotOwn) {
  ASSERT_EQ(sh("ip link add br-other type bridge").code, 0);
  desired_.write("a.yaml", bridge("br-mine", 1500));
  ASSERT_EQ(np({"apply", "-f", desired_.path()}).code, 0);
  fs::remove(desired_ / "a.yaml");
  desired_.write("empty.yaml", "# nothing\n");
  auto a = np({"apply", "-f", desired_.path(), "--allow-empty"});
  EXPECT_EQ(a.code, 0) << a.out << a.err;
  EXPECT_FALSE(linkExists("br-mine"));
  EXPECT_TRUE(linkExists("br-other"));
}

// An empty source is more often a broken checkout or a half-written file than an intent: it
// deletes what nodeplane owns only when asked to.
TEST_F(Cli, ApplyOfAnEmptySourcePrunesOnlyWithAllowEmpty) {
  desired_.write("empty.yaml", "# nothing\n");
  auto fresh = np({"apply", "-f", desired_.path()});  // owns nothing: nothing to refuse
  EXPECT_EQ(fresh.code, 0) << fresh.out << fresh.err;

  desired_.write("a.yaml", bridge("br-e", 1500));
  ASSERT_EQ(np({"apply", "-f", desired_.path()}).code, 0);
  fs::remove(desired_ / "a.yaml");
  auto refused = np({"apply", "-f", desired_.path()});
  EXPECT_EQ(refused.code, 1) << refused.out << refused.err;
  EXPECT_THAT(refused.err,
              HasSubstr("error: the desired state is empty (1 file(s), no resource for this node): "
                        "refusing to delete the 1 object(s) nodeplane owns (Bridge/br-e) (pass "
                        "--allow-empty to delete them, or --no-prune to keep them)\n"
                        "nothing was applied or pruned\n"));
  EXPECT_TRUE(linkExists("br-e"));

  auto kept = np({"apply", "-f", desired_.path(), "--no-prune"});
  EXPECT_EQ(kept.code, 0) << kept.out << kept.err;
  EXPECT_TRUE(linkExists("br-e"));

  auto allowed = np({"apply", "-f", desired_.path(), "--allow-empty"});
  EXPECT_EQ(allowed.code, 0) << allowed.out << allowed.err;
  EXPECT_THAT(allowed.out, HasSubstr("Bridge/br-e deleted"));
  EXPECT_FALSE(linkExists("br-e"));
}

TEST_F(Cli, SavedPlanAppliesOnlyToTheHostItWasMadeFor) {
  desired_.write("a.yaml", bridge("br-p", 1500));
  auto d = np({"--output", "json", "diff", "-f", desired_.path()});
  ASSERT_EQ(d.code, 2);
  desired_.write("plan.json", d.out);
  auto a = np({"apply", "--plan", (desired_ / "plan.json").string()});
  EXPECT_EQ(a.code, 0) << a.out << a.err;
  EXPECT_TRUE(linkExists("br-p"));

  desired_.write("b.yaml", bridge("br-q", 1500));
  auto d2 = np({"--output", "json", "diff", "-f", desired_.path()});
  desired_.write("plan2.json", d2.out);
  ASSERT_EQ(sh("ip link set br-p mtu 1300").code, 0);  // the host drifts after the review
  auto a2 = np({"apply", "--plan", (desired_ / "plan2.json").string()});
  EXPECT_EQ(a2.code, 1);
  EXPECT_THAT(a2.err, HasSubstr("the host changed since this plan was made"));
  EXPECT_FALSE(linkExists("br-q"));
}

TEST_F(Cli, ExportIsAcceptedByApplyUnchanged) {
  ASSERT_EQ(np({"apply", "-f", kExamples}).code, 0);
  ASSERT_EQ(sh("ip link add br-hand type bridge && ip link set br-hand mtu 1300").code, 0);
  auto e = np({"export"});
  ASSERT_EQ(e.code, 0) << e.err;
  EXPECT_THAT(e.out, HasSubstr("name: br-hand"));
  desired_.write("exported.yaml", e.out);
  auto d = np({"diff", "-f", (desired_ / "exported.yaml").string()});
  EXPECT_EQ(d.code, 2) << d.out << d.err;  // only the adoption of br-hand
  EXPECT_THAT(d.out, HasSubstr("~ Bridge/br-hand update (adopt)\n"));
  EXPECT_THAT(d.out, HasSubstr("1 to update, 0 to replace, 0 to delete, 4 in sync"));
  auto a = np({"apply", "-f", (desired_ / "exported.yaml").string()});
  EXPECT_EQ(a.code, 0) << a.out << a.err;
  EXPECT_EQ(np({"diff", "-f", (desired_ / "exported.yaml").string()}).code, 0);
}

// Kill the process between two steps of an apply; the next apply finishes from the journal.
TEST_F(Cli, RecoversFromACrashBetweenTwoSteps) {
  auto a = np({"apply", "-f", kExamples}, {"NODEPLANE_TEST_CRASH_AFTER_STEPS=2"});
  EXPECT_EQ(a.code, 128 + SIGKILL) << a.out << a.err;
  EXPECT_TRUE(linkExists("br-vm"));
  EXPECT_FALSE(linkExists("tap-vm0"));
  EXPECT_TRUE(fs::exists(state_ / "state" / "journal.jsonl"));
  auto st = np({"--output", "json", "status"});
  EXPECT_EQ(nlohmann::json::parse(st.out).value("interruptedApply", false), true);

  auto again = np({"apply", "-f", kExamples});
  EXPECT_EQ(again.code, 0) << again.out << again.err;
  EXPECT_THAT(again.err, HasSubstr("recovered 4 journal entries"));
  EXPECT_THAT(again.out, Not(HasSubstr("not managed"))) << "the links it made are still its own";
  EXPECT_TRUE(linkExists("tap-vm0"));
  EXPECT_EQ(np({"diff", "-f", kExamples}).code, 0);
  auto st2 = nlohmann::json::parse(np({"--output", "json", "status"}).out);
  EXPECT_EQ(st2["owned"].size(), 4u);
  EXPECT_EQ(st2.value("interruptedApply", true), false);
}

TEST_F(Cli, SecondApplyWaitsForTheLockThenGivesUpClearly) {
  auto lock = state::Lock::acquire(state_ / "state", std::nullopt);
  ASSERT_TRUE(lock) << lock.error().str();
  desired_.write("a.yaml", bridge("br-l", 1500));
  auto a = np({"apply", "-f", desired_.path()});
  EXPECT_EQ(a.code, 1);
  EXPECT_THAT(a.err, HasSubstr("holds"));
  EXPECT_THAT(a.err, HasSubstr(std::to_string(::getpid())));
  EXPECT_FALSE(linkExists("br-l"));
}

TEST_F(Cli, CorruptStateIsReportedNotIgnored) {
  desired_.write("a.yaml", bridge("br-c", 1500));
  ASSERT_EQ(np({"apply", "-f", desired_.path()}).code, 0);
  std::ofstream(state_ / "state" / "state.json") << "{\"version\": 1, \"owned\": [";
  fs::remove(desired_ / "a.yaml");
  desired_.write("empty.yaml", "# nothing\n");
  auto a = np({"apply", "-f", desired_.path()});
  EXPECT_EQ(a.code, 1);
  EXPECT_THAT(a.err, HasSubstr("state.json"));
  EXPECT_TRUE(linkExists("br-c"));
}

TEST_F(Cli, CheckAndPlugins) {
  auto c = np({"--output", "json", "check"});
  EXPECT_EQ(c.code, 0) << c.out << c.err;
  auto j = nlohmann::json::parse(c.out);
  EXPECT_TRUE(j["gpus"].is_array());
  auto p = np({"plugins"});
  EXPECT_EQ(p.code, 0);
  EXPECT_THAT(p.out, HasSubstr("net        Bridge, Vxlan, Tap"));
  auto help = np({"apply", "--help"});
  EXPECT_THAT(help.out, HasSubstr("--no-prune"));
}

}  // namespace
}  // namespace nodeplane::testing
