// A small QMP client: one connection to a QEMU's monitor socket, the capabilities handshake,
// commands matched to their replies by id, asynchronous events kept until taken.
#pragma once

#include <chrono>
#include <deque>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "nodeplane/error.hpp"
#include "nodeplane/resource.hpp"

namespace nodeplane::qemu {

// Splits the byte stream of a QMP socket into JSON messages (one per line, as QEMU writes them).
class QmpParser {
 public:
  // Appends bytes; returns the complete messages they finished. A line that is not JSON is an
  // error (the connection is not a QMP monitor).
  Result<std::vector<Json>> feed(std::string_view bytes);

 private:
  std::string buffer_;
};

class QmpClient {
 public:
  // Connects and negotiates (greeting, qmp_capabilities) within `timeout`.
  static Result<QmpClient> connect(const std::filesystem::path& socket,
                                   std::chrono::milliseconds timeout);
  QmpClient(QmpClient&&) noexcept;
  QmpClient& operator=(QmpClient&&) noexcept;
  ~QmpClient();

  // Runs a command and waits for its reply (matched by id); events that arrive meanwhile are
  // kept. {"error": …} replies become an error with QEMU's class and description.
  Result<Json> execute(const std::string& command, const Json& arguments = Json::object(),
                       std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // Waits for an event by name (one already kept counts) up to `timeout`; nullopt when none.
  Result<std::optional<Json>> waitEvent(const std::string& name, std::chrono::milliseconds timeout);
  // Every event kept so far, oldest first; clears them.
  std::vector<Json> takeEvents();
  // Reads what is pending without blocking (for a poll loop on fd()).
  Result<void> pump();
  int fd() const { return fd_; }

 private:
  explicit QmpClient(int fd);
  // Waits up to `deadline` for bytes and sorts the messages they finish: true when some came.
  Result<bool> readSome(std::chrono::steady_clock::time_point deadline);
  Result<void> writeAll(const std::string& text, std::chrono::steady_clock::time_point deadline);
  void sort(std::vector<Json> messages);
  int fd_ = -1;
  std::uint64_t nextId_ = 1;
  QmpParser parser_;
  std::deque<Json> replies_;
  std::deque<Json> events_;
};

}  // namespace nodeplane::qemu
