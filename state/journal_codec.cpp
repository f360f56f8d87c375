#include "journal_codec.hpp"

#include <map>
#include <optional>
#include <variant>

#include "json_fields.hpp"

namespace nodeplane::state::detail {

namespace {

struct Done {
  std::uint64_t seq;
};
struct Undo {
  std::uint64_t seq;
  Json undo;
};
using Record = std::variant<JournalEntry, Done, Undo>;

// One line as a record, or the problem with it.
std::variant<Record, std::string> decodeLine(std::string_view line) {
  Json j;
  try {
    j = Json::parse(line);
  } catch (const std::exception&) {
    return std::string("not valid JSON");
  }
  try {
    FieldReader r;
    if (!r.object(j, "")) return r.problem();
    if (j.contains("done")) {
      r.onlyKeys(j, {"done"}, "");
      Done d{r.uint(j, "done", "")};
      if (!r.ok()) return r.problem();
      return Record(d);
    }
    if (j.contains("undoOf")) {
      r.onlyKeys(j, {"undoOf", "undo"}, "");
      Undo u{r.uint(j, "undoOf", ""), Json::object()};
      if (auto it = j.find("undo"); it != j.end()) u.undo = *it;
      if (!r.ok()) return r.problem();
      return Record(std::move(u));
    }
    r.onlyKeys(j, {"seq", "action", "kind", "name", "plugin", "undo", "deletionPolicy"}, "");
    JournalEntry e;
    e.seq = r.uint(j, "seq", "");
    e.action = r.str(j, "action", "", true);
    e.id = {r.str(j, "kind", "", true), r.str(j, "name", "", true)};
    e.plugin = r.str(j, "plugin", "");
    if (auto u = j.find("undo"); u != j.end()) e.undo = *u;
    if (j.contains("deletionPolicy")) {
      const auto policy = r.str(j, "deletionPolicy", "");
      if (policy == "Delete")
        e.deletionPolicy = DeletionPolicy::kDelete;
      else if (policy == "Orphan")
        e.deletionPolicy = DeletionPolicy::kOrphan;
      else if (r.ok())
        r.fail("deletionPolicy: expected \"Delete\" or \"Orphan\", found \"" + policy + "\"");
    }
    if (r.ok() && e.seq == 0) r.fail("seq: must be at least 1");
    if (!r.ok()) return r.problem();
    return Record(std::move(e));
  } catch (const std::exception& ex) {
    return std::string(ex.what());
  }
}

bool blank(std::string_view s) { return s.find_first_not_of(" \t\r") == std::string_view::npos; }

}  // namespace

Result<std::string> encodeIntent(const JournalEntry& e) {
  try {
    Json j = {{"seq", e.seq},       {"action", e.action},
              {"kind", e.id.kind},  {"name", e.id.name},
              {"plugin", e.plugin}, {"undo", e.undo.is_null() ? Json::object() : e.undo}};
    if (e.deletionPolicy != DeletionPolicy::kDefault)
      j["deletionPolicy"] = e.deletionPolicy == DeletionPolicy::kDelete ? "Delete" : "Orphan";
    return j.dump() + "\n";
  } catch (const std::exception& ex) {
    Error err;
    err.kind = ErrorKind::kTerminal;
    err.resource = e.id.str();
    err.message = std::string("cannot encode a journal entry: ") + ex.what();
    return std::unexpected(err);
  }
}

std::string encodeDone(std::uint64_t seq) { return "{\"done\":" + std::to_string(seq) + "}\n"; }

Result<std::string> encodeUndo(std::uint64_t seq, const Json& undo) {
  try {
    Json j = {{"undoOf", seq}, {"undo", undo}};
    return j.dump() + "\n";
  } catch (const std::exception& ex) {
    Error err;
    err.kind = ErrorKind::kTerminal;
    err.message = std::string("cannot encode an undo record: ") + ex.what();
    return std::unexpected(err);
  }
}

Result<JournalScan> scanJournal(std::string_view text, const std::filesystem::path& path) {
  JournalScan out;
  std::map<std::uint64_t, std::size_t> index;  // seq -> position in out.pending
  std::size_t pos = 0;
  int lineNo = 0;
  while (pos < text.size()) {
    ++lineNo;
    auto nl = text.find('\n', pos);
    const bool terminated = nl != std::string_view::npos;
    const std::size_t end = terminated ? nl : text.size();
    const std::string_view line = text.substr(pos, end - pos);
    const std::size_t next = terminated ? nl + 1 : text.size();
    const bool last = blank(text.substr(next));
    if (blank(line)) {
      if (terminated) out.goodSize = next;
      pos = next;
      continue;
    }
    auto decoded = decodeLine(line);
    if (auto* problem = std::get_if<std::string>(&decoded)) {
      // A crash mid-append leaves a partial (or zero-filled) last line: the step it announced
      // never started, so the line carries nothing to recover.
      if (last) break;
      Error e;
      e.kind = ErrorKind::kTerminal;
      e.message = "journal " + path.string() + " line " + std::to_string(lineNo) + ": " + *problem +
                  "; only the last line may be damaged by a crash";
      e.hint =
          "nodeplane cannot tell which steps of the interrupted apply ran; check the objects the "
          "journal names by hand, then move " +
          path.string() + " aside";
      return std::unexpected(e);
    }
    auto& rec = std::get<Record>(decoded);
    if (auto* entry = std::get_if<JournalEntry>(&rec)) {
      if (index.count(entry->seq)) {
        Error e;
        e.kind = ErrorKind::kTerminal;
        e.message = "journal " + path.string() + " line " + std::to_string(lineNo) + ": seq " +
                    std::to_string(entry->seq) + " appears twice";
        e.hint =
            "check the objects the journal names by hand, then move " + path.string() + " aside";
        return std::unexpected(e);
      }
      out.maxSeq = std::max(out.maxSeq, entry->seq);
      index[entry->seq] = out.pending.size();
      out.pending.push_back({std::move(*entry), false});
    } else if (auto* undo = std::get_if<Undo>(&rec)) {
      // The step's latest undo record; one for an unknown seq belongs to nothing.
      if (auto it = index.find(undo->seq); it != index.end())
        out.pending[it->second].entry.undo = std::move(undo->undo);
    } else {
      // A done record for an unknown seq marks nothing; it is harmless.
      auto seq = std::get<Done>(rec).seq;
      if (auto it = index.find(seq); it != index.end()) out.pending[it->second].done = true;
      out.maxSeq = std::max(out.maxSeq, seq);
    }
    out.goodSize = next;
    out.needsNewline = !terminated;
    pos = next;
  }
  return out;
}

}  // namespace nodeplane::state::detail
