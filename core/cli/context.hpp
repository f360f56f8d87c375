// What every command needs: the agent config, the host context, the plugins, and how to print.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "agent_config.hpp"
#include "engine.hpp"
#include "plugin_host.hpp"

namespace nodeplane::cli {

struct GlobalOptions {
  std::string config;
  std::string stateDir;
  std::string pluginDir;
  std::string sysfsRoot;
  std::string procRoot;
  std::string devRoot;
  std::string logLevel = "warn";
  std::string output = "text";
};

class Context {
 public:
  // Reads the agent config and builds the host context. Plugins load lazily.
  static Result<Context> make(const GlobalOptions& g);

  bool json() const { return json_; }
  const AgentConfig& config() const { return config_; }
  const HostContext& host() const { return host_; }
  const std::filesystem::path& stateDir() const { return stateDir_; }
  const std::filesystem::path& pluginDir() const { return pluginDir_; }

  // Loads the plugins once (none is started); warns on stderr about refused ones. Fails with every
  // problem of the plugins' agent-config sections (plugin_config.hpp).
  std::expected<PluginHost*, std::vector<Error>> plugins();
  std::expected<Engine*, std::vector<Error>> engine();

 private:
  bool json_ = false;
  AgentConfig config_;
  HostContext host_;
  std::filesystem::path stateDir_;
  std::filesystem::path pluginDir_;
  std::optional<PluginHost> plugins_;
  std::vector<Error> pluginErrors_;
  std::optional<Engine> engine_;
};

// Exit codes.
inline constexpr int kOk = 0;
inline constexpr int kError = 1;
inline constexpr int kChangesPending = 2;

// Prints errors (text: one per line on stderr) and returns kError.
int reportErrors(const Context& ctx, const std::vector<Error>& errors, const std::string& what);
void printJson(const Json& j);

int cmdValidate(Context& ctx, const std::vector<std::string>& paths);
int cmdDiff(Context& ctx, const std::vector<std::string>& paths, bool prune);
int cmdApply(Context& ctx, const std::vector<std::string>& paths, bool prune,
             const std::string& planFile, bool allowEmpty);
int cmdRun(Context& ctx, const std::vector<std::string>& paths, bool prune);
int cmdCheck(Context& ctx);
int cmdStatus(Context& ctx);
int cmdExport(Context& ctx, const std::string& kind);
int cmdPlugins(Context& ctx);

}  // namespace nodeplane::cli
