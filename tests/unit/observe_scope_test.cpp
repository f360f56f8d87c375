// Which plugins a plan observes: only those with a kind desired or an object owned in the state
// store (Engine::kindsInUse). A plugin with neither is never observed, so never started: a host
// whose files name only net kinds never asks the docker plugin for /run/docker.sock. The
// lifecycle fixture plugin (kind Gadget) records each call; the widget plugin is the other one.
#include <gtest/gtest.h>

#include <filesystem>
#include <optional>
#include <string>

#include "engine.hpp"
#include "support/files.hpp"

namespace nodeplane {
namespace {
namespace fs = std::filesystem;
using ::nodeplane::testing::slurp;
using ::nodeplane::testing::TempDir;

constexpr const char* kWidget =
    "apiVersion: nodeplane.io/v1\nkind: Widget\nmetadata: {name: w}\nspec: {size: 10}\n";
constexpr const char* kGadget =
    "apiVersion: nodeplane.io/v1\nkind: Gadget\nmetadata: {name: g}\nspec: {size: 3}\n";

class ObserveScope : public ::testing::Test {
 protected:
  // A fresh plugin host (widget and lifecycle) and engine: what each command of the CLI has.
  Engine& load() {
    engine_.reset();
    host_.emplace();
    HostContext ctx;
    ctx.config["widget"] = Json::object();
    ctx.config["lifecycle"] = {{"record", calls().string()}};
    for (const char* name : {"widget", "lifecycle"}) {
      auto ok = host_->loadOne(fs::path(NODEPLANE_TEST_PLUGIN_DIR) / name /
                                   ("libnodeplane-" + std::string(name) + ".so"),
                               ctx);
      EXPECT_TRUE(ok) << ok.error().str();
    }
    for (const auto& p : host_->plugins()) p->services().setConfig(ctx.config[p->name()]);
    engine_.emplace(*host_, ctx);
    return *engine_;
  }
  Desired desired(const std::string& yaml) {
    Desired d = engine_->prepare(parseYaml(yaml, "desired.yaml"));
    EXPECT_TRUE(d.errors.empty()) << d.errors.front().str();
    return d;
  }
  state::Store store() {
    auto s = state::Store::open(tmp_ / "state");
    EXPECT_TRUE(s) << s.error().str();
    return std::move(*s);
  }
  fs::path calls() const { return tmp_ / "calls"; }
  std::string recorded() const { return fs::exists(calls()) ? slurp(calls()) : ""; }

  TempDir tmp_;
  std::optional<PluginHost> host_;  // declared first: the engine goes before the plugins
  std::optional<Engine> engine_;
};

TEST_F(ObserveScope, DiffOfOtherKindsNeverStartsThePlugin) {
  Engine& e = load();
  auto s = store();
  Observation obs = e.observeInUse(desired(kWidget), s);
  EXPECT_TRUE(obs.kinds.count("Widget"));
  EXPECT_FALSE(obs.kinds.count("Gadget")) << "not asked, not failed: not observed at all";
  EXPECT_FALSE(obs.failed.count("Gadget"));
  EXPECT_EQ(recorded(), "");
  Plan plan = e.plan(desired(kWidget), obs, s, true);
  EXPECT_TRUE(plan.errors.empty()) << plan.errors.front().str();
  ASSERT_EQ(plan.entries.size(), 1u);
  EXPECT_EQ(plan.entries[0].change.id.str(), "Widget/w");
}

TEST_F(ObserveScope, ApplyOfOtherKindsNeverStartsThePlugin) {
  Engine& e = load();
  auto s = store();
  ApplyReport r = e.converge(desired(kWidget), s, true, nullptr);
  EXPECT_TRUE(r.ok()) << r.errors.front().str();
  EXPECT_EQ(r.created, 1u);
  EXPECT_EQ(recorded(), "");
  // An empty desired state with nothing owned of its kinds asks it nothing either.
  EXPECT_TRUE(e.deletesOfEmptyDesired(desired(""), s).size() == 1u);
  EXPECT_EQ(recorded(), "");
}

TEST_F(ObserveScope, ADesiredGadgetStartsAndObservesIt) {
  Engine& e = load();
  auto s = store();
  Observation obs = e.observeInUse(desired(std::string(kWidget) + "---\n" + kGadget), s);
  EXPECT_TRUE(obs.kinds.count("Gadget"));
  EXPECT_TRUE(obs.kinds.count("Widget"));
  EXPECT_EQ(recorded(), "start\nobserve\n");
}

TEST_F(ObserveScope, AnOwnedGadgetKeepsItObserved) {
  {
    Engine& e = load();
    auto s = store();
    ApplyReport r = e.converge(desired(kGadget), s, true, nullptr);
    ASSERT_TRUE(r.ok()) << r.errors.front().str();
    ASSERT_EQ(r.created, 1u);
  }
  engine_.reset();
  host_.reset();  // stops it
  fs::remove(calls());
  // The Gadget is no longer desired but owned: a diff of the widget alone observes it (to prune).
  Engine& e = load();
  auto s = store();
  Observation obs = e.observeInUse(desired(kWidget), s);
  EXPECT_TRUE(obs.kinds.count("Gadget"));
  EXPECT_EQ(recorded(), "start\nobserve\n");
}

// export is asked for kinds, not planned: it observes what it is asked for.
TEST_F(ObserveScope, ObserveOfAllKindsStillAsksIt) {
  Engine& e = load();
  Observation obs = e.observe();
  EXPECT_TRUE(obs.kinds.count("Gadget"));
  EXPECT_EQ(recorded(), "start\nobserve\n");
}

}  // namespace
}  // namespace nodeplane
