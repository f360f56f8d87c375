// RecordStore: the one ownership-record store of the plugins (VfioDevice, SriovPf, Vgpu). A
// record's name is the resource's, so the store refuses every name that is not a plain file name,
// whatever call it comes through.
#include "nodeplane/record_store.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "support/files.hpp"

namespace nodeplane {
namespace {

namespace fs = std::filesystem;
using ::nodeplane::testing::TempDir;
using ::nodeplane::testing::writeFile;

TEST(RecordStore, WritesReadsListsAndRemovesRecords) {
  TempDir dir;
  const RecordStore store(dir.path() / "vgpu", "Vgpu record");
  auto none = store.read("a");
  ASSERT_TRUE(none) << none.error().str();
  EXPECT_FALSE(*none);
  auto all = store.list();
  ASSERT_TRUE(all);
  EXPECT_TRUE(all->empty()) << "no directory yet: no records";
  ASSERT_TRUE(store.write("b", Json{{"x", 2}}));
  ASSERT_TRUE(store.write("a", Json{{"x", 1}}));
  writeFile(dir.path() / "vgpu/c.json.tmp", "{\"torn");  // an interrupted write
  auto a = store.read("a");
  ASSERT_TRUE(a && *a);
  EXPECT_EQ((**a)["x"], 1);
  all = store.list();
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].first, "a");
  EXPECT_EQ((*all)[1].first, "b");
  ASSERT_TRUE(store.remove("a"));
  EXPECT_FALSE(fs::exists(dir.path() / "vgpu/a.json"));
  ASSERT_TRUE(store.remove("a")) << "removing what is gone is fine";
  writeFile(dir.path() / "vgpu/d.json", "not json");
  auto d = store.read("d");
  ASSERT_TRUE(d && *d);
  EXPECT_TRUE((**d).is_discarded()) << "the kind says what to do with it";
  EXPECT_EQ(RecordStore::newUid().size(), 16u);
  EXPECT_NE(RecordStore::newUid(), RecordStore::newUid());
}

TEST(RecordStore, NewRecordsTakePlainFileNamesAndNoCallLeavesTheDirectory) {
  TempDir dir;
  const RecordStore store(dir.path() / "vgpu", "Vgpu record");
  writeFile(dir.path() / "outside.json", "{\"agent\": \"x\"}");
  const std::vector<std::string> bad = {"../outside",         "a/b", ".hidden", "", "a b", "ü",
                                        std::string(201, 'a')};
  for (const std::string& name : bad) {
    EXPECT_FALSE(store.write(name, Json::object())) << name;
    EXPECT_NE(recordNameProblem(name), "") << name;
  }
  for (const std::string& name : std::vector<std::string>{"../outside", "a/b", "", ".", ".."}) {
    EXPECT_FALSE(store.read(name)) << name;
    EXPECT_FALSE(store.remove(name)) << name;
  }
  EXPECT_TRUE(fs::exists(dir.path() / "outside.json")) << "never reached";
  auto e = store.read("../outside");
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().message,
            "no Vgpu record for the name \"../outside\": it would name a file "
            "outside " +
                (dir.path() / "vgpu").string());
  EXPECT_EQ(store.write("a b", Json::object()).error().message,
            "no Vgpu record for the name \"a b\": it has a character other than letters, digits, "
            "'.', '_' and '-'");
  // A record written under a looser rule (before names were checked) is still read and removed.
  writeFile(dir.path() / "vgpu/a b.json", "{\"x\": 1}");
  auto old = store.read("a b");
  ASSERT_TRUE(old && *old) << "read";
  ASSERT_TRUE(store.remove("a b"));
  EXPECT_FALSE(fs::exists(dir.path() / "vgpu/a b.json"));
  for (const std::string& name :
       std::vector<std::string>{"tenant-a", "gpu0.vf1", "A_1", std::string(200, 'a')})
    EXPECT_EQ(recordNameProblem(name), "") << name;
}

}  // namespace
}  // namespace nodeplane
