// Plugin sections of the agent config, checked against each plugin's configSchema() with the
// desired-state checker: file:line, field path, what was expected.
#include "plugin_config.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

namespace nodeplane {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;

struct Configured {
  PluginHost host;
  std::vector<std::string> errors;
  explicit Configured(const std::string& agentYaml, bool withNet = false) {
    auto cfg = parseAgentConfig(agentYaml, "agent.yaml");
    EXPECT_TRUE(cfg) << cfg.error().str();
    if (!cfg) return;
    HostContext ctx;
    ctx.config = cfg->raw;
    auto ok = host.loadOne(
        fs::path(NODEPLANE_TEST_PLUGIN_DIR) / "lifecycle" / "libnodeplane-lifecycle.so", ctx);
    EXPECT_TRUE(ok) << ok.error().str();
    if (withNet) {
      auto net = host.loadOne(fs::path(NODEPLANE_BUILD_PLUGIN_DIR) / "libnodeplane-net.so", ctx);
      EXPECT_TRUE(net) << net.error().str();
    }
    for (const auto& e : configurePlugins(host, *cfg)) errors.push_back(e.str());
  }
  const Json& config(const std::string& kind) { return host.forKind(kind)->services().config(); }
};

TEST(PluginConfig, AValidSectionIsWhatThePluginGets) {
  Configured c("resyncSeconds: 5\nlifecycle:\n  level: 3\n  record: /tmp/x\n");
  EXPECT_THAT(c.errors, ElementsAre());
  EXPECT_EQ(c.config("Gadget"), Json({{"level", 3}, {"record", "/tmp/x"}}));
}

TEST(PluginConfig, AnAbsentSectionIsAnEmptyMapping) {
  Configured c("resyncSeconds: 5\n");
  EXPECT_THAT(c.errors, ElementsAre());
  EXPECT_EQ(c.config("Gadget"), Json::object());
  Configured empty("lifecycle:\n");
  EXPECT_THAT(empty.errors, ElementsAre());
  EXPECT_EQ(empty.config("Gadget"), Json::object());
}

TEST(PluginConfig, FieldErrorsHaveLineFieldAndExpectation) {
  Configured c("lifecycle:\n  levle: 3\n  record: 7\n  failStart: \"x\"\n  level: 9\n");
  EXPECT_THAT(
      c.errors,
      ElementsAre("agent.yaml:2:3: lifecycle.levle: unknown field \"levle\" (known: record, "
                  "failStart, failStartWhile, level) (did you mean \"level\"?)",
                  "agent.yaml:3:3: lifecycle.record: expected a string, got integer 7",
                  "agent.yaml:5:3: lifecycle.level: 9 is out of range 1..5"));
  EXPECT_EQ(c.config("Gadget"), Json::object()) << "a section with errors is not handed over";
}

TEST(PluginConfig, ASectionMustBeAMapping) {
  Configured c("lifecycle:\n  - record\n");
  EXPECT_THAT(c.errors, ElementsAre("agent.yaml:1:1: lifecycle: expected a mapping, got a list"));
}

TEST(PluginConfig, ASectionForNoLoadedPluginIsAnError) {
  Configured c("lifecycel:\n  level: 2\ndocker:\n  socket: /run/docker.sock\n");
  EXPECT_THAT(
      c.errors,
      ElementsAre(
          "agent.yaml:1:1: lifecycel: no loaded plugin is named \"lifecycel\" (a mapping at the "
          "top of the agent config is the section of the plugin of that name; loaded: "
          "lifecycle) (did you mean \"lifecycle\"?)",
          "agent.yaml:3:1: docker: no loaded plugin is named \"docker\" (a mapping at the top of "
          "the agent config is the section of the plugin of that name; loaded: lifecycle) "
          "(remove the section or install the plugin)"));
}

TEST(PluginConfig, TheNetPluginTakesNoSettings) {
  Configured c("net:\n  mtu: 9000\n", true);
  EXPECT_THAT(c.errors, ElementsAre("agent.yaml:2:3: net.mtu: unknown field \"mtu\" (plugin net "
                                    "takes no settings)"));
  Configured empty("net: {}\n", true);
  EXPECT_THAT(empty.errors, ElementsAre());
}

// The example names only sections of shipped plugins: with the net, docker and qemu plugins
// loaded (qemu reads vfio:) it has no error.
TEST(PluginConfig, TheExampleChecksOutWithTheShippedPlugins) {
  auto cfg = loadAgentConfig(std::string(NODEPLANE_SOURCE_DIR) + "/examples/agent.yaml", true);
  ASSERT_TRUE(cfg) << cfg.error().str();
  PluginHost host;
  ASSERT_TRUE(host.loadOne(fs::path(NODEPLANE_BUILD_PLUGIN_DIR) / "libnodeplane-net.so", {}));
  ASSERT_TRUE(host.loadOne(fs::path(NODEPLANE_BUILD_PLUGIN_DIR) / "libnodeplane-docker.so", {}));
  ASSERT_TRUE(host.loadOne(fs::path(NODEPLANE_BUILD_PLUGIN_DIR) / "libnodeplane-qemu.so", {}));
  EXPECT_TRUE(configurePlugins(host, *cfg).empty());
}

TEST(PluginConfig, AScalarAtTheTopIsAMisspeltSettingNotASection) {
  auto cfg = parseAgentConfig("resyncSecond: 5\n", "agent.yaml");
  ASSERT_FALSE(cfg);
  EXPECT_EQ(cfg.error().str(),
            "agent.yaml:1:1: resyncSecond: unknown key \"resyncSecond\" (known: apiVersion, kind, "
            "hostname, labels, resyncSeconds, debounceMilliseconds, lockTimeoutSeconds, "
            "allowEmpty, stateDir, runDir, pluginDir, systemd; a plugin's section is a mapping "
            "named after the "
            "plugin) (did you mean \"resyncSeconds\"?)");
}

}  // namespace
}  // namespace nodeplane
