// The state store: what nodeplane owns, what must be undone later, the last result per resource,
// and a journal of intent so a crash in the middle of an apply is detected at the next start.
//
// Files under the state directory (mode 0700 dir, 0600 files):
//   state.json    ownership + results; written atomically (temp, fsync, rename, fsync dir)
//   journal.jsonl intent records of the apply in progress; empty or absent when none is
//   agent-id      this agent's id (16 hex digits), made once; ownership marks carry it
//   lock          flock(2) target; held for the whole of an `apply` and for each pass of the
//                 daemon (see Lock)
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "nodeplane/error.hpp"
#include "nodeplane/resource.hpp"

namespace nodeplane::state {

struct OwnedObject {
  ResourceId id;
  std::string plugin;
  std::optional<ResourceId> owner;  // parent resource for expanded children
  Json undo = Json::object();       // what to restore when it is deleted (e.g. original driver)
  std::string since;                // RFC 3339 UTC time it became ours
  // Taken over (metadata.adopt) rather than created: by default released, not deleted, when its
  // resource leaves the desired state.
  bool adopted = false;
  // metadata.deletionPolicy as last applied: the file is gone when the prune happens.
  DeletionPolicy deletionPolicy = DeletionPolicy::kDefault;
  // What a prune does: kDelete or kOrphan (kDefault resolved by `adopted`).
  DeletionPolicy pruneAs() const {
    if (deletionPolicy != DeletionPolicy::kDefault) return deletionPolicy;
    return adopted ? DeletionPolicy::kOrphan : DeletionPolicy::kDelete;
  }
  // metadata.dependsOn and what expand() set: it is deleted before these.
  std::vector<ResourceId> dependsOn;
};

struct ResourceResult {
  ResourceId id;
  std::string outcome;  // "in-sync", "created", "updated", "replaced", "deleted", "failed",
                        // "skipped", "conflict"
  std::string message;
  std::string at;  // RFC 3339 UTC
};

struct JournalEntry {
  std::uint64_t seq = 0;
  std::string action;  // "create", "update", "replace", "delete", "adopt"
  ResourceId id;
  std::string plugin;
  Json undo = Json::object();
  // metadata.deletionPolicy of the step's resource: recovery records it with the object.
  DeletionPolicy deletionPolicy = DeletionPolicy::kDefault;
};

// An exclusive flock on DIR/lock (the directory is created 0700 if missing), held from acquire()
// to the destructor. Only one holder at a time: after flock succeeds the path is checked to
// still name the locked file (someone may have removed or replaced it while this process waited);
// if it does not, the lock is taken again on the file now there. The holder's pid is written into
// the file (and cleared on release) so a waiter can say who holds it. Movable.
class Lock {
 public:
  // Called once, before waiting, when the lock is found held: the holder's pid (0 if unknown),
  // so a caller can say "waiting for pid 1234".
  using OnBusy = std::function<void(long holderPid)>;

  // wait == nullopt: fail at once if held; else wait at most that long. The error
  // (ErrorKind::kRetryable) says who holds it (the pid written into the lock file) and what to do.
  // A state directory that cannot be written (read-only filesystem, no permission) is
  // ErrorKind::kTerminal at once, "state dir DIR is not writable: <reason>": waiting cannot help.
  // A stop requested on `stop` ends the wait at once (a daemon told to stop does not wait out
  // the lock timeout): ErrorKind::kRetryable, "stopped while waiting for ...".
  static Result<Lock> acquire(const std::filesystem::path& stateDir,
                              std::optional<std::chrono::milliseconds> wait,
                              const OnBusy& onBusy = {}, std::stop_token stop = {});
  Lock(Lock&&) noexcept;
  Lock& operator=(Lock&&) noexcept;
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;
  ~Lock();

 private:
  explicit Lock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

class Store {
 public:
  // Reads DIR/state.json (absent = empty store; the directory is created 0700 if missing) and
  // DIR/journal.jsonl. A corrupt or truncated state.json is an error naming the file and what is
  // wrong; it is never treated as "owns nothing". Neither is a missing state.json beside a
  // state.json.bak: commits never leave that pair, so the file was lost and the store refuses to
  // open until a person restores it (the backup is one commit old and may list objects that were
  // released since, so it is not taken silently).
  static Result<Store> open(const std::filesystem::path& stateDir);

  // The same reading for commands that only look (status, diff, export): the directory is never
  // created (absent = nothing recorded) and no write permission is needed. commit() and the
  // journal writers refuse on a store opened this way.
  static Result<Store> openReadOnly(const std::filesystem::path& stateDir);
  bool readOnly() const { return readOnly_; }

  const std::map<ResourceId, OwnedObject>& owned() const { return owned_; }
  bool owns(const ResourceId& id) const { return owned_.count(id) != 0; }
  void setOwned(OwnedObject o);
  void forget(const ResourceId& id);

  const std::map<ResourceId, ResourceResult>& results() const { return results_; }
  void setResult(ResourceResult r);
  void clearResult(const ResourceId& id);

  // setOwned() keeps the `since` of an object already owned when o.since is empty, and stamps
  // nowRfc3339() on a new one; setResult() stamps `at` when empty. A result with the outcome and
  // message already recorded keeps the recorded `at` (the time it first became that outcome), so
  // a pass that changes nothing leaves state.json as it is.

  // Writes state.json atomically; the file it replaces is kept as state.json.bak. Does nothing
  // when the content is what was last read or written.
  Result<void> commit();

  // Journal. Records intent (fsync'd) before disruptive steps; one call may carry many entries
  // (one fsync for a whole plan). journalDone() records that a step finished (no fsync needed).
  // Each entry's seq comes from nextSeq() (must be > 0).
  std::uint64_t nextSeq() { return nextSeq_++; }
  Result<void> journalIntent(const std::vector<JournalEntry>& entries);
  Result<void> journalDone(std::uint64_t seq);
  // An undo record of the running step `seq` (ApplyContext::recordUndo), fsync'd before it
  // returns: the step may do its disruptive part once this succeeded. The last one of a step
  // is what pending() shows after a crash. Safe to call from several threads at once.
  Result<void> journalUndo(std::uint64_t seq, const Json& undo);
  // Entries left by an apply that did not finish (read at open()), each with whether it was
  // recorded done. A truncated last line (crash mid-write) is ignored, and cut off before the
  // next append. A snapshot: journalIntent()/journalDone() do not change it; clearJournal() empties
  // it.
  struct Pending {
    JournalEntry entry;
    bool done = false;
  };
  const std::vector<Pending>& pending() const { return pending_; }
  // Empties the journal (after the state that reflects it has been committed); does not touch a
  // journal that is absent or already empty.
  Result<void> clearJournal();

  const std::filesystem::path& dir() const { return dir_; }
  // This agent's id (DIR/agent-id), made by the first open() of the directory and never changed.
  // "" from openReadOnly() of a directory that has none yet (nothing was ever applied from it).
  const std::string& agentId() const { return agentId_; }

 private:
  Store() = default;
  static Result<Store> load(const std::filesystem::path& stateDir, bool readOnly);
  Result<void> writable() const;
  Result<void> prepareJournalAppend();
  Result<void> appendJournal(const std::string& lines, bool sync);

  std::filesystem::path dir_;
  std::string agentId_;
  std::map<ResourceId, OwnedObject> owned_;
  std::map<ResourceId, ResourceResult> results_;
  std::vector<Pending> pending_;
  std::uint64_t nextSeq_ = 1;
  std::optional<std::string> lastWritten_;  // state.json bytes as last read or written
  bool journalChecked_ = false;             // torn tail cut off, ready to append
  bool readOnly_ = false;
  std::shared_ptr<std::mutex> journalMu_ = std::make_shared<std::mutex>();  // journalUndo()
};

// The current time, UTC, as "2026-11-21T01:02:03Z".
std::string nowRfc3339();

}  // namespace nodeplane::state
