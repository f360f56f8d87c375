// The Docker Engine API client: one libcurl easy handle per call, on dockerd's unix socket.
#include "engine.hpp"

#include <curl/curl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <mutex>
#include <optional>
#include <utility>

namespace nodeplane::docker {
namespace {

void globalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
using CurlPtr = std::unique_ptr<CURL, CurlDeleter>;
using SlistPtr = std::unique_ptr<curl_slist, SlistDeleter>;

// "1.41" -> 1041; -1 when malformed.
int versionNumber(std::string_view v) {
  auto dot = v.find('.');
  if (dot == std::string_view::npos) return -1;
  int major = 0, minor = 0;
  auto a = std::from_chars(v.data(), v.data() + dot, major);
  auto b = std::from_chars(v.data() + dot + 1, v.data() + v.size(), minor);
  if (a.ec != std::errc() || a.ptr != v.data() + dot || b.ec != std::errc() ||
      b.ptr != v.data() + v.size())
    return -1;
  return major * 1000 + minor;
}

// Docker's {"message": "..."} of an error answer, else the body itself, else the status.
std::string dockerMessage(long status, const std::string& body) {
  auto j = Json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("message") && j["message"].is_string())
    return j["message"].get<std::string>();
  std::string text = body;
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  if (!text.empty()) return text;
  return "HTTP " + std::to_string(status);
}

std::unexpected<Error> statusError(long status, const std::string& body) {
  ErrorKind kind = status == 404   ? ErrorKind::kTerminal
                   : status == 409 ? ErrorKind::kConflict
                   : status >= 500 ? ErrorKind::kRetryable
                                   : ErrorKind::kInvalidInput;
  Error e;
  e.kind = kind;
  e.message = dockerMessage(status, body);
  return std::unexpected<Error>(std::move(e));
}

size_t appendBody(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

size_t keepApiVersion(char* data, size_t size, size_t n, void* user) {
  std::string_view line(data, size * n);
  constexpr std::string_view kName = "api-version:";
  if (line.size() > kName.size()) {
    bool match = true;
    for (size_t i = 0; i < kName.size(); ++i)
      if (std::tolower(static_cast<unsigned char>(line[i])) != kName[i]) match = false;
    if (match) {
      auto value = line.substr(kName.size());
      while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
        value.remove_prefix(1);
      while (!value.empty() &&
             (value.back() == '\r' || value.back() == '\n' || value.back() == ' '))
        value.remove_suffix(1);
      *static_cast<std::string*>(user) = std::string(value);
    }
  }
  return size * n;
}

}  // namespace

Engine::Engine(std::string socketPath, std::chrono::milliseconds timeout)
    : socket_(std::move(socketPath)), timeout_(timeout) {
  globalInit();
}

Engine::~Engine() = default;

namespace {

// Everything a request needs, set on a fresh easy handle. `errbuf` must outlive the transfer.
struct Transfer {
  CurlPtr curl;
  SlistPtr headers;
  char errbuf[CURL_ERROR_SIZE] = {};
};

Result<void> prepare(Transfer& t, const std::string& socket, const std::string& version,
                     std::string_view method, std::string_view path) {
  t.curl.reset(curl_easy_init());
  if (!t.curl) return fail(ErrorKind::kRetryable, "libcurl: cannot create a handle");
  CURL* c = t.curl.get();
  std::string url = "http://localhost";
  if (!version.empty()) url += "/v" + version;
  url += path;
  curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, socket.c_str());
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, std::string(method).c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, t.errbuf);
  curl_easy_setopt(c, CURLOPT_PROXY, "");  // never an http_proxy from the environment
  if (method == "HEAD") curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  return {};
}

// A transport failure as the caller sees it: unreachable sockets get a hint.
std::unexpected<Error> transportError(Transfer& t, CURLcode rc, const std::string& socket,
                                      std::string_view method, std::string_view path) {
  if (rc == CURLE_COULDNT_CONNECT) {
    long osErrno = 0;
    curl_easy_getinfo(t.curl.get(), CURLINFO_OS_ERRNO, &osErrno);
    std::string why = osErrno != 0 ? std::strerror(static_cast<int>(osErrno))
                                   : std::string(t.errbuf[0] ? t.errbuf : curl_easy_strerror(rc));
    struct stat st {};
    if (::stat(socket.c_str(), &st) != 0 && errno == ENOENT) why = "no such socket";
    return fail(ErrorKind::kRetryable, "cannot reach dockerd at " + socket + ": " + why, {},
                "is dockerd running? start it (systemctl start docker), or set docker.socket in "
                "the agent config to where it listens");
  }
  std::string why = t.errbuf[0] ? std::string(t.errbuf) : std::string(curl_easy_strerror(rc));
  return fail(ErrorKind::kRetryable, "dockerd at " + socket + ": " + std::string(method) + " " +
                                         std::string(path) + ": " + why);
}

}  // namespace

Result<void> Engine::connect() {
  Transfer t;
  if (auto ok = prepare(t, socket_, "", "GET", "/_ping"); !ok) return ok;
  std::string body, apiVersion;
  CURL* c = t.curl.get();
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, appendBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, keepApiVersion);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &apiVersion);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_.count()));
  if (CURLcode rc = curl_easy_perform(c); rc != CURLE_OK)
    return transportError(t, rc, socket_, "GET", "/_ping");
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  if (status / 100 != 2) {
    auto e = statusError(status, body);
    e.error().message = "dockerd at " + socket_ + " answered /_ping with " +
                        std::to_string(status) + ": " + e.error().message;
    e.error().kind = ErrorKind::kRetryable;
    return e;
  }
  if (versionNumber(apiVersion) < 0)
    return fail(ErrorKind::kTerminal, "dockerd at " + socket_ +
                                          " did not say its API version (Api-Version header \"" +
                                          apiVersion + "\")");
  if (versionNumber(apiVersion) < versionNumber(kMinApiVersion))
    return fail(ErrorKind::kTerminal,
                "dockerd at " + socket_ + " speaks Engine API " + apiVersion + ", older than " +
                    kMinApiVersion + " (the oldest with DeviceRequests)",
                {}, "upgrade Docker to 19.03 or newer");
  version_ =
      versionNumber(apiVersion) < versionNumber(kMaxApiVersion) ? apiVersion : kMaxApiVersion;
  return {};
}

Result<EngineResponse> Engine::request(std::string_view method, std::string_view path,
                                       const Json* body, std::chrono::milliseconds timeout) {
  Transfer t;
  if (auto ok = prepare(t, socket_, version_, method, path); !ok)
    return std::unexpected(ok.error());
  CURL* c = t.curl.get();
  std::string payload;
  if (body != nullptr) {
    payload = body->dump();
    t.headers.reset(curl_slist_append(nullptr, "Content-Type: application/json"));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, t.headers.get());
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, payload.c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(payload.size()));
  } else if (method == "POST" || method == "PUT") {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(0));
  }
  EngineResponse r;
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, appendBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r.body);
  auto limit = timeout.count() > 0 ? timeout : timeout_;
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(limit.count()));
  if (CURLcode rc = curl_easy_perform(c); rc != CURLE_OK)
    return transportError(t, rc, socket_, method, path);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
  return r;
}

Result<Json> Engine::call(std::string_view method, std::string_view path, const Json* body,
                          std::chrono::milliseconds timeout) {
  auto r = request(method, path, body, timeout);
  if (!r) return std::unexpected(r.error());
  if (r->status / 100 != 2) {
    auto e = statusError(r->status, r->body);
    return e;
  }
  if (r->body.empty()) return Json();
  auto j = Json::parse(r->body, nullptr, false);
  if (j.is_discarded())
    return fail(ErrorKind::kRetryable, "dockerd answered " + std::string(method) + " " +
                                           std::string(path) + " with something not JSON");
  return j;
}

namespace {

struct StreamState {
  const std::function<bool(const Json&)>* onMessage = nullptr;
  CURL* curl = nullptr;
  long status = 0;
  std::string pending;  // an incomplete line, or the whole body of a non-2xx answer
  std::optional<Error> error;
  bool aborted = false;
};

size_t streamChunk(char* data, size_t size, size_t n, void* user) {
  auto& s = *static_cast<StreamState*>(user);
  if (s.status == 0) curl_easy_getinfo(s.curl, CURLINFO_RESPONSE_CODE, &s.status);
  s.pending.append(data, size * n);
  if (s.status / 100 != 2) return size * n;  // an error answer: one JSON body, read at the end
  size_t start = 0;
  for (size_t nl; (nl = s.pending.find('\n', start)) != std::string::npos; start = nl + 1) {
    std::string_view line(s.pending.data() + start, nl - start);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
    if (line.empty()) continue;
    auto j = Json::parse(line, nullptr, false);
    if (j.is_discarded()) {
      Error e;
      e.kind = ErrorKind::kRetryable;
      e.message = "dockerd sent a stream message that is not JSON: " + std::string(line);
      s.error = std::move(e);
      return 0;
    }
    if (j.is_object() && j.contains("error")) {
      Error e;
      e.kind = ErrorKind::kRetryable;
      if (j.contains("errorDetail") && j["errorDetail"].is_object() &&
          j["errorDetail"].contains("message") && j["errorDetail"]["message"].is_string())
        e.message = j["errorDetail"]["message"].get<std::string>();
      else
        e.message = j["error"].is_string() ? j["error"].get<std::string>() : j["error"].dump();
      s.error = std::move(e);
      return 0;
    }
    if (!(*s.onMessage)(j)) {
      s.aborted = true;
      return 0;
    }
  }
  s.pending.erase(0, start);
  return size * n;
}

struct UploadState {
  std::string_view data;
  size_t offset = 0;
};

size_t readUpload(char* buffer, size_t size, size_t n, void* user) {
  auto& u = *static_cast<UploadState*>(user);
  size_t len = std::min(size * n, u.data.size() - u.offset);
  std::memcpy(buffer, u.data.data() + u.offset, len);
  u.offset += len;
  return len;
}

}  // namespace

Result<void> Engine::stream(std::string_view method, std::string_view path,
                            const std::function<bool(const Json&)>& onMessage,
                            std::chrono::milliseconds timeout, const Upload* upload) {
  Transfer t;
  if (auto ok = prepare(t, socket_, version_, method, path); !ok) return ok;
  CURL* c = t.curl.get();
  StreamState s;
  s.onMessage = &onMessage;
  s.curl = c;
  UploadState u;
  if (upload != nullptr) {
    u.data = upload->data;
    std::string type = "Content-Type: " + std::string(upload->contentType);
    t.headers.reset(curl_slist_append(nullptr, type.c_str()));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, t.headers.get());
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(u.data.size()));
    curl_easy_setopt(c, CURLOPT_READFUNCTION, readUpload);
    curl_easy_setopt(c, CURLOPT_READDATA, &u);
    // CURLOPT_UPLOAD means PUT; the method asked for wins.
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, std::string(method).c_str());
  } else if (method == "POST" || method == "PUT") {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(0));
  }
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, streamChunk);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
  if (timeout.count() > 0) {
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  } else {
    // A pull may take long: only a stream that says nothing for the engine's timeout fails.
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME,
                     std::max(1L, static_cast<long>(timeout_.count() / 1000)));
  }
  CURLcode rc = curl_easy_perform(c);
  if (s.error) return std::unexpected(*s.error);
  if (s.aborted) return {};
  if (rc != CURLE_OK) return transportError(t, rc, socket_, method, path);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &s.status);
  if (s.status / 100 != 2) {
    auto e = statusError(s.status, s.pending);
    return e;
  }
  // A last message without its newline.
  std::string last = std::move(s.pending);
  s.pending.clear();
  if (last.find_first_not_of(" \r\n") != std::string::npos) {
    last += '\n';
    streamChunk(last.data(), 1, last.size(), &s);
    if (s.error) return std::unexpected(*s.error);
  }
  return {};
}

std::string urlEncode(std::string_view s) {
  globalInit();
  CurlPtr c(curl_easy_init());
  char* out = curl_easy_escape(c.get(), s.data(), static_cast<int>(s.size()));
  std::string r = out != nullptr ? out : "";
  curl_free(out);
  return r;
}

}  // namespace nodeplane::docker
