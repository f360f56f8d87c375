// The Engine API client against a real private dockerd (tests/support/dockerd.hpp).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "docker/engine/engine.hpp"
#include "support/dockerd.hpp"
#include "support/files.hpp"

namespace nodeplane::testing {
namespace {

using namespace std::chrono_literals;
using docker::Engine;
using ::testing::HasSubstr;

#define SHARED_DOCKERD(var)            \
  NODEPLANE_REQUIRE_DOCKERD_ROOT();    \
  std::string why_;                    \
  Dockerd* var = sharedDockerd(&why_); \
  ASSERT_NE(var, nullptr) << "the test dockerd did not start: " << why_

TEST(DockerEngine, ConnectNegotiatesTheLowerOfTheServersApiAndOurs) {
  SHARED_DOCKERD(d);
  Engine engine(d->socket());
  EXPECT_EQ(engine.apiVersion(), "");
  ASSERT_TRUE(engine.connect()) << engine.connect().error().str();
  auto version = engine.call("GET", "/version");
  ASSERT_TRUE(version) << version.error().str();
  std::string server = version->value("ApiVersion", "");
  // Debian 12's docker.io 20.10 speaks 1.41, below kMaxApiVersion: its own version is used.
  EXPECT_EQ(server, "1.41");
  EXPECT_EQ(engine.apiVersion(), server);
}

TEST(DockerEngine, CreatesStartsInspectsAndRemovesAContainer) {
  SHARED_DOCKERD(d);
  Engine& engine = d->engine();
  const std::string name = uniqueName("engine-life");
  Json body = {{"Image", kBusyboxImage},
               {"Cmd", {"sleep", "600"}},
               {"Labels", {{"io.nodeplane.test", "yes"}}},
               {"HostConfig", {{"NetworkMode", "none"}}}};
  auto created = engine.call("POST", "/containers/create?name=" + docker::urlEncode(name), &body);
  ASSERT_TRUE(created) << created.error().str();
  const std::string id = created->value("Id", "");
  ASSERT_FALSE(id.empty());

  auto started = engine.call("POST", "/containers/" + name + "/start");
  ASSERT_TRUE(started) << started.error().str();
  EXPECT_TRUE(started->is_null());  // 204, no body

  auto inspect = engine.call("GET", "/containers/" + name + "/json");
  ASSERT_TRUE(inspect) << inspect.error().str();
  EXPECT_EQ((*inspect)["Id"], id);
  EXPECT_EQ((*inspect)["Name"], "/" + name);
  EXPECT_EQ((*inspect)["State"]["Status"], "running");
  EXPECT_EQ((*inspect)["Config"]["Labels"]["io.nodeplane.test"], "yes");

  // Starting it again: 304, a 3xx that call() reports with the status.
  auto again = engine.request("POST", "/containers/" + name + "/start");
  ASSERT_TRUE(again) << again.error().str();
  EXPECT_EQ(again->status, 304);

  auto removed = engine.call("DELETE", "/containers/" + name + "?force=1");
  ASSERT_TRUE(removed) << removed.error().str();
  auto gone = engine.request("GET", "/containers/" + id + "/json");
  ASSERT_TRUE(gone) << gone.error().str();
  EXPECT_EQ(gone->status, 404);
}

TEST(DockerEngine, AnErrorAnswerCarriesDockersMessage) {
  SHARED_DOCKERD(d);
  const std::string name = uniqueName("engine-missing");
  auto r = d->engine().call("GET", "/containers/" + name + "/json");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "No such container: " + name);
  EXPECT_EQ(r.error().kind, ErrorKind::kTerminal);

  // A 409: removing a running container without force.
  const std::string busy = uniqueName("engine-busy");
  Json body = {{"Image", kBusyboxImage}, {"HostConfig", {{"NetworkMode", "none"}}}};
  ASSERT_TRUE(d->engine().call("POST", "/containers/create?name=" + busy, &body));
  ASSERT_TRUE(d->engine().call("POST", "/containers/" + busy + "/start"));
  auto conflict = d->engine().call("DELETE", "/containers/" + busy);
  ASSERT_FALSE(conflict);
  EXPECT_EQ(conflict.error().kind, ErrorKind::kConflict);
  EXPECT_THAT(conflict.error().message, HasSubstr("cannot remove a running container"));
  ASSERT_TRUE(d->engine().call("DELETE", "/containers/" + busy + "?force=1"));

  // A 400: a body Docker refuses.
  Json bad = {{"Image", kBusyboxImage}, {"HostConfig", {{"NetworkMode", "none"}, {"Memory", 1}}}};
  auto invalid = d->engine().call("POST", "/containers/create?name=" + uniqueName("bad"), &bad);
  ASSERT_FALSE(invalid);
  EXPECT_EQ(invalid.error().kind, ErrorKind::kInvalidInput);
  EXPECT_THAT(invalid.error().message, HasSubstr("Minimum memory limit allowed is 6MB"));
}

TEST(DockerEngine, AFailedPullEndsTheStreamWithDockersMessage) {
  SHARED_DOCKERD(d);
  int messages = 0;
  auto r = d->engine().stream(
      "POST", "/images/create?fromImage=" + docker::urlEncode("registry.invalid/none") + "&tag=1",
      [&](const Json&) {
        ++messages;
        return true;
      });
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("registry.invalid"));
  EXPECT_THAT(r.error().message, ::testing::Not(HasSubstr("{")));  // the text, not the JSON
}

TEST(DockerEngine, StreamDeliversEachMessageAndMayStopEarly) {
  SHARED_DOCKERD(d);
  // The rig's image came in through stream() with an upload (an import).
  std::vector<Json> seen;
  auto listed = d->engine().call("GET", "/images/json");
  ASSERT_TRUE(listed) << listed.error().str();
  bool found = false;
  for (const auto& image : *listed)
    for (const auto& tag : image.value("RepoTags", Json::array()))
      if (tag == kBusyboxImage) found = true;
  EXPECT_TRUE(found) << listed->dump();
  // Two events, then /events up to now (nanoseconds: a whole second would leave out what
  // happened in this one): a finite stream of JSON messages.
  const std::string a = uniqueName("engine-ev"), b = uniqueName("engine-ev");
  Json body = {{"Image", kBusyboxImage}, {"HostConfig", {{"NetworkMode", "none"}}}};
  ASSERT_TRUE(d->engine().call("POST", "/containers/create?name=" + a, &body));
  ASSERT_TRUE(d->engine().call("POST", "/containers/create?name=" + b, &body));
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  char until[64];
  std::snprintf(until, sizeof until, "%lld.%09ld", static_cast<long long>(now.tv_sec), now.tv_nsec);
  const std::string path = "/events?since=0&until=" + std::string(until);
  std::vector<std::string> names;
  auto all = d->engine().stream("GET", path, [&](const Json& m) {
    names.push_back(m["Actor"]["Attributes"].value("name", ""));
    return true;
  });
  ASSERT_TRUE(all) << all.error().str();
  EXPECT_THAT(names, ::testing::IsSupersetOf({a, b}));
  // Stopping at the first message is no error.
  auto r = d->engine().stream("GET", path, [&](const Json& m) {
    seen.push_back(m);
    return false;
  });
  ASSERT_TRUE(r) << r.error().str();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_TRUE(seen[0].contains("Type")) << seen[0].dump();
  ASSERT_TRUE(d->engine().call("DELETE", "/containers/" + a));
  ASSERT_TRUE(d->engine().call("DELETE", "/containers/" + b));
}

TEST(DockerEngine, AMissingSocketSaysDockerdCannotBeReached) {
  TempDir dir;
  const std::string socket = (dir / "docker.sock").string();
  Engine engine(socket);
  auto r = engine.connect();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kRetryable);
  EXPECT_EQ(r.error().message, "cannot reach dockerd at " + socket + ": no such socket");
  EXPECT_THAT(r.error().hint, HasSubstr("is dockerd running?"));
  EXPECT_THAT(r.error().hint, HasSubstr("docker.socket"));
  auto call = engine.call("GET", "/version");
  ASSERT_FALSE(call);
  EXPECT_EQ(call.error().message, "cannot reach dockerd at " + socket + ": no such socket");
}

TEST(DockerEngine, ASocketNobodyListensOnIsRefused) {
  TempDir dir;
  const std::string socket = (dir / "docker.sock").string();
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", socket.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ::close(fd);  // bound, never listened: connect() is refused
  Engine engine(socket);
  auto r = engine.connect();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "cannot reach dockerd at " + socket + ": Connection refused");
}

TEST(DockerEngine, UrlEncodeEscapesQueryValues) {
  EXPECT_EQ(docker::urlEncode(R"({"label":["a=b"]})"), "%7B%22label%22%3A%5B%22a%3Db%22%5D%7D");
  EXPECT_EQ(docker::urlEncode("registry.invalid/none"), "registry.invalid%2Fnone");
  EXPECT_EQ(docker::urlEncode("plain-name_1.2~x"), "plain-name_1.2~x");
}

}  // namespace
}  // namespace nodeplane::testing
