// The ApplyContext the engine hands a plugin for one step (apply) or one journal entry
// (recover): the engine's stop token, a deadline, progress reporting, and the step's undo record
// journaled in the state store.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>

#include "nodeplane/plugin.hpp"
#include "store.hpp"

namespace nodeplane {

// What a step reports while it runs: "Widget/w", "unbinding 0000:3b:00.1 from snd_hda_intel".
using StepProgress = std::function<void(const ResourceId&, std::string_view)>;

// The deadline of a step of `kind` when its schema sets no verify timeout.
inline constexpr std::chrono::minutes kDefaultStepTimeout{5};

class StepContext final : public ApplyContext {
 public:
  // `journalSeq`: the journal entry of this step (0: none, recordUndo refuses); `undo`: the
  // record kept for the object (handed back by undo()).
  StepContext(HostServices& host, std::stop_token stop, std::chrono::milliseconds timeout,
              ResourceId id, Json undo, state::Store* store, std::uint64_t journalSeq,
              StepProgress onProgress = {});

  std::stop_token stopToken() const override { return stop_; }
  std::chrono::steady_clock::time_point deadline() const override { return deadline_; }
  // Logged as "Widget/w: message", then passed to onProgress.
  void progress(std::string_view message) override;
  // Journaled (fsync'd) as the step's undo record before it returns.
  Result<void> recordUndo(const Json& undo) override;
  const Json& undo() const override { return undo_; }
  HostServices& host() override { return host_; }

  // The last undo record this step saved, if any: what the store keeps with the object.
  const std::optional<Json>& recorded() const { return recorded_; }

 private:
  HostServices& host_;
  std::stop_token stop_;
  std::chrono::steady_clock::time_point deadline_;
  ResourceId id_;
  Json undo_;
  state::Store* store_;
  std::uint64_t seq_;
  StepProgress onProgress_;
  std::optional<Json> recorded_;
};

// The step timeout of `schema`: its verify timeout, or kDefaultStepTimeout.
std::chrono::milliseconds stepTimeout(const KindSchema* schema);

}  // namespace nodeplane
