// Plugin lifecycle in the host: constructing, listing kinds and validating never start a plugin;
// the first observe starts it once; a start failure names the plugin; every started plugin is
// stopped when the host goes (before its library is unloaded). Over the `lifecycle` fixture
// plugin (tests/fixtures/plugins/lifecycle.cpp), which writes each call to a file.
#include <gtest/gtest.h>

#include <filesystem>
#include <optional>
#include <string>

#include "plugin_host.hpp"
#include "support/files.hpp"
#include "support/plugin_rig.hpp"

namespace nodeplane {
namespace {

namespace fs = std::filesystem;
using ::nodeplane::testing::slurp;
using ::nodeplane::testing::TempDir;

fs::path lifecyclePlugin() {
  return fs::path(NODEPLANE_TEST_PLUGIN_DIR) / "lifecycle" / "libnodeplane-lifecycle.so";
}

std::string recorded(const fs::path& file) { return fs::exists(file) ? slurp(file) : ""; }

struct Loaded {
  TempDir tmp;
  fs::path record = tmp / "calls";
  std::optional<PluginHost> host;
  explicit Loaded(Json extra = Json::object()) {
    HostContext ctx;
    ctx.config["lifecycle"] = extra;
    ctx.config["lifecycle"]["record"] = record.string();
    host.emplace();
    auto ok = host->loadOne(lifecyclePlugin(), ctx);
    EXPECT_TRUE(ok) << ok.error().str();
  }
  PluginHandle& plugin() { return *host->forKind("Gadget"); }
};

TEST(PluginLifecycle, LoadingAndValidatingNeverStart) {
  Loaded l;
  Resource r;
  r.id = {"Gadget", "g"};
  EXPECT_TRUE(l.plugin().validate(r).empty());
  EXPECT_TRUE(l.plugin().expand(r));
  EXPECT_EQ(l.plugin().kinds().size(), 1u);
  EXPECT_FALSE(l.plugin().started());
  l.host.reset();
  EXPECT_EQ(recorded(l.record), "") << "nothing started, so nothing stopped";
}

TEST(PluginLifecycle, ObserveStartsOnceAndTheHostStopsIt) {
  Loaded l;
  ASSERT_TRUE(l.plugin().observe({"Gadget"}));
  ASSERT_TRUE(l.plugin().observe({"Gadget"}));
  EXPECT_TRUE(l.plugin().started());
  EXPECT_EQ(recorded(l.record), "start\nobserve\nobserve\n");
  l.host.reset();
  EXPECT_EQ(recorded(l.record), "start\nobserve\nobserve\nstop\n");
}

TEST(PluginLifecycle, CheckDoesNotStart) {
  Loaded l;
  auto items = l.plugin().check();
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].name, "gadget-bench");
  EXPECT_FALSE(l.plugin().started());
  l.host.reset();
  EXPECT_EQ(recorded(l.record), "check\n");
}

TEST(PluginLifecycle, AStartFailureNamesThePluginAndIsNotRetriedNorStopped) {
  Loaded l(Json{{"failStart", "the bench is unplugged"}});
  auto first = l.plugin().observe({"Gadget"});
  ASSERT_FALSE(first);
  EXPECT_EQ(first.error().message, "plugin lifecycle could not start: the bench is unplugged");
  EXPECT_EQ(first.error().kind, ErrorKind::kRetryable);
  test::TestApplyContext context(l.plugin().services());
  Change c;
  c.id = {"Gadget", "g"};
  Outcome o = l.plugin().apply(c, context);
  EXPECT_EQ(o.cls, Outcome::kRetryable);
  EXPECT_EQ(o.error.message, "plugin lifecycle could not start: the bench is unplugged");
  l.host.reset();
  EXPECT_EQ(recorded(l.record), "start\n") << "started once, never stopped (it never ran)";
}

}  // namespace
}  // namespace nodeplane
