// Claims, dependencies and ownership order, over the in-memory widget plugin
// (tests/fixtures/plugins/widget.cpp: `claims:` in a widget's spec, `holds` of existing objects,
// `parts: N` children, `pciChildren` read from the host) and the sysfs fixtures.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "engine.hpp"
#include "support/files.hpp"
#include "widget_engine.hpp"

namespace nodeplane {
namespace {

namespace fs = std::filesystem;
using ::nodeplane::testing::procFixture;
using ::nodeplane::testing::sysfsFixture;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr const char* kHead = "apiVersion: nodeplane.io/v1\nkind: Widget\n";

// A widget document: `metadata: {name: NAME}` and `spec: SPEC`.
std::string widget(const std::string& name, const std::string& spec,
                   const std::string& metadata = "") {
  return std::string(kHead) + "metadata: {name: " + name + metadata + "}\nspec: " + spec + "\n";
}
std::string docs(std::initializer_list<std::string> ds) {
  std::string out;
  for (const auto& d : ds) out += (out.empty() ? "" : "---\n") + d;
  return out;
}

std::vector<std::string> errorTexts(const std::vector<Error>& errors) {
  std::vector<std::string> out;
  for (const auto& e : errors) out.push_back(e.str());
  return out;
}

// "action Kind/name" per step, in plan order.
std::vector<std::string> steps(const Plan& p) {
  std::vector<std::string> out;
  for (const auto& e : p.entries)
    out.push_back(std::string(toString(e.change.action)) + " " + e.change.id.name);
  return out;
}
class ClaimsTest : public WidgetEngineTest {
 protected:
  Engine& engine(Json config = Json::object(), fs::path sysfs = sysfsFixture("a-workstation"),
                 fs::path proc = "/nonexistent-proc") {
    HostContext ctx;
    ctx.sysfsRoot = std::move(sysfs);
    ctx.procRoot = std::move(proc);
    ctx.config["widget"] = std::move(config);
    return loadWidget(ctx);
  }
  state::Store store() { return openStore(tmp_.path()); }
  // An existing widget for the config's `existing`.
  static Json existing(const std::string& name, bool marked, Json holds = Json::array(),
                       Json spec = {{"size", 1}}) {
    return {{"name", name}, {"marked", marked}, {"spec", spec}, {"holds", holds}};
  }
  static Json pci(const std::string& address, bool exclusive = true) {
    return {{"type", "pci"}, {"id", address}, {"exclusive", exclusive}};
  }

  ::nodeplane::testing::TempDir tmp_;
};

// --- desired against desired --------------------------------------------------------------------

TEST_F(ClaimsTest, ExclusiveAgainstSharedIsAnErrorNamingBothTwoSharedAreFine) {
  engine();
  auto d = desired(docs({
      widget("a", "{claims: [{type: gpu, id: \"0000:01:00.0\"}]}"),
      widget("b", "{claims: [{type: gpu, id: \"0000:01:00.0\", exclusive: false}]}"),
      widget("c", "{claims: [{type: gpu, id: GPU-1, exclusive: false}]}"),
      widget("d", "{claims: [{type: gpu, id: GPU-1, exclusive: false}]}"),
      // A GPU named by its PCI address is that PCI function: a VM's passthrough and a
      // container's GPU are one device.
      widget("e", "{claims: [{type: pci, id: \"0000:01:00.0\", exclusive: false}]}"),
  }));
  EXPECT_THAT(errorTexts(d.errors),
              ElementsAre("desired.yaml:7:1: Widget/b: claims gpu 0000:01:00.0 (shared), already "
                          "claimed exclusively by Widget/a at desired.yaml:2:1",
                          "desired.yaml:22:1: Widget/e: claims pci 0000:01:00.0 (shared), already "
                          "claimed exclusively by Widget/a at desired.yaml:2:1"));
}

// A GPU named by its driver UUID or its inventory index is the GPU at its PCI address: a
// container's exclusive claim of "GPU-…" and a VM's passthrough of that address conflict.
TEST_F(ClaimsTest, AGpuByUuidOrIndexIsTheSameDeviceAsByAddress) {
  engine(Json::object(), sysfsFixture("e-h100"), procFixture("e-h100"));
  auto d = desired(docs({
      widget("vm", "{claims: [{type: pci, id: \"0000:3b:00.0\", iommuGroup: true}]}"),
      widget("train", "{claims: [{type: gpu, id: GPU-3b000000-0000-4000-8000-000000000000}]}"),
      widget("infer", "{claims: [{type: gpu, id: \"2\", exclusive: false}]}"),
      widget("batch", "{claims: [{type: gpu, id: \"0000:9b:00.0\"}]}"),
  }));
  EXPECT_THAT(errorTexts(d.errors),
              ElementsAre("desired.yaml:7:1: Widget/train: claims gpu 0000:3b:00.0 "
                          "(GPU-3b000000-0000-4000-8000-000000000000), already claimed by "
                          "Widget/vm at desired.yaml:2:1",
                          "desired.yaml:17:1: Widget/batch: claims gpu 0000:9b:00.0 exclusively, "
                          "already claimed (shared) by Widget/infer at desired.yaml:12:1"));
  ASSERT_EQ(d.claims.size(), 4u);
  ASSERT_EQ(d.claims[2].size(), 1u);
  EXPECT_EQ(d.claims[2][0].str(), "gpu 0000:9b:00.0 (GPU index 2)");
  EXPECT_TRUE(d.readsHost) << "resolved through the host's inventory";
}

TEST_F(ClaimsTest, GpuIdsTheInventoryDoesNotKnowStayAsWritten) {
  // No driver: no UUIDs, but indices. The BMC's VGA (e-h100) has no index.
  engine(Json::object(), sysfsFixture("f-no-driver"));
  auto d = desired(docs({
      widget("a", "{claims: [{type: gpu, id: GPU-3b000000-0000-4000-8000-000000000000}]}"),
      widget("b", "{claims: [{type: gpu, id: \"7\"}]}"),
      widget("c", "{claims: [{type: gpu, id: \"1\"}]}"),
      widget("d", "{claims: [{type: pci, id: \"0000:d8:00.0\"}]}"),
  }));
  EXPECT_THAT(errorTexts(d.errors),
              ElementsAre("desired.yaml:17:1: Widget/d: claims pci 0000:d8:00.0, already claimed "
                          "by Widget/c at desired.yaml:12:1"));
  ASSERT_EQ(d.claims.size(), 4u);
  EXPECT_EQ(d.claims[0][0].str(), "gpu GPU-3b000000-0000-4000-8000-000000000000");
  EXPECT_EQ(d.claims[1][0].str(), "gpu 7");

  std::string named;
  auto gpus = host::readGpuInventory(sysfsFixture("e-h100"), procFixture("e-h100"));
  ASSERT_TRUE(gpus);
  EXPECT_EQ(resolveGpuClaim({"gpu", "-1"}, *gpus, named).id, "-1");
  EXPECT_EQ(resolveGpuClaim({"gpu", "0"}, *gpus, named).id, "0000:1b:00.0");
  EXPECT_EQ(named, "GPU index 0");
  EXPECT_EQ(resolveGpuClaim({"pci", "0"}, *gpus, named).id, "0") << "only gpu claims";
  EXPECT_EQ(named, "");
}

TEST_F(ClaimsTest, AnIommuGroupClaimTakesEveryFunctionOfTheGroupButItsBridges) {
  engine();  // a-workstation: group 1 = root port 0000:00:01.0 (a bridge), GPU, its audio
  auto d = desired(docs({
      widget("audio", "{claims: [{type: pci, id: \"0000:01:00.1\"}]}"),
      widget("vm", "{claims: [{type: pci, id: \"0000:01:00.0\", iommuGroup: true}]}"),
      widget("port", "{claims: [{type: pci, id: \"0000:00:01.0\"}]}"),
  }));
  EXPECT_THAT(
      errorTexts(d.errors),
      ElementsAre("desired.yaml:7:1: Widget/vm: claims pci 0000:01:00.1 (in the IOMMU group "
                  "of pci 0000:01:00.0), already claimed by Widget/audio at "
                  "desired.yaml:2:1"));
  ASSERT_EQ(d.claims.size(), 3u);
  std::vector<std::string> vm;
  for (const auto& c : d.claims[1]) vm.push_back(c.claim.str());
  EXPECT_THAT(vm, ElementsAre("pci 0000:01:00.0", "pci 0000:01:00.1"));
  EXPECT_TRUE(d.readsHost) << "widened through the host's inventory";
}

TEST_F(ClaimsTest, AnIommuGroupClaimOfAFunctionWithoutGroupOrAbsentIsAnError) {
  engine(Json::object(), sysfsFixture("c-no-iommu"));
  auto d = desired(docs({
      widget("vm", "{claims: [{type: pci, id: \"0000:01:00.0\", iommuGroup: true}]}"),
      widget("ghost", "{claims: [{type: pci, id: \"0000:99:00.0\", iommuGroup: true}]}"),
  }));
  EXPECT_THAT(errorTexts(d.errors),
              ElementsAre("desired.yaml:2:1: Widget/vm: claims pci 0000:01:00.0 with its IOMMU "
                          "group, but it is in no IOMMU group (turn the IOMMU on (intel_iommu=on "
                          "or amd_iommu=on on the kernel command line))",
                          "desired.yaml:7:1: Widget/ghost: claims pci 0000:99:00.0, which this "
                          "host does not have (list the host's PCI functions with `nodeplane "
                          "check`)"));
}

TEST_F(ClaimsTest, AnOwnerAndItsChildMayTakeOneDevice) {
  // vm-p0 takes what vm takes (a VM and its VfioDevice); vm is also observed holding it.
  auto& e = engine({{"existing", {existing("vm", true, {pci("0000:01:00.0")}, {{"size", 4}})}}});
  auto s = store();
  s.setOwned({.id = {"Widget", "vm"}, .plugin = "widget"});
  auto d =
      desired(widget("vm", "{size: 4, parts: 1, claims: [{type: pci, id: \"0000:01:00.0\"}]}"));
  ASSERT_TRUE(d.ok()) << d.errors[0].str();
  ASSERT_EQ(d.claims.size(), 2u);
  EXPECT_EQ(d.claims[1].size(), 1u) << "the child claims it too";
  Plan p = e.plan(d, e.observe(), s, true);
  EXPECT_TRUE(p.errors.empty()) << p.errors[0].str();
  EXPECT_THAT(steps(p), ElementsAre("create vm-p0"));
}

// --- desired against what the host holds --------------------------------------------------------

TEST_F(ClaimsTest, ADeviceHeldByAnObjectNodeplaneDoesNotManageIsAConflict) {
  auto& e = engine({{"existing",
                     {existing("theirs", false, {pci("0000:01:00.1")}),
                      existing("pool", false, {pci("0000:00:14.0", /*exclusive=*/false)})}}});
  auto d = desired(docs({
      widget("vm", "{claims: [{type: pci, id: \"0000:01:00.0\", iommuGroup: true}]}"),
      widget("joins", "{claims: [{type: pci, id: \"0000:00:14.0\", exclusive: false}]}"),
  }));
  ASSERT_TRUE(d.ok()) << d.errors[0].str();
  auto s = store();
  Plan p = e.plan(d, e.observe(), s, true);
  EXPECT_THAT(errorTexts(p.errors),
              ElementsAre("desired.yaml:2:1: Widget/vm: claims pci 0000:01:00.1 (in the IOMMU "
                          "group of pci 0000:01:00.0) exclusively, but it is held by "
                          "Widget/theirs, which nodeplane does not manage (release it there "
                          "first, or claim another one)"));
  EXPECT_THAT(steps(p), ElementsAre("create joins")) << "vm takes nothing; joins shares a device "
                                                        "held shared";
}

TEST_F(ClaimsTest, TheOldHolderIsDeletedBeforeTheNewOneTakesTheDevice) {
  auto& e = engine(
      {{"existing", {existing("old", true, {pci("0000:01:00.0")})}}, {"failApplyFor", {"old"}}});
  auto s = store();
  s.setOwned({.id = {"Widget", "old"}, .plugin = "widget"});
  auto d = desired(widget("new", "{claims: [{type: pci, id: \"0000:01:00.0\"}]}"));
  ASSERT_TRUE(d.ok()) << d.errors[0].str();
  Plan p = e.plan(d, e.observe(), s, true);
  EXPECT_TRUE(p.errors.empty()) << p.errors[0].str();
  EXPECT_THAT(steps(p), ElementsAre("delete old", "create new"));
  EXPECT_THAT(p.entries[1].after, ElementsAre(0u));
  // The delete fails: the device is not released, so it is not taken.
  auto report = e.converge(d, s, true, {});
  EXPECT_THAT(errorTexts(report.errors),
              ::testing::Contains("Widget/new: skipped: depends on Widget/old, which failed"));
  EXPECT_EQ(report.created, 0u);
}

TEST_F(ClaimsTest, AnUpdateThatDropsTheClaimRunsBeforeTheCreateThatTakesIt) {
  auto& e = engine({{"existing",
                     {existing("a", true, {pci("0000:01:00.0")}, {{"size", 1}, {"color", "red"}}),
                      existing("kept", true, {pci("0000:01:00.1")}, {{"size", 1}})}}});
  auto s = store();
  s.setOwned({.id = {"Widget", "a"}, .plugin = "widget"});
  s.setOwned({.id = {"Widget", "kept"}, .plugin = "widget"});
  auto d = desired(docs({
      widget("b", "{size: 1, claims: [{type: pci, id: \"0000:01:00.0\"}]}"),
      widget("a", "{size: 1, color: green}"),  // drops the claim in its update
      widget("c", "{size: 1, claims: [{type: pci, id: \"0000:01:00.1\"}]}"),
      widget("kept", "{size: 1}"),  // in sync, and still holds it: c cannot have it
  }));
  ASSERT_TRUE(d.ok()) << d.errors[0].str();
  Plan p = e.plan(d, e.observe(), s, true);
  EXPECT_THAT(errorTexts(p.errors),
              ElementsAre(HasSubstr("Widget/c: claims pci 0000:01:00.1 exclusively, but it is held "
                                    "by Widget/kept, which keeps it")));
  EXPECT_THAT(steps(p), ElementsAre("update a", "create b"));
  EXPECT_THAT(p.entries[1].after, ElementsAre(0u));
  // Saved and read back, the plan keeps the order (a plan with errors is not saved: drop them).
  Plan clean = p;
  clean.errors.clear();
  auto saved = planFromJson(savedPlanJson(clean));
  ASSERT_TRUE(saved) << saved.error().str();
  EXPECT_THAT(saved->entries[1].after, ElementsAre(0u));
}

TEST_F(ClaimsTest, StepsThatWaitOnEachOtherAreAPlanErrorNotAHang) {
  // b takes what a holds, and a depends on b: a's update must come first and last.
  auto& e = engine({{"existing", {existing("a", true, {pci("0000:01:00.0")}, {{"size", 1}})}}});
  auto s = store();
  s.setOwned({.id = {"Widget", "a"}, .plugin = "widget"});
  auto d = desired(docs({
      widget("a", "{size: 2}", ", dependsOn: [Widget/b]"),
      widget("b", "{size: 1, claims: [{type: pci, id: \"0000:01:00.0\"}]}"),
  }));
  ASSERT_TRUE(d.ok()) << d.errors[0].str();
  Plan p = e.plan(d, e.observe(), s, true);
  EXPECT_THAT(errorTexts(p.errors), ElementsAre(HasSubstr("these steps wait on each other")));
  EXPECT_TRUE(p.entries.empty());
}

// --- dependencies and ownership order -----------------------------------------------------------

TEST_F(ClaimsTest, DependsOnOrdersCreatesAndDeletesAndTheStoreRemembersIt) {
  auto& e = engine();
  auto d = desired(docs({
      widget("app", "{size: 1}", ", dependsOn: [Widget/net, Widget/disk]"),
      widget("disk", "{size: 1}"),
      widget("net", "{size: 1}"),
  }));
  ASSERT_TRUE(d.ok()) << d.errors[0].str();
  auto s = store();
  Plan p = e.plan(d, e.observe(), s, true);
  EXPECT_THAT(steps(p), ElementsAre("create net", "create disk", "create app"));
  auto j = planToJson(p);
  EXPECT_EQ(j["changes"][2]["dependsOn"],
            Json::parse(R"([{"kind":"Widget","name":"net"},{"kind":"Widget","name":"disk"}])"));
  ASSERT_TRUE(e.converge(d, s, true, {}).ok());
  EXPECT_EQ(s.owned().at({"Widget", "app"}).dependsOn.size(), 2u);
  ASSERT_TRUE(s.commit());
  auto reread = store();
  EXPECT_EQ(reread.owned().at({"Widget", "app"}).dependsOn.size(), 2u) << "kept in state.json";

  // All pruned: app (which sorts first anyway) and then what it depended on, after it.
  Plan gone = e.plan(desired(""), e.observe(), reread, true);
  EXPECT_THAT(steps(gone), ElementsAre("delete app", "delete disk", "delete net"));
  EXPECT_THAT(gone.entries[1].after, ElementsAre(0u));
  EXPECT_THAT(gone.entries[2].after, ElementsAre(0u));
}

TEST_F(ClaimsTest, BadDependsOnEntriesAreErrorsWithTheirFieldPath) {
  engine();
  auto d = desired(docs({
      widget("a", "{size: 1}", ", dependsOn: [Widget/b, nope, Widget/]"),
      widget("b", "{size: 1}", ", dependsOn: [Widget/ghost, Widget/b]"),
      widget("c", "{size: 1}", ", dependsOn: Widget/b"),
  }));
  EXPECT_THAT(errorTexts(d.errors),
              ElementsAre("desired.yaml:3:43: Widget/a metadata.dependsOn[1]: expected Kind/name "
                          "(e.g. Bridge/br0), got \"nope\"",
                          "desired.yaml:3:49: Widget/a metadata.dependsOn[2]: expected Kind/name "
                          "(e.g. Bridge/br0), got \"Widget/\"",
                          "desired.yaml:8:33: Widget/b metadata.dependsOn[0]: Widget \"ghost\" is "
                          "not defined in the desired state (define Widget/ghost or fix the name)",
                          "desired.yaml:8:47: Widget/b metadata.dependsOn[1]: dependency cycle: "
                          "Widget/b depends on itself",
                          "desired.yaml:13:21: Widget/c metadata.dependsOn: expected a list of "
                          "strings, got string \"Widget/b\""));
}

TEST_F(ClaimsTest, ADependsOnCycleIsAnError) {
  engine();
  auto d = desired(docs({
      widget("a", "{size: 1}", ", dependsOn: [Widget/b]"),
      widget("b", "{size: 1, uses: a}"),
  }));
  EXPECT_THAT(errorTexts(d.errors), ElementsAre(HasSubstr("dependency cycle: Widget/")));
}

TEST_F(ClaimsTest, AnOwnerIsAppliedAfterItsChildrenAndDeletedBeforeThem) {
  auto& e = engine();
  auto d = desired(widget("vm", "{size: 4, parts: 2, color: red}"));
  ASSERT_TRUE(d.ok()) << d.errors[0].str();
  auto s = store();
  Plan p = e.plan(d, e.observe(), s, true);
  EXPECT_THAT(steps(p), ElementsAre("create vm-p0", "create vm-p1", "create vm"));
  EXPECT_THAT(p.entries[1].after, ElementsAre(0u)) << "vm-p1 dependsOn vm-p0 (set by expand)";
  EXPECT_THAT(p.entries[2].after, ElementsAre(0u, 1u));
  ASSERT_TRUE(e.converge(d, s, true, {}).ok());

  // The owner stays and changes; a child goes: the owner lets go of it first.
  auto fewer = desired(widget("vm", "{size: 4, parts: 1, color: green}"));
  Plan shrink = e.plan(fewer, e.observe(), s, true);
  EXPECT_THAT(steps(shrink), ElementsAre("update vm", "delete vm-p1"));
  EXPECT_THAT(shrink.entries[1].after, ElementsAre(0u));
  // The executor runs that delete after the update, not in the deletes' phase before it.
  std::vector<std::string> ran;
  auto report = e.converge(fewer, s, true, [&](const PlanEntry& entry, const StepResult&) {
    ran.push_back(std::string(toString(entry.change.action)) + " " + entry.change.id.name);
  });
  ASSERT_TRUE(report.ok()) << report.errors[0].str();
  EXPECT_THAT(ran, ElementsAre("update vm", "delete vm-p1"));

  // All pruned: the owner first, then its children (vm-p0 is in the store as vm's child).
  auto again = desired(widget("vm", "{size: 4, parts: 2, color: green}"));
  ASSERT_TRUE(e.converge(again, s, true, {}).ok());
  Plan gone = e.plan(desired(""), e.observe(), s, true);
  EXPECT_THAT(steps(gone), ElementsAre("delete vm", "delete vm-p1", "delete vm-p0"));
  EXPECT_THAT(gone.entries[1].after, ElementsAre(0u));
  EXPECT_THAT(gone.entries[2].after, ElementsAre(0u, 1u));
}

// --- expansions that read the host --------------------------------------------------------------

TEST_F(ClaimsTest, AnExpansionThatReadsTheHostIsStaleOnceTheInventoryChanged) {
  ::nodeplane::testing::TempDir sys;
  fs::copy(sysfsFixture("a-workstation"), sys.path(),
           fs::copy_options::recursive | fs::copy_options::copy_symlinks);
  auto& e = engine({{"expandReadsHost", true}}, sys.path());
  const std::string yaml = widget("host", "{size: 1, pciChildren: true}");
  e.newPass();
  auto d = desired(yaml);
  ASSERT_TRUE(d.ok()) << d.errors[0].str();
  EXPECT_EQ(d.resources.size(), 7u) << "the widget and one child per PCI function (6)";
  EXPECT_TRUE(d.readsHost);
  e.newPass();
  EXPECT_FALSE(e.stale(d)) << "the same inventory";

  fs::remove(sys.path() / "bus/pci/devices/0000:00:14.2");  // a function goes away
  EXPECT_FALSE(e.stale(d)) << "the pass's snapshot is kept until the next pass";
  e.newPass();
  EXPECT_TRUE(e.stale(d));
  auto again = desired(yaml);
  EXPECT_EQ(again.resources.size(), 6u) << "expanded against the inventory as it is now";
  EXPECT_FALSE(e.stale(again));

  // A desired state that did not read the host is never stale.
  auto& plainEngine = engine(Json::object(), sys.path());  // no expandReadsHost
  auto plain = desired(widget("w", "{size: 1}"));
  EXPECT_FALSE(plain.readsHost);
  fs::remove(sys.path() / "bus/pci/devices/0000:00:14.0");
  plainEngine.newPass();
  EXPECT_FALSE(plainEngine.stale(plain));
}

}  // namespace
}  // namespace nodeplane
