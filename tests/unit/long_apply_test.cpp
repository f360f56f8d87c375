// Long applies over the widget plugin (tests/fixtures/plugins/widget.cpp): the ApplyContext a
// step gets (progress, undo records journaled before they return and handed back on delete),
// in-progress outcomes, verify per kind, and recovery of interrupted steps through the plugin.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "apply_context.hpp"
#include "engine.hpp"
#include "support/files.hpp"
#include "support/plugin_rig.hpp"
#include "widget_engine.hpp"

namespace nodeplane {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class LongApply : public WidgetEngineTest {
 protected:
  void SetUp() override { stateDir_ = tmp_ / "state"; }

  // Loads the widget plugin with `config` (plus a call log) as its config section.
  Engine& engine(Json config = Json::object()) {
    config["log"] = log().string();
    HostContext ctx;
    ctx.hostname = "node";
    ctx.config["widget"] = std::move(config);
    return loadWidget(ctx);
  }

  state::Store store() { return openStore(stateDir_); }

  fs::path log() const { return tmp_ / "widget.log"; }
  // The widget's calls, one per line.
  std::vector<std::string> calls() const {
    std::vector<std::string> out;
    std::ifstream in(log());
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  }

  ::nodeplane::testing::TempDir tmp_;
  fs::path stateDir_;
};

constexpr const char* kOne = R"(apiVersion: nodeplane.io/v1
kind: Widget
metadata: {name: a}
spec: {size: 3, color: red}
)";

std::string errorsOf(const ApplyReport& r) {
  std::string s;
  for (const auto& e : r.errors) s += e.str() + "\n";
  return s;
}

// recordUndo() returns once the record is on disk: a second reader of the state directory (the
// next start, after a crash) finds it in the journal entry of the step.
TEST_F(LongApply, AnUndoRecordIsJournaledBeforeRecordUndoReturns) {
  auto s = store();
  state::JournalEntry e{s.nextSeq(), "create", {"Widget", "a"}, "widget", Json::object()};
  ASSERT_TRUE(s.journalIntent({e}));
  test::PluginRig services({}, "widget");
  StepContext context(services.services, {}, std::chrono::seconds(1), e.id, Json::object(), &s,
                      e.seq);
  ASSERT_TRUE(context.recordUndo({{"driver", "snd_hda_intel"}}));
  ASSERT_TRUE(context.recordUndo({{"driver", "snd_hda_intel"}, {"bound", true}}));

  auto reader = state::Store::open(stateDir_);
  ASSERT_TRUE(reader) << reader.error().str();
  ASSERT_EQ(reader->pending().size(), 1u);
  EXPECT_FALSE(reader->pending()[0].done);
  EXPECT_EQ(reader->pending()[0].entry.undo, (Json{{"driver", "snd_hda_intel"}, {"bound", true}}))
      << "the last record of the step counts";
  ASSERT_TRUE(context.recorded());

  StepContext noJournal(services.services, {}, std::chrono::seconds(1), e.id, Json::object(),
                        nullptr, 0);
  auto refused = noJournal.recordUndo({{"x", 1}});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().message,
            "Widget/a: no journal entry to keep an undo record in; do not make the change");
}

// The record a step saved is kept with the object in state.json, and the delete gets it back
// through undo(); what the step reported with progress() reaches the engine's listener.
TEST_F(LongApply, AnUndoRecordIsKeptWithTheObjectAndHandedBackOnDelete) {
  auto& e = engine({{"recordUndo", true}});
  std::vector<std::string> progress;
  e.setStepProgress([&](const ResourceId& id, std::string_view m) {
    progress.push_back(id.str() + ": " + std::string(m));
  });
  auto s = store();
  auto made = e.converge(desired(kOne), s, true, {});
  ASSERT_TRUE(made.ok()) << errorsOf(made);
  EXPECT_THAT(progress, ElementsAre("Widget/a: recording what to undo"));
  EXPECT_EQ(store().owned().at({"Widget", "a"}).undo, (Json{{"made", "a"}}))
      << "kept in state.json with the object";
  EXPECT_TRUE(store().pending().empty());

  auto s2 = store();
  auto gone = e.converge(desired(""), s2, true, {});
  ASSERT_TRUE(gone.ok()) << errorsOf(gone);
  EXPECT_EQ(gone.deleted, 1u);
  EXPECT_THAT(calls(), ElementsAre("apply create a", R"(apply delete a undo {"made":"a"})"));
  EXPECT_FALSE(store().owns({"Widget", "a"}));
}

// A kind with a verify policy is observed every interval until it matches: a widget that shows
// its colour only after 6 observations converges, with one apply call and no "did not converge".
TEST_F(LongApply, AKindWithAVerifyPolicyIsObservedUntilItConverges) {
  auto& e = engine({{"bootObserves", 6}, {"verify", {{"intervalMs", 5}, {"timeoutMs", 10000}}}});
  auto s = store();
  auto r = e.converge(desired(kOne), s, true, {});
  EXPECT_TRUE(r.ok()) << errorsOf(r);
  EXPECT_EQ(r.created, 1u);
  EXPECT_THAT(calls(), ElementsAre("apply create a")) << "verified by observing, not redone";
  EXPECT_EQ(s.results().at({"Widget", "a"}).outcome, "created");
}

TEST_F(LongApply, AKindThatDoesNotConvergeWithinItsVerifyTimeoutIsAnError) {
  auto& e =
      engine({{"bootObserves", 100000}, {"verify", {{"intervalMs", 10}, {"timeoutMs", 200}}}});
  auto s = store();
  const auto t0 = std::chrono::steady_clock::now();
  auto r = e.converge(desired(kOne), s, true, {});
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(200));
  ASSERT_EQ(r.errors.size(), 1u) << errorsOf(r);
  EXPECT_EQ(r.errors[0].str(),
            "Widget/a: did not converge within 0.2 s: still needs update color: (unset) -> red");
  EXPECT_EQ(s.results().at({"Widget", "a"}).outcome, "failed");
  EXPECT_THAT(calls(), ElementsAre("apply create a"));
}

// Without a policy (0/0, the net plugin's kinds) it is as before: observed at once, done again,
// up to three rounds.
TEST_F(LongApply, AKindWithoutAVerifyPolicyIsRedoneUpToThreeRounds) {
  auto& e = engine({{"bootObserves", 100000}});
  auto s = store();
  auto r = e.converge(desired(kOne), s, true, {});
  ASSERT_EQ(r.errors.size(), 1u) << errorsOf(r);
  EXPECT_EQ(r.errors[0].str(),
            "Widget/a: did not converge after 3 rounds: still needs update color: (unset) -> red");
  EXPECT_THAT(calls(), ElementsAre("apply create a", "apply update a", "apply update a"));
}

// A step that answers "in progress, look again after 20 ms": `apply` observes it every 20 ms
// (the kind has no verify policy: the default step timeout bounds the wait) and reports it done.
TEST_F(LongApply, AnInProgressStepIsLookedAtAgainAndReportedDone) {
  auto& e = engine({{"bootObserves", 5}, {"inProgressMs", 20}});
  std::vector<std::string> steps;
  auto s = store();
  auto r = e.converge(desired(kOne), s, true, [&](const PlanEntry& p, const StepResult& res) {
    steps.push_back(p.change.id.str() + (res.cls == Outcome::kInProgress
                                             ? " in progress: " + res.waitingFor
                                             : std::string(" done")));
  });
  EXPECT_TRUE(r.ok()) << errorsOf(r);
  EXPECT_EQ(r.created, 1u);
  EXPECT_THAT(steps, ElementsAre("Widget/a in progress: the widget to boot"));
  EXPECT_THAT(calls(), ElementsAre("apply create a")) << "looked at, not done again";
  EXPECT_EQ(s.results().at({"Widget", "a"}).outcome, "created");
  EXPECT_TRUE(r.inProgress.empty());
}

// The daemon does not wait: the step is returned for a re-check pass, recorded "in-progress".
TEST_F(LongApply, WithoutWaitingAnInProgressStepIsReturnedForALaterPass) {
  auto& e = engine({{"bootObserves", 5}, {"inProgressMs", 300}});
  e.setWaitInProgress(false);
  auto s = store();
  auto r = e.converge(desired(kOne), s, true, {});
  EXPECT_TRUE(r.ok()) << errorsOf(r);
  ASSERT_EQ(r.inProgress.size(), 1u);
  EXPECT_EQ(r.inProgress[0].id.str(), "Widget/a");
  EXPECT_EQ(r.inProgress[0].recheckAfter, std::chrono::milliseconds(300));
  EXPECT_EQ(r.inProgress[0].waitingFor, "the widget to boot");
  EXPECT_EQ(s.results().at({"Widget", "a"}).outcome, "in-progress");
  EXPECT_THAT(calls(), ElementsAre("apply create a"));
}

// A journal entry of a step that saved an undo record and never ended goes to the plugin's
// recover(), with the record; the journal is then cleared.
TEST_F(LongApply, AnInterruptedStepWithAnUndoRecordIsRecoveredByItsPlugin) {
  {
    auto s = store();
    state::JournalEntry e{s.nextSeq(), "create", {"Widget", "a"}, "widget", Json::object()};
    state::JournalEntry plain{s.nextSeq(), "create", {"Widget", "b"}, "widget", Json::object()};
    ASSERT_TRUE(s.journalIntent({e, plain}));
    ASSERT_TRUE(s.journalUndo(e.seq, {{"made", "a"}}));
  }
  auto& e = engine();
  auto s = store();
  auto n = e.recover(s);
  ASSERT_TRUE(n) << n.error().str();
  EXPECT_EQ(*n, 2u);
  EXPECT_THAT(calls(), ElementsAre(R"(recover create a undo {"made":"a"} context {"made":"a"})"))
      << "only the entry with an undo record needs its plugin";
  EXPECT_TRUE(store().pending().empty());
}

// A recover() that fails keeps the whole journal: the next start tries again, and succeeds.
TEST_F(LongApply, AFailedRecoveryKeepsTheJournalForTheNextStart) {
  {
    auto s = store();
    state::JournalEntry e{s.nextSeq(), "create", {"Widget", "a"}, "widget", Json::object()};
    ASSERT_TRUE(s.journalIntent({e}));
    ASSERT_TRUE(s.journalUndo(e.seq, {{"made", "a"}}));
  }
  {
    auto& e = engine({{"failRecover", true}});
    auto s = store();
    auto n = e.recover(s);
    ASSERT_FALSE(n);
    EXPECT_EQ(n.error().str(),
              R"(Widget/a: the interrupted create (undo record {"made":"a"}) was not recovered: )"
              "widget cannot recover a yet (the journal keeps it; the next apply or daemon pass "
              "tries again)");
    auto again = store();
    ASSERT_EQ(again.pending().size(), 1u) << "no journal entry is dropped unresolved";
    EXPECT_EQ(again.pending()[0].entry.undo, (Json{{"made", "a"}}));
  }
  auto& e = engine();
  auto s = store();
  auto n = e.recover(s);
  ASSERT_TRUE(n) << n.error().str();
  EXPECT_TRUE(store().pending().empty());
  EXPECT_EQ(calls().size(), 2u);
}

// A step that saved an undo record and then failed may have changed the host: the apply does
// not clear the journal, so the next recovery hands the step to the plugin.
TEST_F(LongApply, AStepThatFailsAfterItsUndoRecordLeavesItForRecovery) {
  {
    auto& e = engine({{"recordUndo", true}, {"failAfterUndo", true}});
    auto s = store();
    auto r = e.converge(desired(kOne), s, true, {});
    ASSERT_EQ(r.errors.size(), 1u) << errorsOf(r);
    EXPECT_EQ(r.errors[0].str(), "Widget/a: widget broke half-way");
  }
  auto s = store();
  ASSERT_EQ(s.pending().size(), 1u) << "no journal entry is dropped unresolved";
  EXPECT_FALSE(s.pending()[0].done);
  EXPECT_EQ(s.pending()[0].entry.undo, (Json{{"made", "a"}}));
  auto& e = engine();
  ASSERT_TRUE(e.recover(s));
  EXPECT_THAT(calls().back(), HasSubstr(R"(recover create a undo {"made":"a"})"));
  EXPECT_TRUE(store().pending().empty());
}

}  // namespace
}  // namespace nodeplane
