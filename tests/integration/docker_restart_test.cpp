// `nodeplane run` across a dockerd restart: when dockerd comes back (the plugin's event sources
// re-open), what failed while it was away is repaired at once, not when the per-resource retry
// backoff (capped at the resync interval, here an hour) happens to end.
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

class DockerRestartTest : public ::testing::Test {
 protected:
  void SetUp() override {
    NODEPLANE_REQUIRE_DOCKERD_ROOT();
    d_ = std::make_unique<Dockerd>();  // its own: this test stops it
    ASSERT_TRUE(d_->ok()) << d_->error();
    ASSERT_EQ(d_->importBusybox(), "");
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
  }

  std::string log() const { return slurp(root_ / "daemon.log"); }
  std::string logTail() const {
    std::string t = log();
    if (t.size() > 6000) t = "...\n" + t.substr(t.size() - 6000);
    return "\n--- daemon log ---\n" + t + "--- end of log ---";
  }

  ::testing::AssertionResult eventually(const std::string& what, std::chrono::seconds limit,
                                        const std::function<bool()>& cond) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
      if (cond()) return ::testing::AssertionSuccess();
      if (!running(daemon_))
        return ::testing::AssertionFailure()
               << "the daemon exited while waiting for: " << what << logTail();
      if (std::chrono::steady_clock::now() >= deadline)
        return ::testing::AssertionFailure() << "timed out waiting for: " << what << logTail();
      ::poll(nullptr, 0, 50);  // polling interval of the condition, not a synchronisation
    }
  }

  bool isRunning(const std::string& name) {
    auto r = d_->engine().request("GET", "/containers/" + name + "/json");
    if (!r || r->status != 200) return false;
    Json j = Json::parse(r->body, nullptr, false);
    return j.is_object() && j["State"].value("Running", false);
  }

  std::unique_ptr<Dockerd> d_;
  TempDir root_;
  Spawned daemon_;
};

TEST_F(DockerRestartTest, AContainerStoppedWithDockerdRunsAgainOnceDockerdIsBack) {
  const std::string name = "dr-web";
  root_.write("desired/10-web.yaml",
              "apiVersion: nodeplane.io/v1\nkind: Container\nmetadata: {name: " + name +
                  "}\nspec:\n  image: " + kBusyboxImage + "\n  network: none\n");
  daemon_ =
      spawnLogged({NODEPLANE_BINARY, "--state-dir", (root_ / "state").string(), "--config",
                   (root_ / "agent.yaml").string(), "--plugin-dir", NODEPLANE_BUILD_PLUGIN_DIR,
                   "--log-level", "debug", "run", "-f", (root_ / "desired").string()},
                  root_ / "daemon.out", root_ / "daemon.log");
  ASSERT_TRUE(daemon_) << daemon_.error;
  ASSERT_TRUE(eventually(name + " running", 60s, [&] { return isRunning(name); }));
  ASSERT_TRUE(eventually("the daemon watching docker events", 60s, [&] {
    return log().find("watching docker events at " + d_->socket()) != std::string::npos;
  }));

  // dockerd goes (its containers stop with it, restart policy "no"), long enough that the
  // container's retry backoff (1 s, doubling, capped at the resync) is past the longest wait
  // between two attempts to re-open the event sources (60 s).
  ASSERT_EQ(d_->stop(), "");
  ASSERT_TRUE(eventually("a retry backoff of 128 s", 240s, [&] {
    return log().find("Container/" + name + ": attempt 8 failed; next attempt in 128000 ms") !=
           std::string::npos;
  }));
  ASSERT_EQ(d_->start(), "");
  ASSERT_TRUE(eventually("the docker event sources re-opened", 90s, [&] {
    return log().find("plugin docker: event sources re-opened") != std::string::npos;
  }));
  // Well before the 128 s backoff ends.
  EXPECT_TRUE(eventually(name + " running again", 20s, [&] { return isRunning(name); }));
}

}  // namespace
}  // namespace nodeplane::testing
