// The plugin sections of the agent config, checked against each loaded plugin's configSchema().
#pragma once

#include <vector>

#include "agent_config.hpp"
#include "nodeplane/error.hpp"
#include "plugin_host.hpp"

namespace nodeplane {

// Checks every plugin's section (absent: an empty mapping) against its configSchema() with the
// checker desired files use, and hands the checked section to the plugin (HostServices::config()).
// Returns every problem, with file:line and the field path ("net.mtu"):
// - a field the schema does not declare, a wrong type, a value out of range;
// - any field for a plugin whose schema is empty (it takes no settings);
// - a section named after no loaded plugin (a misspelt or missing plugin would otherwise drop its
//   settings without a word). A section for a plugin whose library was refused is only a warning:
//   the refusal is reported already, and the other plugins' work should not stop for it.
// A plugin whose section has errors keeps an empty config().
std::vector<Error> configurePlugins(PluginHost& plugins, const AgentConfig& config);

}  // namespace nodeplane
