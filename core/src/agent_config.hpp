// The agent config, /etc/nodeplane/agent.yaml: who this node is (hostname, labels) and how the
// agent behaves. Plugin sections (vfio, docker, qemu, vgpu, net) are passed to plugins as JSON.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

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
  std::optional<std::filesystem::path> pluginDir;
  Json raw = Json::object();  // the whole file
};

// `explicitPath`: the user named the file, so a missing file is an error; otherwise a missing
// default file means defaults. Unknown keys and wrong types are errors with file:line.
Result<AgentConfig> loadAgentConfig(const std::filesystem::path& path, bool explicitPath);
Result<AgentConfig> parseAgentConfig(const std::string& text, const std::string& fileName);

}  // namespace nodeplane
