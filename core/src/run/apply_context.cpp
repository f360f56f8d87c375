#include "apply_context.hpp"

#include <spdlog/spdlog.h>

#include "nodeplane/text.hpp"

namespace nodeplane {

StepContext::StepContext(HostServices& host, std::stop_token stop,
                         std::chrono::milliseconds timeout, ResourceId id, Json undo,
                         state::Store* store, std::uint64_t journalSeq, StepProgress onProgress)
    : host_(host),
      stop_(std::move(stop)),
      deadline_(std::chrono::steady_clock::now() + timeout),
      id_(std::move(id)),
      undo_(undo.is_null() ? Json::object() : std::move(undo)),
      store_(store),
      seq_(journalSeq),
      onProgress_(std::move(onProgress)) {}

void StepContext::progress(std::string_view message) {
  spdlog::info("{}: {}", id_.str(), message);
  if (onProgress_) onProgress_(id_, message);
}

Result<void> StepContext::recordUndo(const Json& undo) {
  if (!store_ || seq_ == 0)
    return fail(ErrorKind::kTerminal,
                id_.str() + ": no journal entry to keep an undo record in; do not make the change");
  if (auto ok = store_->journalUndo(seq_, undo); !ok) {
    Error e = ok.error();
    e.resource = id_.str();
    e.message = "cannot journal the undo record: " + e.message;
    return std::unexpected(e);
  }
  recorded_ = undo;
  return {};
}

std::chrono::milliseconds stepTimeout(const KindSchema* schema) {
  if (schema && schema->verify.timeout.count() > 0) return schema->verify.timeout;
  return kDefaultStepTimeout;
}

}  // namespace nodeplane
