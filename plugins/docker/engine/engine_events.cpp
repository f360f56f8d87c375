// Docker's /events stream on a thread of its own (libcurl multi, woken by curl_multi_wakeup).
#include "engine_events.hpp"

#include <curl/curl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <mutex>
#include <optional>
#include <thread>

#include "engine.hpp"

namespace nodeplane::docker {
namespace {

constexpr std::chrono::seconds kOpenTimeout{10};

}  // namespace

struct EventStream::State {
  std::string socket;
  std::string url;
  CURLM* multi = nullptr;
  CURL* easy = nullptr;
  char errbuf[CURL_ERROR_SIZE] = {};
  int efd = -1;
  std::thread thread;
  std::atomic<bool> stopping{false};

  // Filled by the callbacks (on open()'s thread, then on the stream thread).
  long status = 0;
  bool headersDone = false;
  std::string pending;  // an incomplete line, or the body of an error answer

  std::mutex mutex;  // what drain() takes
  std::vector<Json> queue;
  bool ended = false;
  std::string endReason;

  void notify() {
    uint64_t one = 1;
    (void)::write(efd, &one, sizeof one);
  }

  void end(std::string why) {
    {
      std::lock_guard lock(mutex);
      if (ended) return;
      ended = true;
      endReason = std::move(why);
    }
    notify();
  }

  static size_t onHeader(char* data, size_t size, size_t n, void* user) {
    auto& s = *static_cast<State*>(user);
    std::string_view line(data, size * n);
    if (line.starts_with("HTTP/")) {
      // 1xx, redirects: another header block follows; the status is taken at the blank line.
      s.headersDone = false;
    } else if (line == "\r\n" || line == "\n") {
      curl_easy_getinfo(s.easy, CURLINFO_RESPONSE_CODE, &s.status);
      if (s.status >= 200) s.headersDone = true;
    }
    return size * n;
  }

  static size_t onData(char* data, size_t size, size_t n, void* user) {
    auto& s = *static_cast<State*>(user);
    s.pending.append(data, size * n);
    if (s.status != 200) return size * n;  // an error answer: read whole, reported by open()
    std::vector<Json> got;
    size_t start = 0;
    for (size_t nl; (nl = s.pending.find('\n', start)) != std::string::npos; start = nl + 1) {
      std::string_view line(s.pending.data() + start, nl - start);
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
      if (line.empty()) continue;
      auto j = Json::parse(line, nullptr, false);
      if (j.is_discarded()) {
        s.end("dockerd sent an event that is not JSON: " + std::string(line.substr(0, 200)));
        return 0;
      }
      got.push_back(std::move(j));
    }
    s.pending.erase(0, start);
    if (!got.empty()) {
      {
        std::lock_guard lock(s.mutex);
        for (auto& j : got) s.queue.push_back(std::move(j));
      }
      s.notify();
    }
    return size * n;
  }

  // The transfer's result once it is done; nullopt while it runs.
  std::optional<CURLcode> finished() {
    int left = 0;
    while (CURLMsg* m = curl_multi_info_read(multi, &left))
      if (m->msg == CURLMSG_DONE && m->easy_handle == easy) return m->data.result;
    return std::nullopt;
  }

  void run() {
    while (!stopping.load()) {
      int running = 0;
      curl_multi_perform(multi, &running);
      if (auto rc = finished()) {
        if (stopping.load()) return;
        // dockerd closing the connection mid-chunk (its shutdown) is CURLE_PARTIAL_FILE.
        if (*rc == CURLE_OK || *rc == CURLE_PARTIAL_FILE || *rc == CURLE_RECV_ERROR ||
            *rc == CURLE_GOT_NOTHING)
          end("the Docker event stream at " + socket + " ended (dockerd stopped or restarted)");
        else
          end("the Docker event stream at " + socket + " broke: " +
              (errbuf[0] ? std::string(errbuf) : std::string(curl_easy_strerror(*rc))));
        return;
      }
      // Idle until Docker sends something or close() wakes it (curl_multi_wakeup); curl's own
      // timers, when it has any, shorten the wait.
      curl_multi_poll(multi, nullptr, 0, 3600 * 1000, nullptr);
    }
  }

  ~State() {
    if (thread.joinable()) {
      stopping = true;
      curl_multi_wakeup(multi);
      thread.join();
    }
    if (multi != nullptr && easy != nullptr) curl_multi_remove_handle(multi, easy);
    if (easy != nullptr) curl_easy_cleanup(easy);
    if (multi != nullptr) curl_multi_cleanup(multi);
    if (efd >= 0) ::close(efd);
  }
};

EventStream::EventStream() = default;
EventStream::~EventStream() { close(); }

Result<void> EventStream::open(const std::string& socketPath, const std::string& apiVersion,
                               const Json& filters) {
  close();
  Engine init(socketPath);  // curl_global_init, once per process
  auto s = std::make_unique<State>();
  s->socket = socketPath;
  s->efd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (s->efd < 0)
    return fail(ErrorKind::kRetryable, std::string("eventfd: ") + std::strerror(errno));
  s->multi = curl_multi_init();
  s->easy = curl_easy_init();
  if (s->multi == nullptr || s->easy == nullptr)
    return fail(ErrorKind::kRetryable, "libcurl: cannot create a handle");
  // `since` = now: Docker replays what happened between this request and its subscription
  // (it answers before it subscribes), so nothing after open() is missed.
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  char since[64];
  std::snprintf(since, sizeof since, "%lld.%09ld", static_cast<long long>(now.tv_sec), now.tv_nsec);
  s->url = "http://localhost/v" + apiVersion + "/events?since=" + since;
  if (!filters.is_null() && !filters.empty()) s->url += "&filters=" + urlEncode(filters.dump());
  CURL* c = s->easy;
  curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, s->socket.c_str());
  curl_easy_setopt(c, CURLOPT_URL, s->url.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PROXY, "");
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, s->errbuf);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &State::onHeader);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, s.get());
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &State::onData);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, s.get());
  curl_multi_add_handle(s->multi, c);

  // Until dockerd has answered (it sends its headers at once), so that an unreachable dockerd or
  // a refused filter is open()'s error, not a stream that ends at once.
  const auto deadline = std::chrono::steady_clock::now() + kOpenTimeout;
  for (;;) {
    int running = 0;
    curl_multi_perform(s->multi, &running);
    if (auto rc = s->finished()) {
      if (*rc != CURLE_OK) {
        if (*rc == CURLE_COULDNT_CONNECT) {
          // The one place that words "cannot reach dockerd": the Engine.
          Engine probe(socketPath, kOpenTimeout);
          if (auto ok = probe.connect(); !ok) return std::unexpected(ok.error());
        }
        return fail(ErrorKind::kRetryable,
                    "cannot open the Docker event stream at " + socketPath + ": " +
                        (s->errbuf[0] ? std::string(s->errbuf) : curl_easy_strerror(*rc)));
      }
      curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &s->status);
      std::string message = s->pending;
      auto j = Json::parse(message, nullptr, false);
      if (j.is_object() && j.contains("message") && j["message"].is_string())
        message = j["message"].get<std::string>();
      return fail(s->status >= 500 ? ErrorKind::kRetryable : ErrorKind::kTerminal,
                  "cannot open the Docker event stream at " + socketPath + ": " +
                      (s->status == 200 ? std::string("it ended at once") : message));
    }
    if (s->headersDone && s->status == 200) break;
    if (std::chrono::steady_clock::now() > deadline)
      return fail(ErrorKind::kRetryable, "cannot open the Docker event stream at " + socketPath +
                                             ": no answer within " +
                                             std::to_string(kOpenTimeout.count()) + " s");
    curl_multi_poll(s->multi, nullptr, 0, 100, nullptr);
  }
  State* raw = s.get();
  raw->thread = std::thread([raw] { raw->run(); });
  state_ = std::move(s);
  return {};
}

int EventStream::fd() const { return state_ ? state_->efd : -1; }

Result<std::vector<Json>> EventStream::drain() {
  if (!state_) return fail(ErrorKind::kRetryable, "the Docker event stream is not open");
  uint64_t count = 0;
  (void)::read(state_->efd, &count, sizeof count);
  std::lock_guard lock(state_->mutex);
  if (state_->ended) {
    // What came before the end is not worth much: the caller's pass after reopening sees it all.
    state_->notify();  // stays readable until closed
    return fail(ErrorKind::kRetryable, state_->endReason);
  }
  std::vector<Json> out;
  out.swap(state_->queue);
  return out;
}

void EventStream::close() { state_.reset(); }

}  // namespace nodeplane::docker
