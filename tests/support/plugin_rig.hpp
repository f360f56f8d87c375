// Calling a plugin directly in a test, without the engine: the core's own HostServices over a
// HostContext, and a plain ApplyContext (no deadline, undo records kept in memory).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "host_services.hpp"
#include "nodeplane/plugin.hpp"

namespace nodeplane::test {

class TestApplyContext final : public ApplyContext {
 public:
  explicit TestApplyContext(HostServices& host) : host_(host) {}
  std::stop_token stopToken() const override { return stop_.get_token(); }
  std::chrono::steady_clock::time_point deadline() const override {
    return std::chrono::steady_clock::time_point::max();
  }
  void progress(std::string_view message) override { messages.emplace_back(message); }
  Result<void> recordUndo(const Json& undo) override {
    undo_ = undo;
    return {};
  }
  const Json& undo() const override { return undo_; }
  HostServices& host() override { return host_; }

  std::stop_source stop_;
  std::vector<std::string> messages;
  Json undo_ = Json::object();

 private:
  HostServices& host_;
};

// The services a plugin is constructed with, and apply() that returns a Result as v1 did.
struct PluginRig {
  explicit PluginRig(HostContext host = {}, const std::string& section = "net")
      : shared(std::make_shared<SharedHostServices>(std::move(host))), services(shared) {
    services.setSection(section);
    shared->setAgentId(kAgentId);  // what opening a state store does
  }
  static constexpr const char* kAgentId = "00000000000000a1";
  template <class P>
  Result<void> apply(P& plugin, const Change& change) {
    TestApplyContext context(services);
    Outcome o = plugin.apply(change, context);
    if (!o.ok()) return std::unexpected(o.error);
    return {};
  }

  std::shared_ptr<SharedHostServices> shared;
  PluginServices services;
};

}  // namespace nodeplane::test
