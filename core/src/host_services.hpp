// The core's side of HostServices: one object per loaded plugin (its agent-config section), over
// state shared by all of them (the per-pass inventory snapshot).
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "nodeplane/plugin.hpp"

namespace nodeplane {

// What every plugin's services share: the roots, the agent id, the inventory snapshot of the
// current pass.
class SharedHostServices {
 public:
  explicit SharedHostServices(HostContext host) : host_(std::move(host)) {}
  const HostContext& context() const { return host_; }
  std::string agentId() const;
  void setAgentId(std::string id);
  // Forgets the inventory snapshot: the next pciFunctions()/gpus() reads sysfs again.
  void newPass();
  Result<std::vector<host::PciFunction>> pciFunctions();
  Result<std::vector<host::Gpu>> gpus();

 private:
  HostContext host_;
  mutable std::mutex mu_;
  std::string agentId_;
  std::optional<Result<std::vector<host::PciFunction>>> functions_;
  std::optional<Result<std::vector<host::Gpu>>> gpus_;
};

class PluginServices final : public HostServices {
 public:
  explicit PluginServices(std::shared_ptr<SharedHostServices> shared)
      : shared_(std::move(shared)) {}
  // The plugin's name is known once it is constructed: its section of the agent config.
  void setSection(const std::string& name);

  const HostContext& context() const override { return shared_->context(); }
  const Json& config() const override { return config_; }
  std::string agentId() const override { return shared_->agentId(); }
  Result<std::vector<host::PciFunction>> pciFunctions() override { return shared_->pciFunctions(); }
  Result<std::vector<host::Gpu>> gpus() override { return shared_->gpus(); }
  Result<void> writeSysfs(const std::filesystem::path& file, std::string_view value,
                          std::chrono::milliseconds timeout) override;
  Result<sdbus::IConnection*> systemdBus() override;

 private:
  std::shared_ptr<SharedHostServices> shared_;
  Json config_ = Json::object();
};

}  // namespace nodeplane
