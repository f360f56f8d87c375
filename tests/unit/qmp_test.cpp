// The QMP parser (lines, greeting, replies, events, garbage) and the client against a scripted
// monitor on a unix socket: replies matched by id, events kept, errors, deadlines.
#include "qmp.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <string>
#include <thread>

#include "support/files.hpp"

namespace nodeplane::qemu {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

TEST(QmpParser, SplitsLinesAcrossReadsAndKeepsTheRest) {
  QmpParser p;
  auto a = p.feed(R"({"QMP": {"version": {"qemu": {"major": 7}}, "capabilities": [)");
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_TRUE(a->empty());
  auto b = p.feed("\"oob\"]}}\r\n{\"return\": {}, \"id\": \"np-1\"}\n{\"event\": \"ST");
  ASSERT_TRUE(b) << b.error().message;
  ASSERT_EQ(b->size(), 2u);
  EXPECT_TRUE((*b)[0].contains("QMP"));
  EXPECT_EQ((*b)[1]["id"], "np-1");
  auto c = p.feed("OP\", \"timestamp\": {\"seconds\": 1, \"microseconds\": 2}}\n\n");
  ASSERT_TRUE(c) << c.error().message;
  ASSERT_EQ(c->size(), 1u);
  EXPECT_EQ((*c)[0]["event"], "STOP");
}

TEST(QmpParser, ALineThatIsNotJsonIsAnError) {
  QmpParser p;
  auto r = p.feed("{\"return\": {}}\nQEMU 7.2.0 monitor - type 'help'\n");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "not a QMP message: QEMU 7.2.0 monitor - type 'help'");
}

// A monitor that plays `script` on the first connection: each step reads one command line and
// answers with what the step returns (lines, each ending in \n), given the command.
class ScriptedMonitor {
 public:
  using Step = std::function<std::string(const Json& command)>;
  explicit ScriptedMonitor(std::vector<Step> script) : script_(std::move(script)) {
    path_ = dir_.path() / "qmp.sock";
    listen_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
    EXPECT_EQ(::bind(listen_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(listen_, 1), 0);
    thread_ = std::thread([this] { serve(); });
  }
  ~ScriptedMonitor() {
    ::shutdown(listen_, SHUT_RDWR);
    if (conn_ >= 0) ::shutdown(conn_, SHUT_RDWR);
    thread_.join();
    ::close(listen_);
    if (conn_ >= 0) ::close(conn_);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  void serve() {
    conn_ = ::accept4(listen_, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn_ < 0) return;
    send(
        R"({"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}}, "capabilities": ["oob"]}})"
        "\n");
    std::string buffer;
    for (const auto& step : script_) {
      std::size_t nl;
      while ((nl = buffer.find('\n')) == std::string::npos) {
        char b[1024];
        ssize_t n = ::read(conn_, b, sizeof b);
        if (n <= 0) return;
        buffer.append(b, static_cast<std::size_t>(n));
      }
      Json command = Json::parse(buffer.substr(0, nl));
      buffer.erase(0, nl + 1);
      send(step(command));
    }
    // Script done: hold the connection until the client goes.
    char b[64];
    while (::read(conn_, b, sizeof b) > 0) {
    }
  }
  void send(const std::string& text) { (void)!::write(conn_, text.data(), text.size()); }

  testing::TempDir dir_;
  std::filesystem::path path_;
  std::vector<Step> script_;
  int listen_ = -1;
  std::atomic<int> conn_ = -1;
  std::thread thread_;
};

std::string reply(const Json& command, const Json& ret) {
  return Json{{"return", ret}, {"id", command["id"]}}.dump() + "\n";
}
std::string event(const std::string& name) {
  return Json{{"event", name}, {"timestamp", {{"seconds", 1}, {"microseconds", 0}}}}.dump() + "\n";
}

ScriptedMonitor::Step capabilities() {
  return [](const Json& c) {
    EXPECT_EQ(c["execute"], "qmp_capabilities");
    return reply(c, Json::object());
  };
}

TEST(QmpClient, MatchesRepliesByIdAndKeepsEvents) {
  ScriptedMonitor monitor(
      {capabilities(), [](const Json& c) {
         EXPECT_EQ(c["execute"], "query-status");
         // An event and a reply to someone else come first.
         return event("RESUME") + Json{{"return", {{"status", "paused"}}}, {"id", "other"}}.dump() +
                "\n" + reply(c, {{"status", "running"}, {"running", true}}) + event("POWERDOWN");
       }});
  auto client = QmpClient::connect(monitor.path(), 5s);
  ASSERT_TRUE(client) << client.error().message;
  auto status = client->execute("query-status");
  ASSERT_TRUE(status) << status.error().message;
  EXPECT_EQ((*status)["status"], "running");
  auto powerdown = client->waitEvent("POWERDOWN", 5s);
  ASSERT_TRUE(powerdown) << powerdown.error().message;
  ASSERT_TRUE(powerdown->has_value());
  auto rest = client->takeEvents();
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0]["event"], "RESUME");
  EXPECT_TRUE(client->takeEvents().empty());
}

TEST(QmpClient, AnErrorReplyCarriesQemusClassAndDescription) {
  ScriptedMonitor monitor({capabilities(), [](const Json& c) {
                             return Json{{"error",
                                          {{"class", "CommandNotFound"},
                                           {"desc", "The command no-such has not been found"}}},
                                         {"id", c["id"]}}
                                        .dump() +
                                    "\n";
                           }});
  auto client = QmpClient::connect(monitor.path(), 5s);
  ASSERT_TRUE(client) << client.error().message;
  auto r = client->execute("no-such");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message,
            "QMP no-such: CommandNotFound: The command no-such has not been found");
}

TEST(QmpClient, GivesUpAtItsDeadlines) {
  ScriptedMonitor monitor({capabilities(), [](const Json&) { return std::string(); }});
  auto client = QmpClient::connect(monitor.path(), 5s);
  ASSERT_TRUE(client) << client.error().message;
  auto start = Clock::now();
  auto r = client->execute("query-status", Json::object(), 200ms);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "QMP query-status: no reply within 200 ms");
  EXPECT_EQ(r.error().kind, ErrorKind::kRetryable);
  auto none = client->waitEvent("SHUTDOWN", 100ms);
  ASSERT_TRUE(none) << none.error().message;
  EXPECT_FALSE(none->has_value());
  EXPECT_LT(Clock::now() - start, 5s);
}

TEST(QmpClient, NoSocketIsARetryableError) {
  testing::TempDir dir;
  auto r = QmpClient::connect(dir.path() / "none.qmp", 1s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kRetryable);
  EXPECT_NE(
      r.error().message.find("cannot connect to QMP at " + (dir.path() / "none.qmp").string()),
      std::string::npos)
      << r.error().message;
}

}  // namespace
}  // namespace nodeplane::qemu
