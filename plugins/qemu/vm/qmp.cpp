// The QMP client: a unix socket, one JSON message a line, replies matched by id, events kept.
#include "qmp.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace nodeplane::qemu {
namespace {

using Clock = std::chrono::steady_clock;

int msLeft(Clock::time_point deadline) {
  auto now = Clock::now();
  if (now >= deadline) return 0;
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count();
  return ms > 1'000'000'000 ? 1'000'000'000 : static_cast<int>(ms);
}

std::string errnoText(int e) { return std::strerror(e); }

}  // namespace

Result<std::vector<Json>> QmpParser::feed(std::string_view bytes) {
  buffer_.append(bytes);
  std::vector<Json> out;
  std::size_t start = 0;
  for (std::size_t nl; (nl = buffer_.find('\n', start)) != std::string::npos; start = nl + 1) {
    std::string_view line(buffer_.data() + start, nl - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
    Json j = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
      std::string shown(line.substr(0, 120));
      buffer_.erase(0, nl + 1);
      return fail(ErrorKind::kTerminal, "not a QMP message: " + shown);
    }
    out.push_back(std::move(j));
  }
  buffer_.erase(0, start);
  return out;
}

Result<QmpClient> QmpClient::connect(const std::filesystem::path& socket,
                                     std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket.native().size() >= sizeof addr.sun_path)
    return fail(ErrorKind::kTerminal, "QMP socket path too long: " + socket.string());
  std::memcpy(addr.sun_path, socket.c_str(), socket.native().size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return fail(ErrorKind::kRetryable, "socket: " + errnoText(errno));
  QmpClient client(fd);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    // A unix socket connects at once or not at all (EAGAIN: the backlog is full).
    return fail(ErrorKind::kRetryable,
                "cannot connect to QMP at " + socket.string() + ": " + errnoText(errno));
  }
  // QEMU greets first: {"QMP": {"version": …, "capabilities": […]}}.
  bool greeted = false;
  while (!greeted) {
    for (auto it = client.replies_.begin(); it != client.replies_.end(); ++it) {
      if (it->contains("QMP")) {
        client.replies_.erase(it);
        greeted = true;
        break;
      }
    }
    if (greeted) break;
    if (Clock::now() >= deadline)
      return fail(ErrorKind::kRetryable, "no QMP greeting on " + socket.string() + " within " +
                                             std::to_string(timeout.count()) + " ms");
    auto r = client.readSome(deadline);
    if (!r) return std::unexpected(r.error());
  }
  auto caps = client.execute("qmp_capabilities", Json::object(),
                             std::chrono::milliseconds(std::max(1, msLeft(deadline))));
  if (!caps) return std::unexpected(caps.error());
  return client;
}

QmpClient::QmpClient(int fd) : fd_(fd) {}
QmpClient::QmpClient(QmpClient&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)),
      nextId_(o.nextId_),
      parser_(std::move(o.parser_)),
      replies_(std::move(o.replies_)),
      events_(std::move(o.events_)) {}
QmpClient& QmpClient::operator=(QmpClient&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
    nextId_ = o.nextId_;
    parser_ = std::move(o.parser_);
    replies_ = std::move(o.replies_);
    events_ = std::move(o.events_);
  }
  return *this;
}
QmpClient::~QmpClient() {
  if (fd_ >= 0) ::close(fd_);
}

void QmpClient::sort(std::vector<Json> messages) {
  for (auto& m : messages) {
    if (m.contains("event"))
      events_.push_back(std::move(m));
    else
      replies_.push_back(std::move(m));  // replies, and the greeting
  }
}

Result<bool> QmpClient::readSome(Clock::time_point deadline) {
  if (fd_ < 0) return fail(ErrorKind::kRetryable, "QMP connection closed");
  pollfd p{fd_, POLLIN, 0};
  int n = ::poll(&p, 1, msLeft(deadline));
  if (n < 0 && errno != EINTR) return fail(ErrorKind::kRetryable, "poll: " + errnoText(errno));
  if (n <= 0) return false;
  bool got = false;
  for (;;) {
    char buf[4096];
    ssize_t r = ::read(fd_, buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return got;
    // A QEMU that quits may reset the connection rather than close it: both are its end.
    if (r < 0 && errno != ECONNRESET)
      return fail(ErrorKind::kRetryable, "reading QMP: " + errnoText(errno));
    if (r <= 0) {
      ::close(std::exchange(fd_, -1));
      if (got) return true;  // what came before the end is kept; the next read reports it
      return fail(ErrorKind::kRetryable, "QMP connection closed by QEMU");
    }
    auto messages = parser_.feed(std::string_view(buf, static_cast<std::size_t>(r)));
    if (!messages) return std::unexpected(messages.error());
    sort(std::move(*messages));
    got = true;
  }
}

Result<void> QmpClient::writeAll(const std::string& text, Clock::time_point deadline) {
  std::size_t off = 0;
  while (off < text.size()) {
    if (fd_ < 0) return fail(ErrorKind::kRetryable, "QMP connection closed");
    ssize_t n = ::send(fd_, text.data() + off, text.size() - off, MSG_NOSIGNAL);
    if (n >= 0) {
      off += static_cast<std::size_t>(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      return fail(ErrorKind::kRetryable, "writing to QMP: " + errnoText(errno));
    pollfd p{fd_, POLLOUT, 0};
    if (::poll(&p, 1, msLeft(deadline)) == 0)
      return fail(ErrorKind::kRetryable, "QMP does not take a command");
  }
  return {};
}

Result<Json> QmpClient::execute(const std::string& command, const Json& arguments,
                                std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  const std::string id = "np-" + std::to_string(nextId_++);
  Json request = {{"execute", command}, {"id", id}};
  if (!arguments.empty()) request["arguments"] = arguments;
  if (auto w = writeAll(request.dump() + "\n", deadline); !w) return std::unexpected(w.error());
  for (;;) {
    for (auto it = replies_.begin(); it != replies_.end(); ++it) {
      if (!it->contains("id") || (*it)["id"] != id) continue;
      Json reply = std::move(*it);
      replies_.erase(it);
      if (reply.contains("error")) {
        const Json& e = reply["error"];
        return fail(ErrorKind::kTerminal, "QMP " + command + ": " +
                                              e.value("class", std::string("Error")) + ": " +
                                              e.value("desc", std::string("(no description)")));
      }
      return reply.contains("return") ? reply["return"] : Json::object();
    }
    if (Clock::now() >= deadline)
      return fail(ErrorKind::kRetryable, "QMP " + command + ": no reply within " +
                                             std::to_string(timeout.count()) + " ms");
    auto r = readSome(deadline);
    // quit: QEMU may go before its reply does; the end of the connection answers it as well.
    if (!r && command == "quit" && fd_ < 0) return Json::object();
    if (!r) return std::unexpected(r.error());
  }
}

Result<std::optional<Json>> QmpClient::waitEvent(const std::string& name,
                                                 std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    for (auto it = events_.begin(); it != events_.end(); ++it) {
      if (it->value("event", std::string()) != name) continue;
      Json event = std::move(*it);
      events_.erase(it);
      return std::optional<Json>(std::move(event));
    }
    if (Clock::now() >= deadline) return std::optional<Json>();
    auto r = readSome(deadline);
    if (!r) return std::unexpected(r.error());
  }
}

std::vector<Json> QmpClient::takeEvents() {
  std::vector<Json> out(std::make_move_iterator(events_.begin()),
                        std::make_move_iterator(events_.end()));
  events_.clear();
  return out;
}

Result<void> QmpClient::pump() {
  auto r = readSome(Clock::now());
  if (!r) return std::unexpected(r.error());
  return {};
}

}  // namespace nodeplane::qemu
