// The test dockerd itself (tests/support/dockerd.hpp): private, its busybox image runs, a stub
// nvidia-container-runtime-hook on its PATH makes DeviceRequests work, and it leaves nothing.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include "docker/engine/engine.hpp"
#include "support/dockerd.hpp"
#include "support/files.hpp"

namespace nodeplane::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

TEST(DockerdRig, RunsBusyboxAndCleansUpEverythingItStarted) {
  NODEPLANE_REQUIRE_DOCKERD_ROOT();
  std::filesystem::path dir;
  pid_t dockerd = -1, containerd = -1;
  {
    Dockerd d;
    ASSERT_TRUE(d.ok()) << d.error();
    dir = d.dir();
    dockerd = d.pid();
    containerd = d.containerdPid();
    EXPECT_GT(containerd, 0);
    EXPECT_LT(d.socket().size(), 108u);
    ASSERT_EQ(d.importBusybox("nodeplane-test/rig:2"), "");
    Json body = {{"Image", "nodeplane-test/rig:2"},
                 {"Cmd", {"sh", "-c", "echo hello from $(cat /etc/passwd | grep -c root)"}},
                 {"HostConfig", {{"NetworkMode", "none"}}}};
    ASSERT_TRUE(d.engine().call("POST", "/containers/create?name=once", &body));
    ASSERT_TRUE(d.engine().call("POST", "/containers/once/start"));
    auto waited = d.engine().call("POST", "/containers/once/wait", nullptr, 30s);
    ASSERT_TRUE(waited) << waited.error().str();
    EXPECT_EQ((*waited)["StatusCode"], 0);
    // One that keeps running (the image's CMD) is left for the destructor.
    Json sleeper = {{"Image", "nodeplane-test/rig:2"}, {"HostConfig", {{"NetworkMode", "none"}}}};
    ASSERT_TRUE(d.engine().call("POST", "/containers/create?name=left", &sleeper));
    ASSERT_TRUE(d.engine().call("POST", "/containers/left/start"));
    auto inspect = d.engine().call("GET", "/containers/left/json");
    ASSERT_TRUE(inspect);
    EXPECT_EQ((*inspect)["State"]["Status"], "running");
  }
  EXPECT_FALSE(std::filesystem::exists(dir)) << dir;
  EXPECT_NE(::kill(dockerd, 0), 0);
  EXPECT_NE(::kill(containerd, 0), 0);
  EXPECT_THAT(slurp("/proc/self/mountinfo"), ::testing::Not(HasSubstr(dir.string())));
}

TEST(DockerdRig, TheImagesCommandStopsOnSigterm) {
  NODEPLANE_REQUIRE_DOCKERD_ROOT();
  std::string why;
  Dockerd* d = sharedDockerd(&why);
  ASSERT_NE(d, nullptr) << why;
  const std::string name = uniqueName("rig-stop");
  Json body = {{"Image", kBusyboxImage}, {"HostConfig", {{"NetworkMode", "none"}}}};
  ASSERT_TRUE(d->engine().call("POST", "/containers/create?name=" + name, &body));
  ASSERT_TRUE(d->engine().call("POST", "/containers/" + name + "/start"));
  // t=30: Docker would SIGKILL after 30 s; the CMD exits 0 on SIGTERM at once.
  auto stopped = d->engine().call("POST", "/containers/" + name + "/stop?t=30", nullptr, 60s);
  ASSERT_TRUE(stopped) << stopped.error().str();
  auto inspect = d->engine().call("GET", "/containers/" + name + "/json");
  ASSERT_TRUE(inspect);
  EXPECT_EQ((*inspect)["State"]["ExitCode"], 0);
  ASSERT_TRUE(d->engine().call("DELETE", "/containers/" + name));
}

TEST(DockerdRig, AStubHookOnItsPathMakesGpuRequestsWork) {
  NODEPLANE_REQUIRE_DOCKERD_ROOT();
  TempDir tmp;
  writeNvidiaHookStub(tmp / "bin", tmp / "record");
  Dockerd d(DockerdOptions{.extraPath = tmp / "bin"});
  ASSERT_TRUE(d.ok()) << d.error();
  ASSERT_EQ(d.importBusybox(), "");
  Json body = {
      {"Image", kBusyboxImage},
      {"Cmd", {"env"}},
      {"HostConfig",
       {{"NetworkMode", "none"},
        {"DeviceRequests",
         {{{"Driver", "nvidia"}, {"DeviceIDs", {"0", "2"}}, {"Capabilities", {{"gpu"}}}}}}}}};
  ASSERT_TRUE(d.engine().call("POST", "/containers/create?name=gpu", &body));
  auto started = d.engine().call("POST", "/containers/gpu/start");
  ASSERT_TRUE(started) << started.error().str();
  auto waited = d.engine().call("POST", "/containers/gpu/wait", nullptr, 30s);
  ASSERT_TRUE(waited) << waited.error().str();
  // What `env` printed (the multiplexed log stream: frame headers around the text).
  auto logs = d.engine().request("GET", "/containers/gpu/logs?stdout=1&stderr=1");
  ASSERT_TRUE(logs) << logs.error().str();
  EXPECT_THAT(logs->body, HasSubstr("NVIDIA_VISIBLE_DEVICES=0,2"));
  EXPECT_THAT(slurp(tmp / "record" / "argv"), HasSubstr("prestart"));
}

TEST(DockerdRig, WithoutTheHookGpuRequestsFail) {
  NODEPLANE_REQUIRE_DOCKERD_ROOT();
  std::string why;
  Dockerd* d = sharedDockerd(&why);
  ASSERT_NE(d, nullptr) << why;
  const std::string name = uniqueName("rig-nogpu");
  Json body = {
      {"Image", kBusyboxImage},
      {"HostConfig",
       {{"NetworkMode", "none"},
        {"DeviceRequests", {{{"Driver", "nvidia"}, {"Count", -1}, {"Capabilities", {{"gpu"}}}}}}}}};
  ASSERT_TRUE(d->engine().call("POST", "/containers/create?name=" + name, &body));
  auto started = d->engine().call("POST", "/containers/" + name + "/start");
  ASSERT_FALSE(started);
  EXPECT_THAT(started.error().message, HasSubstr("could not select device driver"));
  ASSERT_TRUE(d->engine().call("DELETE", "/containers/" + name + "?force=1"));
}

}  // namespace
}  // namespace nodeplane::testing
