// The plugin loader against deliberately broken libraries built by the test suite
// (tests/fixtures/plugins/*.cpp).
#include "plugin_host.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "support/files.hpp"

namespace nodeplane {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

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
  EXPECT_THAT(r.error().message, HasSubstr("built for plugin ABI 2, this nodeplane speaks ABI 1"));
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
