// The engine end to end over the in-memory widget plugin (tests/fixtures/plugins/widget.cpp):
// validate, graph, plan, execute, verify, state commit.
#include "engine.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

#include "nodeplane/text.hpp"
#include "support/files.hpp"
#include "widget_engine.hpp"

namespace nodeplane {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

class EngineTest : public WidgetEngineTest {
 protected:
  void SetUp() override { stateDir_ = tmp_.path(); }

  // Loads the widget plugin with `config` as HostContext.config["widget"].
  Engine& engine(Json config = Json::object()) {
    HostContext ctx;
    ctx.hostname = "gpu-node-7";
    ctx.labels = {{"zone", "a"}};
    ctx.config["widget"] = std::move(config);
    return loadWidget(ctx);
  }

  state::Store store() { return openStore(stateDir_); }

  ::nodeplane::testing::TempDir tmp_;
  fs::path stateDir_;
};

constexpr const char* kTwo = R"(apiVersion: nodeplane.io/v1
kind: Widget
metadata: {name: base}
spec: {size: 10, color: red}
---
apiVersion: nodeplane.io/v1
kind: Widget
metadata: {name: top}
spec: {size: 5, uses: base}
)";

TEST_F(EngineTest, UnknownKindNamesTheKnownOnes) {
  engine();
  auto d = desired("apiVersion: nodeplane.io/v1\nkind: Gizmo\nmetadata: {name: g}\nspec: {}\n");
  ASSERT_EQ(d.errors.size(), 1u);
  EXPECT_EQ(d.errors[0].str(),
            "desired.yaml:2:1: Gizmo/g kind: unknown kind \"Gizmo\" (known: Widget)");
}

TEST_F(EngineTest, SchemaErrorsCarryFileLineAndField) {
  engine();
  auto d = desired(
      "apiVersion: nodeplane.io/v1\nkind: Widget\nmetadata: {name: w}\nspec:\n  size: 500\n");
  ASSERT_EQ(d.errors.size(), 1u);
  EXPECT_EQ(d.errors[0].where.line, 5);
  EXPECT_EQ(d.errors[0].field, "spec.size");
  EXPECT_THAT(d.errors[0].message, HasSubstr("out of range 1..100"));
}

TEST_F(EngineTest, PluginValidationRunsAfterTheSchema) {
  engine();
  auto d = desired("apiVersion: nodeplane.io/v1\nkind: Widget\nmetadata: {name: \"w!\"}\n");
  ASSERT_EQ(d.errors.size(), 1u);
  EXPECT_EQ(d.errors[0].field, "metadata.name");
  EXPECT_EQ(d.errors[0].message, "no '!' in widget names");
}

TEST_F(EngineTest, DanglingReferenceIsAnError) {
  engine();
  auto d = desired(
      "apiVersion: nodeplane.io/v1\nkind: Widget\nmetadata: {name: a}\nspec:\n  uses: ghost\n");
  ASSERT_EQ(d.errors.size(), 1u);
  EXPECT_EQ(d.errors[0].str(),
            "desired.yaml:5:3: Widget/a spec.uses: Widget \"ghost\" is not defined in the desired "
            "state (define Widget/ghost or fix the name)");
}

// The daemon keeps the prepared desired state while no file changes: it carries no per-field
// source locations (every error that needs one is found by prepare), only each document's.
TEST_F(EngineTest, PreparedResourcesKeepOnlyTheDocumentLocation) {
  engine();
  auto d = desired(kTwo);
  ASSERT_TRUE(d.ok());
  ASSERT_EQ(d.resources.size(), 2u);
  for (const auto& r : d.resources) {
    EXPECT_TRUE(r.locations.empty()) << r.id.str() << " keeps " << r.locations.size();
    EXPECT_EQ(r.where.file, "desired.yaml");
  }
  EXPECT_EQ(d.resources[0].where.line, 2);
  EXPECT_EQ(d.resources[1].where.line, 7);
  EXPECT_EQ(d.resources[1].locate("spec.uses").str(), "desired.yaml:7:1");
}

TEST_F(EngineTest, DependencyCycleIsAnError) {
  engine();
  auto d = desired(R"(apiVersion: nodeplane.io/v1
kind: Widget
metadata: {name: a}
spec: {uses: b}
---
apiVersion: nodeplane.io/v1
kind: Widget
metadata: {name: b}
spec: {uses: a}
)");
  ASSERT_EQ(d.errors.size(), 1u);
  EXPECT_THAT(d.errors[0].message, HasSubstr("dependency cycle: Widget/"));
  EXPECT_THAT(d.errors[0].message, HasSubstr("Widget/a -> Widget/b"));
}

TEST_F(EngineTest, TwoResourcesMayNotClaimOneDevice) {
  engine({{"colorsExclusive", true}});
  auto d = desired(R"(apiVersion: nodeplane.io/v1
kind: Widget
metadata: {name: a}
spec: {color: red}
---
apiVersion: nodeplane.io/v1
kind: Widget
metadata: {name: b}
spec: {color: red}
)");
  ASSERT_EQ(d.errors.size(), 1u);
  EXPECT_THAT(d.errors[0].str(), HasSubstr("Widget/b: claims color red, already claimed by "
                                           "Widget/a at desired.yaml:2"));
}

TEST_F(EngineTest, SelectsByHostnameGlobAndLabels) {
  engine();
  auto d = desired(R"(apiVersion: nodeplane.io/v1
kind: Widget
metadata: {name: mine, nodes: ["gpu-node-*"]}
---
apiVersion: nodeplane.io/v1
kind: Widget
metadata: {name: other, nodes: ["cpu-*"]}
---
apiVersion: nodeplane.io/v1
kind: Widget
metadata: {name: zoned, nodeSelector: {zone: a}}
---
apiVersion: nodeplane.io/v1
kind: Widget
metadata: {name: elsewhere, nodeSelector: {zone: b}}
)");
  ASSERT_TRUE(d.ok());
  ASSERT_EQ(d.resources.size(), 2u);
  EXPECT_EQ(d.resources[0].id.name, "mine");
  EXPECT_EQ(d.resources[1].id.name, "zoned");
  EXPECT_EQ(d.skippedForNode, 2u);
}

TEST_F(EngineTest, OneVariantPerNodeIsNotADuplicate) {
  engine();  // gpu-node-7, zone=a
  auto d = desired(R"(apiVersion: nodeplane.io/v1
kind: Widget
metadata: {name: w, nodes: ["gpu-node-7"]}
spec: {size: 7}
---
apiVersion: nodeplane.io/v1
kind: Widget
metadata: {name: w, nodes: ["gpu-node-8"]}
spec: {size: 8}
---
apiVersion: nodeplane.io/v1
kind: Widget
metadata: {name: z, nodeSelector: {zone: b}}
spec: {size: 2}
---
apiVersion: nodeplane.io/v1
kind: Widget
metadata: {name: z, nodeSelector: {zone: a}}
spec: {size: 1}
)");
  ASSERT_TRUE(d.ok()) << (d.errors.empty() ? "" : d.errors[0].str());
  ASSERT_EQ(d.resources.size(), 2u);
  EXPECT_EQ(d.resources[0].id.name, "w");
  EXPECT_EQ(d.resources[0].spec["size"], 7);
  EXPECT_EQ(d.resources[1].id.name, "z");
  EXPECT_EQ(d.resources[1].spec["size"], 1);
  EXPECT_EQ(d.skippedForNode, 2u);
}

TEST_F(EngineTest, TwoDefinitionsSelectedForThisNodeAreADuplicate) {
  engine();  // gpu-node-7, zone=a
  auto d = desired(R"(apiVersion: nodeplane.io/v1
kind: Widget
metadata: {name: w, nodes: ["gpu-*"]}
spec: {size: 7}
---
apiVersion: nodeplane.io/v1
kind: Widget
metadata: {name: w, nodes: ["cpu-*"]}
spec: {size: 8}
---
apiVersion: nodeplane.io/v1
kind: Widget
metadata: {name: w, nodeSelector: {zone: a}}
spec: {size: 1}
)");
  ASSERT_EQ(d.errors.size(), 1u);
  EXPECT_EQ(d.errors[0].str(),
            "desired.yaml:13:12: Widget/w metadata.name: defined more than once; also defined at "
            "desired.yaml:3:12 (each kind/name must appear once among the resources selected for "
            "this node (metadata.nodes, metadata.nodeSelector))");
}

TEST_F(EngineTest, SchemaAndPluginErrorsAreAllListed) {
  engine();
  auto d = desired(
      "apiVersion: nodeplane.io/v1\nkind: Widget\nmetadata: {name: \"w!\"}\nspec:\n  size: "
      "500\n");
  ASSERT_EQ(d.errors.size(), 2u);
  EXPECT_EQ(d.errors[0].str(),
            "desired.yaml:3:12: Widget/w! metadata.name: no '!' in widget names");
  EXPECT_EQ(d.errors[1].field, "spec.size");
  EXPECT_THAT(d.errors[1].message, HasSubstr("out of range 1..100"));
}

TEST_F(EngineTest, AnInvalidResourceIsStillDefinedAndItsReferencesChecked) {
  engine();
  auto d = desired(R"(apiVersion: nodeplane.io/v1
kind: Widget
metadata: {name: a}
spec: {size: 500, uses: ghost}
---
apiVersion: nodeplane.io/v1
kind: Widget
metadata: {name: b}
spec: {uses: a}
)");
  ASSERT_EQ(d.errors.size(), 2u) << d.errors.back().str();
  EXPECT_EQ(d.errors[0].field, "spec.size");
  EXPECT_EQ(d.errors[1].str(),
            "desired.yaml:4:19: Widget/a spec.uses: Widget \"ghost\" is not defined in the "
            "desired state (define Widget/ghost or fix the name)");
}

TEST_F(EngineTest, PlansCreatesInDependencyOrderThenConverges) {
  auto& e = engine();
  auto d = desired(kTwo);
  ASSERT_TRUE(d.ok());
  auto s = store();
  Plan p = e.plan(d, e.observe(), s, true);
  ASSERT_EQ(p.entries.size(), 2u);
  EXPECT_EQ(renderPlanText(p),
            "+ Widget/base create\n+ Widget/top create\n"
            "Plan: 2 to create, 0 to update, 0 to replace, 0 to delete, 0 in sync.\n");
  EXPECT_EQ(p.entries[1].after, std::vector<std::size_t>{0});

  auto report = e.converge(d, s, true, {});
  EXPECT_TRUE(report.ok());
  EXPECT_EQ(report.created, 2u);
  EXPECT_TRUE(s.owns({"Widget", "base"}));

  // A second pass finds nothing to do, and the state survived a reopen.
  auto again = store();
  Plan p2 = e.plan(d, e.observe(), again, true);
  EXPECT_FALSE(p2.hasChanges());
  EXPECT_EQ(p2.inSync.size(), 2u);
  EXPECT_EQ(again.results().at({"Widget", "top"}).outcome, "created");
}

// The daemon's resources in backoff: planned (what `diff` shows), not run, and neither is what
// waits for them; the rest converges.
TEST_F(EngineTest, HeldResourcesAndTheirDependentsAreNotRun) {
  auto& e = engine();
  auto d = desired(kTwo);
  ASSERT_TRUE(d.ok());
  auto s = store();
  std::vector<std::string> ran;
  auto onStep = [&](const PlanEntry& p, const StepResult&) { ran.push_back(p.change.id.str()); };

  auto held = e.converge(d, s, true, onStep, {{"Widget", "base"}});
  EXPECT_TRUE(held.ok());
  EXPECT_EQ(held.plan.entries.size(), 2u);
  EXPECT_EQ(held.created, 0u);
  EXPECT_TRUE(ran.empty());
  EXPECT_FALSE(s.owns({"Widget", "base"}));

  auto topHeld = e.converge(d, s, true, onStep, {{"Widget", "top"}});
  EXPECT_TRUE(topHeld.ok());
  EXPECT_EQ(topHeld.created, 1u);
  EXPECT_EQ(ran, std::vector<std::string>{"Widget/base"});
  EXPECT_TRUE(s.owns({"Widget", "base"}));
  EXPECT_FALSE(s.owns({"Widget", "top"}));
}

TEST_F(EngineTest, UpdateReplaceAndPrune) {
  auto& e =
      engine({{"existing",
               {{{"name", "base"}, {"spec", {{"size", 10}, {"color", "red"}}}, {"marked", true}},
                {{"name", "top"}, {"spec", {{"size", 1}, {"uses", "base"}}}, {"marked", true}},
                {{"name", "stale"}, {"spec", {{"size", 3}}}, {"marked", true}},
                {{"name", "foreign"}, {"spec", {{"size", 3}}}, {"marked", false}}}}});
  auto d = desired(R"(apiVersion: nodeplane.io/v1
kind: Widget
metadata: {name: base}
spec: {size: 10, color: blue}
---
apiVersion: nodeplane.io/v1
kind: Widget
metadata: {name: top}
spec: {size: 5, uses: base}
)");
  ASSERT_TRUE(d.ok());
  auto s = store();
  Plan p = e.plan(d, e.observe(), s, true);
  EXPECT_EQ(renderPlanText(p),
            "- Widget/stale delete\n"
            "~ Widget/base update color: red -> blue\n"
            "-/+ Widget/top replace size: 1 -> 5\n"
            "Plan: 0 to create, 1 to update, 1 to replace, 1 to delete, 0 in sync.\n");
  Plan keep = e.plan(d, e.observe(), s, false);
  EXPECT_EQ(keep.count(Action::kDelete), 0u);

  auto report = e.converge(d, s, true, {});
  EXPECT_TRUE(report.ok()) << (report.errors.empty() ? "" : report.errors[0].str());
  EXPECT_EQ(report.deleted, 1u);
  Observation after = e.observe();
  EXPECT_FALSE(after.objects.count({"Widget", "stale"}));
  EXPECT_TRUE(after.objects.count({"Widget", "foreign"})) << "never delete what is not ours";
}

TEST_F(EngineTest, UnmanagedObjectIsRefusedUnlessAdopted) {
  auto& e = engine({{"existing", {{{"name", "base"}, {"spec", {{"size", 10}}}}}}});
  auto s = store();
  auto d = desired(
      "apiVersion: nodeplane.io/v1\nkind: Widget\nmetadata: {name: base}\n"
      "spec: {size: 10}\n");
  Plan p = e.plan(d, e.observe(), s, true);
  ASSERT_EQ(p.errors.size(), 1u);
  EXPECT_EQ(p.errors[0].str(),
            "desired.yaml:2:1: Widget/base: exists, not managed by nodeplane (set `metadata.adopt: "
            "true` to let nodeplane take it over, or pick another name)");
  EXPECT_FALSE(p.hasChanges());

  auto adopt = desired(
      "apiVersion: nodeplane.io/v1\nkind: Widget\nmetadata: {name: base, adopt: true}\n"
      "spec: {size: 10}\n");
  Plan pa = e.plan(adopt, e.observe(), s, true);
  EXPECT_EQ(renderPlanText(pa).substr(0, 33), "~ Widget/base update (adopt)\nPlan");
  auto report = e.converge(adopt, s, true, {});
  EXPECT_TRUE(report.ok());
  EXPECT_TRUE(s.owns({"Widget", "base"}));
}

TEST_F(EngineTest, AFailureSkipsDependentsAndIndependentsGoOn) {
  auto& e = engine({{"failApplyFor", {"base"}}});
  auto d = desired(std::string(kTwo) +
                   "---\napiVersion: nodeplane.io/v1\nkind: Widget\nmetadata: {name: solo}\n");
  ASSERT_TRUE(d.ok());
  auto s = store();
  auto report = e.converge(d, s, true, {});
  EXPECT_FALSE(report.ok());
  EXPECT_EQ(report.failed, 1u);
  EXPECT_EQ(report.skipped, 1u);
  EXPECT_EQ(report.created, 1u);
  EXPECT_EQ(s.results().at({"Widget", "top"}).outcome, "skipped");
  EXPECT_THAT(s.results().at({"Widget", "top"}).message,
              HasSubstr("depends on Widget/base, which failed"));
  EXPECT_TRUE(s.owns({"Widget", "solo"}));
}

// A permission failure stops the apply; the summary's hint is the failing plugin's own (the
// engine does not know what privilege a plugin needs).
TEST_F(EngineTest, APermissionFailureStopsTheApplyWithThePluginsHint) {
  auto& e = engine({{"failApplyFor", {"base"}},
                    {"failApplyReason", ": Operation not permitted"},
                    {"failApplyHint", "widget needs CAP_SYS_ADMIN"}});
  auto d = desired(std::string(kTwo) +
                   "---\napiVersion: nodeplane.io/v1\nkind: Widget\nmetadata: {name: solo}\n");
  ASSERT_TRUE(d.ok());
  auto s = store();
  auto report = e.converge(d, s, true, {});
  EXPECT_TRUE(report.stopped);
  ASSERT_FALSE(report.errors.empty());
  const Error& last = report.errors.back();
  EXPECT_THAT(last.message, HasSubstr("apply stopped: the host denied permission"));
  EXPECT_EQ(last.hint, "widget needs CAP_SYS_ADMIN: run it as root");
}

TEST_F(EngineTest, SavedPlanRoundTripsAndIsRefusedWhenTheHostChanged) {
  auto& e = engine();
  auto d = desired(kTwo);
  auto s = store();
  Observation obs = e.observe();
  Plan p = e.plan(d, obs, s, true);
  p.fingerprint = obs.fingerprint({});
  auto back = planFromJson(Json::parse(savedPlanJson(p).dump()));
  ASSERT_TRUE(back) << back.error().str();
  EXPECT_EQ(renderPlanText(*back), renderPlanText(p));

  // The host changes (another apply) before the saved plan is used.
  ASSERT_TRUE(e.converge(d, s, true, {}).ok());
  auto r = e.applySaved(*back, s, {});
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("the host changed since this plan was made"));
}

// A step for the executor, as a saved plan or a buggy planner could hand it over.
PlanEntry step(Action action, const std::string& name, Json desired = Json::object()) {
  PlanEntry e;
  e.plugin = "widget";
  e.change.action = action;
  e.change.id = {"Widget", name};
  e.change.desired = std::move(desired);
  return e;
}

// What the host reports need not be UTF-8 (an interface name is any bytes to the kernel): a plan
// that shows it is still saved with its digest, printed, and read back.
TEST(SavedPlan, TextThatIsNotUtf8IsDigestedNotThrown) {
  Plan p;
  p.fingerprint = "0123456789abcdef";
  PlanEntry e = step(Action::kUpdate, "w");
  e.change.observed = {{"label", "w\xff"}};
  p.entries.push_back(e);
  Json saved;
  ASSERT_NO_THROW(saved = savedPlanJson(p));
  auto back = planFromJson(Json::parse(jsonText(saved)));
  ASSERT_TRUE(back) << back.error().str();
  EXPECT_EQ(back->entries.size(), 1u);
}

TEST_F(EngineTest, ExecutorRefusesEveryStepOnWhatItDoesNotOwnWhateverPlannedIt) {
  auto& e = engine(
      {{"existing",
        {{{"name", "foreign"}, {"spec", {{"size", 3}}}, {"marked", false}},
         {{"name", "handmarked"}, {"spec", {{"size", 3}}}, {"marked", true}},
         {{"name", "remade"}, {"spec", {{"size", 3}}}, {"marked", false}},
         {{"name", "others"}, {"spec", {{"size", 3}}}, {"markedByOther", "0123456789abcdef"}}}}});
  auto s = store();
  state::OwnedObject rec;  // recorded as ours, but the object lost the mark: not ours
  rec.id = {"Widget", "remade"};
  rec.plugin = "widget";
  s.setOwned(rec);
  auto adopt = step(Action::kUpdate, "others", {{"size", 4}});
  adopt.change.adopt = true;  // another agent's object is never adopted
  Plan p;
  p.entries = {step(Action::kDelete, "foreign"), step(Action::kUpdate, "foreign", {{"size", 4}}),
               step(Action::kReplace, "foreign", {{"size", 5}}),
               step(Action::kDelete, "handmarked"), adopt};
  auto results = e.execute(p, s, {});
  ASSERT_EQ(results.size(), 5u);
  for (const auto& r : results) EXPECT_EQ(r.outcome, StepOutcome::kFailed);
  EXPECT_EQ(results[0].error.str(),
            "Widget/foreign: refused to delete it: nodeplane does not own it (not recorded in the "
            "state store, no mark); nothing was changed (nodeplane changes only what it created "
            "or adopted)");
  EXPECT_THAT(results[1].error.str(), HasSubstr("refused to update it: nodeplane does not own"));
  EXPECT_THAT(results[2].error.str(), HasSubstr("refused to replace it: nodeplane does not own"));
  EXPECT_THAT(results[3].error.str(),
              HasSubstr("Widget/handmarked: refused to delete it: nodeplane does not own it (not "
                        "recorded in the state store)"));
  EXPECT_EQ(results[4].error.str(),
            "Widget/others: refused to update it: it carries the mark of another nodeplane agent "
            "(agent id 0123456789abcdef); nothing was changed (each agent changes only its own "
            "objects)");
  Observation after = e.observe();
  EXPECT_EQ(after.objects.size(), 4u) << "nothing was deleted";
  EXPECT_EQ(after.objects.at({"Widget", "foreign"}).spec, Json({{"size", 3}}));
  EXPECT_FALSE(after.objects.at({"Widget", "others"}).marked) << "nothing was adopted";
  EXPECT_EQ(after.objects.at({"Widget", "others"}).spec, Json({{"size", 3}}));

  Plan gone;  // recorded and marked, then deleted by hand: nothing to do, the record goes
  gone.entries = {step(Action::kDelete, "remade"), step(Action::kDelete, "nowhere")};
  state::OwnedObject nowhere;
  nowhere.id = {"Widget", "nowhere"};
  s.setOwned(nowhere);
  auto r2 = e.execute(gone, s, {});
  EXPECT_EQ(r2[0].outcome, StepOutcome::kFailed) << "remade is there, unmarked: not deleted";
  EXPECT_EQ(r2[1].outcome, StepOutcome::kOk);
  EXPECT_FALSE(s.owns({"Widget", "nowhere"}));
  EXPECT_TRUE(e.observe().objects.count({"Widget", "remade"}));
}

TEST_F(EngineTest, AnEditedSavedPlanIsRefused) {
  auto& e = engine({{"existing", {{{"name", "foreign"}, {"spec", {{"size", 3}}}}}}});
  auto d = desired(kTwo);
  auto s = store();
  Observation obs = e.observe();
  Plan p = e.plan(d, obs, s, true);
  p.fingerprint = obs.fingerprint({});
  Json j = savedPlanJson(p);
  ASSERT_TRUE(planFromJson(j));

  // Any edit of a step is detected by the digest.
  Json edited = j;
  edited["changes"][0]["desired"]["size"] = 11;
  auto r = planFromJson(edited);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message,
            "the plan was edited after it was made (its digest does not match its content)");
  Json undigested = j;
  undigested.erase("digest");
  EXPECT_FALSE(planFromJson(undigested));

  // Re-digested, a bad spec is still caught by validation, as in a desired-state file...
  edited["changes"][0]["desired"]["size"] = 500;
  edited["digest"] = planDigest(edited);
  auto bad = planFromJson(edited);
  ASSERT_TRUE(bad) << bad.error().str();
  auto errs = e.checkSaved(*bad, "plan.json");
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_THAT(errs[0].str(), HasSubstr("plan.json: Widget/base spec.size: changes[0]: "));
  EXPECT_THAT(errs[0].str(), HasSubstr("out of range 1..100"));
  EXPECT_FALSE(e.applySaved(*bad, s, {}));

  Json cycle = j;  // steps that wait on each other would never run: refused, not skipped
  cycle["changes"][0]["after"] = Json::array({0});
  cycle["digest"] = planDigest(cycle);
  auto cyclic = planFromJson(cycle);
  ASSERT_FALSE(cyclic);
  EXPECT_EQ(cyclic.error().message,
            "plan entry changes[0] (" + j["changes"][0]["kind"].get<std::string>() + "/" +
                j["changes"][0]["name"].get<std::string>() +
                ") waits on itself through its \"after\" steps, so it would never run");

  Json claim = j;  // recording a foreign object as owned is refused too
  claim["claim"].push_back({{"kind", "Widget"}, {"name", "foreign"}});
  claim["digest"] = planDigest(claim);
  auto claimed = e.applySaved(*planFromJson(claim), s, {});
  ASSERT_FALSE(claimed);
  EXPECT_THAT(claimed.error().message, HasSubstr("the plan claims Widget/foreign"));
  EXPECT_FALSE(s.owns({"Widget", "foreign"}));

  // ...and a delete of what nodeplane does not own by the executor.
  Json del = j;
  del["changes"].push_back({{"action", "delete"},
                            {"kind", "Widget"},
                            {"name", "foreign"},
                            {"plugin", "widget"},
                            {"desired", Json::object()},
                            {"observed", Json::object()},
                            {"fields", Json::array()},
                            {"adopt", false},
                            {"after", Json::array()}});
  del["digest"] = planDigest(del);
  auto forged = planFromJson(del);
  ASSERT_TRUE(forged) << forged.error().str();
  EXPECT_TRUE(e.checkSaved(*forged, "plan.json").empty());
  auto report = e.applySaved(*forged, s, {});
  ASSERT_TRUE(report) << report.error().str();
  EXPECT_FALSE(report->ok());
  EXPECT_EQ(report->deleted, 0u);
  EXPECT_THAT(report->errors.at(0).str(), HasSubstr("Widget/foreign: refused to delete it"));
  EXPECT_TRUE(e.observe().objects.count({"Widget", "foreign"}));
}

TEST_F(EngineTest, OwnedObjectsOfAnUnservedKindAreAnErrorNeverNoChanges) {
  auto& e = engine();
  auto s = store();
  state::OwnedObject o;
  o.id = {"Bridge", "br0"};
  o.plugin = "net";
  s.setOwned(o);
  Plan p = e.plan(desired(""), e.observe(), s, true);
  ASSERT_EQ(p.errors.size(), 1u);
  EXPECT_EQ(p.errors[0].str(),
            "Bridge: nodeplane owns 1 object(s) of this kind (Bridge/br0) but no loaded plugin "
            "serves kind Bridge (libnodeplane-net.so is not in the plugin directory) (install or "
            "fix the plugin; nothing of this kind is changed or pruned until then)");
  EXPECT_THAT(renderPlanText(p), Not(HasSubstr("No changes")));
  EXPECT_FALSE(e.converge(desired(""), s, true, {}).ok());
  EXPECT_TRUE(s.owns({"Bridge", "br0"}));
}

TEST_F(EngineTest, ExpandedChildrenArePlannedOwnedAndPrunedLikeAnyResource) {
  auto& e = engine();
  auto d = desired(
      "apiVersion: nodeplane.io/v1\nkind: Widget\nmetadata: {name: vm}\n"
      "spec: {size: 4, children: 2}\n");
  ASSERT_TRUE(d.ok()) << d.errors[0].str();
  ASSERT_EQ(d.resources.size(), 3u);
  auto s = store();
  Plan p = e.plan(d, e.observe(), s, true);
  EXPECT_EQ(renderPlanText(p),
            "+ Widget/vm create\n+ Widget/vm-c0 create\n+ Widget/vm-c1 create\n"
            "Plan: 3 to create, 0 to update, 0 to replace, 0 to delete, 0 in sync.\n");
  ASSERT_TRUE(p.entries[1].owner);
  EXPECT_EQ(p.entries[1].owner->name, "vm");
  EXPECT_EQ(p.entries[1].source, "desired.yaml:2:1") << "children point at their parent's file";
  ASSERT_TRUE(e.converge(d, s, true, {}).ok());
  EXPECT_EQ(s.owned().at({"Widget", "vm-c1"}).owner->name, "vm");

  // The parent goes: its children go first.
  auto none = desired("");
  Plan gone = e.plan(none, e.observe(), s, true);
  EXPECT_EQ(renderPlanText(gone),
            "- Widget/vm-c0 delete\n- Widget/vm-c1 delete\n- Widget/vm delete\n"
            "Plan: 0 to create, 0 to update, 0 to replace, 3 to delete, 0 in sync.\n");
}

TEST_F(EngineTest, RecoversAnInterruptedApplyFromTheJournal) {
  auto& e = engine({{"existing", {{{"name", "made"}, {"spec", {{"size", 2}}}, {"marked", true}}}}});
  {
    auto s = store();
    state::JournalEntry made{s.nextSeq(), "create", {"Widget", "made"}, "widget", Json::object()};
    state::JournalEntry never{s.nextSeq(), "create", {"Widget", "never"}, "widget", Json::object()};
    ASSERT_TRUE(s.journalIntent({made, never}));
  }
  auto s = store();
  ASSERT_EQ(s.pending().size(), 2u);
  auto n = e.recover(s);
  ASSERT_TRUE(n) << n.error().str();
  EXPECT_EQ(*n, 2u);
  EXPECT_TRUE(s.owns({"Widget", "made"}));
  EXPECT_FALSE(s.owns({"Widget", "never"}));
  EXPECT_TRUE(store().pending().empty());
}

}  // namespace
}  // namespace nodeplane
