// An object in use (ObservedObject::busy: a vGPU a running VM has open) is not changed or
// deleted under its user: `diff` shows the step waiting and names the user, the step fails as a
// conflict that says so, and it proceeds once the object is free. Also the set-wide checks
// (Plugin::validateSet) and the kind-level order (KindSchema::appliedAfter).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "engine.hpp"
#include "executor.hpp"
#include "graph.hpp"
#include "plan.hpp"
#include "support/files.hpp"
#include "widget_engine.hpp"

namespace nodeplane {
namespace {

using ::testing::HasSubstr;

class BusyTest : public WidgetEngineTest {
 protected:
  Engine& engine(Json config) {
    HostContext ctx;
    ctx.config["widget"] = std::move(config);
    return loadWidget(ctx);
  }
  static Json existing(const std::string& busy) {
    return {{"existing",
             {{{"name", "slice"},
               {"spec", {{"size", 2}, {"color", "red"}}},
               {"marked", true},
               {"busy", busy},
               {"detail", "held"}}}}};
  }
  ::nodeplane::testing::TempDir tmp_;
};

constexpr const char* kBlue = R"(apiVersion: nodeplane.io/v1
kind: Widget
metadata: {name: slice}
spec: {size: 2, color: blue}
)";

TEST_F(BusyTest, AnUpdateOfABusyObjectWaitsAndNamesItsUser) {
  auto& e = engine(existing("in use by VirtualMachine/vm1"));
  auto d = desired(kBlue);
  ASSERT_TRUE(d.ok());
  auto store = openStore(tmp_.path());
  Plan p = e.plan(d, e.observe(), store, true);
  EXPECT_EQ(renderPlanText(p),
            "~ Widget/slice update color: red -> blue [waits: in use by VirtualMachine/vm1]\n"
            "Plan: 0 to create, 1 to update, 0 to replace, 0 to delete, 0 in sync.\n");
  EXPECT_EQ(planToJson(p)["changes"][0]["waitsFor"], "in use by VirtualMachine/vm1");

  auto report = e.converge(d, store, true, {});
  ASSERT_EQ(report.errors.size(), 1u);
  EXPECT_EQ(report.errors[0].kind, ErrorKind::kConflict);
  EXPECT_EQ(report.errors[0].str(),
            "Widget/slice: in use by VirtualMachine/vm1: not updated until it is free (the "
            "daemon makes it once that stops using it; an apply must be run again)");
  EXPECT_EQ(e.observe().objects.at({"Widget", "slice"}).spec["color"], "red") << "not touched";
}

// Another widget: the desired set is not empty, so the owned `slice` is pruned.
constexpr const char* kOther = R"(apiVersion: nodeplane.io/v1
kind: Widget
metadata: {name: other}
spec: {size: 1}
)";

TEST_F(BusyTest, ABusyObjectIsNotPrunedAndAFreeOneIs) {
  auto& e = engine(existing("in use by pid 42 (qemu-system-x86)"));
  auto store = openStore(tmp_.path());
  auto report = e.converge(desired(kOther), store, true, {});
  ASSERT_EQ(report.errors.size(), 1u);
  EXPECT_THAT(report.errors[0].str(), HasSubstr("in use by pid 42 (qemu-system-x86): not deleted"));
  EXPECT_TRUE(e.observe().objects.count({"Widget", "slice"}));

  auto& freed = engine(existing(""));  // its user went
  auto again = freed.converge(desired(kOther), store, true, {});
  EXPECT_TRUE(again.ok()) << (again.errors.empty() ? "" : again.errors[0].str());
  EXPECT_FALSE(freed.observe().objects.count({"Widget", "slice"}));
}

TEST_F(BusyTest, AFreeObjectIsUpdatedAsUsual) {
  auto& e = engine(existing(""));
  auto d = desired(kBlue);
  auto store = openStore(tmp_.path());
  Plan p = e.plan(d, e.observe(), store, true);
  EXPECT_EQ(p.entries.at(0).waitsFor, "");
  auto report = e.converge(d, store, true, {});
  EXPECT_TRUE(report.ok()) << (report.errors.empty() ? "" : report.errors[0].str());
}

TEST_F(BusyTest, ValidateSetSeesEveryDesiredResourceOfThePlugin) {
  engine({{"maxWidgets", 1}});
  auto d = desired(R"(apiVersion: nodeplane.io/v1
kind: Widget
metadata: {name: a}
spec: {size: 1}
---
apiVersion: nodeplane.io/v1
kind: Widget
metadata: {name: b}
spec: {size: 1}
)");
  ASSERT_EQ(d.errors.size(), 1u);
  EXPECT_EQ(d.errors[0].str(), "desired.yaml:7:1: Widget/b: 2 widgets, at most 1 fit");
  engine({{"maxWidgets", 2}});
  EXPECT_TRUE(desired(R"(apiVersion: nodeplane.io/v1
kind: Widget
metadata: {name: a}
spec: {size: 1}
)")
                  .ok());
}

// Pure planning of these resources (kind, name) of a SriovPf kind and a Vgpu kind applied after
// it, with nothing observed.
Plan vgpuPlan(const std::vector<std::pair<const char*, const char*>>& resources) {
  KindSchema pf{.kind = "SriovPf", .spec = {{.name = "n", .type = FieldType::kInteger}}};
  KindSchema vgpu{.kind = "Vgpu",
                  .spec = {{.name = "n", .type = FieldType::kInteger}},
                  .appliedAfter = {"SriovPf"}};
  const SchemaLookup schema = [&](const std::string& k) -> const KindSchema* {
    return k == "Vgpu" ? &vgpu : k == "SriovPf" ? &pf : nullptr;
  };
  std::vector<Resource> desired;
  for (auto [kind, name] : resources) {
    Resource r;
    r.id = {kind, name};
    r.spec = {{"n", 1}};
    desired.push_back(r);
  }
  std::vector<Error> errors;
  Graph graph = buildGraph(desired, schema, errors);
  EXPECT_TRUE(errors.empty());
  Observation observed;
  observed.kinds = {"Vgpu", "SriovPf"};
  std::set<ResourceId> owned;
  return makePlan({.desired = desired,
                   .graph = graph,
                   .observed = observed,
                   .owned = owned,
                   .schema = schema,
                   .pluginOf = [](const std::string&) { return std::string("vgpu"); }});
}

// Pure planning: a kind applied after another (a Vgpu after the SriovPf that makes its VF) waits
// for every create or update of that kind in the plan, though no field names it.
TEST(AppliedAfter, AStepWaitsForEveryStepOfTheKindsItComesAfter) {
  Plan plan = vgpuPlan({{"Vgpu", "a"}, {"SriovPf", "gpu0"}, {"Vgpu", "b"}});
  ASSERT_EQ(plan.entries.size(), 3u);
  std::size_t pfAt = 3;
  for (std::size_t i = 0; i < 3; ++i)
    if (plan.entries[i].change.id.kind == "SriovPf") pfAt = i;
  ASSERT_LT(pfAt, 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    if (i == pfAt) {
      EXPECT_TRUE(plan.entries[i].after.empty());
      continue;
    }
    EXPECT_EQ(plan.entries[i].after, std::vector<std::size_t>{pfAt})
        << plan.entries[i].change.id.str();
  }
}

// The kind-level order is order only: a SriovPf that fails (one that waits for a VM, one whose
// sriov-manage fails) ends before the Vgpus run, but does not hold back the Vgpus of every other
// GPU of the host.
TEST(AppliedAfter, AStepAfterAKindThatFailedStillRuns) {
  const Plan made = vgpuPlan({{"SriovPf", "gpu0"}, {"Vgpu", "on-gpu2"}});
  // Saved (`diff -o`) and read back (`apply --plan`): the order stays order only.
  auto saved = planFromJson(Json::parse(savedPlanJson(made).dump()));
  ASSERT_TRUE(saved) << saved.error().str();
  const Plan& plan = *saved;
  ASSERT_EQ(plan.entries.size(), 2u);
  std::vector<std::string> ran;
  ExecutorHooks hooks;
  hooks.maxParallel = [](const std::string&) { return 1u; };
  hooks.apply = [&](const PlanEntry& e) {
    ran.push_back(e.change.id.str());
    if (e.change.id.kind == "SriovPf")
      return Outcome::failed(inUse("has vGPUs: not updated until it is free").error());
    return Outcome::done();
  };
  auto results = executePlan(plan, hooks);
  EXPECT_EQ(ran, (std::vector<std::string>{"SriovPf/gpu0", "Vgpu/on-gpu2"})) << "in order";
  for (std::size_t i = 0; i < 2; ++i)
    EXPECT_EQ(results[i].outcome,
              plan.entries[i].change.id.kind == "Vgpu" ? StepOutcome::kOk : StepOutcome::kFailed);
}

}  // namespace
}  // namespace nodeplane
