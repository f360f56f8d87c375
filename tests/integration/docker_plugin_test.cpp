// The docker plugin against a real dockerd (the test binary's own, tests/support/dockerd.hpp):
// the real CLI for what a user sees (create, in sync, recreate, prune, release, export, refusals),
// the plugin itself (support/plugin_rig.hpp) for what only a hand-made Change can reach (a plan
// made against a container that was re-created since, a delete of another agent's container).
// What reaches the container is asserted from inside it (files it writes to a bind mount).
#include "docker_plugin.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <set>

#include "cli_util.hpp"
#include "container_spec.hpp"
#include "support/dockerd.hpp"
#include "support/plugin_rig.hpp"

namespace nodeplane::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

// Polls `cond` (a real condition: a file, a container's state) until it holds or `timeout`.
::testing::AssertionResult eventually(const std::string& what, const std::function<bool()>& cond,
                                      std::chrono::milliseconds timeout = 30s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (cond()) return ::testing::AssertionSuccess();
    if (std::chrono::steady_clock::now() >= deadline)
      return ::testing::AssertionFailure()
             << "timed out after " << timeout.count() << " ms waiting for: " << what;
    ::poll(nullptr, 0, 20);  // polling interval of the condition, not a synchronisation
  }
}

// A Container document: `spec` lines (YAML, each indented by two spaces by this function) after
// the image and network every test container needs.
std::string containerDoc(const std::string& name, const std::vector<std::string>& spec = {},
                         const std::string& metadata = "") {
  std::string s = "apiVersion: nodeplane.io/v1\nkind: Container\nmetadata: {name: " + name +
                  (metadata.empty() ? "" : ", " + metadata) +
                  "}\nspec:\n  image: " + kBusyboxImage + "\n  network: none\n";
  for (const auto& line : spec) s += "  " + line + "\n";
  return s;
}

HostContext fixtureHost() {
  HostContext host;
  host.sysfsRoot = sysfsFixture("e-h100");
  host.procRoot = fs::path(NODEPLANE_SOURCE_DIR) / "tests/fixtures/proc/e-h100";
  return host;
}

class DockerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    NODEPLANE_REQUIRE_DOCKERD_ROOT();
    std::string why;
    d_ = sharedDockerd(&why);
    ASSERT_NE(d_, nullptr) << why;
    config_.write("agent.yaml", "lockTimeoutSeconds: 1\ndocker: {socket: " + d_->socket() + "}\n");
  }
  void TearDown() override {
    if (!d_) return;
    for (const auto& n : made_) d_->engine().request("DELETE", "/containers/" + n + "?force=1");
  }

  // A unique container name, removed at the end of the test.
  std::string name(const std::string& prefix) {
    made_.push_back(uniqueName(prefix));
    return made_.back();
  }

  // nodeplane with state directory `agent`, the rig's dockerd, the build's plugins.
  CliResult np(std::vector<std::string> args, const std::string& agent = "a") {
    std::vector<std::string> argv = {NODEPLANE_BINARY,
                                     "--state-dir",
                                     (state_ / agent).string(),
                                     "--config",
                                     (config_ / "agent.yaml").string(),
                                     "--plugin-dir",
                                     NODEPLANE_BUILD_PLUGIN_DIR};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv);
  }

  // A directory holding exactly these documents.
  std::string files(const std::string& dir, const std::vector<std::string>& docs) {
    const fs::path p = desired_ / dir;
    fs::remove_all(p);
    fs::create_directories(p);
    for (std::size_t i = 0; i < docs.size(); ++i)
      desired_.write(dir + "/" + std::to_string(i) + ".yaml", docs[i]);
    return p.string();
  }

  // GET /containers/<name>/json; null when there is none.
  Json inspect(const std::string& ref) {
    auto r = d_->engine().request("GET", "/containers/" + ref + "/json");
    if (!r || r->status != 200) return nullptr;
    return Json::parse(r->body, nullptr, false);
  }
  std::string idOf(const std::string& ref) {
    Json j = inspect(ref);
    return j.is_object() ? j.value("Id", "") : "";
  }
  bool isRunning(const std::string& ref) {
    Json j = inspect(ref);
    return j.is_object() && j["State"].value("Running", false);
  }
  Json labelsOf(const std::string& ref) {
    Json j = inspect(ref);
    return j.is_object() ? j["Config"].value("Labels", Json::object()) : Json();
  }

  // A container made by hand (not through nodeplane), with these labels, started. Its id.
  std::string makeByHand(const std::string& n, const Json& labels = Json::object()) {
    Json body = {
        {"Image", kBusyboxImage}, {"Labels", labels}, {"HostConfig", {{"NetworkMode", "none"}}}};
    auto made = d_->engine().call("POST", "/containers/create?name=" + n, &body);
    EXPECT_TRUE(made.has_value()) << (made ? "" : made.error().str());
    if (!made) return "";
    const std::string id = made->value("Id", "");
    auto started = d_->engine().request("POST", "/containers/" + id + "/start");
    EXPECT_TRUE(started && started->status == 204);
    return id;
  }

  std::string agentId(const std::string& agent = "a") {
    std::string id = slurp(state_ / agent / "agent-id");
    while (!id.empty() && std::isspace(static_cast<unsigned char>(id.back()))) id.pop_back();
    return id;
  }

  Dockerd* d_ = nullptr;
  std::vector<std::string> made_;
  TempDir state_, config_, desired_;
};

TEST_F(DockerTest, ACreatedContainerRunsCarriesItsLabelsAndASecondDiffIsInSync) {
  const std::string n = name("np-create");
  const std::string dir = files("d", {containerDoc(n)});
  auto a = np({"apply", "-f", dir});
  ASSERT_EQ(a.code, 0) << a.out << a.err;
  EXPECT_THAT(a.out, HasSubstr("Container/" + n));
  EXPECT_TRUE(isRunning(n));
  const Json labels = labelsOf(n);
  EXPECT_EQ(labels.value(docker::kManagedLabel, ""), "true");
  EXPECT_EQ(labels.value(docker::kResourceLabel, ""), "Container/" + n);
  EXPECT_FALSE(labels.value(docker::kAgentLabel, "").empty());
  EXPECT_FALSE(labels.value(docker::kSpecHashLabel, "").empty());

  auto d = np({"diff", "-f", dir});
  EXPECT_EQ(d.code, 0) << d.out << d.err;
  EXPECT_THAT(d.out, HasSubstr("No changes"));
}

// maxParallel 8: the steps of one apply run on several threads at once.
TEST_F(DockerTest, TwelveContainersConvergeInOneApplyAndPruneTogether) {
  std::vector<std::string> names, docs;
  for (int i = 0; i < 12; ++i) {
    names.push_back(name("np-many"));
    docs.push_back(containerDoc(names.back(), {"env: {I: '" + std::to_string(i) + "'}"}));
  }
  const std::string dir = files("d", docs);
  auto a = np({"apply", "-f", dir});
  ASSERT_EQ(a.code, 0) << a.out << a.err;
  for (const auto& n : names) EXPECT_TRUE(isRunning(n)) << n;
  EXPECT_EQ(np({"diff", "-f", dir}).code, 0);
  auto p = np({"apply", "--allow-empty", "-f", files("none", {})});
  ASSERT_EQ(p.code, 0) << p.out << p.err;
  for (const auto& n : names) EXPECT_TRUE(inspect(n).is_null()) << n;
}

TEST_F(DockerTest, EnvAndCommandReachTheContainer) {
  const std::string n = name("np-env");
  TempDir out;
  const std::string dir = files(
      "d", {containerDoc(n, {"command: [sh, -c, 'env > /out/env.tmp && mv /out/env.tmp /out/env "
                             "&& exec sleep 1000']",
                             "env: {GREETING: hello world, NP_VALUE: '42'}",
                             "mounts: [{source: " + out.path().string() + ", target: /out}]"})});
  auto a = np({"apply", "-f", dir});
  ASSERT_EQ(a.code, 0) << a.out << a.err;
  ASSERT_TRUE(eventually("the container wrote /out/env", [&] { return fs::exists(out / "env"); }));
  const std::string env = slurp(out / "env");
  EXPECT_THAT(env, HasSubstr("GREETING=hello world\n"));
  EXPECT_THAT(env, HasSubstr("NP_VALUE=42\n"));
  // The values are sensitive: never shown, and compared by digest.
  EXPECT_THAT(a.out + a.err, Not(HasSubstr("hello world")));
  auto d = np({"diff", "-f", dir});
  EXPECT_EQ(d.code, 0) << d.out << d.err;
}

TEST_F(DockerTest, ASpecChangeRecreatesTheContainerAndAStateChangeKeepsIt) {
  const std::string n = name("np-change");
  ASSERT_EQ(np({"apply", "-f", files("d", {containerDoc(n, {"env: {V: '1'}"})})}).code, 0);
  const std::string first = idOf(n);
  ASSERT_FALSE(first.empty());
  ASSERT_TRUE(isRunning(n));

  // state alone: stopped in place, the same container.
  const std::string stopped = files("s", {containerDoc(n, {"env: {V: '1'}", "state: stopped"})});
  auto s = np({"apply", "-f", stopped});
  ASSERT_EQ(s.code, 0) << s.out << s.err;
  EXPECT_EQ(idOf(n), first);
  EXPECT_FALSE(isRunning(n));
  EXPECT_EQ(np({"diff", "-f", stopped}).code, 0);
  auto again = np({"apply", "-f", files("r", {containerDoc(n, {"env: {V: '1'}"})})});
  ASSERT_EQ(again.code, 0) << again.out << again.err;
  EXPECT_EQ(idOf(n), first);
  EXPECT_TRUE(isRunning(n));

  // Any other field: a new container.
  const std::string changed = files("c", {containerDoc(n, {"env: {V: '2'}"})});
  auto c = np({"apply", "-f", changed});
  ASSERT_EQ(c.code, 0) << c.out << c.err;
  const std::string second = idOf(n);
  EXPECT_FALSE(second.empty());
  EXPECT_NE(second, first);
  EXPECT_TRUE(isRunning(n));
  EXPECT_TRUE(inspect(first).is_null()) << "the old container is gone";
  auto d = np({"diff", "-f", changed});
  EXPECT_EQ(d.code, 0) << d.out << d.err;
}

TEST_F(DockerTest, PruneDeletesOnlyOursNeverAnotherAgentsOrAnUnlabelledContainer) {
  const std::string keep = name("np-keep"), gone = name("np-gone");
  const std::string other = name("np-other"), plain = name("np-plain");
  const std::string otherId = makeByHand(other, {{docker::kManagedLabel, "true"},
                                                 {docker::kAgentLabel, "ffffffffffffffff"},
                                                 {docker::kResourceLabel, "Container/" + other}});
  const std::string plainId = makeByHand(plain);
  ASSERT_EQ(np({"apply", "-f", files("two", {containerDoc(keep), containerDoc(gone)})}).code, 0);
  const std::string keepId = idOf(keep);
  ASSERT_FALSE(idOf(gone).empty());

  auto a = np({"apply", "-f", files("one", {containerDoc(keep)})});
  ASSERT_EQ(a.code, 0) << a.out << a.err;
  EXPECT_THAT(a.out, HasSubstr("Container/" + gone));
  EXPECT_TRUE(inspect(gone).is_null());
  EXPECT_EQ(idOf(keep), keepId);
  EXPECT_EQ(idOf(other), otherId);
  EXPECT_TRUE(isRunning(other));
  EXPECT_EQ(idOf(plain), plainId);
  EXPECT_TRUE(isRunning(plain));
  EXPECT_THAT(a.out, Not(HasSubstr(other)));
  EXPECT_THAT(a.out, Not(HasSubstr(plain)));
}

TEST_F(DockerTest, AnUnlabelledContainerOfADesiredNameIsRefusedAndNotTouched) {
  const std::string n = name("np-hand");
  const std::string id = makeByHand(n);
  ASSERT_FALSE(id.empty());
  const Json before = inspect(n);
  auto a = np({"apply", "-f", files("d", {containerDoc(n, {"env: {X: '1'}"})})});
  EXPECT_EQ(a.code, 1) << a.out << a.err;
  EXPECT_THAT(a.out + a.err, HasSubstr("Container/" + n + ": exists, not managed by nodeplane"));
  EXPECT_THAT(a.out + a.err, HasSubstr("set `metadata.adopt: true`"));
  const Json after = inspect(n);
  ASSERT_TRUE(after.is_object());
  EXPECT_EQ(after.value("Id", ""), id);
  EXPECT_EQ(after["State"], before["State"]);
  EXPECT_EQ(after["Config"]["Labels"], before["Config"]["Labels"]);
}

TEST_F(DockerTest, AnAdoptedContainerIsRecreatedWithTheLabels) {
  const std::string n = name("np-adopt");
  const std::string id = makeByHand(n);
  ASSERT_FALSE(id.empty());
  const std::string dir = files("d", {containerDoc(n, {}, "adopt: true")});
  auto a = np({"apply", "-f", dir});
  ASSERT_EQ(a.code, 0) << a.out << a.err;
  EXPECT_NE(idOf(n), id) << "Docker cannot add labels to a container: adopting recreates it";
  EXPECT_EQ(labelsOf(n).value(docker::kAgentLabel, ""), agentId());
  EXPECT_TRUE(isRunning(n));
  EXPECT_EQ(np({"diff", "-f", dir}).code, 0);
}

TEST_F(DockerTest, AMissingImageWithPullNeverFailsThatContainerOnlyAndThePullNamesTheImage) {
  const std::string ok = name("np-fine"), missing = name("np-noimage");
  auto a =
      np({"apply", "-f",
          files("d", {containerDoc(ok),
                      "apiVersion: nodeplane.io/v1\nkind: Container\nmetadata: {name: " + missing +
                          "}\nspec: {image: 'nodeplane-test/absent:1', pull: Never, "
                          "network: none}\n"})});
  EXPECT_EQ(a.code, 1) << a.out << a.err;
  EXPECT_THAT(a.out + a.err,
              HasSubstr("image nodeplane-test/absent:1 is not present and pull is Never"));
  EXPECT_TRUE(isRunning(ok));
  EXPECT_TRUE(inspect(missing).is_null());
}

TEST_F(DockerTest, AReleasedContainerStaysAndALaterPruneLeavesIt) {
  const std::string n = name("np-release");
  ASSERT_EQ(np({"apply", "-f", files("d", {containerDoc(n, {}, "deletionPolicy: Orphan")})}).code,
            0);
  const std::string id = idOf(n);
  ASSERT_FALSE(id.empty());
  auto r = np({"apply", "-f", files("none", {})});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("released"));
  EXPECT_EQ(idOf(n), id);
  EXPECT_TRUE(isRunning(n));
  EXPECT_TRUE(fs::exists(state_ / "a" / "docker" / "released.json"));

  auto again = np({"apply", "-f", files("none", {})});
  ASSERT_EQ(again.code, 0) << again.out << again.err;
  EXPECT_THAT(again.out, Not(HasSubstr("Container/" + n)));
  EXPECT_EQ(idOf(n), id);
  EXPECT_TRUE(isRunning(n));

  // No longer ours: desired again without adopt, it is refused; adopted unchanged, it is taken
  // back as it is (same container).
  auto refused = np({"diff", "-f", files("d", {containerDoc(n)})});
  EXPECT_EQ(refused.code, 1) << refused.out << refused.err;
  EXPECT_THAT(refused.out + refused.err, HasSubstr("exists, not managed by nodeplane"));
  auto adopt = np({"apply", "-f", files("adopt", {containerDoc(n, {}, "adopt: true")})});
  ASSERT_EQ(adopt.code, 0) << adopt.out << adopt.err;
  EXPECT_EQ(idOf(n), id);
  EXPECT_EQ(np({"diff", "-f", files("d", {containerDoc(n)})}).code, 0);
}

// One bad Container file (issue 7's bad input, at the CLI): an error with file:line and the field,
// nothing created, and nothing owned pruned, though the good files no longer list it.
TEST_F(DockerTest, OneBadContainerFileMeansNothingIsAppliedOrPruned) {
  const std::string kept = name("np-bad-kept"), fresh = name("np-bad-new"), bad = name("np-bad");
  ASSERT_EQ(np({"apply", "-f", files("d", {containerDoc(kept)})}).code, 0);
  const std::string keptId = idOf(kept);
  ASSERT_FALSE(keptId.empty());
  struct Case {
    std::string spec, message;
  };
  for (const Case& c :
       {Case{"mounts: [{source: data, target: /data}]", "spec.mounts[0].source"},
        Case{"env: {1BAD: x}", "spec.env"}, Case{"restart: sometimes", "spec.restart"},
        Case{"gpus: [99]", "spec.gpus[0]"}}) {
    auto r = np({"apply", "-f", files("d", {containerDoc(fresh), containerDoc(bad, {c.spec})})});
    EXPECT_EQ(r.code, 1) << c.spec << "\n" << r.out << r.err;
    EXPECT_THAT(r.err + r.out, HasSubstr("1.yaml:")) << c.spec;
    EXPECT_THAT(r.err + r.out, HasSubstr(c.message)) << c.spec << "\n" << r.out << r.err;
    EXPECT_EQ(idOf(fresh), "") << c.spec << ": applied despite a bad file";
    EXPECT_EQ(idOf(bad), "") << c.spec;
    EXPECT_EQ(idOf(kept), keptId) << c.spec << ": pruned despite a bad file";
  }
}

// A container made by hand: the list shows no command, env or GPUs, so export leaves it out and
// says so (exit 1) instead of writing a spec whose adoption would recreate it without them.
TEST_F(DockerTest, ExportLeavesOutAContainerNodeplaneDidNotCreate) {
  const std::string hand = name("np-exp-hand"), ours = name("np-exp-ours");
  ASSERT_FALSE(makeByHand(hand).empty());
  ASSERT_EQ(np({"apply", "--no-prune", "-f", files("d", {containerDoc(ours)})}).code, 0);
  auto e = np({"export", "--kind", "Container"});
  EXPECT_EQ(e.code, 1) << e.out << e.err;
  EXPECT_THAT(e.err, HasSubstr("Container/" + hand));
  EXPECT_THAT(e.err, HasSubstr("a container nodeplane did not create"));
  EXPECT_THAT(e.out, Not(HasSubstr("name: " + hand)));
  EXPECT_THAT(e.out, HasSubstr("name: " + ours));
}

TEST_F(DockerTest, ExportedContainersApplyUnchanged) {
  const std::string a = name("np-exp-a"), b = name("np-exp-b");
  TempDir out;
  ASSERT_EQ(np({"apply", "-f",
                files("d", {containerDoc(a, {"command: [sleep, '1000']", "env: {K: v}",
                                             "restart: unless-stopped"}),
                            containerDoc(b, {"state: stopped", "labels: {team: ml}",
                                             "mounts: [{source: " + out.path().string() +
                                                 ", target: /data, readOnly: true}]"})})})
                .code,
            0);
  auto e = np({"export", "--kind", "Container"});
  // env values are sensitive: export names the container and leaves it out (exit 1).
  EXPECT_THAT(e.out, HasSubstr("name: " + b));
  desired_.write("exported/all.yaml", e.out);
  auto d = np({"diff", "--no-prune", "-f", (desired_ / "exported").string()});
  EXPECT_EQ(d.code, 0) << e.out << "\n" << d.out << d.err;
}

// Plugin level: a Change made by hand, as a saved plan would carry it.
class DockerPluginTest : public DockerTest {
 protected:
  void SetUp() override {
    DockerTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    startPlugin(HostContext{});
  }
  // The plugin on the test's dockerd, over `host`'s roots.
  void startPlugin(HostContext host) {
    host.stateDir = state_ / "plugin";
    host.config = Json{{"docker", {{"socket", d_->socket()}}}};
    plugin_.reset();
    rig_ = std::make_unique<test::PluginRig>(host, "docker");
    rig_->services.setConfig(host.config["docker"]);
    plugin_ = std::make_unique<docker::DockerPlugin>(rig_->services);
    auto s = plugin_->start();
    ASSERT_TRUE(s.has_value()) << s.error().str();
  }
  void TearDown() override {
    if (plugin_) plugin_->stop();
    DockerTest::TearDown();
  }

  Outcome apply(const Change& c) {
    test::TestApplyContext ctx(rig_->services);
    return plugin_->apply(c, ctx);
  }
  std::optional<ObservedObject> observed(const std::string& n) {
    auto all = plugin_->observe({docker::kKind});
    EXPECT_TRUE(all.has_value()) << (all ? "" : all.error().str());
    if (all)
      for (auto& o : *all)
        if (o.id.name == n) return o;
    return std::nullopt;
  }
  Change change(Action action, const std::string& n, const std::string& uid = "") {
    Change c;
    c.action = action;
    c.id = ResourceId{docker::kKind, n};
    c.desired = Json{{"image", kBusyboxImage}, {"network", "none"}};
    c.uid = uid;
    return c;
  }

  std::unique_ptr<test::PluginRig> rig_;
  std::unique_ptr<docker::DockerPlugin> plugin_;
};

TEST_F(DockerPluginTest, ObserveReportsOursMarkedAndAnotherAgentsAsTheirs) {
  const std::string n = name("np-obs"), other = name("np-obs-other");
  ASSERT_TRUE(apply(change(Action::kCreate, n)).ok());
  makeByHand(other, {{docker::kManagedLabel, "true"},
                     {docker::kAgentLabel, "ffffffffffffffff"},
                     {docker::kResourceLabel, "Container/" + other}});
  auto o = observed(n);
  ASSERT_TRUE(o.has_value());
  EXPECT_TRUE(o->marked);
  EXPECT_EQ(o->uid, idOf(n));
  EXPECT_EQ(o->spec.value("state", ""), "running");
  auto theirs = observed(other);
  ASSERT_TRUE(theirs.has_value());
  EXPECT_FALSE(theirs->marked);
  EXPECT_EQ(theirs->markedByOther, "ffffffffffffffff");
}

TEST_F(DockerPluginTest, ADeleteOfAContainerThatIsNotOursIsRefusedAndTouchesNothing) {
  const std::string other = name("np-del-other"), plain = name("np-del-plain");
  const std::string otherId = makeByHand(other, {{docker::kManagedLabel, "true"},
                                                 {docker::kAgentLabel, "ffffffffffffffff"},
                                                 {docker::kResourceLabel, "Container/" + other}});
  const std::string plainId = makeByHand(plain);
  Outcome o = apply(change(Action::kDelete, other, otherId));
  EXPECT_EQ(o.cls, Outcome::kTerminal);
  EXPECT_EQ(o.error.message, "delete Container/" + other + " refused: container " + other + " (" +
                                 otherId.substr(0, 12) +
                                 ") is not this agent's: it carries another nodeplane agent's id "
                                 "(ffffffffffffffff); not touched");
  Outcome p = apply(change(Action::kDelete, plain, plainId));
  EXPECT_EQ(p.cls, Outcome::kTerminal);
  EXPECT_THAT(p.error.message, HasSubstr("carries no io.nodeplane.managed=true label"));
  EXPECT_EQ(idOf(other), otherId);
  EXPECT_TRUE(isRunning(other));
  EXPECT_EQ(idOf(plain), plainId);
  EXPECT_TRUE(isRunning(plain));
}

TEST_F(DockerPluginTest, AStepMadeAgainstAContainerReCreatedSinceIsRefused) {
  const std::string n = name("np-uid");
  ASSERT_TRUE(apply(change(Action::kCreate, n)).ok());
  auto before = observed(n);
  ASSERT_TRUE(before.has_value());
  const std::string oldId = before->uid;
  const Json labels = labelsOf(n);
  // By hand: removed and made again under the same name, with the same labels.
  ASSERT_TRUE(d_->engine().request("DELETE", "/containers/" + oldId + "?force=1"));
  const std::string newId = makeByHand(n, labels);
  ASSERT_NE(newId, oldId);
  for (Action a : {Action::kDelete, Action::kReplace, Action::kUpdate}) {
    Outcome o = apply(change(a, n, oldId));
    EXPECT_EQ(o.cls, Outcome::kTerminal) << toString(a);
    EXPECT_THAT(o.error.message,
                HasSubstr("is not the one the plan was made against (id " + oldId.substr(0, 12) +
                          " then, " + newId.substr(0, 12) + " now: re-created since)"))
        << toString(a);
  }
  EXPECT_EQ(idOf(n), newId);
  EXPECT_TRUE(isRunning(n));
}

TEST_F(DockerPluginTest, APullFromAnUnreachableRegistryIsRetryableAndNamesTheImage) {
  const std::string n = name("np-pull");
  Change c = change(Action::kCreate, n);
  c.desired["image"] = "127.0.0.1:9/nodeplane-test/none:1";
  test::TestApplyContext ctx(rig_->services);
  Outcome o = plugin_->apply(c, ctx);
  EXPECT_EQ(o.cls, Outcome::kRetryable) << o.error.str();
  EXPECT_THAT(o.error.message, HasSubstr("pulling image 127.0.0.1:9/nodeplane-test/none:1: "));
  EXPECT_THAT(ctx.messages, ::testing::Contains("pulling image 127.0.0.1:9/nodeplane-test/none:1"));
  EXPECT_TRUE(inspect(n).is_null());
}

// GPUs: the e-h100 fixture host (four H100, 0000:1b and 0000:3b on NUMA node 0 with cpulist
// "0", 0000:9b and 0000:bb on node 1 with cpulist "1") as the inventory; a dockerd of its own with
// a stub nvidia-container-runtime-hook on its PATH, so that DeviceRequests really work.
class DockerGpuTest : public DockerPluginTest {
 protected:
  void SetUp() override {
    NODEPLANE_REQUIRE_DOCKERD_ROOT();
    hookPath_ = writeNvidiaHookStub(bin_.path(), record_.path());
    gpuDockerd_ = std::make_unique<Dockerd>(DockerdOptions{bin_.path()});
    ASSERT_TRUE(gpuDockerd_->ok()) << gpuDockerd_->error();
    ASSERT_EQ(gpuDockerd_->importBusybox(), "");
    d_ = gpuDockerd_.get();
    config_.write("agent.yaml", "lockTimeoutSeconds: 1\ndocker: {socket: " + d_->socket() + "}\n");
    startPlugin(fixtureHost());
  }
  void TearDown() override {
    DockerPluginTest::TearDown();
    gpuDockerd_.reset();
  }

  // The GPUs as the inventory reads them from the fixture, by index.
  std::vector<host::Gpu> gpus() {
    auto g = rig_->services.gpus();
    EXPECT_TRUE(g.has_value()) << (g ? "" : g.error().str());
    return g ? *g : std::vector<host::Gpu>{};
  }

  TempDir bin_, record_;
  fs::path hookPath_;
  std::unique_ptr<Dockerd> gpuDockerd_;
};

std::set<std::string> splitComma(const std::string& s) {
  std::set<std::string> out;
  std::size_t start = 0;
  while (start <= s.size()) {
    auto end = s.find(',', start);
    if (end == std::string::npos) end = s.size();
    if (end > start) out.insert(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

TEST_F(DockerGpuTest, TheContainerSeesTheUuidsOfItsGpusAndTheHookRunsAtPrestart) {
  const auto inventory = gpus();
  ASSERT_EQ(std::count_if(inventory.begin(), inventory.end(),
                          [](const host::Gpu& g) { return g.isNvidia(); }),
            4);
  const std::string n = name("np-gpu");
  TempDir out;
  Change c = change(Action::kCreate, n);
  c.desired["gpus"] = Json::array({0, 2});
  c.desired["command"] = Json::array(
      {"sh", "-c", "env > /out/env.tmp && mv /out/env.tmp /out/env && exec sleep 1000"});
  c.desired["mounts"] = Json::array({{{"source", out.path().string()}, {"target", "/out"}}});
  Outcome o = apply(c);
  ASSERT_TRUE(o.ok()) << o.error.str();
  ASSERT_TRUE(eventually("the container wrote /out/env", [&] { return fs::exists(out / "env"); }));
  std::string visible;
  const std::string env = slurp(out / "env");
  const auto at = env.find("NVIDIA_VISIBLE_DEVICES=");
  ASSERT_NE(at, std::string::npos) << env;
  const auto eol = env.find('\n', at);
  visible = env.substr(at + 23, eol - at - 23);
  std::set<std::string> want;
  for (const auto& g : inventory)
    if (g.isNvidia() && (g.index == 0 || g.index == 2)) want.insert(g.uuid);
  EXPECT_EQ(want.size(), 2u);
  EXPECT_EQ(splitComma(visible), want) << visible;
  EXPECT_THAT(slurp(record_ / "argv"), HasSubstr("prestart"));
  auto seen = observed(n);
  ASSERT_TRUE(seen.has_value());
  EXPECT_TRUE(seen->marked);
}

TEST_F(DockerGpuTest, NumaAffinityPinsTheContainerToTheCpusOfItsGpusNode) {
  const std::string n = name("np-numa");
  TempDir out;
  Change c = change(Action::kCreate, n);
  c.desired["gpus"] = Json::array({0});
  c.desired["numaAffinity"] = true;
  c.desired["command"] = Json::array(
      {"sh", "-c",
       "cat /proc/self/status > /out/s.tmp && mv /out/s.tmp /out/status && exec sleep 1000"});
  c.desired["mounts"] = Json::array({{{"source", out.path().string()}, {"target", "/out"}}});
  Outcome o = apply(c);
  ASSERT_TRUE(o.ok()) << o.error.str();
  ASSERT_TRUE(
      eventually("the container wrote /out/status", [&] { return fs::exists(out / "status"); }));
  EXPECT_THAT(slurp(out / "status"), HasSubstr("Cpus_allowed_list:\t0\n"));
  EXPECT_EQ(inspect(n)["HostConfig"].value("CpusetCpus", ""), "0");
}

// A container given `gpus: all` holds every NVIDIA GPU: an exclusive claim of one of them waits
// for its delete, or is refused while it is kept (it held none, and so an "exclusive" container
// shared GPU 0 with it).
TEST_F(DockerGpuTest, AContainerWithAllGpusHoldsEachOfThem) {
  const std::string n = name("np-gpu-all");
  Change c = change(Action::kCreate, n);
  c.desired["gpus"] = "all";
  c.desired["command"] = Json::array({"sleep", "1000"});
  Outcome o = apply(c);
  ASSERT_TRUE(o.ok()) << o.error.str();
  std::set<std::string> want;
  for (const auto& g : gpus())
    if (g.isNvidia()) want.insert(g.function.address);
  ASSERT_EQ(want.size(), 4u);
  auto seen = observed(n);
  ASSERT_TRUE(seen.has_value());
  std::set<std::string> held;
  for (const auto& h : seen->holds) {
    EXPECT_EQ(h.type, "gpu");
    EXPECT_FALSE(h.exclusive);
    held.insert(h.id);
  }
  EXPECT_EQ(held, want);
}

// Through the CLI with the fixture's roots: a GPU named by its UUID reaches the container, and a
// second diff (the normal form is the PCI address on both sides) is in sync.
TEST_F(DockerGpuTest, TheCliAppliesAGpuContainerNamedByUuidAndADiffIsInSync) {
  std::string uuid;
  for (const auto& g : gpus())
    if (g.isNvidia() && g.index == 3) uuid = g.uuid;
  ASSERT_FALSE(uuid.empty());
  const std::string n = name("np-gpu-cli");
  TempDir out;
  const std::string dir = files(
      "d", {containerDoc(n, {"gpus: [" + uuid + "]",
                             "command: [sh, -c, 'env > /out/env.tmp && mv /out/env.tmp /out/env "
                             "&& exec sleep 1000']",
                             "mounts: [{source: " + out.path().string() + ", target: /out}]"})});
  const HostContext host = fixtureHost();
  const std::vector<std::string> roots = {"--sysfs-root", host.sysfsRoot.string(), "--proc-root",
                                          host.procRoot.string()};
  auto with = [&](std::vector<std::string> args) {
    args.insert(args.begin(), roots.begin(), roots.end());
    return np(args);
  };
  auto a = with({"apply", "-f", dir});
  ASSERT_EQ(a.code, 0) << a.out << a.err;
  ASSERT_TRUE(eventually("the container wrote /out/env", [&] { return fs::exists(out / "env"); }));
  EXPECT_THAT(slurp(out / "env"), HasSubstr("NVIDIA_VISIBLE_DEVICES=" + uuid + "\n"));
  auto d = with({"diff", "-f", dir});
  EXPECT_EQ(d.code, 0) << d.out << d.err;
}

// The shared dockerd has no nvidia-container-runtime-hook: as on a host without the toolkit.
TEST_F(DockerPluginTest, AGpuContainerWithoutTheToolkitFailsWithTheHintAndStays) {
  plugin_->stop();
  startPlugin(fixtureHost());
  const std::string n = name("np-nohook");
  Change c = change(Action::kCreate, n);
  c.desired["gpus"] = Json::array({1});
  Outcome o = apply(c);
  EXPECT_EQ(o.cls, Outcome::kTerminal);
  EXPECT_THAT(o.error.message, HasSubstr("could not select device driver"));
  EXPECT_EQ(o.error.hint,
            "install the NVIDIA Container Toolkit (nvidia-container-runtime-hook) on the host and "
            "restart dockerd");
  // Created with the labels, not started: the next pass starts it again or replaces it.
  EXPECT_FALSE(idOf(n).empty());
  EXPECT_FALSE(isRunning(n));
  EXPECT_EQ(labelsOf(n).value(docker::kResourceLabel, ""), "Container/" + n);
}

}  // namespace
}  // namespace nodeplane::testing
