// The engine end to end over the in-memory widget plugin (tests/fixtures/plugins/widget.cpp):
// validate, graph, plan, execute, verify, state commit.
#include "engine.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

namespace nodeplane {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/nodeplane-engine-XXXXXX";
    stateDir_ = ::mkdtemp(tmpl);
  }
  void TearDown() override { fs::remove_all(stateDir_); }

  // Loads the widget plugin with `config` as HostContext.config["widget"].
  Engine& engine(Json config = Json::object()) {
    HostContext ctx;
    ctx.hostname = "gpu-node-7";
    ctx.labels = {{"zone", "a"}};
    ctx.config["widget"] = std::move(config);
    host_.emplace();
    auto ok = host_->loadOne(
        fs::path(NODEPLANE_TEST_PLUGIN_DIR) / "widget" / "libnodeplane-widget.so", ctx);
    EXPECT_TRUE(ok) << ok.error().str();
    engine_.emplace(*host_, ctx);
    return *engine_;
  }

  Desired desired(const std::string& yaml) {
    return engine_->prepare(parseYaml(yaml, "desired.yaml"));
  }

  state::Store store() {
    auto s = state::Store::open(stateDir_);
    EXPECT_TRUE(s) << s.error().str();
    return std::move(*s);
  }

  fs::path stateDir_;
  std::optional<PluginHost> host_;
  std::optional<Engine> engine_;
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
  EXPECT_THAT(d.errors[0].str(), HasSubstr("Widget/b: claims color:red, already claimed by "
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
            "desired.yaml:2:1: Widget/base: exists, not managed by nodeplane (set `adopt: true` in "
            "its spec to let nodeplane take it over, or pick another name)");
  EXPECT_FALSE(p.hasChanges());

  auto adopt = desired(
      "apiVersion: nodeplane.io/v1\nkind: Widget\nmetadata: {name: base}\n"
      "spec: {size: 10, adopt: true}\n");
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

TEST_F(EngineTest, SavedPlanRoundTripsAndIsRefusedWhenTheHostChanged) {
  auto& e = engine();
  auto d = desired(kTwo);
  auto s = store();
  Observation obs = e.observe();
  Plan p = e.plan(d, obs, s, true);
  p.fingerprint = obs.fingerprint({});
  auto back = planFromJson(Json::parse(planToJson(p).dump()));
  ASSERT_TRUE(back) << back.error().str();
  EXPECT_EQ(renderPlanText(*back), renderPlanText(p));

  // The host changes (another apply) before the saved plan is used.
  ASSERT_TRUE(e.converge(d, s, true, {}).ok());
  auto r = e.applySaved(*back, s, {});
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("the host changed since this plan was made"));
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
