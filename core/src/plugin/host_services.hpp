// The core's side of HostServices: one object per loaded plugin (its agent-config section), over
// state shared by all of them (the per-pass inventory snapshot, the systemd bus connection).
#pragma once

#include <atomic>
#include <boost/dll/shared_library.hpp>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "nodeplane/plugin.hpp"

namespace nodeplane {

// What every plugin's services share: the roots, the agent id, the inventory snapshot of the
// current pass, the one systemd bus connection.
class SharedHostServices {
 public:
  explicit SharedHostServices(HostContext host);
  ~SharedHostServices();
  const HostContext& context() const { return host_; }
  std::string agentId() const;
  void setAgentId(std::string id);
  // Forgets the inventory snapshot: the next pciFunctions()/gpus() reads sysfs again. The engine
  // calls it at the start of every observation (once per pass).
  void newPass();
  Result<std::vector<host::PciFunction>> pciFunctions();
  Result<std::vector<host::Gpu>> gpus();
  // See HostServices::writeSysfs. Writes that did not return within their timeout are left to
  // finish on their own threads; while kMaxHungWrites of them are still blocked, no new write
  // is started (a kRetryable error says so).
  Result<void> writeSysfs(const std::filesystem::path& file, std::string_view value,
                          std::chrono::milliseconds timeout);
  static constexpr int kMaxHungWrites = 8;
  // Opened on first use (HostContext::systemdBus: "system", "user" or a D-Bus address such as
  // "unix:path=/run/x/bus"); a failed attempt is not kept, the next call tries again. No event
  // loop runs on it: calls through it are synchronous.
  Result<sdbus::IConnection*> systemdBus();
  // See HostServices::loadRuntime: `file` in `dir`, its factory handed `services`; the library
  // stays loaded as long as this object.
  Result<std::unique_ptr<Plugin>> loadRuntime(const std::filesystem::path& dir,
                                              const std::string& file, HostServices& services);

 private:
  std::mutex runtimesMu_;
  std::vector<boost::dll::shared_library> runtimes_;
  HostContext host_;
  mutable std::mutex mu_;
  std::string agentId_;
  std::optional<Result<std::vector<host::PciFunction>>> functions_;
  std::optional<Result<std::vector<host::Gpu>>> gpus_;
  std::mutex busMu_;
  std::unique_ptr<sdbus::IConnection> bus_;
  std::shared_ptr<std::atomic<int>> hungWrites_ = std::make_shared<std::atomic<int>>(0);
};

// Loads <dir>/<file> as a plugin runtime, with the checks of a plugin (plugin_host.cpp); the
// library is appended to `keep`.
Result<std::unique_ptr<Plugin>> loadRuntimeLibrary(const std::filesystem::path& dir,
                                                   const std::string& file, HostServices& services,
                                                   std::vector<boost::dll::shared_library>& keep);

class PluginServices final : public HostServices {
 public:
  explicit PluginServices(std::shared_ptr<SharedHostServices> shared)
      : shared_(std::move(shared)) {}
  // The plugin's name is known once it is constructed: its section of HostContext::config, as
  // is (tests that build a HostContext by hand).
  void setSection(const std::string& name);
  // The section after it was checked against the plugin's configSchema() (plugin_config.hpp).
  void setConfig(Json section) { config_ = std::move(section); }
  // Where loadRuntime() looks: <the plugin's directory>/runtime.
  void setRuntimeDir(std::filesystem::path dir) { runtimeDir_ = std::move(dir); }

  const HostContext& context() const override { return shared_->context(); }
  const Json& config() const override { return config_; }
  std::string agentId() const override { return shared_->agentId(); }
  Result<std::vector<host::PciFunction>> pciFunctions() override { return shared_->pciFunctions(); }
  Result<std::vector<host::Gpu>> gpus() override { return shared_->gpus(); }
  Result<void> writeSysfs(const std::filesystem::path& file, std::string_view value,
                          std::chrono::milliseconds timeout) override {
    return shared_->writeSysfs(file, value, timeout);
  }
  Result<sdbus::IConnection*> systemdBus() override { return shared_->systemdBus(); }
  Result<std::unique_ptr<Plugin>> loadRuntime(const std::string& file) override {
    return shared_->loadRuntime(runtimeDir_, file, *this);
  }

 private:
  std::shared_ptr<SharedHostServices> shared_;
  std::filesystem::path runtimeDir_;
  Json config_ = Json::object();
};

}  // namespace nodeplane
