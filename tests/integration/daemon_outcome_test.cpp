// The daemon by outcome class, over the widget test plugin (no network): a terminal failure is
// not retried until its desired spec changes, a retryable one is retried with growing delays, a
// step in progress is looked at again by a later pass; and the STATUS lines of a pass ("pruning
// N of M", "invalid desired state: N errors"), against a real notify socket.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "cli_util.hpp"

namespace nodeplane::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;
using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;
using namespace std::chrono_literals;

std::string widget(const std::string& name, const std::string& color = "red") {
  return "apiVersion: nodeplane.io/v1\nkind: Widget\nmetadata: {name: " + name +
         "}\nspec: {size: 3, color: " + color + "}\n";
}

// A daemon over DIR/desired with only the widget plugin, configured by `widget` (JSON; its call
// log is DIR/widget.log), reporting to a notify socket DIR/notify.sock.
class DaemonOutcome : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directory(root_ / "desired");
    fs::create_directory(root_ / "state", root_.path());
    fs::permissions(root_ / "state", fs::perms::owner_all);
    std::ofstream(root_ / "agent.yaml") << "apiVersion: nodeplane.io/v1\n"
                                           "kind: AgentConfig\n"
                                           "resyncSeconds: 3600\n"
                                           "debounceMilliseconds: 50\n";
  }
  void TearDown() override {
    if (notify_ >= 0) ::close(notify_);
    if (daemon_) killAndReap(daemon_);
  }

  void start(Json config) {
    config["log"] = (root_ / "widget.log").string();
    config["logTimes"] = true;
    const auto sock = root_ / "notify.sock";
    notify_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock.c_str());
    ASSERT_EQ(::bind(notify_, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    daemon_ = spawn({NODEPLANE_BINARY, "--state-dir", (root_ / "state").string(), "--config",
                     (root_ / "agent.yaml").string(), "--plugin-dir",
                     std::string(NODEPLANE_TEST_PLUGIN_DIR) + "/widget", "--log-level", "debug",
                     "run", "-f", (root_ / "desired").string()},
                    {"NODEPLANE_TEST_WIDGET=" + config.dump(), "NOTIFY_SOCKET=" + sock.string()},
                    root_ / "daemon.log");
    ASSERT_TRUE(daemon_) << daemon_.error;
  }

  std::string logText() const { return slurp(root_ / "daemon.log"); }
  std::string logTail() const {
    auto t = logText();
    if (t.size() > 6000) t = "...\n" + t.substr(t.size() - 6000);
    return "\n--- daemon log ---\n" + t + "--- end of log ---";
  }

  // The widget's apply calls for `name`, each with the monotonic ms it was made at.
  std::vector<long long> applies(const std::string& name) const {
    std::vector<long long> out;
    std::ifstream in(root_ / "widget.log");
    for (std::string line; std::getline(in, line);) {
      std::istringstream words(line);
      long long ms = 0;
      std::string verb, action, who;
      words >> ms >> verb >> action >> who;
      if (verb == "apply" && who == name) out.push_back(ms);
    }
    return out;
  }

  ::testing::AssertionResult eventually(const std::string& what, const std::function<bool()>& cond,
                                        std::chrono::milliseconds timeout = 20s) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      drainNotify();
      if (cond()) return ::testing::AssertionSuccess();
      if (!running(daemon_))
        return ::testing::AssertionFailure()
               << "the daemon exited while waiting for: " << what << logTail();
      if (Clock::now() >= deadline)
        return ::testing::AssertionFailure() << "timed out waiting for: " << what << logTail();
      ::poll(nullptr, 0, 10);  // polling interval of the condition, not a synchronisation
    }
  }
  // The log has `needle` after byte `from`.
  ::testing::AssertionResult logged(std::size_t from, const std::string& needle) {
    return eventually("log line \"" + needle + "\"", [&] {
      auto t = logText();
      return t.size() > from && t.find(needle, from) != std::string::npos;
    });
  }
  // Keeps what the daemon sent so far. A datagram socket holds only a few unread messages
  // (net.unix.max_dgram_qlen): one nobody reads would block the daemon's next sd_notify.
  void drainNotify() {
    char buf[4096];
    for (ssize_t n; (n = ::recv(notify_, buf, sizeof buf, MSG_DONTWAIT)) > 0;)
      received_.append(buf, n).push_back('\n');
  }
  // Notify datagrams until one contains `what` (or 20 s); all of them so far.
  std::string statusUntil(const std::string& what) {
    const auto deadline = Clock::now() + 20s;
    while (Clock::now() < deadline && received_.find(what) == std::string::npos) {
      pollfd p{notify_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char buf[4096];
      ssize_t n = ::recv(notify_, buf, sizeof buf, 0);
      if (n > 0) received_.append(buf, n).push_back('\n');
    }
    return received_;
  }

  TempDir root_;
  Spawned daemon_;
  int notify_ = -1;
  std::string received_;
};

// A terminal failure (the widget refuses: nothing a retry changes) is tried once. Passes woken
// by SIGHUP for longer than the old backoff (1 s, then 2 s) do not try it again; a change of its
// desired spec does, at once.
TEST_F(DaemonOutcome, ATerminalFailureIsNotRetriedUntilItsSpecChanges) {
  writeFile(root_ / "desired" / "a.yaml", widget("t") + "---\n" + widget("ok"));
  start({{"failApplyFor", {"t"}}});
  ASSERT_TRUE(logged(0,
                     "Widget/t: attempt 1 failed terminally; not tried again until its "
                     "desired spec or the object on the host changes"));
  ASSERT_TRUE(logged(0, "Widget/ok create"));
  const auto t0 = Clock::now();
  int passes = 0;
  while (Clock::now() - t0 < 3500ms) {  // the measurement window, paced by finished passes
    const auto mark = logText().size();
    ASSERT_TRUE(sendSignal(daemon_, SIGHUP));
    ASSERT_TRUE(logged(mark, "waiting: 2 resources"));
    ++passes;
    ::poll(nullptr, 0, 200);  // pacing between passes, not a synchronisation
  }
  EXPECT_GE(passes, 5);
  EXPECT_EQ(applies("t").size(), 1u) << logTail();

  const auto mark = logText().size();
  writeFile(root_ / "desired" / "a.yaml", widget("t", "blue") + "---\n" + widget("ok"));
  ASSERT_TRUE(logged(mark, "Widget/t: its desired spec changed: its hold ends"));
  ASSERT_TRUE(logged(mark, "Widget/t: attempt 1 failed terminally"));  // a new attempt
  EXPECT_EQ(applies("t").size(), 2u) << logTail();
}

// A retryable failure (busy, unreachable) is retried by the daemon on its own, each time later:
// 1 s, then 2 s; the third attempt succeeds.
TEST_F(DaemonOutcome, ARetryableFailureIsRetriedWithGrowingDelays) {
  writeFile(root_ / "desired" / "a.yaml", widget("r"));
  start({{"failApplyFor", {"r"}}, {"failApplyKind", "retryable"}, {"failTimes", 2}});
  ASSERT_TRUE(logged(0, "Widget/r: attempt 1 failed; next attempt in 1000 ms"));
  ASSERT_TRUE(logged(0, "Widget/r: attempt 2 failed; next attempt in 2000 ms"));
  ASSERT_TRUE(logged(0, "Widget/r create"));
  const auto at = applies("r");
  ASSERT_EQ(at.size(), 3u) << logTail();
  EXPECT_GE(at[1] - at[0], 1000);
  EXPECT_GE(at[2] - at[1], 2000);
  EXPECT_GT(at[2] - at[1], at[1] - at[0]);
}

// A step that answers "in progress, look again after 300 ms" (a VM booting) does not hold the
// pass: the daemon says so, a re-check pass looks at it again, and it ends in sync without
// "did not converge" or a failure on the way.
TEST_F(DaemonOutcome, AnInProgressStepIsRecheckedByALaterPassThenDone) {
  writeFile(root_ / "desired" / "a.yaml", widget("w"));
  start({{"bootObserves", 6}, {"inProgressMs", 300}});
  ASSERT_TRUE(logged(0,
                     "Widget/w: in progress, waiting for the widget to boot; looking again "
                     "in 300 ms"));
  auto status = statusUntil("in sync; 1 resources");
  EXPECT_THAT(status, HasSubstr("STATUS=in progress; 1 resources: 1 created"));
  const auto t = logText();
  EXPECT_THAT(t, Not(HasSubstr("did not converge"))) << logTail();
  EXPECT_THAT(t, Not(HasSubstr("failed;"))) << logTail();
  EXPECT_GE(applies("w").size(), 2u) << "the re-check pass looked at it again";
}

// A step that stays in progress longer than its kind's verify timeout (0.5 s) did not converge:
// from then on it is a retryable failure, with backoff.
TEST_F(DaemonOutcome, AStepInProgressForLongerThanItsTimeoutFails) {
  writeFile(root_ / "desired" / "a.yaml", widget("w"));
  start({{"bootObserves", 1000000000},
         {"inProgressMs", 100},
         {"verify", {{"intervalMs", 100}, {"timeoutMs", 500}}}});
  ASSERT_TRUE(logged(0, "Widget/w: in progress, waiting for the widget to boot"));
  ASSERT_TRUE(logged(0,
                     "Widget/w: did not converge within 0.5 s: still in progress, waiting for "
                     "the widget to boot"));
  ASSERT_TRUE(logged(0, "Widget/w: attempt 1 failed; next attempt in 1000 ms"));
}

// STATUS while the deletes of a pass run: "pruning N of M", then "applying N of M".
TEST_F(DaemonOutcome, StatusSaysPruningAndApplyingNOfM) {
  writeFile(root_ / "desired" / "a.yaml", widget("keep"));
  Json existing = Json::array();
  for (int i = 0; i < 3; ++i)
    existing.push_back(
        {{"name", "old" + std::to_string(i)}, {"spec", {{"size", 1}}}, {"marked", true}});
  start({{"existing", existing}});
  auto status = statusUntil("in sync; ");
  EXPECT_THAT(status, HasSubstr("STATUS=pruning 3 of 3\n"));
  EXPECT_THAT(status, HasSubstr("STATUS=applying 1 of 1\n"));
  EXPECT_LT(status.find("pruning 3 of 3"), status.find("applying 1 of 1"));
}

TEST_F(DaemonOutcome, StatusSaysTheDesiredStateIsInvalidWithItsErrorCount) {
  writeFile(root_ / "desired" / "a.yaml",
            "apiVersion: nodeplane.io/v1\nkind: Widget\nmetadata: {name: x}\nspec: {size: 500, "
            "color: mauve}\n");
  start(Json::object());
  EXPECT_THAT(statusUntil("invalid desired state"),
              HasSubstr("STATUS=invalid desired state: 2 errors; host left as it is"));
}

// SIGTERM while the pass waits for a kind's verify (a widget that never shows its colour, with
// a 30 s verify interval and a 60 s timeout): the wait ends at once and the daemon exits 0.
TEST_F(DaemonOutcome, SigtermEndsAVerifyWaitAtOnce) {
  writeFile(root_ / "desired" / "a.yaml", widget("slow"));
  start({{"bootObserves", 1000000000}, {"verify", {{"intervalMs", 30000}, {"timeoutMs", 60000}}}});
  ASSERT_TRUE(logged(0, "Widget/slow create"));
  ASSERT_TRUE(sendSignal(daemon_, SIGTERM));
  const auto t0 = Clock::now();
  auto st = waitExit(daemon_, 5s);
  ASSERT_TRUE(st) << "still running 5 s after SIGTERM" << logTail();
  EXPECT_EQ(exitCode(*st), 0) << logTail();
  EXPECT_LT(Clock::now() - t0, 2s);
}

// `nodeplane apply` with the widget plugin; `widget`: its config (the call log is DIR/widget.log).
class CliLongApply : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directory(root_ / "desired");
    writeFile(root_ / "desired" / "a.yaml", widget("a") + "---\n" + widget("b"));
  }
  CliResult apply(Json config, std::vector<std::string> env = {}) {
    config["log"] = (root_ / "widget.log").string();
    env.push_back("NODEPLANE_TEST_WIDGET=" + config.dump());
    return run({NODEPLANE_BINARY, "--state-dir", (root_ / "state").string(), "--plugin-dir",
                std::string(NODEPLANE_TEST_PLUGIN_DIR) + "/widget", "apply", "-f",
                (root_ / "desired").string()},
               env);
  }
  std::string calls() const { return slurp(root_ / "widget.log"); }

  TempDir root_;
};

// What a step reports while it runs is printed by `apply`, under the resource's name.
TEST_F(CliLongApply, ApplyShowsWhatAStepReports) {
  auto r = apply({{"recordUndo", true}});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("Widget/a: recording what to undo\nWidget/a created\n"));
}

// `apply` waits for a step in progress and reports it done.
TEST_F(CliLongApply, ApplyWaitsForAStepInProgress) {
  auto r = apply({{"bootObserves", 4}, {"inProgressMs", 20}});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("Widget/a create in progress: waiting for the widget to boot\n"));
  EXPECT_THAT(r.out, HasSubstr("Apply complete: 2 created"));
}

// Killed between two steps, after the first saved an undo record: the next apply hands that
// step to the plugin's recover() with the record. While recover() fails, nothing is applied and
// the journal stays; once it succeeds, the apply goes on.
TEST_F(CliLongApply, AStepInterruptedAfterItsUndoRecordIsRecoveredByThePlugin) {
  auto crashed = apply({{"recordUndo", true}}, {"NODEPLANE_TEST_CRASH_AFTER_STEPS=1"});
  ASSERT_EQ(crashed.code, 128 + SIGKILL) << crashed.out << crashed.err;
  const auto journal = root_ / "state" / "journal.jsonl";
  ASSERT_THAT(slurp(journal), HasSubstr(R"({"undo":{"made":"a"},"undoOf":1})"));

  auto refused = apply({{"recordUndo", true}, {"failRecover", true}});
  EXPECT_EQ(refused.code, 1) << refused.out << refused.err;
  EXPECT_THAT(refused.err,
              HasSubstr(R"(Widget/a: the interrupted create (undo record {"made":"a"}) was not )"
                        "recovered: widget cannot recover a yet"));
  EXPECT_THAT(refused.err, HasSubstr("recovery failed: nothing was applied"));
  EXPECT_THAT(slurp(journal), HasSubstr(R"("undoOf":1)")) << "the journal is kept";

  auto again = apply({{"recordUndo", true}});
  EXPECT_EQ(again.code, 0) << again.out << again.err;
  EXPECT_THAT(again.err, HasSubstr("recovered 2 journal entries"));
  EXPECT_THAT(calls(), HasSubstr(R"(recover create a undo {"made":"a"} context {"made":"a"})"));
  EXPECT_EQ(slurp(journal), "");
}

}  // namespace
}  // namespace nodeplane::testing
