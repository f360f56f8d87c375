#include "store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

#include "agent_id.hpp"
#include "file_io.hpp"
#include "journal_codec.hpp"
#include "state_codec.hpp"

namespace nodeplane::state {

namespace {

namespace fs = std::filesystem;
using detail::sysError;

constexpr const char* kStateFile = "state.json";
constexpr const char* kBackupFile = "state.json.bak";
constexpr const char* kJournalFile = "journal.jsonl";

// Makes dir/state.json.bak the file now at dir/state.json, without a moment where state.json is
// missing: a hard link under a temporary name renamed over the backup; a copy where the
// filesystem has no hard links.
Result<void> keepBackup(const fs::path& dir) {
  const fs::path current = dir / kStateFile;
  const fs::path tmp =
      dir / (std::string(".") + kBackupFile + ".tmp-" + std::to_string(::getpid()));
  ::unlink(tmp.c_str());
  if (::link(current.c_str(), tmp.c_str()) == 0) {
    if (::rename(tmp.c_str(), (dir / kBackupFile).c_str()) != 0) {
      int err = errno;
      ::unlink(tmp.c_str());
      return std::unexpected(sysError("rename " + tmp.string() + " to", dir / kBackupFile, err));
    }
    return {};
  }
  if (errno == ENOENT) return {};  // nothing to keep yet
  if (errno != EPERM && errno != EXDEV && errno != EMLINK && errno != EOPNOTSUPP) {
    return std::unexpected(sysError("link " + current.string() + " to", tmp, errno));
  }
  auto bytes = detail::readFile(current);
  if (!bytes) return std::unexpected(bytes.error());
  if (!*bytes) return {};
  return detail::replaceFile(dir, kBackupFile, **bytes);
}

// state.json absent while state.json.bak is there. A commit never leaves that pair (the backup is
// a hard link or copy made while state.json still exists, and the new file is renamed over it), so
// the file was lost. The backup is one commit older and may list objects released since, so it is
// not taken silently either: a person decides.
Error lostStateFile(const fs::path& dir) {
  const fs::path statePath = dir / kStateFile;
  const fs::path bak = dir / kBackupFile;
  Error e;
  e.kind = ErrorKind::kTerminal;
  e.message =
      "state file " + statePath.string() + " is missing but its backup " + bak.string() +
      " exists; it was not treated as empty, since nodeplane would then forget what it owns";
  e.hint =
      "if state.json was lost, restore the backup (one commit older: review `nodeplane "
      "status` and `nodeplane diff` before the next apply): cp -p " +
      bak.string() + " " + statePath.string() + "; to start over on purpose, remove " +
      bak.string() +
      ", knowing that nodeplane will then recognise its objects only by the marks on them";
  return e;
}

}  // namespace

Result<Store> Store::open(const fs::path& stateDir) {
  if (auto d = detail::ensureDir(stateDir); !d) return std::unexpected(d.error());
  return load(stateDir, false);
}

Result<Store> Store::openReadOnly(const fs::path& stateDir) {
  struct stat st;
  if (::stat(stateDir.c_str(), &st) != 0) {
    if (errno != ENOENT) return std::unexpected(sysError("stat", stateDir, errno));
    Store s;  // nothing recorded yet
    s.dir_ = stateDir;
    s.readOnly_ = true;
    return s;
  }
  if (!S_ISDIR(st.st_mode)) {
    Error e;
    e.message = "state directory " + stateDir.string() + " exists and is not a directory";
    return std::unexpected(e);
  }
  return load(stateDir, true);
}

Result<Store> Store::load(const fs::path& stateDir, bool readOnly) {
  Store s;
  s.dir_ = stateDir;
  s.readOnly_ = readOnly;

  const fs::path statePath = stateDir / kStateFile;
  auto text = detail::readFile(statePath);
  if (!text) return std::unexpected(text.error());
  if (*text) {
    auto data = detail::decodeState(**text, statePath);
    if (!data) return std::unexpected(data.error());
    s.owned_ = std::move(data->owned);
    s.results_ = std::move(data->results);
    s.lastWritten_ = std::move(**text);
  } else {
    struct stat st;
    if (::lstat((stateDir / kBackupFile).c_str(), &st) == 0)
      return std::unexpected(lostStateFile(stateDir));
    if (errno != ENOENT) return std::unexpected(sysError("stat", stateDir / kBackupFile, errno));
  }

  auto id = detail::agentId(stateDir, !readOnly);
  if (!id) return std::unexpected(id.error());
  s.agentId_ = std::move(*id);

  const fs::path journalPath = stateDir / kJournalFile;
  auto journal = detail::readFile(journalPath);
  if (!journal) return std::unexpected(journal.error());
  if (*journal) {
    auto scan = detail::scanJournal(**journal, journalPath);
    if (!scan) return std::unexpected(scan.error());
    s.pending_ = std::move(scan->pending);
    s.nextSeq_ = scan->maxSeq + 1;
  }
  return s;
}

Result<void> Store::writable() const {
  if (!readOnly_) return {};
  return fail(ErrorKind::kTerminal,
              "the state store " + dir_.string() + " was opened read-only; nothing was written");
}

void Store::setOwned(OwnedObject o) {
  auto it = owned_.find(o.id);
  if (o.since.empty()) o.since = it != owned_.end() ? it->second.since : nowRfc3339();
  if (o.undo.is_null()) o.undo = Json::object();
  auto id = o.id;
  owned_.insert_or_assign(std::move(id), std::move(o));
}

void Store::forget(const ResourceId& id) { owned_.erase(id); }

void Store::setResult(ResourceResult r) {
  auto it = results_.find(r.id);
  if (it != results_.end() && it->second.outcome == r.outcome && it->second.message == r.message)
    r.at = it->second.at;  // the same result again: when it first became this is what counts
  if (r.at.empty()) r.at = nowRfc3339();
  auto id = r.id;
  results_.insert_or_assign(std::move(id), std::move(r));
}

void Store::clearResult(const ResourceId& id) { results_.erase(id); }

Result<void> Store::commit() {
  if (auto w = writable(); !w) return w;
  auto text = detail::encodeState(owned_, results_);
  if (!text) return std::unexpected(text.error());
  if (lastWritten_ && *lastWritten_ == *text) return {};

  // Written first, so a failure here leaves state.json and its backup as they were.
  if (auto b = keepBackup(dir_); !b) return b;
  if (auto w = detail::replaceFile(dir_, kStateFile, *text); !w) return w;
  if (auto d = detail::fsyncDir(dir_); !d) return d;
  lastWritten_ = std::move(*text);
  return {};
}

Result<void> Store::prepareJournalAppend() {
  if (auto w = writable(); !w) return w;
  if (journalChecked_) return {};
  const fs::path path = dir_ / kJournalFile;
  auto text = detail::readFile(path);
  if (!text) return std::unexpected(text.error());
  if (*text) {
    auto scan = detail::scanJournal(**text, path);
    if (!scan) return std::unexpected(scan.error());
    if (scan->goodSize < (*text)->size()) {
      // A torn last line: appending after it would bury it mid-file, where it is an error.
      auto fd = detail::openFile(path, O_WRONLY | O_NOFOLLOW);
      if (!fd) return std::unexpected(fd.error());
      if (::ftruncate(fd->get(), static_cast<off_t>(scan->goodSize)) != 0) {
        return std::unexpected(sysError("truncate", path, errno));
      }
    } else if (scan->needsNewline) {
      if (auto a = appendJournal("\n", false); !a) return a;
    }
  }
  journalChecked_ = true;
  return {};
}

Result<void> Store::appendJournal(const std::string& lines, bool sync) {
  const fs::path path = dir_ / kJournalFile;
  struct stat st;
  const bool created = ::stat(path.c_str(), &st) != 0 && errno == ENOENT;
  auto fd = detail::openFile(path, O_WRONLY | O_APPEND | O_NOFOLLOW | (created ? O_CREAT : 0));
  if (!fd) return std::unexpected(fd.error());
  if (created && ::fchmod(fd->get(), 0600) != 0) {
    return std::unexpected(sysError("chmod", path, errno));
  }
  if (auto w = detail::writeAll(fd->get(), lines, path); !w) return w;
  if (sync) {
    if (::fdatasync(fd->get()) != 0) return std::unexpected(sysError("fdatasync", path, errno));
    // A new file's directory entry must reach the disk too.
    if (created) {
      if (auto d = detail::fsyncDir(dir_); !d) return d;
    }
  }
  return fd->close(path);
}

Result<void> Store::journalIntent(const std::vector<JournalEntry>& entries) {
  if (entries.empty()) return {};
  std::string lines;
  for (const auto& e : entries) {
    if (e.seq == 0) {
      Error err;
      err.kind = ErrorKind::kInvalidInput;
      err.resource = e.id.str();
      err.message = "journal entry without a seq (take one from Store::nextSeq())";
      return std::unexpected(err);
    }
    auto line = detail::encodeIntent(e);
    if (!line) return std::unexpected(line.error());
    lines += *line;
    if (e.seq >= nextSeq_) nextSeq_ = e.seq + 1;
  }
  if (auto p = prepareJournalAppend(); !p) return p;
  return appendJournal(lines, true);
}

Result<void> Store::journalDone(std::uint64_t seq) {
  if (auto p = prepareJournalAppend(); !p) return p;
  return appendJournal(detail::encodeDone(seq), false);
}

Result<void> Store::journalUndo(std::uint64_t seq, const Json& undo) {
  auto line = detail::encodeUndo(seq, undo);
  if (!line) return std::unexpected(line.error());
  std::lock_guard guard(*journalMu_);
  if (auto p = prepareJournalAppend(); !p) return p;
  return appendJournal(*line, true);
}

Result<void> Store::clearJournal() {
  if (auto w = writable(); !w) return w;
  const fs::path path = dir_ / kJournalFile;
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno != ENOENT) return std::unexpected(sysError("stat", path, errno));
    pending_.clear();
    return {};
  }
  auto fd = detail::openFile(path, O_WRONLY | O_NOFOLLOW);
  if (!fd) return std::unexpected(fd.error());
  if (::fstat(fd->get(), &st) != 0) return std::unexpected(sysError("stat", path, errno));
  if (st.st_size != 0) {  // an empty journal is left alone: no write, no sync on a quiet pass
    if (::ftruncate(fd->get(), 0) != 0) return std::unexpected(sysError("truncate", path, errno));
    if (::fsync(fd->get()) != 0) return std::unexpected(sysError("fsync", path, errno));
  }
  if (auto c = fd->close(path); !c) return c;
  pending_.clear();
  journalChecked_ = true;
  return {};
}

std::string nowRfc3339() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace nodeplane::state
