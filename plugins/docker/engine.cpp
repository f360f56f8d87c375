// STUB: replaced by the engine helper.
#include "engine.hpp"

namespace nodeplane::docker {

Engine::Engine(std::string socketPath, std::chrono::milliseconds timeout)
    : socket_(std::move(socketPath)), timeout_(timeout) {}
Engine::~Engine() = default;
Result<void> Engine::connect() { return fail(ErrorKind::kRetryable, "not implemented"); }
Result<EngineResponse> Engine::request(std::string_view, std::string_view, const Json*,
                                       std::chrono::milliseconds) {
  return fail(ErrorKind::kRetryable, "not implemented");
}
Result<Json> Engine::call(std::string_view, std::string_view, const Json*,
                          std::chrono::milliseconds) {
  return fail(ErrorKind::kRetryable, "not implemented");
}
Result<void> Engine::stream(std::string_view, std::string_view,
                            const std::function<bool(const Json&)>&, std::chrono::milliseconds) {
  return fail(ErrorKind::kRetryable, "not implemented");
}
std::string urlEncode(std::string_view s) { return std::string(s); }

}  // namespace nodeplane::docker
