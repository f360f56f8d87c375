// The state store on a real filesystem: each test works in its own temporary directory.
#include <gtest/gtest.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "store.hpp"
#include "support/files.hpp"

namespace nodeplane::state {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

using ::nodeplane::testing::appendFile;
using ::nodeplane::testing::slurp;
using ::nodeplane::testing::TempDir;
using ::nodeplane::testing::writeFile;

unsigned modeOf(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
  return st.st_mode & 07777;
}

std::set<std::string> namesIn(const fs::path& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename().string());
  return out;
}

JournalEntry entry(Store& s, std::string action, std::string name, Json undo = Json::object()) {
  return {s.nextSeq(), std::move(action), {"Vxlan", std::move(name)}, "net", std::move(undo)};
}

class StateStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = tmp_.path();
    dir_ = base_ / "state";  // absent: open() must create it
  }

  Store openOk() {
    auto s = Store::open(dir_);
    EXPECT_TRUE(s.has_value()) << (s ? "" : s.error().str());
    return std::move(*s);
  }

  // A committed store with one owned object, to damage in the tests below.
  std::string validStateText() {
    auto s = openOk();
    s.setOwned({{"Vxlan", "vx100"}, "net", std::nullopt, Json{{"mtu", 1500}}, ""});
    s.setResult({{"Vxlan", "vx100"}, "created", "", ""});
    EXPECT_TRUE(s.commit().has_value());
    return slurp(dir_ / "state.json");
  }

  void expectCorrupt(const std::string& text, const std::string& what) {
    writeFile(dir_ / "state.json", text);
    auto s = Store::open(dir_);
    ASSERT_FALSE(s.has_value());
    const std::string msg = s.error().str();
    EXPECT_NE(msg.find((dir_ / "state.json").string()), std::string::npos) << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << msg;
    EXPECT_NE(msg.find("not treated as empty"), std::string::npos) << msg;
    EXPECT_NE(msg.find("state.json.bak"), std::string::npos) << msg;
  }

  TempDir tmp_;
  fs::path base_;
  fs::path dir_;
};

TEST_F(StateStoreTest, MissingFileIsAnEmptyStoreAndTheDirectoryIsMade0700) {
  auto s = openOk();
  EXPECT_TRUE(s.owned().empty());
  EXPECT_TRUE(s.results().empty());
  EXPECT_TRUE(s.pending().empty());
  EXPECT_EQ(s.dir(), dir_);
  EXPECT_EQ(modeOf(dir_), 0700u);
  EXPECT_FALSE(fs::exists(dir_ / "state.json"));
}

// A state dir others may write is refused: anyone could replace state.json there and make
// nodeplane record their interface as its own.
TEST_F(StateStoreTest, StateDirWritableByOthersIsRefused) {
  fs::create_directory(dir_);
  fs::permissions(dir_, fs::perms::all);  // 0777
  auto s = Store::open(dir_);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().str(),
            "state directory " + dir_.string() +
                " is writable by its group or others (mode 0777): whoever can write it can change "
                "what nodeplane believes it owns (chmod 700 " +
                dir_.string() + ")");
  fs::permissions(dir_, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec);
  EXPECT_TRUE(Store::open(dir_).has_value()) << "0750 is fine";
}

TEST_F(StateStoreTest, OwnedResultsAndUndoSurviveACommit) {
  {
    auto s = openOk();
    s.setOwned({{"Vxlan", "vx100"}, "net", std::nullopt, Json::object(), "2026-01-02T03:04:05Z"});
    s.setOwned({{"VfioDevice", "0000:65:00.0"},
                "vfio",
                ResourceId{"GpuPool", "pool-a"},
                Json{{"driver", "nvidia"}, {"numvfs", 4}, {"list", {1, "two", nullptr}}},
                "2026-01-02T03:04:06Z"});
    s.setOwned({{"Bridge", "gone"}, "net", std::nullopt, Json::object(), ""});
    s.forget({"Bridge", "gone"});
    EXPECT_FALSE(s.owns({"Bridge", "gone"}));
    s.setResult({{"Vxlan", "vx100"}, "in-sync", "", "2026-01-02T03:04:07Z"});
    s.setResult({{"VfioDevice", "0000:65:00.0"}, "failed", "driver \"x\" busy", "t"});
    s.setResult({{"Bridge", "gone"}, "deleted", "", ""});
    s.clearResult({"Bridge", "gone"});
    ASSERT_TRUE(s.commit().has_value());
  }
  auto s = openOk();
  ASSERT_EQ(s.owned().size(), 2u);
  EXPECT_TRUE(s.owns({"Vxlan", "vx100"}));
  const auto& v = s.owned().at({"VfioDevice", "0000:65:00.0"});
  EXPECT_EQ(v.plugin, "vfio");
  ASSERT_TRUE(v.owner.has_value());
  EXPECT_EQ(*v.owner, (ResourceId{"GpuPool", "pool-a"}));
  EXPECT_EQ(v.undo, (Json{{"driver", "nvidia"}, {"numvfs", 4}, {"list", {1, "two", nullptr}}}));
  EXPECT_EQ(v.since, "2026-01-02T03:04:06Z");
  EXPECT_FALSE(s.owned().at({"Vxlan", "vx100"}).owner.has_value());
  ASSERT_EQ(s.results().size(), 2u);
  const auto& r = s.results().at({"VfioDevice", "0000:65:00.0"});
  EXPECT_EQ(r.outcome, "failed");
  EXPECT_EQ(r.message, "driver \"x\" busy");
  EXPECT_EQ(r.at, "t");
}

TEST_F(StateStoreTest, SetOwnedKeepsSinceAndStampsNewObjects) {
  auto s = openOk();
  s.setOwned({{"Vxlan", "a"}, "net", std::nullopt, Json::object(), "2020-01-01T00:00:00Z"});
  s.setOwned({{"Vxlan", "a"}, "net", std::nullopt, Json{{"x", 1}}, ""});
  EXPECT_EQ(s.owned().at({"Vxlan", "a"}).since, "2020-01-01T00:00:00Z");
  EXPECT_EQ(s.owned().at({"Vxlan", "a"}).undo, (Json{{"x", 1}}));
  s.setOwned({{"Vxlan", "b"}, "net", std::nullopt, Json::object(), ""});
  EXPECT_FALSE(s.owned().at({"Vxlan", "b"}).since.empty());
  s.setResult({{"Vxlan", "b"}, "created", "", ""});
  EXPECT_FALSE(s.results().at({"Vxlan", "b"}).at.empty());
}

TEST_F(StateStoreTest, FileIsVersionedJson0600) {
  validStateText();
  EXPECT_EQ(modeOf(dir_ / "state.json"), 0600u);
  EXPECT_EQ(modeOf(dir_), 0700u);
  auto j = Json::parse(slurp(dir_ / "state.json"));
  EXPECT_EQ(j["version"], 1);
  ASSERT_TRUE(j["owned"].is_array());
  EXPECT_EQ(j["owned"][0]["kind"], "Vxlan");
  EXPECT_EQ(j["owned"][0]["undo"]["mtu"], 1500);
  ASSERT_TRUE(j["results"].is_array());
  EXPECT_EQ(j["results"][0]["outcome"], "created");
}

// At fleet scale state.json is rewritten often: no indentation, but one owned object or result
// per line so a person can still read and grep it.
TEST_F(StateStoreTest, FileHasOneObjectPerLine) {
  {
    auto s = openOk();
    for (int i = 0; i < 3; ++i) {
      s.setOwned({{"Bridge", "br" + std::to_string(i)}, "net", std::nullopt, Json::object(), "t"});
      s.setResult({{"Bridge", "br" + std::to_string(i)}, "in-sync", "", "t"});
    }
    ASSERT_TRUE(s.commit().has_value());
  }
  const std::string text = slurp(dir_ / "state.json");
  std::istringstream lines(text);
  std::vector<std::string> objects;
  for (std::string line; std::getline(lines, line);) {
    if (!line.starts_with("  {")) continue;
    if (line.ends_with(",")) line.pop_back();
    objects.push_back(line);
    EXPECT_TRUE(Json::parse(line).is_object()) << line;
  }
  EXPECT_EQ(objects.size(), 6u) << text;
  EXPECT_EQ(objects[0], R"(  {"kind":"Bridge","name":"br0","plugin":"net","since":"t","undo":{}})");
  EXPECT_EQ(objects[3],
            R"(  {"at":"t","kind":"Bridge","message":"","name":"br0","outcome":"in-sync"})");
  EXPECT_EQ(openOk().owned().size(), 3u);
}

TEST_F(StateStoreTest, CommitLeavesNoTempFilesAndKeepsThePreviousFileAsBackup) {
  const std::string first = validStateText();
  auto s = openOk();
  s.forget({"Vxlan", "vx100"});
  ASSERT_TRUE(s.commit().has_value());
  EXPECT_EQ(namesIn(dir_), (std::set<std::string>{"agent-id", "state.json", "state.json.bak"}));
  EXPECT_EQ(slurp(dir_ / "state.json.bak"), first);
  EXPECT_EQ(modeOf(dir_ / "state.json.bak"), 0600u);
  EXPECT_TRUE(Json::parse(slurp(dir_ / "state.json"))["owned"].empty());
}

TEST_F(StateStoreTest, CommitWithoutChangesDoesNotRewrite) {
  validStateText();
  struct stat before {
  }, after{};
  ASSERT_EQ(::stat((dir_ / "state.json").c_str(), &before), 0);
  auto s = openOk();
  ASSERT_TRUE(s.commit().has_value());
  ASSERT_EQ(::stat((dir_ / "state.json").c_str(), &after), 0);
  EXPECT_EQ(before.st_ino, after.st_ino);
  EXPECT_FALSE(fs::exists(dir_ / "state.json.bak"));
}

TEST_F(StateStoreTest, TheSameResultAgainKeepsItsTimeAndDoesNotRewrite) {
  {
    auto s = openOk();
    s.setResult({{"Vxlan", "vx100"}, "in-sync", "", "2026-01-01T00:00:00Z"});
    ASSERT_TRUE(s.commit().has_value());
  }
  struct stat before {
  }, after{};
  ASSERT_EQ(::stat((dir_ / "state.json").c_str(), &before), 0);
  {
    auto s = openOk();  // the next pass: nothing changed but the clock
    s.setResult({{"Vxlan", "vx100"}, "in-sync", "", "2026-01-01T00:01:00Z"});
    EXPECT_EQ(s.results().at({"Vxlan", "vx100"}).at, "2026-01-01T00:00:00Z");
    ASSERT_TRUE(s.commit().has_value());
  }
  ASSERT_EQ(::stat((dir_ / "state.json").c_str(), &after), 0);
  EXPECT_EQ(before.st_ino, after.st_ino)
      << "state.json was rewritten by a pass that changed nothing";
  EXPECT_FALSE(fs::exists(dir_ / "state.json.bak"));

  // Another outcome or message is a new result, with its own time.
  auto s = openOk();
  s.setResult({{"Vxlan", "vx100"}, "failed", "EBUSY", "2026-01-01T00:02:00Z"});
  EXPECT_EQ(s.results().at({"Vxlan", "vx100"}).at, "2026-01-01T00:02:00Z");
  s.setResult({{"Vxlan", "vx100"}, "failed", "ENOMEM", "2026-01-01T00:03:00Z"});
  EXPECT_EQ(s.results().at({"Vxlan", "vx100"}).at, "2026-01-01T00:03:00Z");
}

TEST_F(StateStoreTest, ClearingAnEmptyJournalWritesNothing) {
  {
    auto s = openOk();
    ASSERT_TRUE(s.journalIntent({entry(s, "delete", "vx1")}));
    ASSERT_TRUE(s.clearJournal().has_value());
  }
  ASSERT_EQ(fs::file_size(dir_ / "journal.jsonl"), 0u);
  const int in = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  ASSERT_GE(in, 0);
  ASSERT_GE(::inotify_add_watch(in, (dir_ / "journal.jsonl").c_str(), IN_MODIFY | IN_ATTRIB), 0);
  auto s = openOk();
  ASSERT_TRUE(s.clearJournal().has_value());
  char buf[4096];
  // inotify events are queued by the syscall that causes them: none now means none at all.
  const ssize_t n = ::read(in, buf, sizeof buf);
  const int err = errno;
  ::close(in);
  EXPECT_EQ(n, -1) << "the empty journal was truncated or synced again";
  EXPECT_EQ(err, EAGAIN);
}

TEST_F(StateStoreTest, MissingStateFileBesideItsBackupIsAnErrorNotAnEmptyStore) {
  validStateText();
  {
    auto s = openOk();
    s.setOwned({{"Bridge", "br0"}, "net", std::nullopt, Json::object(), ""});
    ASSERT_TRUE(s.commit().has_value());
  }
  ASSERT_TRUE(fs::exists(dir_ / "state.json.bak"));
  fs::remove(dir_ / "state.json");
  for (auto open : {&Store::open, &Store::openReadOnly}) {
    auto s = open(dir_);
    ASSERT_FALSE(s.has_value()) << "a lost state.json was read as \"owns nothing\"";
    const std::string msg = s.error().str();
    EXPECT_NE(
        msg.find("state file " + (dir_ / "state.json").string() + " is missing but its backup " +
                 (dir_ / "state.json.bak").string() + " exists; it was not treated as empty"),
        std::string::npos)
        << msg;
    EXPECT_NE(msg.find("cp -p " + (dir_ / "state.json.bak").string() + " " +
                       (dir_ / "state.json").string()),
              std::string::npos)
        << msg;
  }
  EXPECT_FALSE(fs::exists(dir_ / "state.json")) << "nothing is restored behind the user's back";
}

TEST_F(StateStoreTest, ReadOnlyOpenCreatesNothingAndWritesNothing) {
  {
    auto s = Store::openReadOnly(dir_);
    ASSERT_TRUE(s.has_value()) << s.error().str();
    EXPECT_TRUE(s->readOnly());
    EXPECT_TRUE(s->owned().empty());
    EXPECT_TRUE(s->results().empty());
    EXPECT_FALSE(fs::exists(dir_)) << "a command that only reads created the state dir";
    s->setResult({{"Vxlan", "vx1"}, "created", "", ""});
    auto c = s->commit();
    ASSERT_FALSE(c.has_value());
    EXPECT_EQ(c.error().message,
              "the state store " + dir_.string() + " was opened read-only; nothing was written");
    EXPECT_FALSE(s->journalIntent({entry(*s, "create", "vx1")}).has_value());
    EXPECT_FALSE(s->clearJournal().has_value());
    EXPECT_FALSE(fs::exists(dir_));
  }
  const std::string text = validStateText();
  auto s = Store::openReadOnly(dir_);
  ASSERT_TRUE(s.has_value()) << s.error().str();
  EXPECT_TRUE(s->owns({"Vxlan", "vx100"}));
  s->forget({"Vxlan", "vx100"});
  EXPECT_FALSE(s->commit().has_value());
  EXPECT_EQ(slurp(dir_ / "state.json"), text);

  writeFile(base_ / "file", "x");
  auto f = Store::openReadOnly(base_ / "file");
  ASSERT_FALSE(f.has_value());
  EXPECT_NE(f.error().message.find("is not a directory"), std::string::npos) << f.error().str();
}

TEST_F(StateStoreTest, CorruptFileIsAnErrorNotAnEmptyStore) {
  validStateText();
  expectCorrupt("this is not json {", "not valid JSON");
}

TEST_F(StateStoreTest, TruncatedFileIsAnError) {
  const std::string text = validStateText();
  expectCorrupt(text.substr(0, text.size() / 2), "not valid JSON (truncated?)");
}

TEST_F(StateStoreTest, EmptyFileIsAnError) {
  ASSERT_TRUE(fs::create_directories(dir_));
  expectCorrupt("", "the file is empty");
}

TEST_F(StateStoreTest, WrongVersionIsAnError) {
  ASSERT_TRUE(fs::create_directories(dir_));
  expectCorrupt(R"({"version":2,"owned":[],"results":[]})", "version 2 is not one this");
  expectCorrupt(R"({"version":"1","owned":[],"results":[]})", "version \"1\"");
  expectCorrupt(R"({"owned":[],"results":[]})", "no \"version\" field");
}

TEST_F(StateStoreTest, WrongFieldTypesAreErrorsWithTheirPath) {
  ASSERT_TRUE(fs::create_directories(dir_));
  expectCorrupt(R"({"version":1,"owned":{},"results":[]})",
                "owned: expected an array, found object");
  expectCorrupt(R"({"version":1,"owned":[{"kind":"A","name":"a","plugin":"p","since":""},)"
                R"({"kind":5,"name":"b","plugin":"p","since":""}],"results":[]})",
                "owned[1].kind: expected a string, found number");
  expectCorrupt(R"({"version":1,"owned":[{"kind":"A","name":"a","plugin":"p","since":"",)"
                R"("owner":{"kind":"B"}}],"results":[]})",
                "owned[0].owner.name: missing");
  expectCorrupt(R"({"version":1,"owned":[],"results":[{"kind":"A","name":"a","outcome":"x",)"
                R"("message":"","at":"","extra":1}]})",
                "results[0].extra: unknown key");
  expectCorrupt(R"([1,2])", "expected an object, found array");
  expectCorrupt(R"({"version":1,"owned":[],"results":[]} trailing)", "not valid JSON");
}

TEST_F(StateStoreTest, StateDirectoryThatIsAFileIsAnError) {
  writeFile(base_ / "file", "x");
  auto s = Store::open(base_ / "file");
  ASSERT_FALSE(s.has_value());
  EXPECT_NE(s.error().message.find("is not a directory"), std::string::npos) << s.error().str();
}

TEST_F(StateStoreTest, JournalIntentAndDoneAreReadBackAsPending) {
  {
    auto s = openOk();
    EXPECT_TRUE(s.pending().empty());
    auto a = entry(s, "delete", "vx1", Json{{"mtu", 9000}});
    auto b = entry(s, "create", "vx2");
    EXPECT_EQ(a.seq, 1u);
    EXPECT_EQ(b.seq, 2u);
    ASSERT_TRUE(s.journalIntent({a, b}).has_value());
    ASSERT_TRUE(s.journalDone(a.seq).has_value());
    EXPECT_TRUE(s.pending().empty()) << "pending() is the snapshot taken at open()";
  }
  EXPECT_EQ(modeOf(dir_ / "journal.jsonl"), 0600u);
  auto s = openOk();
  ASSERT_EQ(s.pending().size(), 2u);
  const auto& a = s.pending()[0];
  EXPECT_EQ(a.entry.seq, 1u);
  EXPECT_EQ(a.entry.action, "delete");
  EXPECT_EQ(a.entry.id, (ResourceId{"Vxlan", "vx1"}));
  EXPECT_EQ(a.entry.plugin, "net");
  EXPECT_EQ(a.entry.undo, (Json{{"mtu", 9000}}));
  EXPECT_TRUE(a.done);
  EXPECT_EQ(s.pending()[1].entry.action, "create");
  EXPECT_FALSE(s.pending()[1].done);
}

TEST_F(StateStoreTest, JournalRecordsAreOneJsonObjectPerLine) {
  auto s = openOk();
  auto a = entry(s, "adopt", "vx1");
  ASSERT_TRUE(s.journalIntent({a}).has_value());
  ASSERT_TRUE(s.journalDone(a.seq).has_value());
  std::istringstream lines(slurp(dir_ / "journal.jsonl"));
  std::string line;
  ASSERT_TRUE(std::getline(lines, line));
  EXPECT_EQ(Json::parse(line), (Json{{"seq", 1},
                                     {"action", "adopt"},
                                     {"kind", "Vxlan"},
                                     {"name", "vx1"},
                                     {"plugin", "net"},
                                     {"undo", Json::object()}}));
  ASSERT_TRUE(std::getline(lines, line));
  EXPECT_EQ(Json::parse(line), (Json{{"done", 1}}));
  EXPECT_FALSE(std::getline(lines, line));
}

TEST_F(StateStoreTest, TruncatedLastJournalLineIsIgnoredAndCutBeforeTheNextAppend) {
  {
    auto s = openOk();
    ASSERT_TRUE(s.journalIntent({entry(s, "delete", "vx1"), entry(s, "delete", "vx2")}));
  }
  const std::string good = slurp(dir_ / "journal.jsonl");
  appendFile(dir_ / "journal.jsonl", good.substr(0, good.find('\n') / 2));  // crash mid-append
  {
    auto s = openOk();
    ASSERT_EQ(s.pending().size(), 2u);
    EXPECT_EQ(s.nextSeq(), 3u);
    ASSERT_TRUE(s.journalIntent({entry(s, "create", "vx3")}).has_value());
  }
  auto s = openOk();
  ASSERT_EQ(s.pending().size(), 3u);
  EXPECT_EQ(s.pending()[2].entry.id.name, "vx3");
}

TEST_F(StateStoreTest, ZeroFilledLastJournalLineIsIgnored) {
  {
    auto s = openOk();
    ASSERT_TRUE(s.journalIntent({entry(s, "delete", "vx1")}));
  }
  appendFile(dir_ / "journal.jsonl", std::string(40, '\0'));
  auto s = openOk();
  EXPECT_EQ(s.pending().size(), 1u);
}

TEST_F(StateStoreTest, CompleteLastJournalLineWithoutNewlineCounts) {
  {
    auto s = openOk();
    ASSERT_TRUE(s.journalIntent({entry(s, "delete", "vx1")}));
  }
  appendFile(dir_ / "journal.jsonl", R"({"done":1})");
  {
    auto s = openOk();
    ASSERT_EQ(s.pending().size(), 1u);
    EXPECT_TRUE(s.pending()[0].done);
    ASSERT_TRUE(s.journalIntent({entry(s, "delete", "vx2")}));
  }
  auto s = openOk();
  ASSERT_EQ(s.pending().size(), 2u);
  EXPECT_TRUE(s.pending()[0].done);
}

TEST_F(StateStoreTest, GarbageBeforeTheLastJournalLineIsAnError) {
  {
    auto s = openOk();
    ASSERT_TRUE(s.journalIntent({entry(s, "delete", "vx1")}));
  }
  appendFile(dir_ / "journal.jsonl", "{\"seq\":2,\"act\n{\"done\":1}\n");
  auto s = Store::open(dir_);
  ASSERT_FALSE(s.has_value());
  const std::string msg = s.error().str();
  EXPECT_NE(msg.find((dir_ / "journal.jsonl").string() + " line 2: not valid JSON"),
            std::string::npos)
      << msg;
}

TEST_F(StateStoreTest, JournalRecordWithWrongFieldsBeforeTheLastLineIsAnError) {
  ASSERT_TRUE(fs::create_directories(dir_));
  writeFile(dir_ / "journal.jsonl",
            "{\"seq\":\"1\",\"action\":\"delete\",\"kind\":\"A\",\"name\":\"a\",\"plugin\":\"p\"}\n"
            "{\"done\":1}\n");
  auto s = Store::open(dir_);
  ASSERT_FALSE(s.has_value());
  EXPECT_NE(s.error().message.find("line 1: seq: expected a non-negative integer"),
            std::string::npos)
      << s.error().str();
}

TEST_F(StateStoreTest, ClearJournalEmptiesIt) {
  {
    auto s = openOk();
    ASSERT_TRUE(s.journalIntent({entry(s, "delete", "vx1")}));
  }
  auto s = openOk();
  ASSERT_EQ(s.pending().size(), 1u);
  ASSERT_TRUE(s.clearJournal().has_value());
  EXPECT_TRUE(s.pending().empty());
  EXPECT_EQ(fs::file_size(dir_ / "journal.jsonl"), 0u);
  EXPECT_TRUE(openOk().pending().empty());
  // Clearing an absent journal is fine too.
  fs::remove(dir_ / "journal.jsonl");
  EXPECT_TRUE(s.clearJournal().has_value());
}

TEST_F(StateStoreTest, SeqContinuesPastTheHighestSeen) {
  {
    auto s = openOk();
    ASSERT_TRUE(s.journalIntent({entry(s, "delete", "vx1"), entry(s, "delete", "vx2")}));
  }
  {
    auto s = openOk();
    EXPECT_EQ(s.nextSeq(), 3u);
    JournalEntry far{40, "create", {"Vxlan", "vx40"}, "net", Json::object()};
    ASSERT_TRUE(s.journalIntent({far}));
    EXPECT_EQ(s.nextSeq(), 41u);
  }
  EXPECT_EQ(openOk().nextSeq(), 41u);
}

TEST_F(StateStoreTest, JournalEntryWithoutSeqIsRefused) {
  auto s = openOk();
  auto r = s.journalIntent({JournalEntry{0, "create", {"Vxlan", "a"}, "net", Json::object()}});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().kind, ErrorKind::kInvalidInput);
}

TEST_F(StateStoreTest, SecondLockFailsAtOnceNamingTheHolder) {
  auto first = Lock::acquire(dir_, std::nullopt);
  ASSERT_TRUE(first.has_value()) << first.error().str();
  EXPECT_EQ(modeOf(dir_ / "lock"), 0600u);
  EXPECT_EQ(slurp(dir_ / "lock"), std::to_string(::getpid()) + "\n");
  auto second = Lock::acquire(dir_, std::nullopt);
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().kind, ErrorKind::kRetryable);
  EXPECT_EQ(second.error().message, "another nodeplane (pid " + std::to_string(::getpid()) +
                                        ") holds " + (dir_ / "lock").string() +
                                        "; wait for it to finish or stop it");
}

TEST_F(StateStoreTest, LockWaitGivesUpAtTheDeadline) {
  auto first = Lock::acquire(dir_, std::nullopt);
  ASSERT_TRUE(first.has_value());
  auto second = Lock::acquire(dir_, 30ms);
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().kind, ErrorKind::kRetryable);
  EXPECT_NE(second.error().message.find("(waited 30 ms)"), std::string::npos)
      << second.error().message;
}

TEST_F(StateStoreTest, LockWaitSucceedsOnceTheHolderIsReleasedByAnotherThread) {
  auto first = Lock::acquire(dir_, std::nullopt);
  ASSERT_TRUE(first.has_value());
  std::optional<Lock> holder(std::move(*first));

  std::mutex m;
  std::condition_variable cv;
  bool waiting = false;
  long seenPid = -1;
  std::thread releaser([&] {
    std::unique_lock l(m);
    // The waiter has found the lock held and is polling: only now let go of it.
    cv.wait(l, [&] { return waiting; });
    holder.reset();
  });
  auto second = Lock::acquire(dir_, 60s, [&](long pid) {
    std::lock_guard l(m);
    seenPid = pid;
    waiting = true;
    cv.notify_all();
  });
  releaser.join();
  ASSERT_TRUE(second.has_value()) << second.error().str();
  EXPECT_EQ(seenPid, ::getpid());
  EXPECT_EQ(slurp(dir_ / "lock"), std::to_string(::getpid()) + "\n");
}

// Someone removes or replaces DIR/lock while a process waits on it: the waiter's flock then lands
// on a file nobody else can open, and a third process would lock the new file at the same time.
TEST_F(StateStoreTest, ALockFileRemovedWhileWaitingIsLockedAgainWhereItNowIs) {
  for (const bool replace : {false, true}) {
    SCOPED_TRACE(replace ? "replaced" : "removed");
    auto first = Lock::acquire(dir_, std::nullopt);
    ASSERT_TRUE(first.has_value()) << first.error().str();
    std::optional<Lock> holder(std::move(*first));
    auto second = Lock::acquire(dir_, 60s, [&](long) {
      // Called once the waiter holds its descriptor and found the lock busy.
      if (replace) {
        writeFile(base_ / "new-lock", "");
        ASSERT_EQ(::rename((base_ / "new-lock").c_str(), (dir_ / "lock").c_str()), 0);
      } else {
        ASSERT_EQ(::unlink((dir_ / "lock").c_str()), 0);
      }
      holder.reset();
    });
    ASSERT_TRUE(second.has_value()) << second.error().str();
    auto third = Lock::acquire(dir_, std::nullopt);
    EXPECT_FALSE(third.has_value()) << "two processes hold the state lock at once";
    EXPECT_EQ(slurp(dir_ / "lock"), std::to_string(::getpid()) + "\n");
  }
}

TEST_F(StateStoreTest, LockIsReleasedByItsDestructor) {
  {
    auto first = Lock::acquire(dir_, std::nullopt);
    ASSERT_TRUE(first.has_value());
  }
  EXPECT_EQ(slurp(dir_ / "lock"), "");
  EXPECT_TRUE(Lock::acquire(dir_, std::nullopt).has_value());
}

TEST_F(StateStoreTest, LockFollowsItsMoves) {
  const fs::path other = base_ / "other";
  auto a = Lock::acquire(dir_, std::nullopt);
  ASSERT_TRUE(a.has_value());
  std::optional<Lock> b;
  {
    Lock moved(std::move(*a));
    a = std::unexpected(Error{});  // destroys the moved-from Lock: the lock must stay held
    EXPECT_FALSE(Lock::acquire(dir_, std::nullopt).has_value());
    b.emplace(std::move(moved));
  }
  EXPECT_FALSE(Lock::acquire(dir_, std::nullopt).has_value());

  // Move-assigning over a held Lock releases what it held.
  auto c = Lock::acquire(other, std::nullopt);
  ASSERT_TRUE(c.has_value());
  *c = std::move(*b);
  EXPECT_TRUE(Lock::acquire(other, std::nullopt).has_value());
  EXPECT_FALSE(Lock::acquire(dir_, std::nullopt).has_value());
  b.reset();
  EXPECT_FALSE(Lock::acquire(dir_, std::nullopt).has_value());
  c = std::unexpected(Error{});
  EXPECT_TRUE(Lock::acquire(dir_, std::nullopt).has_value());
}

TEST(StateTime, NowIsRfc3339Utc) {
  const std::string now = nowRfc3339();
  const std::string shape = "dddd-dd-ddTdd:dd:ddZ";
  ASSERT_EQ(now.size(), shape.size()) << now;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 'd') {
      EXPECT_TRUE(now[i] >= '0' && now[i] <= '9') << now;
    } else {
      EXPECT_EQ(now[i], shape[i]) << now;
    }
  }
}

}  // namespace
}  // namespace nodeplane::state
