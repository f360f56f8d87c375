// The agent config: its keys (types checked, errors with file:line) and the desired-state
// reader's limits.
#include "agent_config.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/memory_limit.hpp"

namespace nodeplane {
namespace {

using ::testing::HasSubstr;

std::string firstError(const std::string& text) {
  return testing::withMemoryLimit(512u << 20, [&] {
    auto cfg = parseAgentConfig(text, "agent.yaml");
    return cfg ? std::string("no error") : cfg.error().str();
  });
}

TEST(AgentConfig, ReadsLabelsAndTimes) {
  auto cfg = parseAgentConfig(
      "apiVersion: nodeplane.io/v1\nkind: AgentConfig\nhostname: gpu-1\nlabels: {zone: a}\n"
      "resyncSeconds: 30\n",
      "agent.yaml");
  ASSERT_TRUE(cfg) << cfg.error().str();
  EXPECT_EQ(cfg->hostname, "gpu-1");
  EXPECT_EQ(cfg->labels.at("zone"), "a");
  EXPECT_EQ(cfg->resync, std::chrono::seconds(30));
}

TEST(AgentConfig, AliasesOfALargeScalarAreAnError) {
  // Aliases in a plugin's section, which the agent passes on as JSON.
  std::string text =
      "labels:\n  big: &big " + std::string(1 << 20, 'x') + "\nvfio:\n  copies: [*big";
  for (int i = 1; i < 4000; ++i) text += ", *big";
  text += "]\n";
  EXPECT_EQ(firstError(text),
            "agent.yaml:4:384: aliases and anchors expand to more than 64 MiB (alias expansion "
            "limit; is this a \"billion laughs\" document?)");
}

TEST(AgentConfig, LongKeysAndDeepNestingAreErrors) {
  EXPECT_EQ(firstError("labels:\n  ? " + std::string(2 << 20, 'k') + "\n  : a\n"),
            "agent.yaml:2:5: labels." + std::string(40, 'k') +
                "...: a key of 2097152 bytes is longer than the limit of 1024 bytes");
  EXPECT_THAT(firstError("vfio: " + std::string(100000, '[') + std::string(100000, ']') + "\n"),
              HasSubstr("agent.yaml:1:"));
  EXPECT_THAT(firstError("vfio: " + std::string(100000, '[') + std::string(100000, ']') + "\n"),
              HasSubstr("nesting deeper than 64 levels (nesting depth limit)"));
}

TEST(AgentConfig, DuplicateKeysAreErrors) {
  EXPECT_EQ(firstError("resyncSeconds: 5\nresyncSeconds: 6\n"),
            "agent.yaml:2:1: resyncSeconds: duplicate key \"resyncSeconds\" (first at line 1)");
}

// Durations are bounded: resyncSeconds near 2^63 overflowed the daemon's milliseconds into a
// negative retry delay ("next attempt in -1000 ms").
TEST(AgentConfig, DurationsAreBounded) {
  EXPECT_EQ(firstError("resyncSeconds: 9223372036854775807\n"),
            "agent.yaml:1:16: resyncSeconds: expected a positive number of seconds, at most "
            "31536000 (a year)");
  EXPECT_EQ(firstError("lockTimeoutSeconds: 31536001\n"),
            "agent.yaml:1:21: lockTimeoutSeconds: expected a positive number of seconds, at most "
            "31536000 (a year)");
  EXPECT_EQ(firstError("debounceMilliseconds: 3600001\n"),
            "agent.yaml:1:23: debounceMilliseconds: expected a positive number of milliseconds, "
            "at most 3600000 (an hour)");
  auto ok =
      parseAgentConfig("resyncSeconds: 31536000\ndebounceMilliseconds: 3600000\n", "agent.yaml");
  ASSERT_TRUE(ok) << ok.error().str();
  EXPECT_EQ(ok->resync, std::chrono::seconds(31536000));
}

TEST(AgentConfig, AllowEmptyIsOffByDefault) {
  auto c = parseAgentConfig("resyncSeconds: 30\n", "agent.yaml");
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_FALSE(c->allowEmpty);
}

TEST(AgentConfig, AllowEmptyTakesTrueOrFalse) {
  auto on = parseAgentConfig("allowEmpty: true\n", "agent.yaml");
  ASSERT_TRUE(on) << on.error().str();
  EXPECT_TRUE(on->allowEmpty);
  auto off = parseAgentConfig("allowEmpty: false\n", "agent.yaml");
  ASSERT_TRUE(off) << off.error().str();
  EXPECT_FALSE(off->allowEmpty);

  auto bad = parseAgentConfig("resyncSeconds: 30\nallowEmpty: yes\n", "agent.yaml");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().str(), "agent.yaml:2:13: allowEmpty: expected true or false");
}

TEST(AgentConfig, RunDirIsAnAbsolutePath) {
  auto none = parseAgentConfig("stateDir: /srv/np\n", "agent.yaml");
  ASSERT_TRUE(none) << none.error().str();
  EXPECT_EQ(none->runDir, std::nullopt);
  EXPECT_EQ(none->stateDir, std::filesystem::path("/srv/np"));
  auto set = parseAgentConfig("runDir: /run/np-test\n", "agent.yaml");
  ASSERT_TRUE(set) << set.error().str();
  EXPECT_EQ(set->runDir, std::filesystem::path("/run/np-test"));

  for (const char* bad : {"runDir: run/np\n", "runDir: ''\n", "runDir: [a]\n"}) {
    auto c = parseAgentConfig(std::string("labels: {}\n") + bad, "agent.yaml");
    ASSERT_FALSE(c) << bad;
    EXPECT_THAT(c.error().str(), HasSubstr("agent.yaml:2:"));
    EXPECT_THAT(c.error().str(),
                HasSubstr("runDir: expected an absolute path (the default is /run/nodeplane)"));
  }
}

TEST(AgentConfig, SystemdBusIsSystemUserOrAnAddress) {
  auto none = parseAgentConfig("stateDir: /srv/np\n", "agent.yaml");
  ASSERT_TRUE(none) << none.error().str();
  EXPECT_EQ(none->systemdBus, std::nullopt);
  for (const char* bus : {"system", "user", "unix:path=/run/x/bus"}) {
    auto c = parseAgentConfig(std::string("systemd:\n  bus: ") + bus + "\n", "agent.yaml");
    ASSERT_TRUE(c) << c.error().str();
    EXPECT_EQ(c->systemdBus, std::string(bus));
  }
  auto bad = parseAgentConfig("labels: {}\nsystemd:\n  bus: session\n", "agent.yaml");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().str(),
            "agent.yaml:3:8: systemd.bus: expected system, user or a D-Bus address "
            "(unix:path=...), got \"session\"");
  auto typo = parseAgentConfig("systemd:\n  buss: user\n", "agent.yaml");
  ASSERT_FALSE(typo);
  EXPECT_EQ(typo.error().str(),
            "agent.yaml:2:3: systemd.buss: unknown field \"buss\" (known: bus)");
  auto scalar = parseAgentConfig("systemd: user\n", "agent.yaml");
  ASSERT_FALSE(scalar);
  EXPECT_THAT(scalar.error().str(), HasSubstr("agent.yaml:1:10: systemd: expected a mapping"));
}

TEST(AgentConfig, TheExampleIsValid) {
  auto c = loadAgentConfig(std::string(NODEPLANE_SOURCE_DIR) + "/examples/agent.yaml", true);
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_FALSE(c->allowEmpty);
  EXPECT_EQ(c->resync, std::chrono::seconds(60));
}

}  // namespace
}  // namespace nodeplane
