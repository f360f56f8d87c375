// The VfioDevice ownership records: <stateDir>/vfio/<name>.json, one per VfioDevice nodeplane
// bound (QemuConfig::stateDir is <state dir>/qemu). A record is written before the first sysfs
// write and removed only when the function is back on its original driver: it is the ownership
// mark (the function itself cannot carry one) and what recover() reads after a crash.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "nodeplane/error.hpp"

namespace nodeplane::qemu {

struct VfioRecord {
  std::string name;            // the VfioDevice's name (the file's stem)
  std::string device;          // "0000:3b:00.1"
  std::string agent;           // the agent id that bound it
  std::string originalDriver;  // the driver it had before ("" when it had none)
  std::string uid;             // this binding's identity (random, made at create)
  // The move in flight: "bind" (to vfio-pci), "restore" (to originalDriver), "" when settled.
  std::string intent;
};

std::filesystem::path vfioRecordDir(const std::filesystem::path& stateDir);
// nullopt when there is none; an error when it cannot be read or parsed.
Result<std::optional<VfioRecord>> readVfioRecord(const std::filesystem::path& stateDir,
                                                 const std::string& name);
Result<std::vector<VfioRecord>> listVfioRecords(const std::filesystem::path& stateDir);
Result<void> writeVfioRecord(const std::filesystem::path& stateDir, const VfioRecord& record);
Result<void> removeVfioRecord(const std::filesystem::path& stateDir, const std::string& name);
// 16 random hex digits.
std::string newVfioUid();

}  // namespace nodeplane::qemu
