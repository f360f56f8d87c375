// The net plugin's event source against the real kernel, in the private network namespace
// main() made: which objects each link or address change touches, and what it ignores.
#include <poll.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <set>
#include <string>

#include "net_plugin.hpp"
#include "netns.hpp"
#include "support/plugin_rig.hpp"

namespace nodeplane::net {
namespace {

using namespace std::chrono_literals;

std::string str(const Touched& t) {
  std::string out = t.everything ? "everything;" : "";
  for (const auto& k : t.kinds) out += " kind " + k;
  for (const auto& id : t.resources) out += " " + id.str();
  return out;
}

// `ip` as an operator would run it.
void ip(const std::string& args) { ASSERT_EQ(std::system(("ip " + args).c_str()), 0) << args; }

std::set<ResourceId> allKinds(const std::string& name) {
  return {{"Bridge", name}, {"Vxlan", name}, {"Tap", name}};
}

class NetEvents : public ::testing::Test {
 protected:
  void SetUp() override {
    NODEPLANE_REQUIRE_NETNS();
    ASSERT_TRUE(plugin_.start());
    auto sources = plugin_.openEvents();
    ASSERT_TRUE(sources) << sources.error().str();
    ASSERT_EQ(sources->size(), 2u);  // and "netlink nftables": net_nat_test.cpp
    EXPECT_EQ(sources->front().name, "netlink link+address");
    EXPECT_EQ(sources->back().name, "netlink nftables");
    fd_ = sources->front().fd;
    ASSERT_TRUE(plugin_.observe({"Bridge"}));  // as a pass does: the links it knows
  }
  void TearDown() override { plugin_.closeEvents(); }

  // Everything the source reports until `id` is among it (the kernel sends a socket's messages
  // in order: what was done before `id`'s change has been read too).
  Touched until(const ResourceId& id) {
    Touched all;
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!all.resources.count(id) && std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      auto t = plugin_.drainEvents(fd_);
      EXPECT_TRUE(t) << t.error().str();
      if (!t) break;
      all.everything = all.everything || t->everything;
      all.kinds.insert(t->kinds.begin(), t->kinds.end());
      all.resources.insert(t->resources.begin(), t->resources.end());
    }
    EXPECT_TRUE(all.resources.count(id)) << id.str() << " never touched; got" << str(all);
    return all;
  }

  test::PluginRig rig_;
  NetPlugin plugin_{rig_.services};
  int fd_ = -1;
};

TEST_F(NetEvents, ALinkOfANetKindTouchesThatObject) {
  ip("link add ne-br type bridge");
  Touched t = until({"Bridge", "ne-br"});
  EXPECT_EQ(t.resources, std::set<ResourceId>({{"Bridge", "ne-br"}})) << str(t);
  EXPECT_FALSE(t.everything);

  ip("addr add 10.7.0.1/24 dev ne-br");  // an address of it: the bridge too
  t = until({"Bridge", "ne-br"});
  EXPECT_EQ(t.resources, std::set<ResourceId>({{"Bridge", "ne-br"}})) << str(t);

  ip("link del ne-br");
  t = until({"Bridge", "ne-br"});
  EXPECT_EQ(t.resources, std::set<ResourceId>({{"Bridge", "ne-br"}})) << str(t);
  EXPECT_FALSE(t.everything);
}

// A link of another type touches only the objects that would have its name (which the daemon
// ignores unless one is desired or owned); its addresses and IPv6 link-local addresses touch
// nothing.
TEST_F(NetEvents, OtherLinksTouchOnlyTheirNameAndTheirAddressesNothing) {
  ip("link add ne-va type veth peer name ne-vb");
  Touched t = until({"Tap", "ne-vb"});
  std::set<ResourceId> want = allKinds("ne-va");
  want.merge(allKinds("ne-vb"));
  EXPECT_EQ(t.resources, want) << str(t);

  ip("addr add 10.8.0.1/24 dev ne-va");
  ip("addr add fe80::1/64 dev ne-va");
  ip("link add ne-sentinel type bridge");  // read after them
  t = until({"Bridge", "ne-sentinel"});
  EXPECT_EQ(t.resources, std::set<ResourceId>({{"Bridge", "ne-sentinel"}})) << str(t);
  EXPECT_FALSE(t.everything) << str(t);

  ip("link set ne-va name ne-vc");  // renamed: the old name is freed, the new one taken
  t = until({"Tap", "ne-vc"});
  want = allKinds("ne-va");
  want.merge(allKinds("ne-vc"));
  EXPECT_EQ(t.resources, want) << str(t);
  ip("link del ne-vc");
  ip("link del ne-sentinel");
}

// Messages the kernel dropped while nobody read (the socket's buffer overflowed): anything may
// have changed.
TEST_F(NetEvents, LostMessagesTouchEverything) {
  const std::string batch = ::testing::TempDir() + "/net-events-batch";
  {
    std::ofstream out(batch);
    for (int i = 0; i < 300; ++i)
      out << "link add nl-a" << i << " type veth peer name nl-b" << i << "\n";
  }
  ip("-batch " + batch);
  Touched all;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!all.everything && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) break;  // drained, and no overflow said
    auto t = plugin_.drainEvents(fd_);
    ASSERT_TRUE(t) << t.error().str();
    all.everything = all.everything || t->everything;
  }
  EXPECT_TRUE(all.everything) << "600 links made unread: no overflow seen";
}

// A read on a source that is gone is an error (the daemon then re-opens it); opening again works.
TEST_F(NetEvents, AReadOnAClosedSourceFailsAndItOpensAgain) {
  plugin_.closeEvents();
  auto t = plugin_.drainEvents(fd_);
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().message, "reading link events: Bad file descriptor");
  auto again = plugin_.openEvents();
  ASSERT_TRUE(again) << again.error().str();
  fd_ = again->front().fd;
  ip("link add ne-again type bridge");
  until({"Bridge", "ne-again"});
  ip("link del ne-again");
}

}  // namespace
}  // namespace nodeplane::net
