// journal.jsonl: one JSON record per line, appended during an apply.
//   {"seq":3,"action":"delete","kind":"Vxlan","name":"vx100","plugin":"net","undo":{...}}
//   {"undoOf":3,"undo":{...}}   an undo record the step saved while it ran (replaces the last)
//   {"done":3}
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "store.hpp"

namespace nodeplane::state::detail {

// One line, with its newline. Fails only on strings that are not UTF-8.
Result<std::string> encodeIntent(const JournalEntry& e);
std::string encodeDone(std::uint64_t seq);
Result<std::string> encodeUndo(std::uint64_t seq, const Json& undo);

struct JournalScan {
  std::vector<Store::Pending> pending;  // intents in file order, with whether done
  std::uint64_t maxSeq = 0;
  // Bytes worth keeping: a torn last line (crash mid-append) starts at goodSize. When the last
  // record is complete but lacks its newline, needsNewline says so.
  std::size_t goodSize = 0;
  bool needsNewline = false;
};

// A garbled last line is ignored; a garbled line before it is an error naming `path` and the line.
Result<JournalScan> scanJournal(std::string_view text, const std::filesystem::path& path);

}  // namespace nodeplane::state::detail
