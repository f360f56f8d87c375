// Docker's /events as the docker plugin's event source, against the rig's dockerd.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>

#include <chrono>

#include "docker/engine/engine.hpp"
#include "docker_plugin.hpp"
#include "engine_events.hpp"
#include "support/dockerd.hpp"
#include "support/plugin_rig.hpp"

namespace nodeplane::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

bool readable(int fd, std::chrono::milliseconds timeout) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, static_cast<int>(timeout.count())) == 1;
}

// Drains until `want` has been touched, or the deadline: what was touched, all together.
Touched touchedUntil(docker::DockerPlugin& plugin, int fd, const std::set<ResourceId>& want,
                     std::string* error) {
  Touched all;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || !readable(fd, left)) return all;
    auto t = plugin.drainEvents(fd);
    if (!t) {
      *error = t.error().str();
      return all;
    }
    all.everything |= t->everything;
    all.kinds.insert(t->kinds.begin(), t->kinds.end());
    all.resources.insert(t->resources.begin(), t->resources.end());
    if (std::includes(all.resources.begin(), all.resources.end(), want.begin(), want.end()))
      return all;
  }
}

Json container(const std::string& image = kBusyboxImage) {
  return {{"Image", image}, {"HostConfig", {{"NetworkMode", "none"}}}};
}

HostContext onSocket(const std::string& socket) {
  HostContext host;
  host.dockerSocket = socket;
  return host;
}

TEST(DockerEvents, TheStreamQueuesContainerEventsAndTurnsItsFdReadable) {
  NODEPLANE_REQUIRE_DOCKERD_ROOT();
  std::string why;
  Dockerd* d = sharedDockerd(&why);
  ASSERT_NE(d, nullptr) << why;
  docker::EventStream stream;
  ASSERT_TRUE(stream.open(d->socket(), d->engine().apiVersion(), {{"type", {"container"}}}));
  const std::string name = uniqueName("ev-stream");
  Json body = container();
  ASSERT_TRUE(d->engine().call("POST", "/containers/create?name=" + name, &body));
  ASSERT_TRUE(readable(stream.fd(), 30s));
  auto events = stream.drain();
  ASSERT_TRUE(events) << events.error().str();
  ASSERT_FALSE(events->empty());
  EXPECT_EQ((*events)[0]["Action"], "create");
  EXPECT_EQ((*events)[0]["Actor"]["Attributes"]["name"], name);
  EXPECT_FALSE(readable(stream.fd(), 0ms));  // drained
  ASSERT_TRUE(d->engine().call("DELETE", "/containers/" + name));
}

TEST(DockerEvents, AContainersDieAndDestroyTouchItsName) {
  NODEPLANE_REQUIRE_DOCKERD_ROOT();
  std::string why;
  Dockerd* d = sharedDockerd(&why);
  ASSERT_NE(d, nullptr) << why;
  const std::string name = uniqueName("ev-die");
  Json body = container();
  body["Labels"] = {{"io.nodeplane.managed", "true"}};
  ASSERT_TRUE(d->engine().call("POST", "/containers/create?name=" + name, &body));
  ASSERT_TRUE(d->engine().call("POST", "/containers/" + name + "/start"));

  test::PluginRig rig(onSocket(d->socket()), "docker");
  docker::DockerPlugin plugin(rig.services);
  auto sources = plugin.openEvents();
  ASSERT_TRUE(sources) << sources.error().str();
  ASSERT_EQ(sources->size(), 1u);
  EXPECT_EQ((*sources)[0].name, "docker events at " + d->socket());
  const int fd = (*sources)[0].fd;

  // Removed by hand: killed (die), then destroyed.
  ASSERT_TRUE(d->engine().call("DELETE", "/containers/" + name + "?force=1"));
  std::string error;
  Touched t = touchedUntil(plugin, fd, {{"Container", name}}, &error);
  EXPECT_EQ(error, "");
  EXPECT_THAT(t.resources, ::testing::Contains(ResourceId{"Container", name}));
  EXPECT_FALSE(t.everything);
  EXPECT_TRUE(t.kinds.empty());
  plugin.closeEvents();
}

TEST(DockerEvents, ARenameTouchesTheOldAndTheNewName) {
  NODEPLANE_REQUIRE_DOCKERD_ROOT();
  std::string why;
  Dockerd* d = sharedDockerd(&why);
  ASSERT_NE(d, nullptr) << why;
  const std::string before = uniqueName("ev-old"), after = uniqueName("ev-new");
  Json body = container();
  ASSERT_TRUE(d->engine().call("POST", "/containers/create?name=" + before, &body));

  test::PluginRig rig(onSocket(d->socket()), "docker");
  docker::DockerPlugin plugin(rig.services);
  auto sources = plugin.openEvents();
  ASSERT_TRUE(sources) << sources.error().str();
  ASSERT_TRUE(d->engine().call("POST", "/containers/" + before + "/rename?name=" + after));
  std::string error;
  Touched t =
      touchedUntil(plugin, (*sources)[0].fd, {{"Container", before}, {"Container", after}}, &error);
  EXPECT_EQ(error, "");
  EXPECT_THAT(t.resources, ::testing::Contains(ResourceId{"Container", before}));
  EXPECT_THAT(t.resources, ::testing::Contains(ResourceId{"Container", after}));
  ASSERT_TRUE(d->engine().call("DELETE", "/containers/" + after));
}

TEST(DockerEvents, EventsOfOtherKindsAndUnnamedOnesAreMappedAsDocumented) {
  // Messages as dockerd 20.10 sends them.
  std::vector<Json> events = {
      Json::parse(R"({"Type":"container","Action":"rename","Actor":{"ID":"ab","Attributes":
        {"name":"web","oldName":"/web-old","image":"busybox"}}})"),
      Json::parse(R"({"Type":"network","Action":"connect","Actor":{"ID":"cd","Attributes":
        {"name":"none","container":"ab"}}})"),
      Json::parse(R"({"Type":"container","Action":"die","Actor":{"ID":"ef","Attributes":{}}})"),
  };
  Touched t = docker::containerEventTouches(events);
  EXPECT_EQ(t.resources, (std::set<ResourceId>{{"Container", "web"}, {"Container", "web-old"}}));
  EXPECT_EQ(t.kinds, (std::set<std::string>{"Container"}));
  EXPECT_FALSE(t.everything);
}

TEST(DockerEvents, DockerdStoppingEndsTheStreamAndReopeningWorks) {
  NODEPLANE_REQUIRE_DOCKERD_ROOT();
  Dockerd d;
  ASSERT_TRUE(d.ok()) << d.error();
  ASSERT_EQ(d.importBusybox(), "");
  test::PluginRig rig(onSocket(d.socket()), "docker");
  docker::DockerPlugin plugin(rig.services);
  auto sources = plugin.openEvents();
  ASSERT_TRUE(sources) << sources.error().str();
  int fd = (*sources)[0].fd;

  ASSERT_EQ(d.stop(), "");
  ASSERT_TRUE(readable(fd, 30s)) << "the stream's end did not wake the fd";
  auto lost = plugin.drainEvents(fd);
  ASSERT_FALSE(lost);
  EXPECT_EQ(lost.error().message,
            "the Docker event stream at " + d.socket() + " ended (dockerd stopped or restarted)");
  EXPECT_EQ(lost.error().kind, ErrorKind::kRetryable);
  EXPECT_TRUE(readable(fd, 0ms)) << "an ended stream stays readable until closed";
  plugin.closeEvents();

  // While dockerd is down, reopening fails (the daemon retries with backoff).
  auto down = plugin.openEvents();
  ASSERT_FALSE(down);
  EXPECT_THAT(down.error().message, HasSubstr("cannot reach dockerd at " + d.socket()));

  ASSERT_EQ(d.start(), "");
  sources = plugin.openEvents();
  ASSERT_TRUE(sources) << sources.error().str();
  fd = (*sources)[0].fd;
  Json body = container();
  ASSERT_TRUE(d.engine().call("POST", "/containers/create?name=after-restart", &body));
  std::string error;
  Touched t = touchedUntil(plugin, fd, {{"Container", "after-restart"}}, &error);
  EXPECT_EQ(error, "");
  EXPECT_THAT(t.resources, ::testing::Contains(ResourceId{"Container", "after-restart"}));
  plugin.closeEvents();
}

TEST(DockerEvents, CloseStopsAnIdleStreamAtOnce) {
  NODEPLANE_REQUIRE_DOCKERD_ROOT();
  std::string why;
  Dockerd* d = sharedDockerd(&why);
  ASSERT_NE(d, nullptr) << why;
  docker::EventStream stream;
  ASSERT_TRUE(stream.open(d->socket(), d->engine().apiVersion(), Json::object()));
  const auto before = std::chrono::steady_clock::now();
  stream.close();
  // The thread waits in curl_multi_poll for up to 60 s; curl_multi_wakeup ends that at once.
  EXPECT_LT(std::chrono::steady_clock::now() - before, 10s);
  EXPECT_EQ(stream.fd(), -1);
}

}  // namespace
}  // namespace nodeplane::testing
