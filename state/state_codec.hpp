// state.json: {"version":1,"owned":[...],"results":[...]}, read strictly.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <string_view>

#include "store.hpp"

namespace nodeplane::state::detail {

inline constexpr int kStateVersion = 1;

struct StateData {
  std::map<ResourceId, OwnedObject> owned;
  std::map<ResourceId, ResourceResult> results;
};

// Pretty-printed, keys sorted, one trailing newline. Fails only on strings that are not UTF-8.
Result<std::string> encodeState(const std::map<ResourceId, OwnedObject>& owned,
                                const std::map<ResourceId, ResourceResult>& results);

// `path` is only named in the error, which also says the file was not taken as empty and how to
// recover.
Result<StateData> decodeState(std::string_view text, const std::filesystem::path& path);

}  // namespace nodeplane::state::detail
