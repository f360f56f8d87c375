// A plugin's heavy half (HostServices::loadRuntime): the docker plugin's libcurl side is mapped
// only when something needs dockerd. The daemon of a host that declares no Container never loads
// it; `check` does, and a runtime that fails the plugin checks is refused with the reason.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

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
using ::testing::Not;

class PluginRuntime : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directory(tmp_ / "state");
    fs::create_directory(tmp_ / "desired");
    // dockerd is not there: the runtime still loads and says so.
    tmp_.write("agent.yaml",
               "apiVersion: nodeplane.io/v1\nkind: AgentConfig\nallowEmpty: true\n"
               "debounceMilliseconds: 50\ndocker:\n  socket: " +
                   (tmp_ / "no-docker.sock").string() + "\n");
  }
  std::vector<std::string> argv(const fs::path& pluginDir, std::vector<std::string> command) const {
    std::vector<std::string> a = {NODEPLANE_BINARY,
                                  "--config",
                                  (tmp_ / "agent.yaml").string(),
                                  "--state-dir",
                                  (tmp_ / "state").string(),
                                  "--plugin-dir",
                                  pluginDir.string()};
    a.insert(a.end(), command.begin(), command.end());
    return a;
  }
  std::string dockerCheck(const fs::path& pluginDir) const {
    auto c = run(argv(pluginDir, {"--output", "json", "check"}));
    auto j = nlohmann::json::parse(c.out, nullptr, false);
    if (!j.is_object()) return "no JSON: " + c.out + c.err;
    for (const auto& item : j["checks"])
      if (item.value("name", "") == "docker") return item.value("detail", "");
    return "no docker item: " + c.out;
  }

  TempDir tmp_;
};

TEST_F(PluginRuntime, TheDaemonOfAHostWithNoContainerNeverMapsTheDockerRuntime) {
  Spawned daemon =
      spawnLogged(argv(NODEPLANE_BUILD_PLUGIN_DIR,
                       {"--log-level", "debug", "run", "-f", (tmp_ / "desired").string()}),
                  tmp_ / "out", tmp_ / "log");
  ASSERT_TRUE(daemon) << daemon.error;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (slurp(tmp_ / "log").find("in sync:") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline && running(daemon))
    ::poll(nullptr, 0, 20);  // polling interval of the condition, not a synchronisation
  ASSERT_THAT(slurp(tmp_ / "log"), HasSubstr("in sync:"));
  const std::string maps = slurp("/proc/" + std::to_string(daemon.pid) + "/maps");
  EXPECT_THAT(maps, HasSubstr("libnodeplane-docker.so"));  // the front is loaded
  EXPECT_THAT(maps, Not(HasSubstr("libnodeplane-docker-runtime.so")));
  EXPECT_THAT(maps, Not(HasSubstr("libcurl")));
  ASSERT_TRUE(sendSignal(daemon, SIGTERM));
  auto st = waitExit(daemon, 10s);
  ASSERT_TRUE(st) << "still running 10 s after SIGTERM";
  EXPECT_EQ(exitCode(*st), 0) << slurp(tmp_ / "log");
}

TEST_F(PluginRuntime, CheckLoadsTheRuntimeAndItAnswers) {
  const std::string detail = dockerCheck(NODEPLANE_BUILD_PLUGIN_DIR);
  EXPECT_THAT(detail, HasSubstr("no-docker.sock"));
  EXPECT_THAT(detail, Not(HasSubstr("runtime")));
}

TEST_F(PluginRuntime, ARuntimeThatFailsThePluginChecksIsRefusedWithTheReason) {
  const fs::path dir = tmp_ / "plugins";
  fs::create_directories(dir / "runtime");
  fs::permissions(dir, fs::perms::group_write | fs::perms::others_write, fs::perm_options::remove);
  fs::copy_file(fs::path(NODEPLANE_BUILD_PLUGIN_DIR) / "libnodeplane-docker.so",
                dir / "libnodeplane-docker.so");
  const fs::path runtime = dir / "runtime" / "libnodeplane-docker-runtime.so";
  fs::copy_file(fs::path(NODEPLANE_BUILD_PLUGIN_DIR) / "runtime" / runtime.filename(), runtime);
  for (const auto& p : {dir / "libnodeplane-docker.so", runtime, dir / "runtime"})
    fs::permissions(p, fs::perms::group_write | fs::perms::others_write, fs::perm_options::remove);
  EXPECT_THAT(dockerCheck(dir), Not(HasSubstr("refused")));  // as copied: fine

  fs::permissions(runtime, fs::perms::others_write, fs::perm_options::add);
  EXPECT_THAT(dockerCheck(dir), HasSubstr("plugin runtime " + runtime.string() +
                                          " refused: file is group- or world-writable"));

  fs::remove(runtime);
  fs::create_symlink(fs::path(NODEPLANE_BUILD_PLUGIN_DIR) / "runtime" / runtime.filename(),
                     runtime);
  EXPECT_THAT(dockerCheck(dir), HasSubstr("is a symbolic link"));

  fs::remove(runtime);
  EXPECT_THAT(dockerCheck(dir), HasSubstr("cannot open: No such file or directory"));
  // A Container cannot be applied without it: the same reason, and nothing else happens.
  tmp_.write("desired/c.yaml",
             "apiVersion: nodeplane.io/v1\nkind: Container\nmetadata: {name: c1}\n"
             "spec: {image: busybox}\n");
  auto a = run(argv(dir, {"apply", "-f", (tmp_ / "desired").string()}));
  EXPECT_EQ(a.code, 1);
  EXPECT_THAT(a.out + a.err, HasSubstr("plugin docker could not start: plugin runtime " +
                                       runtime.string() + " refused"));
}

}  // namespace
}  // namespace nodeplane
