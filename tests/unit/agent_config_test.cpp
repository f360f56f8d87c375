// The agent config's keys: types checked, errors with file:line.
#include "agent_config.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace nodeplane {
namespace {

using ::testing::HasSubstr;

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

TEST(AgentConfig, TheExampleIsValid) {
  auto c = loadAgentConfig(std::string(NODEPLANE_SOURCE_DIR) + "/examples/agent.yaml", true);
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_FALSE(c->allowEmpty);
  EXPECT_EQ(c->resync, std::chrono::seconds(60));
}

}  // namespace
}  // namespace nodeplane
