// The Vgpu records: host::vgpuRecordPath(<state dir>, name), one per Vgpu nodeplane made. The
// vGPU itself cannot carry a mark, so the record is the ownership mark (with the agent id), and
// the contract the qemu plugin reads (device, gpu, ready: nodeplane/host/vgpu_ref.hpp). Written
// before the first sysfs write (ready false) and settled (ready true) once the type or mdev reads
// back; removed last by a delete.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "nodeplane/error.hpp"
#include "nodeplane/resource.hpp"

namespace nodeplane::vgpu {

struct VgpuRecord {
  std::string name;            // the Vgpu's name (the file's stem)
  std::string agent;           // the agent id that made it
  std::string uid;             // this vGPU's identity (random, made at create)
  std::string model;           // "sr-iov" or "mdev"
  std::string gpu;             // the PF address
  std::string slot;            // the VF (or, mdev on a PF, the PF) address
  std::string device;          // absolute sysfs dir: the VF, or /sys/bus/mdev/devices/<uuid>
  long typeId = 0;             // the type nodeplane set (or, not ready, is setting)
  long previousTypeId = 0;     // not ready: the type of nodeplane's it replaces (0: none)
  std::string profile;         // its name
  std::string mdevUuid;        // mdev model
  bool ready = false;          // the type or mdev is set and read back
  Json spec = Json::object();  // the normalized spec it was made from (parent/vf or address)
};

// <hostStateDir>/vgpu/vgpus (the host's state dir, not VgpuConfig::stateDir).
std::filesystem::path vgpuRecordDir(const std::filesystem::path& hostStateDir);
// nullopt when there is none; an error when it cannot be read or parsed.
Result<std::optional<VgpuRecord>> readVgpuRecord(const std::filesystem::path& hostStateDir,
                                                 const std::string& name);
Result<std::vector<VgpuRecord>> listVgpuRecords(const std::filesystem::path& hostStateDir);
Result<void> writeVgpuRecord(const std::filesystem::path& hostStateDir, const VgpuRecord& record);
Result<void> removeVgpuRecord(const std::filesystem::path& hostStateDir, const std::string& name);
std::string newVgpuUid();  // 16 random hex digits

// Whether `current` (the VF's type now) is a vGPU nodeplane set under this record: the type it
// set, or, while a change of its own is cut short (not ready), the type that change replaces.
// Anything else was set by someone else: never changed or cleared.
bool madeUnder(const VgpuRecord& record, long current);

// The mdev UUID of a Vgpu: derived from the agent id and the name alone, so a restart (or a
// lost record) finds the same mdev; RFC 4122 layout, version 8 (custom).
std::string mdevUuidFor(const std::string& agentId, const std::string& name);

}  // namespace nodeplane::vgpu
