// The plugin loader against deliberately broken libraries built by the test suite
// (tests/fixtures/plugins/*.cpp).
#include "plugin_host.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <set>
#include <string>

#include "support/files.hpp"

namespace nodeplane {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

fs::path fixture(const std::string& name) {
  return fs::path(NODEPLANE_TEST_PLUGIN_DIR) / name / ("libnodeplane-" + name + ".so");
}

// A private copy of a fixture library, so tests can change its mode or owner.
class TempPluginDir {
 public:
  TempPluginDir() : dir_(tmp_.path()) {}
  fs::path add(const std::string& name) {
    auto to = dir_ / fixture(name).filename();
    fs::copy_file(fixture(name), to);
    ::chmod(to.c_str(), 0755);
    return to;
  }
  const fs::path& path() const { return dir_; }

 private:
  ::nodeplane::testing::TempDir tmp_;
  fs::path dir_;
};

TEST(PluginHost, LoadsAWellBehavedPlugin) {
  PluginHost host;
  ASSERT_TRUE(host.loadOne(fixture("widget"), {}));
  ASSERT_NE(host.forKind("Widget"), nullptr);
  EXPECT_EQ(host.forKind("Widget")->name(), "widget");
  EXPECT_EQ(host.kindNames(), std::vector<std::string>{"Widget"});
}

TEST(PluginHost, RefusesALibraryWithoutFactory) {
  PluginHost host;
  auto r = host.loadOne(fixture("missing_factory"), {});
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("no nodeplane_create_plugin symbol"));
}

TEST(PluginHost, RefusesAnotherAbiVersion) {
  PluginHost host;
  auto r = host.loadOne(fixture("wrong_abi"), {});
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message,
              HasSubstr("built for plugin ABI " + std::to_string(kAbiVersion + 1) +
                        ", this nodeplane speaks ABI " + std::to_string(kAbiVersion)));
}

// The dynamic loader's own reason reaches the message (Boost.DLL alone says "Bad file descriptor").
TEST(PluginHost, ALibraryTheLoaderRefusesSaysWhy) {
  PluginHost host;
  auto r = host.loadOne(fixture("unresolved"), {});
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("undefined symbol: nodeplane_test_no_such_symbol"));
}

// The same ABI number is not enough: C++ types cross the boundary, so the compiler and library
// build must be the host's too.
TEST(PluginHost, RefusesAPluginBuiltWithAnotherToolchain) {
  PluginHost host;
  auto r = host.loadOne(fixture("wrong_build"), {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message,
            std::string("built with \"c++ 13.2.0; libstdc++ 20230801 cxx11-abi 1; nlohmann-json "
                        "3.11.3\", this nodeplane with \"") +
                kAbiBuild + "\"");
  EXPECT_THAT(std::string(kAbiBuild), HasSubstr("; libstdc++ 2"));
}

// A plugin exports its ABI symbols and nothing else: none of its C++ symbols (nor those of the
// static libraries in it) can interpose on the host's.
TEST(PluginHost, APluginExportsOnlyItsAbiSymbols) {
  const std::string so = std::string(NODEPLANE_BUILD_PLUGIN_DIR) + "/libnodeplane-net.so";
  FILE* p = ::popen(("nm -D --defined-only " + so + " 2>&1").c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::set<std::string> exported;
  char line[4096];
  while (std::fgets(line, sizeof line, p)) {
    std::string l(line);
    if (!l.empty() && l.back() == '\n') l.pop_back();
    auto sp = l.rfind(' ');
    exported.insert(sp == std::string::npos ? l : l.substr(sp + 1));
  }
  ASSERT_EQ(::pclose(p), 0) << "nm failed";
  EXPECT_EQ(exported, (std::set<std::string>{"nodeplane_abi_build", "nodeplane_abi_version",
                                             "nodeplane_create_plugin"}));
}

TEST(PluginHost, ContainsAFactoryThatThrows) {
  PluginHost host;
  auto r = host.loadOne(fixture("throws_on_load"), {});
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("threw from its factory"));
  EXPECT_THAT(r.error().message, HasSubstr("device table missing"));
}

TEST(PluginHost, ReportsAConstructorThatThrowsInsideTheGuard) {
  HostContext ctx;
  ctx.config["widget"]["throwIn"] = "constructor";
  PluginHost host;
  auto r = host.loadOne(fixture("widget"), ctx);
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("factory failed: widget exploded"));
}

TEST(PluginHost, RefusesALibraryThatIsNotAPlugin) {
  PluginHost host;
  auto r = host.loadOne(fixture("no_symbols"), {});
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("not a nodeplane plugin"));
}

TEST(PluginHost, RefusesASecondPluginForATakenKind) {
  PluginHost host;
  ASSERT_TRUE(host.loadOne(fixture("widget"), {}));
  auto r = host.loadOne(fixture("duplicate_kind"), {});
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("kind Widget is already served by plugin widget"));
  EXPECT_EQ(host.forKind("Widget")->name(), "widget");
}

TEST(PluginHost, RefusesAGroupWritableFile) {
  TempPluginDir dir;
  auto lib = dir.add("widget");
  ::chmod(lib.c_str(), 0775);
  PluginHost host;
  auto r = host.loadOne(lib, {});
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("group- or world-writable"));
  EXPECT_THAT(r.error().hint, HasSubstr("chmod go-w"));
}

TEST(PluginHost, RefusesAFileNotOwnedByRootWhenRoot) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to chown";
  TempPluginDir dir;
  auto lib = dir.add("widget");
  ASSERT_EQ(::chown(lib.c_str(), 65534, 65534), 0);
  PluginHost host;
  auto r = host.loadOne(lib, {});
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("owned by uid 65534, not root"));
}

TEST(PluginHost, RefusesASymlinkEvenToAGoodLibrary) {
  TempPluginDir dir;
  const auto link = dir.path() / "libnodeplane-widget.so";
  fs::create_symlink(fixture("widget"), link);
  PluginHost one;
  auto r = one.loadOne(link, {});
  ASSERT_FALSE(r) << "a symlink was followed to whatever it names now";
  EXPECT_THAT(r.error().message, HasSubstr("is a symbolic link"));
  auto host = PluginHost::load(dir.path(), {});
  ASSERT_TRUE(host);
  EXPECT_TRUE(host->plugins().empty());
  ASSERT_EQ(host->refused().size(), 1u);
  EXPECT_EQ(host->refused()[0].file, link);
  EXPECT_THAT(host->refused()[0].reason, HasSubstr("is a symbolic link"));
}

TEST(PluginHost, RefusesEveryLibraryInAWorldWritableDirectory) {
  TempPluginDir dir;
  const auto lib = dir.add("widget");
  ASSERT_EQ(::chmod(dir.path().c_str(), 0777), 0);
  auto host = PluginHost::load(dir.path(), {});
  ASSERT_TRUE(host);
  EXPECT_TRUE(host->plugins().empty());
  ASSERT_EQ(host->refused().size(), 1u);
  EXPECT_EQ(host->refused()[0].file, lib);
  EXPECT_EQ(host->refused()[0].reason, "plugin directory " + dir.path().string() +
                                           " is group- or world-writable (chmod go-w " +
                                           dir.path().string() + ")");
  PluginHost one;
  auto r = one.loadOne(lib, {});
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("plugin directory " + dir.path().string()));
  ASSERT_EQ(::chmod(dir.path().c_str(), 0775), 0);
  EXPECT_FALSE(PluginHost().loadOne(lib, {})) << "group-writable is refused too";
  ASSERT_EQ(::chmod(dir.path().c_str(), 0755), 0);
  EXPECT_TRUE(PluginHost().loadOne(lib, {}));
}

TEST(PluginHost, RefusesADirectoryNotOwnedByRootWhenRoot) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to chown";
  TempPluginDir dir;
  const auto lib = dir.add("widget");
  ASSERT_EQ(::chown(dir.path().c_str(), 65534, 65534), 0);
  auto host = PluginHost::load(dir.path(), {});
  ASSERT_TRUE(host);
  EXPECT_TRUE(host->plugins().empty());
  ASSERT_EQ(host->refused().size(), 1u);
  EXPECT_THAT(host->refused()[0].reason,
              HasSubstr("plugin directory " + dir.path().string() +
                        " is owned by uid 65534, not root (chown root "));
}

TEST(PluginHost, RefusesAFifoWithoutBlocking) {
  TempPluginDir dir;
  const auto fifo = dir.path() / "libnodeplane-fifo.so";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  auto r = PluginHost().loadOne(fifo, {});
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("not a regular file"));
}

// Each library is loaded through /proc/self/fd/N; the loader takes a name it has seen as the object
// already loaded under it, so two libraries opened one after the other must not share a path.
TEST(PluginHost, LibrariesLoadedOneAfterAnotherAreEachTheirOwn) {
  PluginHost host;
  ASSERT_TRUE(host.loadOne(fixture("widget"), {}));
  for (const char* name : {"wrong_abi", "missing_factory", "wrong_abi"}) {
    auto r = host.loadOne(fixture(name), {});
    ASSERT_FALSE(r) << name;
    EXPECT_THAT(r.error().message, Not(HasSubstr("already served"))) << name;
  }
  auto r = host.loadOne(fixture("wrong_abi"), {});
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message,
              HasSubstr("built for plugin ABI " + std::to_string(kAbiVersion + 1)));
}

TEST(PluginHost, LoadsADirectoryAndListsTheRefused) {
  TempPluginDir dir;
  dir.add("widget");
  dir.add("wrong_abi");
  dir.add("duplicate_kind");
  auto host = PluginHost::load(dir.path(), {});
  ASSERT_TRUE(host);
  ASSERT_EQ(host->plugins().size(), 1u);
  ASSERT_EQ(host->refused().size(), 2u);
  // Sorted by file name: duplicate_kind loads first and takes Widget; widget is then refused.
  EXPECT_EQ(host->plugins()[0]->name(), "duplicate");
}

TEST(PluginHost, TurnsAThrowIntoAnErrorOnThatCall) {
  HostContext ctx;
  ctx.config["widget"]["throwIn"] = "observe";
  PluginHost host;
  ASSERT_TRUE(host.loadOne(fixture("widget"), ctx));
  auto r = host.forKind("Widget")->observe({"Widget"});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "plugin widget threw from observe: boom in observe");
}

TEST(PluginHost, MissingDirectoryIsAClearError) {
  auto r = PluginHost::load("/nonexistent/nodeplane-plugins", {});
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("/nonexistent/nodeplane-plugins does not exist"));
}

TEST(PluginHost, FindsTheBuildTreePlugins) {
  auto host = PluginHost::load(NODEPLANE_BUILD_PLUGIN_DIR, {});
  ASSERT_TRUE(host);
  EXPECT_NE(host->forKind("Bridge"), nullptr)
      << (host->refused().empty() ? std::string("no refusal") : host->refused()[0].reason);
}

}  // namespace
}  // namespace nodeplane
