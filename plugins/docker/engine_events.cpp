// STUB: replaced by the engine helper.
#include "engine_events.hpp"

namespace nodeplane::docker {

struct EventStream::State {};
EventStream::EventStream() = default;
EventStream::~EventStream() { close(); }
Result<void> EventStream::open(const std::string&, const std::string&, const Json&) {
  return fail(ErrorKind::kRetryable, "not implemented");
}
int EventStream::fd() const { return -1; }
Result<std::vector<Json>> EventStream::drain() { return std::vector<Json>{}; }
void EventStream::close() {}

}  // namespace nodeplane::docker
