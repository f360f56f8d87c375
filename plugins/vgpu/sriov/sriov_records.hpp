// The SriovPf ownership records: <stateDir>/sriov/<name>.json (VgpuConfig::stateDir is
// <state dir>/vgpu), one per SriovPf nodeplane took. A PF cannot carry a mark, so the record is
// the mark; it also keeps the VF count the PF had before nodeplane took it (what a delete puts
// back). Written before the first write to the PF, removed last by a delete.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "nodeplane/error.hpp"

namespace nodeplane::vgpu {

struct SriovRecord {
  std::string name;        // the SriovPf's name (the file's stem)
  std::string device;      // the PF: "0000:5e:00.0"
  std::string agent;       // the agent id that took it
  int originalNumVfs = 0;  // sriov_numvfs before nodeplane took the PF (the undo)
  std::string uid;         // this taking's identity (random, made at create)
};

std::filesystem::path sriovRecordDir(const std::filesystem::path& stateDir);
// nullopt when there is none; an error when it cannot be read or parsed.
Result<std::optional<SriovRecord>> readSriovRecord(const std::filesystem::path& stateDir,
                                                   const std::string& name);
// Every record, sorted by name.
Result<std::vector<SriovRecord>> listSriovRecords(const std::filesystem::path& stateDir);
Result<void> writeSriovRecord(const std::filesystem::path& stateDir, const SriovRecord& record);
Result<void> removeSriovRecord(const std::filesystem::path& stateDir, const std::string& name);
// 16 random hex digits.
std::string newSriovUid();

}  // namespace nodeplane::vgpu
