// `nodeplane check`'s docker items (DockerPlugin::check(), without start()) against the rig.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "docker_plugin.hpp"
#include "support/dockerd.hpp"
#include "support/files.hpp"
#include "support/plugin_rig.hpp"

namespace nodeplane::testing {
namespace {

using ::testing::HasSubstr;

std::map<std::string, CheckItem> checkOn(const std::string& contextSocket,
                                         const Json& config = Json::object()) {
  HostContext host;
  host.dockerSocket = contextSocket;
  test::PluginRig rig(host, "docker");
  rig.services.setConfig(config);
  docker::DockerPlugin plugin(rig.services);
  std::map<std::string, CheckItem> items;
  for (auto& item : plugin.check()) items[item.name] = item;
  return items;
}

TEST(DockerCheck, AReachableDockerdWithoutTheNvidiaHook) {
  NODEPLANE_REQUIRE_DOCKERD_ROOT();
  std::string why;
  Dockerd* d = sharedDockerd(&why);
  ASSERT_NE(d, nullptr) << why;
  auto items = checkOn(d->socket());
  ASSERT_EQ(items.size(), 2u);
  const CheckItem& docker = items["docker"];
  EXPECT_TRUE(docker.ok) << docker.detail;
  EXPECT_FALSE(docker.required);
  EXPECT_THAT(docker.detail, HasSubstr("dockerd 20.10"));
  EXPECT_THAT(docker.detail, HasSubstr(" at " + d->socket() + ", Engine API 1.41"));
  const CheckItem& nvidia = items["nvidia-container"];
  EXPECT_FALSE(nvidia.ok);
  EXPECT_FALSE(nvidia.required);
  // dockerd's PATH as the rig set it (read through SO_PEERCRED and /proc/<pid>/environ).
  EXPECT_EQ(nvidia.detail,
            "no nvidia runtime in dockerd's /info and no nvidia-container-runtime-hook on "
            "dockerd's PATH (/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin): "
            "Containers with gpus fail to start; install the NVIDIA Container Toolkit "
            "(nvidia-container-toolkit) and restart dockerd");
}

TEST(DockerCheck, TheHookOnDockerdsPathIsFound) {
  NODEPLANE_REQUIRE_DOCKERD_ROOT();
  TempDir tmp;
  auto hook = writeNvidiaHookStub(tmp / "bin", tmp / "record");
  Dockerd d(DockerdOptions{.extraPath = tmp / "bin"});
  ASSERT_TRUE(d.ok()) << d.error();
  auto items = checkOn(d.socket());
  EXPECT_TRUE(items["docker"].ok) << items["docker"].detail;
  EXPECT_TRUE(items["nvidia-container"].ok) << items["nvidia-container"].detail;
  EXPECT_EQ(items["nvidia-container"].detail,
            hook.string() + " on dockerd's PATH: Containers with gpus work");
}

TEST(DockerCheck, TheConfiguredSocketWinsOverTheDefault) {
  NODEPLANE_REQUIRE_DOCKERD_ROOT();
  std::string why;
  Dockerd* d = sharedDockerd(&why);
  ASSERT_NE(d, nullptr) << why;
  TempDir tmp;
  auto items = checkOn((tmp / "nothing.sock").string(), {{"socket", d->socket()}});
  EXPECT_TRUE(items["docker"].ok) << items["docker"].detail;
}

TEST(DockerCheck, AnUnreachableDockerdIsNotRequiredAndSaysHowToFixIt) {
  TempDir tmp;
  const std::string socket = (tmp / "docker.sock").string();
  auto items = checkOn(socket);
  const CheckItem& docker = items["docker"];
  EXPECT_FALSE(docker.ok);
  EXPECT_FALSE(docker.required);
  EXPECT_EQ(docker.detail, "cannot reach dockerd at " + socket +
                               ": no such socket (needed only for Container resources: install "
                               "Docker (apt-get install docker.io) and start it (systemctl start "
                               "docker), or set docker.socket in the agent config to where "
                               "dockerd listens)");
  EXPECT_FALSE(items["nvidia-container"].ok);
  EXPECT_FALSE(items["nvidia-container"].required);
  EXPECT_EQ(items["nvidia-container"].detail, "unknown: dockerd is not reachable");
}

}  // namespace
}  // namespace nodeplane::testing
