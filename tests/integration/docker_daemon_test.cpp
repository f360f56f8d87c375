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

}  // namespace
}  // namespace nodeplane::testing
