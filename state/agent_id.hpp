// The agent instance id: a random id kept in the state directory (DIR/agent-id), made once when
// the store is first opened for writing. Ownership marks carry it, so two agents with two state
// directories on one host tell their objects apart.
#pragma once

#include <filesystem>
#include <string>

#include "nodeplane/error.hpp"

namespace nodeplane::state::detail {

inline constexpr const char* kAgentIdFile = "agent-id";

// The id kept in `dir`; when there is none, `create` makes one ("" when not creating). Two
// processes creating at once agree: the file is linked into place only if absent, and whoever
// loses reads the winner's.
Result<std::string> agentId(const std::filesystem::path& dir, bool create);

}  // namespace nodeplane::state::detail
