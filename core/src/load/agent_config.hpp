// The agent config, /etc/nodeplane/agent.yaml: who this node is (hostname, labels) and how the
// agent behaves. Every other top-level key is the section of the plugin of that name (`net:`,
// `docker:` …): a mapping, checked against that plugin's configSchema() once plugins are loaded
// (plugin_config.hpp).
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "nodeplane/error.hpp"
#include "nodeplane/resource.hpp"

namespace nodeplane {

inline constexpr const char* kDefaultConfigPath = "/etc/nodeplane/agent.yaml";

struct AgentConfig {
  std::string hostname;  // empty: the kernel's hostname
  std::map<std::string, std::string> labels;
  std::chrono::seconds resync{60};
  std::chrono::milliseconds debounce{250};
  std::chrono::seconds lockTimeout{60};
  // `run` may prune everything it owns when the desired state becomes empty. Off: an emptied
  // directory is far more often a half-written file or a broken checkout than an intent.
  bool allowEmpty = false;
  std::optional<std::filesystem::path> stateDir;
  // Runtime files (sockets, pid files, what does not outlive a boot): HostContext::runDir.
  std::optional<std::filesystem::path> runDir;
  // systemd.bus: the systemd manager plugins use (HostContext::systemdBus); default "system".
  std::optional<std::string> systemdBus;
  std::optional<std::filesystem::path> pluginDir;
  Json raw = Json::object();  // the whole file
  // Plugin sections by plugin name (null for `net:` with nothing under it), as the desired-state
  // reader typed them, and where each of their fields was written ("net.x" -> file:line).
  std::map<std::string, Json> sections;
  std::map<std::string, SourceLocation> locations;
  SourceLocation where;  // the file (its first line)
};

// The agent config's own keys (not plugin sections).
const std::vector<std::string>& agentConfigKeys();

// `explicitPath`: the user named the file, so a missing file is an error; otherwise a missing
// default file means defaults. Unknown keys and wrong types are errors with file:line.
Result<AgentConfig> loadAgentConfig(const std::filesystem::path& path, bool explicitPath);
Result<AgentConfig> parseAgentConfig(const std::string& text, const std::string& fileName);

}  // namespace nodeplane
