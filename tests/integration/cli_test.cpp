// The real `nodeplane` binary against the real kernel, in this process's private network
// namespace: exit codes, output formats, fail-closed validation, ownership, saved plans, export,
// crash recovery, the lock.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "cli_util.hpp"
#include "netns.hpp"
#include "plan.hpp"
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
    deleteAllLinksButLo();
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

  // nodeplane as uid/gid 65534 (nobody): a user who may read root's 0755 directories but write
  // none of them. The config and desired directories are opened up for it.
  CliResult npAsNobody(const fs::path& stateDir, std::vector<std::string> args) {
    fs::permissions(config_.path(), fs::perms::owner_all | fs::perms::group_read |
                                        fs::perms::group_exec | fs::perms::others_read |
                                        fs::perms::others_exec);
    fs::permissions(desired_.path(), fs::status(config_.path()).permissions());
    std::vector<std::string> argv = {
        "/usr/bin/setpriv", "--reuid=65534",  "--regid=65534",
        "--clear-groups",   NODEPLANE_BINARY, "--state-dir",
        stateDir.string(),  "--config",       (config_ / "agent.yaml").string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv);
  }

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
                "bad.yaml:2:1: Brdge/x kind: unknown kind \"Brdge\" (known: Bridge, Container, "
                "SriovPf, Tap, VfioDevice, Vgpu, VirtualMachine, Vxlan)"},
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
        // The kernel reads '%' as a template: every attempt would create br0, br1, ...
        BadCase{"TemplateName",
                "apiVersion: nodeplane.io/v1\nkind: Bridge\nmetadata: {name: \"br%d\"}\n",
                "bad.yaml:3:12: Bridge/br%d metadata.name: interface name \"br%d\" contains '%' "
                "(the kernel would read it as a template"},
        BadCase{"TemplateBridgeReference",
                "apiVersion: nodeplane.io/v1\nkind: Tap\nmetadata: {name: t0}\nspec:\n"
                "  bridge: \"br%d\"\n",
                "bad.yaml:5:3: Tap/t0 spec.bridge: interface name \"br%d\" contains '%'"},
        BadCase{"ReservedName",
                "apiVersion: nodeplane.io/v1\nkind: Bridge\nmetadata: {name: all}\n",
                "Bridge/all metadata.name: interface name \"all\" is reserved"},
        BadCase{"ControlCharacterName",
                "apiVersion: nodeplane.io/v1\nkind: Bridge\nmetadata: {name: \"br\\e[2J\"}\n",
                "metadata.name: interface name \"br\\x1b[2J\" contains a control character"},
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
        BadCase{"ErrorInAMergedField",
                "apiVersion: nodeplane.io/v1\nkind: Bridge\nmetadata: {name: x}\nspec:\n"
                "  <<: {mtu: big}\n  up: true\n",
                "bad.yaml:5:8: Bridge/x spec.mtu: expected an integer"},
        BadCase{"DuplicateResource",
                "apiVersion: nodeplane.io/v1\nkind: Bridge\nmetadata: {name: x}\n---\n"
                "apiVersion: nodeplane.io/v1\nkind: Bridge\nmetadata: {name: x}\n",
                "bad.yaml:7"}),
    [](const ::testing::TestParamInfo<BadCase>& i) { return std::string(i.param.name); });

TEST_F(Cli, OneVariantPerNodeIsSelectedBeforeDuplicatesAreChecked) {
  config_.write("agent.yaml", "lockTimeoutSeconds: 1\nhostname: node-a\n");
  std::string a = bridge("br-fleet", 1500), b = bridge("br-fleet", 9000);
  a.replace(a.find("{name: br-fleet}"), 16, "{name: br-fleet, nodes: [node-a]}");
  b.replace(b.find("{name: br-fleet}"), 16, "{name: br-fleet, nodes: [node-b]}");
  desired_.write("fleet.yaml", a + "---\n" + b);
  auto v = np({"validate", "-f", desired_.path()});
  EXPECT_EQ(v.code, 0) << v.err;
  EXPECT_THAT(v.out, HasSubstr("valid: 1 resource(s) in 1 file(s)"));
  auto d = np({"diff", "-f", desired_.path()});
  EXPECT_EQ(d.code, 2) << d.err;
  EXPECT_THAT(d.out, HasSubstr("+ Bridge/br-fleet create"));

  config_.write("agent.yaml", "lockTimeoutSeconds: 1\nhostname: node-b\n");
  b.replace(b.find("nodes: [node-b]"), 15, "nodes: [\"node-*\"]");
  desired_.write("fleet.yaml", a + "---\n" + b);
  v = np({"validate", "-f", desired_.path()});
  EXPECT_EQ(v.code, 0) << v.err;
  config_.write("agent.yaml", "lockTimeoutSeconds: 1\nhostname: node-a\n");
  v = np({"validate", "-f", desired_.path()});
  EXPECT_EQ(v.code, 1);
  EXPECT_THAT(v.err, HasSubstr("fleet.yaml:8:12: Bridge/br-fleet metadata.name: defined more "
                               "than once; also defined at "));
}

TEST_F(Cli, RefusesAnUnmanagedLinkUntilAdopted) {
  ASSERT_EQ(sh("ip link add br-hand type bridge && ip link set br-hand mtu 1500").code, 0);
  desired_.write("b.yaml", bridge("br-hand", 1400));
  auto a = np({"apply", "-f", desired_.path()});
  EXPECT_EQ(a.code, 1);
  EXPECT_THAT(a.out, HasSubstr("Bridge/br-hand: exists, not managed by nodeplane (set "
                               "`metadata.adopt: true` to let nodeplane take it over"));
  EXPECT_EQ(mtu("br-hand"), 1500) << "an unmanaged link is never changed";

  desired_.write("b.yaml", bridge("br-hand", 1400) + "  # adopted below\n");
  std::string adopted = bridge("br-hand", 1400);
  adopted.replace(adopted.find("{name: br-hand}"), 15, "{name: br-hand, adopt: true}");
  desired_.write("b.yaml", adopted);
  auto d = np({"diff", "-f", desired_.path()});
  EXPECT_THAT(d.out, HasSubstr("~ Bridge/br-hand update (adopt) mtu: 1500 -> 1400"));
  ASSERT_EQ(np({"apply", "-f", desired_.path()}).code, 0);
  EXPECT_EQ(mtu("br-hand"), 1400);
  EXPECT_EQ(linkInfo("br-hand").value("ifalias", ""),
            "nodeplane:" + slurp(state_ / "state" / "agent-id").substr(0, 16));
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

// A saved plan edited to delete a hand-made bridge and a veth: the digest refuses the edit, and
// when the digest is recomputed too, the executor refuses each delete because nodeplane does not
// own the links. Either way both links survive.
TEST_F(Cli, AnEditedPlanNeverDeletesWhatNodeplaneDoesNotOwn) {
  ASSERT_EQ(
      sh("ip link add br-hand type bridge && ip link add veth-a type veth peer name veth-b").code,
      0);
  desired_.write("a.yaml", bridge("br-p", 1500));
  auto d = np({"--output", "json", "diff", "-f", desired_.path()});
  ASSERT_EQ(d.code, 2) << d.err;
  auto plan = nlohmann::json::parse(d.out);
  for (const char* name : {"br-hand", "veth-a"})
    plan["changes"].push_back({{"action", "delete"},
                               {"kind", "Bridge"},
                               {"name", name},
                               {"plugin", "net"},
                               {"desired", nlohmann::json::object()},
                               {"observed", nlohmann::json::object()},
                               {"fields", nlohmann::json::array()},
                               {"adopt", false},
                               {"after", nlohmann::json::array()}});
  desired_.write("edited.json", plan.dump());
  auto edited = np({"apply", "--plan", (desired_ / "edited.json").string()});
  EXPECT_EQ(edited.code, 1);
  EXPECT_THAT(edited.err, HasSubstr("edited.json: the plan was edited after it was made (its "
                                    "digest does not match its content)"));
  EXPECT_FALSE(linkExists("br-p")) << "nothing of an edited plan is applied";

  plan["digest"] = planDigest(plan);
  desired_.write("forged.json", plan.dump());
  auto forged = np({"apply", "--plan", (desired_ / "forged.json").string()});
  EXPECT_EQ(forged.code, 1) << forged.out << forged.err;
  EXPECT_THAT(forged.out,
              HasSubstr("! Bridge/br-hand: refused to delete it: nodeplane does not own it (not "
                        "recorded in the state store, no mark); nothing was changed"));
  EXPECT_THAT(forged.out,
              HasSubstr("! Bridge/veth-a: refused to delete it: nodeplane does not own it (not "
                        "recorded in the state store, not on the host as a Bridge)"));
  EXPECT_TRUE(linkExists("br-hand"));
  EXPECT_TRUE(linkExists("veth-a"));
  EXPECT_TRUE(linkExists("veth-b"));
  EXPECT_TRUE(linkExists("br-p")) << "the genuine step of the plan still ran";
}

// A saved plan's specs are validated like a desired-state file.
// A plan file that cannot be read says why; one far larger than any plan is refused before it
// is read into memory (a 300 MB file took 1.2 GB and 13 s to be refused as JSON).
TEST_F(Cli, APlanFileThatCannotBeReadSaysWhy) {
  const std::string missing = (desired_ / "missing.json").string();
  auto m = np({"apply", "--plan", missing});
  EXPECT_EQ(m.code, 1);
  EXPECT_EQ(m.err, "error: " + missing + ": cannot read: No such file or directory\n" +
                       "nothing was applied\n");
  const std::string huge = (desired_ / "huge.json").string();
  ASSERT_EQ(sh("truncate -s 300M " + huge).code, 0);  // sparse: no disk used
  auto h = np({"apply", "--plan", huge});
  EXPECT_EQ(h.code, 1);
  EXPECT_EQ(h.err, "error: " + huge +
                       ": file is larger than the limit of 67108864 bytes (64 MiB) (is it a plan "
                       "`nodeplane diff` wrote?)\nnothing was applied\n");
}

TEST_F(Cli, ASavedPlanIsValidatedLikeAFile) {
  desired_.write("a.yaml", bridge("br-v", 1500));
  auto d = np({"--output", "json", "diff", "-f", desired_.path()});
  ASSERT_EQ(d.code, 2) << d.err;
  auto plan = nlohmann::json::parse(d.out);
  plan["changes"][0]["desired"]["mtu"] = 20;
  plan["changes"][0]["name"] = "br%d";
  plan["digest"] = planDigest(plan);
  desired_.write("bad.json", plan.dump());
  auto a = np({"apply", "--plan", (desired_ / "bad.json").string()});
  EXPECT_EQ(a.code, 1);
  EXPECT_THAT(a.err, HasSubstr("bad.json: Bridge/br%d spec.mtu: changes[0]: "));
  EXPECT_THAT(a.err, HasSubstr("out of range 68..65535"));
  // Every error is listed, as for a file: the plugin's own rules run beside the schema's.
  EXPECT_THAT(a.err, HasSubstr("bad.json: Bridge/br%d metadata.name: changes[0]: interface name "
                               "\"br%d\" contains '%'"));
  EXPECT_THAT(a.err, HasSubstr("2 error(s) in the saved plan: nothing was applied"));
  EXPECT_FALSE(linkExists("br-v"));
  EXPECT_FALSE(linkExists("br0"));
}

// A name already taken by an interface nodeplane does not own is a conflict in `diff`, whatever
// the interface is: lo, a veth, a link of another managed kind; never a create.
TEST_F(Cli, ADesiredNameTakenByAnUnmanagedInterfaceIsAConflict) {
  ASSERT_EQ(sh("ip link add veth-x type veth peer name veth-y && ip link add br-hand type bridge "
               "&& ip tuntap add tap-hand mode tap")
                .code,
            0);
  desired_.write("a.yaml",
                 std::string(kHead) + "kind: Bridge\nmetadata: {name: lo}\n---\n" + kHead +
                     "kind: Bridge\nmetadata: {name: veth-x, adopt: true}\n"
                     "---\n" +
                     kHead + "kind: Tap\nmetadata: {name: br-hand}\n---\n" + kHead +
                     "kind: Bridge\nmetadata: {name: tap-hand}\n---\n" + bridge("br-free", 1500));
  auto d = np({"diff", "-f", desired_.path()});
  EXPECT_EQ(d.code, 1) << d.out << d.err;
  EXPECT_THAT(d.out, HasSubstr("a.yaml:2:1: Bridge/lo: exists, not managed by nodeplane (a "
                               "loopback interface, not a Bridge) (pick another name; it cannot "
                               "be adopted as a Bridge)\n"));
  EXPECT_THAT(d.out, HasSubstr("Bridge/veth-x: exists, not managed by nodeplane (a veth "
                               "interface, not a Bridge)"));
  EXPECT_THAT(d.out, HasSubstr("Tap/br-hand: exists, not managed by nodeplane (a Bridge, not a "
                               "Tap)"));
  EXPECT_THAT(d.out, HasSubstr("Bridge/tap-hand: exists, not managed by nodeplane (a Tap, not a "
                               "Bridge)"));
  EXPECT_THAT(d.out, HasSubstr("+ Bridge/br-free create\n"));
  EXPECT_THAT(d.out, HasSubstr("Plan: 1 to create, 0 to update, 0 to replace, 0 to delete, 0 in "
                               "sync, 4 error(s)."));

  auto a = np({"apply", "-f", desired_.path()});
  EXPECT_EQ(a.code, 1);
  EXPECT_EQ(linkInfo("veth-x")["linkinfo"].value("info_kind", ""), "veth");
  EXPECT_EQ(linkInfo("br-hand")["linkinfo"].value("info_kind", ""), "bridge");
  EXPECT_EQ(linkInfo("tap-hand")["linkinfo"].value("info_kind", ""), "tun");
  EXPECT_EQ(linkInfo("veth-x").value("ifalias", ""), "") << "nothing was marked";
  EXPECT_TRUE(linkExists("br-free"));
}

// What the state store owns cannot be checked when its plugin is missing or refused: an error,
// never "No changes", and nothing is pruned.
TEST_F(Cli, OwnedObjectsOfAnUnservedKindAreAnError) {
  desired_.write("a.yaml", bridge("br-o", 1500));
  ASSERT_EQ(np({"apply", "-f", desired_.path()}).code, 0);
  TempDir none, noPlugins, refused;
  fs::copy_file(fs::path(NODEPLANE_BUILD_PLUGIN_DIR) / "libnodeplane-net.so",
                refused / "libnodeplane-net.so");
  fs::permissions(refused / "libnodeplane-net.so", fs::perms::group_write, fs::perm_options::add);

  auto d = np({"--plugin-dir", noPlugins.path(), "diff", "-f", none.path()});
  EXPECT_EQ(d.code, 1) << d.out << d.err;
  EXPECT_THAT(d.out, HasSubstr("! Bridge: nodeplane owns 1 object(s) of this kind (Bridge/br-o) "
                               "but no loaded plugin serves kind Bridge (libnodeplane-net.so is "
                               "not in the plugin directory)"));
  EXPECT_THAT(d.out, Not(HasSubstr("No changes")));

  auto r = np({"--plugin-dir", refused.path(), "diff", "-f", none.path()});
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("no loaded plugin serves kind Bridge (libnodeplane-net.so was "
                               "refused: "));

  auto a = np({"--plugin-dir", noPlugins.path(), "apply", "-f", none.path()});
  EXPECT_EQ(a.code, 1) << a.out << a.err;
  EXPECT_THAT(a.out, HasSubstr("! Bridge: nodeplane owns 1 object(s)"));
  EXPECT_TRUE(linkExists("br-o"));
  EXPECT_EQ(np({"diff", "-f", desired_.path()}).code, 0) << "still owned";
}

// Without CAP_NET_ADMIN the first refusal stops the apply, with one clear message.
TEST_F(Cli, WithoutCapNetAdminApplySaysSoOnce) {
  desired_.write("a.yaml", bridge("br-1", 1500) + "---\n" + bridge("br-2", 1500) + "---\n" +
                               bridge("br-3", 1500) + "---\n" + kHead +
                               "kind: Tap\nmetadata: {name: tap-1}\n");
  auto a = run({"/usr/bin/setpriv", "--inh-caps=-net_admin", "--bounding-set=-net_admin", "--",
                NODEPLANE_BINARY, "--state-dir", (state_ / "state").string(), "--config",
                (config_ / "agent.yaml").string(), "apply", "-f", desired_.path()});
  EXPECT_EQ(a.code, 1) << a.out << a.err;
  const std::string all = a.out + a.err;
  const std::size_t refusals = countOf(all, "not permitted");
  EXPECT_EQ(refusals, 1u) << all;
  EXPECT_THAT(a.out, HasSubstr("! apply stopped: the host denied permission, so the other 3 "
                               "step(s) were not tried (nodeplane needs CAP_NET_ADMIN: run it as "
                               "root)\n"));
  EXPECT_THAT(a.out, HasSubstr("Apply incomplete: 0 created, 0 updated, 0 replaced, 0 deleted, 1 "
                               "failed, 3 skipped"));
  for (const char* l : {"br-1", "br-2", "br-3", "tap-1"}) EXPECT_FALSE(linkExists(l));
}

// A refusal that no privilege fixes (EACCES: the kernel refuses an IPv6 address where IPv6 is
// disabled) fails that resource only: the apply goes on, and does not ask to be run as root.
TEST_F(Cli, AnAddressTheKernelRefusesFailsOnlyItsResource) {
  const std::string knob = "/proc/sys/net/ipv6/conf/default/disable_ipv6";
  ASSERT_EQ(sh("echo 1 > " + knob).code, 0);
  desired_.write("a.yaml", std::string(kHead) +
                               "kind: Bridge\nmetadata: {name: br-a6}\n"
                               "spec: {addresses: [\"fd00:1::1/64\"]}\n---\n" +
                               bridge("br-b", 1500));
  auto a = np({"apply", "-f", desired_.path()});
  ASSERT_EQ(sh("echo 0 > " + knob).code, 0);
  EXPECT_EQ(a.code, 1) << a.out << a.err;
  EXPECT_THAT(a.out, HasSubstr("Bridge/br-a6: adding address fd00:1::1/64 to br-a6: Permission "
                               "denied"));
  EXPECT_THAT(a.out, HasSubstr("Bridge/br-b created"));
  EXPECT_THAT(a.out + a.err, Not(HasSubstr("CAP_NET_ADMIN")));
  EXPECT_TRUE(linkExists("br-b"));
  EXPECT_FALSE(linkExists("br-a6")) << "the half-made bridge is rolled back";
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

// An object recorded as owned that lost its mark is no longer nodeplane's (the planner leaves it
// alone): export writes it with `adopt: true`, so applying the export takes it back.
TEST_F(Cli, ExportOfAnObjectThatLostItsMarkIsAcceptedByApply) {
  desired_.write("a.yaml", bridge("br-m", 1500));
  ASSERT_EQ(np({"apply", "-f", desired_.path()}).code, 0);
  ASSERT_EQ(sh("ip link set dev br-m alias hand-made").code, 0);
  auto e = np({"export", "--kind", "Bridge"});
  ASSERT_EQ(e.code, 0) << e.err;
  EXPECT_THAT(e.out, HasSubstr("adopt: true"));
  fs::remove(desired_ / "a.yaml");
  desired_.write("exported.yaml", e.out);
  auto a = np({"apply", "-f", desired_.path()});
  EXPECT_EQ(a.code, 0) << a.out << a.err;
  EXPECT_THAT(a.out, HasSubstr("Bridge/br-m updated"));
  EXPECT_EQ(np({"diff", "-f", desired_.path()}).code, 0) << "marked and owned again";
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
  EXPECT_EQ(nlohmann::json::parse(st.out)["interrupted"][0], (nlohmann::json{{"seq", 1},
                                                                             {"action", "create"},
                                                                             {"kind", "Bridge"},
                                                                             {"name", "br-vm"},
                                                                             {"plugin", "net"},
                                                                             {"done", true}}))
      << st.out;
  auto text = np({"status"});
  EXPECT_EQ(text.code, 0) << text.err;
  EXPECT_THAT(text.out, Not(HasSubstr("No reconcile recorded")));
  EXPECT_THAT(text.out, HasSubstr("An apply was interrupted; the next apply or run finishes it."));
  EXPECT_THAT(text.out, HasSubstr("  create   Bridge/br-vm       done\n"));
  EXPECT_THAT(text.out, HasSubstr("not done\n"));
  EXPECT_THAT(text.out, HasSubstr("Nothing else was recorded before it stopped.\n"));

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
  writeFile(state_ / "state" / "state.json", "{\"version\": 1, \"owned\": [");
  fs::remove(desired_ / "a.yaml");
  desired_.write("empty.yaml", "# nothing\n");
  auto a = np({"apply", "-f", desired_.path()});
  EXPECT_EQ(a.code, 1);
  EXPECT_THAT(a.err, HasSubstr("state.json"));
  EXPECT_TRUE(linkExists("br-c"));
}

// Names the kernel accepts but a desired-state file cannot carry (not UTF-8, control
// characters), made by hand on the host: text output shows them escaped, JSON output never
// aborts, and export writes only what loads back, refusing the rest by name.
TEST_F(Cli, OddHostNamesNeverAbortAndPrintEscaped) {
  desired_.write("a.yaml", bridge("br-a", 1500) + "---\n" + R"(apiVersion: nodeplane.io/v1
kind: Vxlan
metadata: {name: vx-a}
spec: {vni: 100, local: 10.0.0.1, remote: 10.0.0.2, bridge: br-a}
)");
  ASSERT_EQ(np({"apply", "-f", desired_.path()}).code, 0);
  const std::string notUtf8 = "br\xff", escape = "br\x1b[2J";
  ASSERT_EQ(sh("ip link add \"$(printf 'br\\377')\" type bridge && "
               "ip link add \"$(printf 'br\\033[2J')\" type bridge && "
               "ip link add vx-odd type vxlan id 5 remote 10.0.0.3 dstport 4789 && "
               "ip link set vx-odd master \"$(printf 'br\\377')\" && "
               "ip link set vx-a master \"$(printf 'br\\033[2J')\"")
                .code,
            0);
  ASSERT_TRUE(linkExists(notUtf8));
  ASSERT_TRUE(linkExists(escape));

  auto d = np({"diff", "-f", desired_.path()});
  EXPECT_EQ(d.code, 2) << d.out << d.err;
  EXPECT_THAT(d.out, HasSubstr("~ Vxlan/vx-a update bridge: br\\x1b[2J -> br-a\n"));
  EXPECT_EQ(d.out.find('\x1b'), std::string::npos) << "a raw escape reached the terminal";

  auto j = np({"--output", "json", "diff", "-f", desired_.path()});
  EXPECT_EQ(j.code, 2) << j.err;  // it aborted here (nlohmann type_error 316)
  auto plan = nlohmann::json::parse(j.out, nullptr, false);
  ASSERT_FALSE(plan.is_discarded()) << j.out;
  EXPECT_EQ(plan["changes"][0]["observed"]["bridge"], escape);

  auto e = np({"export"});
  EXPECT_EQ(e.code, 1) << e.out << e.err;
  EXPECT_THAT(e.err, HasSubstr("error: Bridge/br\\xff: not exported: it holds text that is not "
                               "UTF-8, which a desired-state file cannot carry\n"));
  EXPECT_THAT(e.err, HasSubstr("error: Vxlan/vx-odd: not exported: it holds text that is not "
                               "UTF-8"));
  EXPECT_THAT(e.err, HasSubstr("error: Bridge/br\\x1b[2J: not exported: metadata.name: interface "
                               "name \"br\\x1b[2J\" contains a control character"));
  EXPECT_THAT(e.err, HasSubstr("error: Vxlan/vx-a: not exported: spec.bridge: interface name "
                               "\"br\\x1b[2J\" contains a control character"));
  EXPECT_EQ(e.err.find('\x1b'), std::string::npos);
  EXPECT_THAT(e.out, HasSubstr("name: br-a\n"));
  // What it did write loads back and validates.
  desired_.write("exported.yaml", e.out);
  auto v = np({"validate", "-f", (desired_ / "exported.yaml").string()});
  EXPECT_EQ(v.code, 0) << v.err;
  EXPECT_THAT(v.out, HasSubstr("valid: 1 resource(s)"));

  auto ej = np({"--output", "json", "export"});
  EXPECT_EQ(ej.code, 1);
  EXPECT_FALSE(nlohmann::json::parse(ej.out, nullptr, false).is_discarded()) << ej.out;
}

// Log lines and listings escape what comes from the host too: here a file name in the plugin
// directory (a log line through spdlog, and the `plugins` table).
TEST_F(Cli, LogLinesAndListingsShowHostTextEscaped) {
  TempDir plugins;
  plugins.write("libnodeplane-a\x1b[2J.so", "not a library");
  auto p = np({"--plugin-dir", plugins.path().string(), "plugins"});
  EXPECT_EQ(p.code, 1);
  const std::string shown = plugins.path().string() + "/libnodeplane-a\\x1b[2J.so";
  EXPECT_THAT(p.err, HasSubstr("warning: plugin " + shown + " refused: "));
  EXPECT_THAT(p.out, HasSubstr("REFUSED    " + shown + ": "));
  EXPECT_EQ((p.out + p.err).find('\x1b'), std::string::npos) << "a raw escape reached the terminal";
}

// The CLI's contract is 0/1/2: a usage error is an error (1) with its message, not the argument
// parser's own codes (105-109); --help and --version stay 0.
TEST_F(Cli, UsageErrorsExitOneWithTheMessage) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{}, "error: A subcommand is required\n"},
      {{"frobnicate"}, "error: A subcommand is required\n"},
      {{"validate"}, "error: --filename is required\n"},
      {{"--output", "yaml", "status"}, "error: --output: yaml not in {text,json}\n"},
  };
  for (const auto& c : cases) {
    auto r = np(c.args);
    EXPECT_EQ(r.code, 1) << c.message << r.err;
    EXPECT_EQ(r.err, c.message + "Run with --help for more information.\n");
  }
  auto help = np({"--help"});
  EXPECT_EQ(help.code, 0);
  EXPECT_THAT(help.out, HasSubstr("Usage:"));
  EXPECT_EQ(np({"diff", "--help"}).code, 0);
  EXPECT_EQ(run({NODEPLANE_BINARY, "--version"}).code, 0);
}

// Whatever a command throws becomes "error: ..." and exit 1, never std::terminate (SIGABRT).
TEST_F(Cli, AnExceptionIsAnErrorNotAnAbort) {
  auto oom = np({"status"}, {"NODEPLANE_TEST_THROW=bad_alloc"});
  EXPECT_EQ(oom.code, 1);
  EXPECT_EQ(oom.err, "error: std::bad_alloc\n");
  auto other = np({"validate", "-f", "x"}, {"NODEPLANE_TEST_THROW=boom\x1b[2J"});
  EXPECT_EQ(other.code, 1);
  EXPECT_EQ(other.err, "error: boom\\x1b[2J\n");
}

TEST_F(Cli, LostStateFileBesideItsBackupStopsApply) {
  desired_.write("a.yaml", bridge("br-k", 1500));
  ASSERT_EQ(np({"apply", "-f", desired_.path()}).code, 0);
  desired_.write("a.yaml", bridge("br-k", 1400));
  ASSERT_EQ(np({"apply", "-f", desired_.path()}).code, 0);
  ASSERT_TRUE(fs::exists(state_ / "state" / "state.json.bak"));
  fs::remove(state_ / "state" / "state.json");
  desired_.write("a.yaml", bridge("br-k", 1300));
  auto a = np({"apply", "-f", desired_.path()});
  EXPECT_EQ(a.code, 1) << a.out << a.err;
  EXPECT_THAT(a.err, HasSubstr("state.json is missing but its backup"));
  EXPECT_THAT(a.err, HasSubstr("nothing was applied"));
  EXPECT_EQ(mtu("br-k"), 1400);
  auto st = np({"status"});
  EXPECT_EQ(st.code, 1);
  EXPECT_THAT(st.err, HasSubstr("state.json is missing but its backup"));
}

// status and diff only read: they create no state dir, and work for a user who could not.
TEST_F(Cli, StatusAndDiffCreateNoStateDir) {
  const fs::path fresh = state_ / "never-made";
  desired_.write("a.yaml", bridge("br-r", 1500));
  auto st = run({NODEPLANE_BINARY, "--state-dir", fresh.string(), "--config",
                 (config_ / "agent.yaml").string(), "status"});
  EXPECT_EQ(st.code, 0) << st.err;
  EXPECT_EQ(st.out, "No reconcile recorded in " + fresh.string() + ".\n");
  auto d = run({NODEPLANE_BINARY, "--state-dir", fresh.string(), "--config",
                (config_ / "agent.yaml").string(), "diff", "-f", desired_.path().string()});
  EXPECT_EQ(d.code, 2) << d.out << d.err;
  EXPECT_FALSE(fs::exists(fresh));

  // Where the user may look but not write (root's 0755 directory).
  fs::permissions(state_.path(), fs::perms::owner_all | fs::perms::group_read |
                                     fs::perms::group_exec | fs::perms::others_read |
                                     fs::perms::others_exec);
  auto stUser = npAsNobody(fresh, {"status"});
  EXPECT_EQ(stUser.code, 0) << stUser.err;
  EXPECT_THAT(stUser.out, HasSubstr("No reconcile recorded"));
  auto dUser = npAsNobody(fresh, {"diff", "-f", desired_.path().string()});
  EXPECT_EQ(dUser.code, 2) << dUser.out << dUser.err;
  EXPECT_THAT(dUser.out, HasSubstr("+ Bridge/br-r create"));
  EXPECT_FALSE(fs::exists(fresh));
}

// A state dir nodeplane cannot write: the reason at once, no "waiting" for a lock nobody holds.
TEST_F(Cli, UnwritableStateDirIsReportedAtOnce) {
  const fs::path dir = state_ / "state";
  fs::create_directories(dir);
  fs::permissions(state_.path(),
                  fs::perms::owner_all | fs::perms::others_read | fs::perms::others_exec);
  fs::permissions(dir, fs::status(state_.path()).permissions());
  desired_.write("a.yaml", bridge("br-w", 1500));
  auto a = npAsNobody(dir, {"apply", "-f", desired_.path().string()});
  EXPECT_EQ(a.code, 1) << a.out << a.err;
  EXPECT_THAT(a.err,
              HasSubstr("state dir " + dir.string() + " is not writable: Permission denied"));
  EXPECT_THAT(a.err, Not(HasSubstr("waiting")));
  EXPECT_FALSE(linkExists("br-w"));

  // A read-only mount, in a private mount namespace of the child.
  const std::string script =
      "mount --bind \"$0\" \"$0\" && mount -o remount,bind,ro \"$0\" || "
      "exit 99; exec \"$@\"";
  auto ro = run({"/usr/bin/unshare", "-m", "--propagation", "private", "/bin/sh", "-c", script,
                 dir.string(), NODEPLANE_BINARY, "--state-dir", dir.string(), "--config",
                 (config_ / "agent.yaml").string(), "apply", "-f", desired_.path().string()});
  if (ro.code == 99) GTEST_SKIP() << "cannot mount here: " << ro.err;
  EXPECT_EQ(ro.code, 1) << ro.out << ro.err;
  EXPECT_THAT(ro.err,
              HasSubstr("state dir " + dir.string() + " is not writable: Read-only file system"));
  EXPECT_THAT(ro.err, Not(HasSubstr("waiting")));
  EXPECT_FALSE(linkExists("br-w"));
}

TEST_F(Cli, PluginsListsALibraryRefusedForItsDirectory) {
  TempDir plugins;
  fs::copy_file(fs::path(NODEPLANE_BUILD_PLUGIN_DIR) / "libnodeplane-net.so",
                plugins / "libnodeplane-net.so");
  fs::permissions(plugins / "libnodeplane-net.so", fs::perms::group_write | fs::perms::others_write,
                  fs::perm_options::remove);
  fs::permissions(plugins.path(), fs::perms::all);
  auto p = np({"--plugin-dir", plugins.path().string(), "plugins"});
  EXPECT_EQ(p.code, 1) << p.out << p.err;
  EXPECT_THAT(p.out, HasSubstr("  REFUSED    " + (plugins / "libnodeplane-net.so").string() +
                               ": plugin directory " + plugins.path().string() +
                               " is group- or world-writable (chmod go-w " +
                               plugins.path().string() + ")\n"));
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

// --sysfs-root and --proc-root feed the GPU inventory `check` shows.
TEST_F(Cli, CheckReadsGpusUnderSysfsAndProcRoots) {
  const fs::path fixtures = fs::path(NODEPLANE_SOURCE_DIR) / "tests/fixtures";
  auto c = np({"--output", "json", "--sysfs-root", (fixtures / "sysfs/e-h100").string(),
               "--proc-root", (fixtures / "proc/e-h100").string(), "check"});
  auto j = nlohmann::json::parse(c.out);
  ASSERT_EQ(j["gpus"].size(), 5u) << c.out << c.err;
  EXPECT_EQ(j["gpus"][1]["address"], "0000:1b:00.0");
  EXPECT_EQ(j["gpus"][1]["index"], 0);
  EXPECT_EQ(j["gpus"][1]["uuid"], "GPU-1b000000-0000-4000-8000-000000000000");
  EXPECT_EQ(j["gpus"][4]["deviceMinor"], 3);

  // Without --proc-root the host's /proc has no such GPU: indices, no UUIDs.
  auto noProc = np({"--output", "json", "--sysfs-root", (fixtures / "sysfs/e-h100").string(),
                    "--proc-root", (fixtures / "proc/no-such-case").string(), "check"});
  auto n = nlohmann::json::parse(noProc.out);
  ASSERT_EQ(n["gpus"].size(), 5u) << noProc.out << noProc.err;
  EXPECT_EQ(n["gpus"][1]["index"], 0);
  EXPECT_TRUE(n["gpus"][1]["uuid"].is_null());

  auto help = np({"--help"});
  EXPECT_THAT(help.out, HasSubstr("--proc-root"));
}

}  // namespace
}  // namespace nodeplane::testing
