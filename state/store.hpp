// The state store: what nodeplane owns, what must be undone later, the last result per resource,
// and a journal of intent so a crash in the middle of an apply is detected at the next start.
//
// Files under the state directory (mode 0700 dir, 0600 files):
//   state.json    ownership + results; written atomically (temp, fsync, rename, fsync dir)
//   journal.jsonl intent records of the apply in progress; empty or absent when none is
//   lock          flock(2) target; held for the whole of an apply / a daemon's life
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
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
};

struct ResourceResult {
  ResourceId id;
  std::string outcome;  // "in-sync", "created", "updated", "replaced", "deleted", "failed", "skipped", "conflict"
  std::string message;
  std::string at;  // RFC 3339 UTC
};

struct JournalEntry {
  std::uint64_t seq = 0;
  std::string action;  // "create", "update", "replace", "delete", "adopt"
  ResourceId id;
  std::string plugin;
  Json undo = Json::object();
};

// An exclusive flock on DIR/lock. Movable; released by the destructor.
class Lock {
 public:
  // wait == nullopt: fail at once if held; else wait at most that long. The error says who
  // holds it (the pid written into the lock file) and what to do.
  static Result<Lock> acquire(const std::filesystem::path& stateDir,
                              std::optional<std::chrono::milliseconds> wait);
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
  // wrong; it is never treated as "owns nothing".
  static Result<Store> open(const std::filesystem::path& stateDir);

  const std::map<ResourceId, OwnedObject>& owned() const { return owned_; }
  bool owns(const ResourceId& id) const { return owned_.count(id) != 0; }
  void setOwned(OwnedObject o);
  void forget(const ResourceId& id);

  const std::map<ResourceId, ResourceResult>& results() const { return results_; }
  void setResult(ResourceResult r);
  void clearResult(const ResourceId& id);

  // Writes state.json atomically.
  Result<void> commit();

  // Journal. Records intent (fsync'd) before disruptive steps; one call may carry many entries
  // (one fsync for a whole plan). markDone() records that a step finished (no fsync needed).
  Result<void> journalIntent(const std::vector<JournalEntry>& entries);
  Result<void> journalDone(std::uint64_t seq);
  // Entries left by an apply that did not finish (read at open()), each with whether it was
  // recorded done. A truncated last line (crash mid-write) is ignored.
  struct Pending {
    JournalEntry entry;
    bool done = false;
  };
  const std::vector<Pending>& pending() const { return pending_; }
  // Empties the journal (after the state that reflects it has been committed).
  Result<void> clearJournal();

  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
  std::map<ResourceId, OwnedObject> owned_;
  std::map<ResourceId, ResourceResult> results_;
  std::vector<Pending> pending_;
  std::uint64_t nextSeq_ = 1;

 public:
  std::uint64_t nextSeq() { return nextSeq_++; }
};

std::string nowRfc3339();

}  // namespace nodeplane::state
