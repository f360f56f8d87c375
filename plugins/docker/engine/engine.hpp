// A client of the Docker Engine API on its unix socket (libcurl, CURLOPT_UNIX_SOCKET_PATH). No
// `docker` CLI process anywhere. The API version is negotiated once from /_ping: the lower of the
// server's Api-Version header and kMaxApiVersion; every later path is prefixed with it.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "nodeplane/error.hpp"
#include "nodeplane/resource.hpp"

namespace nodeplane::docker {

// The newest Engine API this client speaks; the oldest it accepts is kMinApiVersion
// (DeviceRequests).
inline constexpr const char* kMaxApiVersion = "1.43";
inline constexpr const char* kMinApiVersion = "1.40";

struct EngineResponse {
  long status = 0;   // HTTP status
  std::string body;  // as received
};

class Engine {
 public:
  explicit Engine(std::string socketPath,
                  std::chrono::milliseconds timeout = std::chrono::seconds(30));
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const std::string& socketPath() const { return socket_; }
  // GET /_ping and keep the negotiated version. A socket nobody listens on is kRetryable
  // ("cannot reach dockerd at /run/docker.sock: …", with a hint); an API older than kMinApiVersion
  // kTerminal.
  Result<void> connect();
  const std::string& apiVersion() const { return version_; }  // "1.41"; "" before connect()

  // One request. `path` without the version prefix ("/containers/json?all=1"); `body` is sent as
  // application/json when not null. Any HTTP status is a result; only transport failures are
  // errors (kRetryable). Safe to call from several threads at once (one curl handle per call).
  Result<EngineResponse> request(std::string_view method, std::string_view path,
                                 const Json* body = nullptr,
                                 std::chrono::milliseconds timeout = std::chrono::milliseconds(0));
  // request(), wanting a 2xx: the body parsed as JSON (null for an empty body). Any other status
  // is an error carrying Docker's own "message" ("No such container: web"): 409 kConflict, 5xx
  // kRetryable, 404 kTerminal, other 4xx kInvalidInput. Where a 404 is an answer (a container
  // already gone), use request() and look at the status.
  Result<Json> call(std::string_view method, std::string_view path, const Json* body = nullptr,
                    std::chrono::milliseconds timeout = std::chrono::milliseconds(0));
  // A request whose answer is a stream of JSON messages (POST /images/create): `onMessage` sees
  // each as it arrives and may return false to abort. A message with "error" ends it with that
  // error (a failed pull answers 200 and says so in the stream); a non-2xx answer is an error as
  // in call(). Without a `timeout` the stream may last: only one silent for the engine's timeout
  // fails. `upload`: a request body sent as is (an image tarball for /images/create?fromSrc=-).
  struct Upload {
    std::string_view data;
    std::string_view contentType;  // "application/x-tar"
  };
  Result<void> stream(std::string_view method, std::string_view path,
                      const std::function<bool(const Json&)>& onMessage,
                      std::chrono::milliseconds timeout = std::chrono::milliseconds(0),
                      const Upload* upload = nullptr);

 private:
  std::string socket_;
  std::chrono::milliseconds timeout_;
  std::string version_;
};

// Percent-encodes a query value (filters JSON, image references).
std::string urlEncode(std::string_view s);

}  // namespace nodeplane::docker
