// loadSources / SourceCache on real temporary directories: ignored names, the Kubernetes ConfigMap
// symlink layout, every definition kept, missing paths, and parsing again only when something
// changed.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "loader.hpp"
#include "support/files.hpp"
#include "support/process.hpp"

namespace fs = std::filesystem;

namespace nodeplane {
namespace {

using ::testing::HasSubstr;

std::string bridge(const std::string& name, int mtu = 1500) {
  return "apiVersion: nodeplane.io/v1\nkind: Bridge\nmetadata:\n  name: " + name +
         "\nspec:\n  mtu: " + std::to_string(mtu) + "\n";
}

class LoadSources : public ::testing::Test {
 protected:
  fs::path write(const fs::path& rel, const std::string& text) {
    fs::path p = dir_ / rel;
    ::nodeplane::testing::writeFile(p, text);
    return p;
  }

  static std::vector<std::string> names(const LoadResult& r) {
    std::vector<std::string> out;
    for (const auto& res : r.resources) out.push_back(res.id.name);
    return out;
  }
  static std::string dump(const LoadResult& r) {
    std::string s;
    for (const auto& e : r.errors) s += e.str() + "\n";
    return s;
  }

  ::nodeplane::testing::TempDir tmp_;
  fs::path dir_ = tmp_.path();
};

TEST(IsIgnoredName, Rules) {
  EXPECT_FALSE(isIgnoredName("a.yaml"));
  EXPECT_FALSE(isIgnoredName("b.yml"));
  EXPECT_FALSE(isIgnoredName("/etc/nodeplane/b.yml"));
  EXPECT_TRUE(isIgnoredName(".hidden.yaml"));
  EXPECT_TRUE(isIgnoredName("..data"));
  EXPECT_TRUE(isIgnoredName("..2026_11_21_01_02_03.123456789"));
  EXPECT_TRUE(isIgnoredName("a.yaml~"));
  EXPECT_TRUE(isIgnoredName("a.yaml.swp"));
  EXPECT_TRUE(isIgnoredName("a.yaml.tmp"));
  EXPECT_TRUE(isIgnoredName("README.md"));
  EXPECT_TRUE(isIgnoredName("a.json"));
  EXPECT_TRUE(isIgnoredName(""));
}

TEST_F(LoadSources, DirectoryIsSortedAndSkipsIgnoredNames) {
  write("b.yaml", bridge("b"));
  write("a.yml", bridge("a"));
  write("c.yaml~", bridge("backup"));
  write(".c.yaml.swp", "\x01\x02 binary");
  write("d.yaml.tmp", bridge("tmp"));
  write(".hidden.yaml", bridge("hidden"));
  write("notes.txt", "not yaml at all: [");
  write("sub/e.yaml", bridge("nested"));  // not recursive
  auto r = loadSources({dir_});
  ASSERT_TRUE(r.errors.empty()) << dump(r);
  EXPECT_EQ(names(r), (std::vector<std::string>{"a", "b"}));
  ASSERT_EQ(r.files.size(), 2u);
  EXPECT_EQ(r.files[0], dir_ / "a.yml");
  EXPECT_EQ(r.resources[0].where.file, (dir_ / "a.yml").string());
  EXPECT_EQ(r.resources[0].locations.at("spec.mtu").file, (dir_ / "a.yml").string());
}

TEST_F(LoadSources, ExplicitFileIsReadWhateverItsName) {
  fs::path p = write("desired.conf", bridge("br0"));
  auto r = loadSources({p});
  ASSERT_TRUE(r.errors.empty()) << dump(r);
  EXPECT_EQ(names(r), std::vector<std::string>{"br0"});
}

TEST_F(LoadSources, ConfigMapSymlinkLayoutLoadsOnce) {
  // What the kubelet writes for a ConfigMap volume.
  write("..2026_11_21_01_00_00.000/a.yaml", bridge("br0"));
  fs::create_directory_symlink("..2026_11_21_01_00_00.000", dir_ / "..data");
  fs::create_symlink("..data/a.yaml", dir_ / "a.yaml");
  auto r = loadSources({dir_});
  ASSERT_TRUE(r.errors.empty()) << dump(r);
  EXPECT_EQ(names(r), std::vector<std::string>{"br0"});
  EXPECT_EQ(r.files, std::vector<fs::path>{dir_ / "a.yaml"});

  // An update: new timestamped dir, ..data swapped.
  write("..2026_11_21_02_00_00.000/a.yaml", bridge("br1"));
  fs::create_directory_symlink("..2026_11_21_02_00_00.000", dir_ / "..data_tmp");
  fs::rename(dir_ / "..data_tmp", dir_ / "..data");
  r = loadSources({dir_});
  ASSERT_TRUE(r.errors.empty()) << dump(r);
  EXPECT_EQ(names(r), std::vector<std::string>{"br1"});
}

TEST_F(LoadSources, KeepsEveryDefinitionOfAResource) {
  // Each may be for other nodes (metadata.nodes, nodeSelector): Engine::prepare selects for this
  // node, then refuses duplicates among the selected ones (engine_test.cpp).
  fs::path a = write("a.yaml", bridge("br0"));
  fs::path b = write("b.yaml", bridge("br1") + "---\n" + bridge("br0", 9000));
  auto r = loadSources({dir_});
  EXPECT_TRUE(r.errors.empty()) << dump(r);
  EXPECT_EQ(names(r), (std::vector<std::string>{"br0", "br1", "br0"}));
  EXPECT_EQ(r.resources[0].spec["mtu"], 1500);
  EXPECT_EQ(r.resources[2].spec["mtu"], 9000);
  EXPECT_EQ(r.resources[2].locate("metadata.name").str(), b.string() + ":11:3");
}

TEST_F(LoadSources, SameFileNamedTwiceLoadsOnce) {
  fs::path a = write("a.yaml", bridge("br0"));
  auto r = loadSources({dir_, a});
  EXPECT_TRUE(r.errors.empty()) << dump(r);
  EXPECT_EQ(r.resources.size(), 1u);
}

TEST_F(LoadSources, MissingPathIsAnError) {
  write("a.yaml", bridge("br0"));
  auto r = loadSources({dir_, dir_ / "nope.yaml"});
  ASSERT_EQ(r.errors.size(), 1u) << dump(r);
  EXPECT_EQ(r.errors[0].message, "no such file or directory");
  EXPECT_EQ(r.errors[0].where.file, (dir_ / "nope.yaml").string());
  EXPECT_EQ(r.resources.size(), 1u);
}

TEST_F(LoadSources, BrokenSymlinkIsAnError) {
  fs::create_symlink("gone.yaml", dir_ / "a.yaml");
  auto r = loadSources({dir_});
  ASSERT_EQ(r.errors.size(), 1u) << dump(r);
  EXPECT_EQ(r.errors[0].message, "broken symbolic link");
}

// A FIFO (or a link to a device) with a .yaml name in a directory is an error, not skipped: the
// resources the file held would otherwise be pruned.
TEST_F(LoadSources, FifoInADirectoryIsAnError) {
  write("a.yaml", bridge("br0"));
  ASSERT_EQ(::mkfifo((dir_ / "b.yaml").c_str(), 0600), 0);
  fs::create_symlink("/dev/null", dir_ / "c.yaml");
  fs::create_directory(dir_ / "d.yaml");  // a directory is not a source (not recursive)
  auto r = loadSources({dir_});
  ASSERT_EQ(r.errors.size(), 2u) << dump(r);
  EXPECT_EQ(r.errors[0].message, "not a regular file (a FIFO, socket or device cannot be read)");
  EXPECT_EQ(r.errors[0].where.file, (dir_ / "b.yaml").string());
  EXPECT_EQ(r.errors[1].where.file, (dir_ / "c.yaml").string());
  EXPECT_EQ(r.resources.size(), 1u);
}

TEST_F(LoadSources, UnreadableFileIsAnError) {
  fs::path p = write("a.yaml", bridge("br0"));
  fs::permissions(p, fs::perms::none);
  fs::permissions(dir_, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec |
                            fs::perms::group_read | fs::perms::others_read);
  // Root reads anything: the loader runs in a child that is nobody when the test is root. It
  // sends back each error as "message<TAB>file" on a line.
  auto child = ::nodeplane::testing::runUnprivileged([&] {
    std::string out;
    for (const auto& e : loadSources({dir_}).errors) out += e.message + "\t" + e.where.file + "\n";
    return out;
  });
  ASSERT_TRUE(child.ok) << child.error;
  std::vector<std::string> lines;
  std::istringstream in(child.text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 1u) << child.text;
  auto tab = lines[0].find('\t');
  ASSERT_NE(tab, std::string::npos) << lines[0];
  EXPECT_THAT(lines[0].substr(0, tab), HasSubstr("cannot read"));
  EXPECT_EQ(lines[0].substr(tab + 1), p.string());
}

TEST_F(LoadSources, ErrorsOfEveryFileAreCollected) {
  write("a.yaml", "apiVersion: v0\nkind: Bridge\nmetadata: {name: a}\n");
  write("b.yaml", "a: [\n");
  write("c.yaml", bridge("c"));
  auto r = loadSources({dir_});
  ASSERT_EQ(r.errors.size(), 2u) << dump(r);
  EXPECT_EQ(r.errors[0].where.file, (dir_ / "a.yaml").string());
  EXPECT_EQ(r.errors[1].where.file, (dir_ / "b.yaml").string());
  EXPECT_EQ(names(r), std::vector<std::string>{"c"});
}

TEST_F(LoadSources, CacheParsesOnlyWhenSomethingChanged) {
  write("a.yaml", bridge("a"));
  write("b.yaml", bridge("b"));
  write("c.yaml", bridge("c"));
  SourceCache cache;
  auto r = cache.loadIfChanged({dir_});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(cache.parsedLastTime(), 3u);
  EXPECT_EQ(names(*r), (std::vector<std::string>{"a", "b", "c"}));

  // Nothing changed: nothing parsed, nothing returned (the caller keeps what it made of it).
  EXPECT_FALSE(cache.loadIfChanged({dir_}).has_value());
  EXPECT_EQ(cache.parsedLastTime(), 0u);

  // One file changed: everything is parsed again (the cache keeps no parsed resources).
  write("b.yaml", bridge("b", 9000));
  r = cache.loadIfChanged({dir_});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(cache.parsedLastTime(), 3u);
  EXPECT_EQ(r->resources.at(1).spec["mtu"], 9000);
  EXPECT_FALSE(cache.loadIfChanged({dir_}).has_value());

  // A file that is gone drops out; a new file joins the others (a second definition is kept:
  // Engine::prepare checks duplicates among what this node selects).
  fs::remove(dir_ / "c.yaml");
  write("d.yaml", bridge("a"));
  r = cache.loadIfChanged({dir_});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(names(*r), (std::vector<std::string>{"a", "b", "a"}));
  EXPECT_TRUE(r->errors.empty()) << dump(*r);

  // Same result as loadSources.
  auto fresh = loadSources({dir_});
  EXPECT_EQ(names(fresh), names(*r));
  EXPECT_EQ(fresh.errors.size(), r->errors.size());
  EXPECT_EQ(fresh.files, r->files);

  // Errors are reported again on every call until the files are fixed.
  write("d.yaml", "kind: [\n");
  for (int i = 0; i < 2; ++i) {
    r = cache.loadIfChanged({dir_});
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->errors.size(), 1u) << dump(*r);
  }
  fs::remove(dir_ / "d.yaml");
  EXPECT_TRUE(cache.loadIfChanged({dir_}).has_value());
  EXPECT_FALSE(cache.loadIfChanged({dir_}).has_value());

  // A file that goes away (only the set of files changed) is a change too.
  fs::remove(dir_ / "b.yaml");
  r = cache.loadIfChanged({dir_});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(names(*r), std::vector<std::string>{"a"});
}

}  // namespace
}  // namespace nodeplane
