// Plugin lifecycle through the real binary, with the `lifecycle` fixture plugin (it appends each
// start/stop/check/observe/apply to the file its agent-config section names): `validate` and
// `plugins` never start a plugin, `check` asks it without starting it, a start failure is an
// error naming the plugin, the daemon stops it when SIGTERM ends it, and a typo in its section of
// the agent config is an error with file:line.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/files.hpp"
#include "support/process.hpp"

namespace nodeplane {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using namespace ::nodeplane::testing;
using ::testing::HasSubstr;

class LifecycleCli : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directory(tmp_ / "state");
    writeConfig("");
    tmp_.write("gadget.yaml",
               "apiVersion: nodeplane.io/v1\nkind: Gadget\nmetadata:\n  name: g1\nspec:\n"
               "  size: 3\n");
  }
  void writeConfig(const std::string& extra) {
    tmp_.write("agent.yaml",
               "apiVersion: nodeplane.io/v1\nkind: AgentConfig\n"
               "debounceMilliseconds: 50\nlifecycle:\n  record: " +
                   record().string() + "\n" + extra);
  }
  fs::path record() const { return tmp_ / "calls"; }
  std::string calls() const { return fs::exists(record()) ? slurp(record()) : ""; }
  std::vector<std::string> argv(std::vector<std::string> command) const {
    std::vector<std::string> a = {NODEPLANE_BINARY,
                                  "--config",
                                  (tmp_ / "agent.yaml").string(),
                                  "--state-dir",
                                  (tmp_ / "state").string(),
                                  "--plugin-dir",
                                  std::string(NODEPLANE_TEST_PLUGIN_DIR) + "/lifecycle"};
    a.insert(a.end(), command.begin(), command.end());
    return a;
  }
  CliResult np(std::vector<std::string> command) const { return run(argv(std::move(command))); }

  TempDir tmp_;
};

TEST_F(LifecycleCli, ValidateAndPluginsNeverStartAPlugin) {
  auto v = np({"validate", "-f", (tmp_ / "gadget.yaml").string()});
  EXPECT_EQ(v.code, 0) << v.err;
  auto p = np({"plugins"});
  EXPECT_EQ(p.code, 0) << p.err;
  EXPECT_THAT(p.out, HasSubstr("lifecycle"));
  EXPECT_EQ(calls(), "");
}

TEST_F(LifecycleCli, CheckAsksThePluginWithoutStartingIt) {
  auto c = np({"--output", "json", "check"});
  auto j = nlohmann::json::parse(c.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << c.out << c.err;
  bool found = false;
  for (const auto& item : j["checks"])
    if (item.value("plugin", "") == "lifecycle") {
      found = true;
      EXPECT_EQ(item["name"], "gadget-bench");
    }
  EXPECT_TRUE(found) << c.out;
  EXPECT_EQ(calls(), "check\n");
}

TEST_F(LifecycleCli, DiffStartsAndStopsThePlugin) {
  auto d = np({"diff", "-f", (tmp_ / "gadget.yaml").string()});
  EXPECT_EQ(d.code, 2) << d.out << d.err;
  EXPECT_EQ(calls(), "start\nobserve\nstop\n");
}

TEST_F(LifecycleCli, AStartFailureIsAnErrorNamingThePlugin) {
  writeConfig("  failStart: the bench is unplugged\n");
  auto d = np({"diff", "-f", (tmp_ / "gadget.yaml").string()});
  EXPECT_EQ(d.code, 1) << d.out << d.err;
  EXPECT_THAT(d.out, HasSubstr("Gadget/g1: plugin lifecycle could not start: the bench is "
                               "unplugged"));
  EXPECT_EQ(calls(), "start\n");
}

// export of every kind leaves out, saying so, the kinds of a plugin that cannot start (no dockerd
// on a net-only host); asked for by --kind, that is an error.
TEST_F(LifecycleCli, ExportLeavesOutThePluginThatCannotStartUnlessAskedFor) {
  writeConfig("  failStart: the bench is unplugged\n");
  auto all = np({"export"});
  EXPECT_EQ(all.code, 0) << all.out << all.err;
  EXPECT_THAT(all.err, HasSubstr("kind Gadget not exported: plugin lifecycle could not start: "
                                 "the bench is unplugged"));
  auto one = np({"export", "--kind", "Gadget"});
  EXPECT_EQ(one.code, 1) << one.out << one.err;
  EXPECT_THAT(one.err, HasSubstr("plugin lifecycle could not start: the bench is unplugged"));
}

TEST_F(LifecycleCli, ATypoInThePluginSectionIsAnErrorWithItsLine) {
  writeConfig("  levle: 3\n");
  auto v = np({"validate", "-f", (tmp_ / "gadget.yaml").string()});
  EXPECT_EQ(v.code, 1);
  EXPECT_THAT(v.err, HasSubstr("error: " + (tmp_ / "agent.yaml").string() +
                               ":6:3: lifecycle.levle: unknown field \"levle\" (known: record, "
                               "failStart, failStartWhile, level) (did you mean \"level\"?)"));
  EXPECT_EQ(calls(), "");
}

TEST_F(LifecycleCli, TheDaemonStopsThePluginOnSigterm) {
  fs::create_directory(tmp_ / "desired");
  fs::copy_file(tmp_ / "gadget.yaml", tmp_ / "desired" / "gadget.yaml");
  Spawned daemon =
      spawnLogged(argv({"run", "-f", (tmp_ / "desired").string()}), tmp_ / "out", tmp_ / "log");
  ASSERT_TRUE(daemon) << daemon.error;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (calls().find("apply") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline && running(daemon))
    ::poll(nullptr, 0, 20);  // polling interval of the condition, not a synchronisation
  ASSERT_THAT(calls(), HasSubstr("apply\n")) << slurp(tmp_ / "log");
  EXPECT_TRUE(calls().starts_with("start\nobserve\n")) << calls();
  EXPECT_EQ(calls().find("stop"), std::string::npos) << calls();
  ASSERT_TRUE(sendSignal(daemon, SIGTERM));
  auto st = waitExit(daemon, 10s);
  ASSERT_TRUE(st) << "still running 10 s after SIGTERM";
  EXPECT_EQ(exitCode(*st), 0) << slurp(tmp_ / "log");
  EXPECT_TRUE(calls().ends_with("stop\n")) << calls();
  EXPECT_EQ(calls().find("start", 1), std::string::npos) << "started once: " << calls();
}

// A plugin none of whose kinds is desired or owned is never started by the daemon, not even to
// open its event sources (a host without containers never dials dockerd).
TEST_F(LifecycleCli, TheDaemonNeverStartsAPluginNotInUse) {
  writeConfig("allowEmpty: true\n");
  fs::create_directory(tmp_ / "desired");
  Spawned daemon =
      spawnLogged(argv({"--log-level", "debug", "run", "-f", (tmp_ / "desired").string()}),
                  tmp_ / "out", tmp_ / "log");
  ASSERT_TRUE(daemon) << daemon.error;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (slurp(tmp_ / "log").find("in sync:") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline && running(daemon))
    ::poll(nullptr, 0, 20);  // polling interval of the condition, not a synchronisation
  ASSERT_THAT(slurp(tmp_ / "log"), HasSubstr("in sync:"));
  ASSERT_TRUE(sendSignal(daemon, SIGTERM));
  auto st = waitExit(daemon, 10s);
  ASSERT_TRUE(st) << "still running 10 s after SIGTERM";
  EXPECT_EQ(exitCode(*st), 0) << slurp(tmp_ / "log");
  EXPECT_EQ(calls(), "") << "a plugin not in use was called";
}

// A plugin whose start() fails (dockerd not up yet at boot) is started again by a later pass, not
// left failed for the daemon's life.
TEST_F(LifecycleCli, TheDaemonStartsAPluginAgainAfterItsStartFailed) {
  const fs::path down = tmp_ / "bench-down";
  tmp_.write("bench-down", "");
  writeConfig("  failStartWhile: " + down.string() + "\n");
  fs::create_directory(tmp_ / "desired");
  fs::copy_file(tmp_ / "gadget.yaml", tmp_ / "desired" / "gadget.yaml");
  Spawned daemon =
      spawnLogged(argv({"run", "-f", (tmp_ / "desired").string()}), tmp_ / "out", tmp_ / "log");
  ASSERT_TRUE(daemon) << daemon.error;
  auto waitFor = [&](const std::string& what, auto&& condition) {
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (!condition() && std::chrono::steady_clock::now() < deadline && running(daemon))
      ::poll(nullptr, 0, 20);  // polling interval of the condition, not a synchronisation
    return condition() ? ::testing::AssertionSuccess()
                       : ::testing::AssertionFailure() << what << "\n"
                                                       << slurp(tmp_ / "log");
  };
  ASSERT_TRUE(waitFor("a failed start logged", [&] {
    return slurp(tmp_ / "log").find("the bench is not up yet") != std::string::npos;
  }));
  EXPECT_EQ(calls().find("apply"), std::string::npos) << calls();
  fs::remove(down);  // the bench comes up
  ASSERT_TRUE(sendSignal(daemon, SIGHUP));
  EXPECT_TRUE(
      waitFor("applied once started", [&] { return calls().find("apply") != std::string::npos; }));
  ASSERT_TRUE(sendSignal(daemon, SIGTERM));
  auto st = waitExit(daemon, 10s);
  ASSERT_TRUE(st) << "still running 10 s after SIGTERM";
  EXPECT_EQ(exitCode(*st), 0) << slurp(tmp_ / "log");
}

}  // namespace
}  // namespace nodeplane
