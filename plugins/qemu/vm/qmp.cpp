// Stub: the QMP client.
#include "qmp.hpp"

#include <unistd.h>

namespace nodeplane::qemu {

Result<std::vector<Json>> QmpParser::feed(std::string_view) { return std::vector<Json>{}; }
Result<QmpClient> QmpClient::connect(const std::filesystem::path&, std::chrono::milliseconds) {
  return fail(ErrorKind::kTerminal, "not implemented");
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
Result<Json> QmpClient::execute(const std::string&, const Json&, std::chrono::milliseconds) {
  return fail(ErrorKind::kTerminal, "not implemented");
}
Result<std::optional<Json>> QmpClient::waitEvent(const std::string&, std::chrono::milliseconds) {
  return fail(ErrorKind::kTerminal, "not implemented");
}
std::vector<Json> QmpClient::takeEvents() { return {}; }
Result<void> QmpClient::pump() { return {}; }
Result<void> QmpClient::readSome(std::chrono::steady_clock::time_point) { return {}; }

}  // namespace nodeplane::qemu
