// Identity and ownership over the widget plugin: the agent id of a state directory, uids that
// precondition steps, other agents' and legacy marks, metadata.adopt and metadata.deletionPolicy.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

#include "engine.hpp"
#include "nodeplane/text.hpp"
#include "sensitive.hpp"
#include "support/files.hpp"
#include "widget_engine.hpp"

namespace nodeplane {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(AgentId, MadeOnceKeptAcrossOpensAndDifferentPerStateDir) {
  ::nodeplane::testing::TempDir a, b;
  std::string first;
  {
    auto s = state::Store::open(a.path() / "state");
    ASSERT_TRUE(s) << s.error().str();
    first = s->agentId();
  }
  EXPECT_EQ(first.size(), 16u);
  struct stat st;
  ASSERT_EQ(::stat((a.path() / "state" / "agent-id").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto again = state::Store::open(a.path() / "state");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->agentId(), first) << "an agent keeps its id across restarts";
  auto ro = state::Store::openReadOnly(a.path() / "state");
  ASSERT_TRUE(ro);
  EXPECT_EQ(ro->agentId(), first);
  auto other = state::Store::open(b.path() / "state");
  ASSERT_TRUE(other);
  EXPECT_NE(other->agentId(), first) << "two state dirs, two agents";
  auto fresh = state::Store::openReadOnly(b.path() / "none");
  ASSERT_TRUE(fresh);
  EXPECT_EQ(fresh->agentId(), "") << "a read-only open creates nothing";
}

TEST(AgentId, AFileThatHoldsNoIdIsAnErrorNotReplaced) {
  ::nodeplane::testing::TempDir a;
  ASSERT_TRUE(state::Store::open(a.path()));
  a.write("agent-id", "not an id\n");
  auto s = state::Store::open(a.path());
  ASSERT_FALSE(s);
  EXPECT_THAT(s.error().message,
              HasSubstr("agent-id does not hold an agent id (16 hexadecimal digits)"));
}

class IdentityEngine : public WidgetEngineTest {
 protected:
  Engine& engine(Json config = Json::object()) {
    HostContext ctx;
    ctx.config["widget"] = std::move(config);
    return loadWidget(ctx);
  }
  state::Store store() { return openStore(tmp_.path()); }
  static std::string widget(const std::string& name, const std::string& metadata = "",
                            const std::string& spec = "size: 3") {
    return "---\napiVersion: nodeplane.io/v1\nkind: Widget\nmetadata: {name: " + name +
           (metadata.empty() ? "" : ", " + metadata) + "}\nspec: {" + spec + "}\n";
  }

  ::nodeplane::testing::TempDir tmp_;
};

TEST_F(IdentityEngine, MetadataAdoptAndDeletionPolicyAreParsedAndWrongValuesAreErrors) {
  engine();
  auto ok = desired(widget("w", "adopt: true, deletionPolicy: Orphan"));
  ASSERT_TRUE(ok.ok()) << ok.errors[0].str();
  EXPECT_TRUE(ok.resources[0].adopt);
  EXPECT_EQ(ok.resources[0].deletionPolicy, DeletionPolicy::kOrphan);

  auto bad = desired(widget("w", "adopt: \"yes\", deletionPolicy: Orphn"));
  ASSERT_EQ(bad.errors.size(), 2u);
  EXPECT_EQ(bad.errors[0].str(),
            "desired.yaml:4:21: Widget/w metadata.adopt: expected true or false, got string "
            "\"yes\" (write it without quotes)");
  EXPECT_EQ(bad.errors[1].str(),
            "desired.yaml:4:35: Widget/w metadata.deletionPolicy: string \"Orphn\" is not a "
            "deletion policy (expected Delete or Orphan: what happens to the object when its "
            "resource leaves the desired state) (did you mean \"Orphan\"?)");

  auto old = desired(widget("w", "", "size: 3, adopt: true"));
  ASSERT_EQ(old.errors.size(), 1u);
  EXPECT_THAT(old.errors[0].str(),
              HasSubstr("Widget/w spec.adopt: unknown field \"adopt\" (known: size, color, uses, "
                        "secret, children, parts, pciChildren, claims) (moved to metadata.adopt: "
                        "write it under metadata"));
}

TEST_F(IdentityEngine, AnAdoptedObjectIsReleasedWhenItsFileGoesUnlessItAskedForDelete) {
  auto& e = engine({{"existing",
                     {{{"name", "hand"}, {"spec", {{"size", 3}}}, {"uid", "h1"}},
                      {{"name", "hand-del"}, {"spec", {{"size", 3}}}, {"uid", "h2"}}}}});
  auto s = store();
  auto with = desired(widget("hand", "adopt: true") +
                      widget("hand-del", "adopt: true, deletionPolicy: Delete") + widget("made") +
                      widget("made-orphan", "deletionPolicy: Orphan"));
  ASSERT_TRUE(with.ok()) << with.errors[0].str();
  auto r = e.converge(with, s, true, {});
  ASSERT_TRUE(r.ok()) << r.errors[0].str();
  EXPECT_TRUE(s.owned().at({"Widget", "hand"}).adopted);
  EXPECT_EQ(s.owned().at({"Widget", "hand"}).pruneAs(), DeletionPolicy::kOrphan);
  EXPECT_EQ(s.owned().at({"Widget", "hand-del"}).pruneAs(), DeletionPolicy::kDelete);
  EXPECT_EQ(s.owned().at({"Widget", "made"}).pruneAs(), DeletionPolicy::kDelete);
  EXPECT_EQ(s.owned().at({"Widget", "made-orphan"}).pruneAs(), DeletionPolicy::kOrphan);

  // The files are gone: the store alone says what to do.
  auto without = desired(widget("other"));
  Plan p = e.plan(without, e.observe(), s, true);
  std::map<std::string, Action> actions;
  for (const auto& entry : p.entries) actions[entry.change.id.name] = entry.change.action;
  EXPECT_EQ(actions["hand"], Action::kRelease);
  EXPECT_EQ(actions["hand-del"], Action::kDelete);
  EXPECT_EQ(actions["made"], Action::kDelete);
  EXPECT_EQ(actions["made-orphan"], Action::kRelease);
  EXPECT_THAT(renderPlanText(p),
              HasSubstr("~- Widget/hand release (the mark is removed, the object stays)\n"));
  EXPECT_THAT(renderPlanText(p), HasSubstr("2 to delete, 2 to release (left in place), "));

  auto pruned = e.converge(without, s, true, {});
  ASSERT_TRUE(pruned.ok()) << pruned.errors[0].str();
  EXPECT_EQ(pruned.released, 2u);
  EXPECT_EQ(pruned.deleted, 2u);
  Observation after = e.observe();
  ASSERT_TRUE(after.objects.count({"Widget", "hand"}));
  EXPECT_FALSE(after.objects.at({"Widget", "hand"}).marked) << "released: the mark is removed";
  EXPECT_FALSE(after.objects.count({"Widget", "hand-del"}));
  EXPECT_FALSE(s.owns({"Widget", "hand"})) << "a released object is no longer ours";
}

TEST_F(IdentityEngine, ADeletionPolicyChangedOnAnObjectInSyncIsKeptForThePrune) {
  auto& e = engine();
  auto s = store();
  ASSERT_TRUE(e.converge(desired(widget("w")), s, true, {}).ok());
  EXPECT_EQ(s.owned().at({"Widget", "w"}).pruneAs(), DeletionPolicy::kDelete);
  auto orphan = desired(widget("w", "deletionPolicy: Orphan"));
  auto r = e.converge(orphan, s, true, {});
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r.plan.entries.empty()) << "in sync: nothing to apply";
  EXPECT_EQ(s.owned().at({"Widget", "w"}).pruneAs(), DeletionPolicy::kOrphan);
  Plan p = e.plan(desired(widget("x")), e.observe(), s, true);
  ASSERT_EQ(p.entries.size(), 2u);
  EXPECT_EQ(p.entries[0].change.action, Action::kRelease);
}

// A release cut short by a crash: the record goes once the mark is off; a release that did not
// get to remove the mark leaves the object owned, for the next prune to release again.
TEST_F(IdentityEngine, AnInterruptedReleaseIsSettledFromTheJournal) {
  auto& e = engine({{"existing",
                     {{{"name", "done"}, {"spec", {{"size", 2}}}},
                      {{"name", "not-yet"}, {"spec", {{"size", 2}}}, {"marked", true}}}}});
  {
    auto s = store();
    for (const char* name : {"done", "not-yet"}) {
      state::OwnedObject o;
      o.id = {"Widget", name};
      o.plugin = "widget";
      o.adopted = true;
      s.setOwned(o);
    }
    ASSERT_TRUE(s.commit());
    state::JournalEntry a{s.nextSeq(), "release", {"Widget", "done"}, "widget", Json::object()};
    state::JournalEntry b{s.nextSeq(), "release", {"Widget", "not-yet"}, "widget", Json::object()};
    ASSERT_TRUE(s.journalIntent({a, b}));
  }
  auto s = store();
  auto n = e.recover(s);
  ASSERT_TRUE(n) << n.error().str();
  EXPECT_FALSE(s.owns({"Widget", "done"})) << "released: no longer ours";
  EXPECT_TRUE(s.owns({"Widget", "not-yet"})) << "still marked: still ours";
}

// An adoption cut short by a crash (the mark is on, the store not written yet): recovery records
// the object as adopted, so a prune releases it; it was recorded as made by nodeplane, and the
// prune after the file went deleted the host's object.
TEST_F(IdentityEngine, AnInterruptedAdoptionIsRecoveredAsAdoptedAndReleasedNotDeleted) {
  auto& e = engine({{"existing", {{{"name", "hand"}, {"spec", {{"size", 3}}}, {"marked", true}}}}});
  {
    auto s = store();
    state::JournalEntry a{s.nextSeq(), "adopt", {"Widget", "hand"}, "widget", Json::object()};
    ASSERT_TRUE(s.journalIntent({a}));
  }
  auto s = store();
  auto n = e.recover(s);
  ASSERT_TRUE(n) << n.error().str();
  ASSERT_TRUE(s.owns({"Widget", "hand"}));
  EXPECT_TRUE(s.owned().at({"Widget", "hand"}).adopted);
  Plan p = e.plan(desired(widget("other")), e.observe(), s, true);
  std::map<std::string, Action> actions;
  for (const auto& entry : p.entries) actions[entry.change.id.name] = entry.change.action;
  EXPECT_EQ(actions.at("hand"), Action::kRelease);
}

// A create with deletionPolicy Orphan cut short by a crash, its file removed before the next
// apply: the journal keeps the policy, so recovery records it and the prune releases the object
// (it was recorded with the default, Delete, and deleted).
TEST_F(IdentityEngine, AnInterruptedStepKeepsItsDeletionPolicyThroughRecovery) {
  auto& e = engine({{"existing", {{{"name", "keep"}, {"spec", {{"size", 3}}}, {"marked", true}}}}});
  {
    auto s = store();
    state::JournalEntry a{s.nextSeq(), "create", {"Widget", "keep"}, "widget", Json::object()};
    a.deletionPolicy = DeletionPolicy::kOrphan;
    ASSERT_TRUE(s.journalIntent({a}));
  }
  auto s = store();
  ASSERT_EQ(s.pending().size(), 1u);
  EXPECT_EQ(s.pending()[0].entry.deletionPolicy, DeletionPolicy::kOrphan) << "journaled";
  auto n = e.recover(s);
  ASSERT_TRUE(n) << n.error().str();
  ASSERT_TRUE(s.owns({"Widget", "keep"}));
  EXPECT_EQ(s.owned().at({"Widget", "keep"}).pruneAs(), DeletionPolicy::kOrphan);
  Plan p = e.plan(desired(widget("other")), e.observe(), s, true);
  std::map<std::string, Action> actions;
  for (const auto& entry : p.entries) actions[entry.change.id.name] = entry.change.action;
  EXPECT_EQ(actions.at("keep"), Action::kRelease);
}

TEST_F(IdentityEngine, StepsAreHeldToTheUidThePlanWasMadeAgainst) {
  auto& e = engine(
      {{"existing", {{{"name", "w"}, {"spec", {{"size", 3}}}, {"marked", true}, {"uid", "u2"}}}}});
  auto s = store();
  state::OwnedObject o;
  o.id = {"Widget", "w"};
  o.plugin = "widget";
  s.setOwned(o);
  Plan p = e.plan(desired(widget("x")), e.observe(), s, true);
  ASSERT_EQ(p.entries.size(), 2u);
  EXPECT_EQ(p.entries[0].change.uid, "u2");
  Json saved = savedPlanJson(p);
  EXPECT_EQ(saved["changes"][0]["uid"], "u2");
  auto back = planFromJson(saved);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->entries[0].change.uid, "u2");

  p.entries[0].change.uid = "u1";  // the object the plan saw was removed and made again since
  p.entries.resize(1);
  auto results = e.execute(p, s, {});
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].outcome, StepOutcome::kFailed);
  EXPECT_EQ(results[0].error.str(),
            "Widget/w: refused to delete it: it is not the object the plan was made against (uid "
            "u1 then, u2 now: removed and made again since); nothing was changed (run `nodeplane "
            "diff` again and review the new plan)");
  // A stale plan: a new one from a fresh observation is all it takes (the daemon's next pass).
  EXPECT_EQ(results[0].error.kind, ErrorKind::kRetryable);
  EXPECT_TRUE(e.observe().objects.count({"Widget", "w"}));
}

TEST_F(IdentityEngine, AnotherAgentsObjectIsAConflictAndNeverPruned) {
  auto& e = engine(
      {{"existing",
        {{{"name", "theirs"}, {"spec", {{"size", 3}}}, {"markedByOther", "00000000000000aa"}}}}});
  auto s = store();
  Plan p = e.plan(desired(widget("theirs", "adopt: true")), e.observe(), s, true);
  ASSERT_EQ(p.errors.size(), 1u);
  EXPECT_EQ(p.errors[0].str(),
            "desired.yaml:3:1: Widget/theirs: exists, managed by another nodeplane agent (agent "
            "id 00000000000000aa) (each agent changes only its own objects: pick another name, "
            "or remove it from that agent's desired state)");
  Plan prune = e.plan(desired(widget("mine")), e.observe(), s, true);
  ASSERT_EQ(prune.entries.size(), 1u);
  EXPECT_EQ(prune.entries[0].change.action, Action::kCreate);
  EXPECT_TRUE(prune.claim.empty());
}

TEST_F(IdentityEngine, ALegacyMarkIsOursOnlyWhenRecordedAndIsThenReMarked) {
  auto& e = engine({{"existing",
                     {{{"name", "old"}, {"spec", {{"size", 3}}}, {"legacyMark", true}},
                      {{"name", "stray"}, {"spec", {{"size", 3}}}, {"legacyMark", true}}}}});
  auto s = store();
  // Not recorded: not ours, neither changed nor pruned.
  Plan none = e.plan(desired(widget("old") + widget("x")), e.observe(), s, true);
  ASSERT_EQ(none.errors.size(), 1u);
  EXPECT_THAT(none.errors[0].str(),
              HasSubstr("Widget/old: exists, carrying a nodeplane mark without an agent id"));
  for (const auto& entry : none.entries) EXPECT_NE(entry.change.id.name, "stray");

  state::OwnedObject o;
  o.id = {"Widget", "old"};
  o.plugin = "widget";
  s.setOwned(o);
  auto d = desired(widget("old"));
  Plan p = e.plan(d, e.observe(), s, true);
  ASSERT_EQ(p.entries.size(), 1u) << renderPlanText(p);
  EXPECT_EQ(p.entries[0].change.action, Action::kUpdate);
  EXPECT_THAT(renderPlanText(p), HasSubstr("~ Widget/old update (re-mark"));
  auto r = e.converge(d, s, true, {});
  ASSERT_TRUE(r.ok()) << r.errors[0].str();
  EXPECT_TRUE(e.observe().objects.at({"Widget", "old"}).marked);
  EXPECT_TRUE(e.observe().objects.count({"Widget", "stray"})) << "not ours: not pruned";
}

TEST_F(IdentityEngine, ASensitiveValueIsNeverShownAndASavedPlanCarriesItsHash) {
  auto& e = engine({{"existing",
                     {{{"name", "s"},
                       {"spec", {{"size", 3}, {"secret", "old-pw"}}},
                       {"marked", true},
                       {"uid", "s1"}}}}});
  auto s = store();
  state::OwnedObject o;
  o.id = {"Widget", "s"};
  o.plugin = "widget";
  s.setOwned(o);
  auto d = desired(widget("s", "", "size: 3, secret: new-pw") +
                   widget("n", "", "size: 2, secret: first-pw"));
  ASSERT_TRUE(d.ok()) << d.errors[0].str();
  Plan p = e.plan(d, e.observe(), s, true);
  const std::string text = renderPlanText(p);
  EXPECT_THAT(text, HasSubstr("~ Widget/s update secret: (sensitive value changed)\n"));
  const std::string json = jsonText(savedPlanJson(p));
  for (const char* pw : {"old-pw", "new-pw", "first-pw"})
    EXPECT_THAT(json, Not(HasSubstr(pw))) << "in the plan JSON: " << pw;
  EXPECT_THAT(json, HasSubstr(jsonText(sensitiveHash({"Widget", "s"}, "secret", "new-pw"))));

  // apply --plan: the values come back from the desired files, checked against the hashes.
  auto saved = planFromJson(savedPlanJson(p));
  ASSERT_TRUE(saved);
  Plan withoutFiles = *saved;
  auto noFiles = resolveSensitive(withoutFiles, nullptr, "plan.json");
  ASSERT_EQ(noFiles.size(), 2u);
  EXPECT_EQ(noFiles[0].str(),
            "plan.json: Widget/s: changes[0]: the plan holds its sensitive values only as hashes, "
            "and no desired files were given to take them from (apply it with the desired files "
            "it was made from: `nodeplane apply --plan plan.json -f PATH...`)");
  auto changed = desired(widget("s", "", "size: 3, secret: other-pw") +
                         widget("n", "", "size: 2, secret: first-pw"));
  Plan stale = *saved;
  auto mismatch = resolveSensitive(stale, &changed.resources, "plan.json");
  ASSERT_EQ(mismatch.size(), 1u);
  EXPECT_EQ(mismatch[0].str(),
            "plan.json: Widget/s spec.secret: changes[0]: the sensitive value of spec.secret in "
            "the desired files is not the one the plan was made with (make a new plan from the "
            "files as they are now (`nodeplane --output json diff`))");
  ASSERT_TRUE(resolveSensitive(*saved, &d.resources, "plan.json").empty());
  EXPECT_EQ(saved->entries[0].change.desired["secret"], "new-pw");
  saved->fingerprint = e.observe().fingerprint({{"Widget", "s"}});
  auto r = e.applySaved(*saved, s, {});
  ASSERT_TRUE(r) << r.error().str();
  ASSERT_TRUE(r->ok()) << r->errors[0].str();
  EXPECT_EQ(e.observe().objects.at({"Widget", "s"}).spec["secret"], "new-pw");

  // Nor in an error about it.
  auto invalid = desired(widget("s", "", "size: 3, secret: 424242"));
  ASSERT_EQ(invalid.errors.size(), 1u);
  EXPECT_EQ(invalid.errors[0].str(),
            "desired.yaml:5:17: Widget/s spec.secret: not a valid value (expected a string; the "
            "value is sensitive, so it is not shown)");

  // Nor in the state file (results, status).
  ASSERT_TRUE(s.commit());
  auto stateText = ::nodeplane::testing::slurp(tmp_.path() / "state.json");
  for (const char* pw : {"old-pw", "new-pw", "first-pw"})
    EXPECT_THAT(stateText, Not(HasSubstr(pw))) << "in state.json: " << pw;
  EXPECT_THAT(stateText, HasSubstr("secret: (sensitive value changed)"));
}

}  // namespace
}  // namespace nodeplane
