// `nodeplane run` with the docker plugin on the rig's dockerd: drift is repaired on Docker's
// /events alone (the resync is an hour away).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>

#include <filesystem>
#include <functional>

#include "support/dockerd.hpp"
#include "support/files.hpp"
#include "support/process.hpp"

namespace nodeplane::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class DockerDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    NODEPLANE_REQUIRE_DOCKERD_ROOT();
    std::string why;
    d_ = sharedDockerd(&why);
    ASSERT_NE(d_, nullptr) << why;
    fs::create_directories(root_ / "desired");
    root_.write("agent.yaml",
                "apiVersion: nodeplane.io/v1\nkind: AgentConfig\nresyncSeconds: 3600\n"
                "debounceMilliseconds: 100\nlockTimeoutSeconds: 10\ndocker: {socket: " +
                    d_->socket() + "}\n");
  }
  void TearDown() override {
    if (daemon_) {
      sendSignal(daemon_, SIGTERM);
      if (!waitExit(daemon_, 30s)) killAndReap(daemon_);
    }
    if (d_ && !name_.empty()) d_->engine().request("DELETE", "/containers/" + name_ + "?force=1");
  }

  std::string logTail() const {
    std::string t = slurp(root_ / "daemon.log");
    if (t.size() > 6000) t = "...\n" + t.substr(t.size() - 6000);
    return "\n--- daemon log ---\n" + t + "--- end of log ---";
  }

  void startDaemon() {
    daemon_ =
        spawnLogged({NODEPLANE_BINARY, "--state-dir", (root_ / "state").string(), "--config",
                     (root_ / "agent.yaml").string(), "--plugin-dir", NODEPLANE_BUILD_PLUGIN_DIR,
                     "--log-level", "debug", "run", "-f", (root_ / "desired").string()},
                    root_ / "daemon.out", root_ / "daemon.log");
    ASSERT_TRUE(daemon_) << daemon_.error;
  }

  // Polls `cond` until it holds, the daemon dies, or the deadline passes.
  ::testing::AssertionResult eventually(const std::string& what,
                                        const std::function<bool()>& cond) {
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    for (;;) {
      if (cond()) return ::testing::AssertionSuccess();
      if (!running(daemon_))
        return ::testing::AssertionFailure()
               << "the daemon exited while waiting for: " << what << logTail();
      if (std::chrono::steady_clock::now() >= deadline)
        return ::testing::AssertionFailure() << "timed out waiting for: " << what << logTail();
      ::poll(nullptr, 0, 20);  // polling interval of the condition, not a synchronisation
    }
  }

  // The container's id while it runs, else "".
  std::string runningId() {
    auto r = d_->engine().request("GET", "/containers/" + name_ + "/json");
    if (!r || r->status != 200) return "";
    Json j = Json::parse(r->body, nullptr, false);
    if (!j.is_object() || !j["State"].value("Running", false)) return "";
    return j.value("Id", "");
  }

  Dockerd* d_ = nullptr;
  TempDir root_;
  Spawned daemon_;
  std::string name_;
};

TEST_F(DockerDaemonTest, AContainerRemovedByHandIsBackRunningOnItsEvents) {
  name_ = uniqueName("dd-web");
  root_.write("desired/10-web.yaml",
              "apiVersion: nodeplane.io/v1\nkind: Container\n"
              "metadata: {name: " +
                  name_ + "}\nspec:\n  image: " + kBusyboxImage + "\n  network: none\n");
  startDaemon();
  std::string first;
  ASSERT_TRUE(eventually(name_ + " running", [&] { return !(first = runningId()).empty(); }));
  ASSERT_TRUE(eventually("the daemon watching docker events", [&] {
    return slurp(root_ / "daemon.log").find("watching docker events at " + d_->socket()) !=
           std::string::npos;
  }));

  auto removed = d_->engine().call("DELETE", "/containers/" + name_ + "?force=1");
  ASSERT_TRUE(removed) << removed.error().str();
  std::string second;
  EXPECT_TRUE(eventually(name_ + " recreated and running", [&] {
    second = runningId();
    return !second.empty() && second != first;
  }));

  // Stopped by hand: started again.
  ASSERT_TRUE(d_->engine().call("POST", "/containers/" + name_ + "/stop?t=30", nullptr, 60s));
  EXPECT_TRUE(eventually(name_ + " running again", [&] { return runningId() == second; }));
}

// dockerd comes up after nodeplane (boot order): the daemon's passes fail to start the docker
// plugin, a later pass starts it, and its /events stream is opened then (not only at the
// daemon's start), so a container removed by hand afterwards is repaired on its events alone.
TEST_F(DockerDaemonTest, ADockerdThatComesUpAfterTheDaemonIsUsedAndItsEventsWatched) {
  Dockerd late;
  ASSERT_TRUE(late.ok()) << late.error();
  ASSERT_EQ(late.importBusybox(), "");
  ASSERT_EQ(late.stop(), "");
  root_.write("agent.yaml",
              "apiVersion: nodeplane.io/v1\nkind: AgentConfig\nresyncSeconds: 3600\n"
              "debounceMilliseconds: 100\nlockTimeoutSeconds: 10\ndocker: {socket: " +
                  late.socket() + "}\n");
  const std::string name = uniqueName("dd-late");
  root_.write("desired/10-late.yaml",
              "apiVersion: nodeplane.io/v1\nkind: Container\n"
              "metadata: {name: " +
                  name + "}\nspec:\n  image: " + kBusyboxImage + "\n  network: none\n");
  startDaemon();
  ASSERT_TRUE(eventually("the docker plugin failing to start", [&] {
    return slurp(root_ / "daemon.log").find("plugin docker could not start") != std::string::npos;
  }));
  ASSERT_EQ(late.start(), "");
  auto idOf = [&]() -> std::string {
    auto r = late.engine().request("GET", "/containers/" + name + "/json");
    if (!r || r->status != 200) return "";
    Json j = Json::parse(r->body, nullptr, false);
    if (!j.is_object() || !j["State"].value("Running", false)) return "";
    return j.value("Id", "");
  };
  std::string first;
  ASSERT_TRUE(eventually(name + " running", [&] { return !(first = idOf()).empty(); }));
  // Watched, and the pass that follows the opening (it observes docker afresh) is over.
  ASSERT_TRUE(eventually("docker events watched, then a pass in sync", [&] {
    const std::string log = slurp(root_ / "daemon.log");
    const auto at = log.find("watching docker events at " + late.socket());
    return at != std::string::npos && log.find("in sync", at) != std::string::npos;
  }));
  ASSERT_TRUE(late.engine().call("DELETE", "/containers/" + name + "?force=1"));
  EXPECT_TRUE(eventually(name + " recreated on its events", [&] {
    const std::string now = idOf();
    return !now.empty() && now != first;
  }));
}

}  // namespace
}  // namespace nodeplane::testing
