#include "vgpu_records.hpp"

#include <cstdint>
#include <cstdio>

#include "nodeplane/host/vgpu_ref.hpp"
#include "nodeplane/record_store.hpp"

namespace nodeplane::vgpu {

namespace fs = std::filesystem;

fs::path vgpuRecordDir(const fs::path& hostStateDir) {
  return host::vgpuRecordPath(hostStateDir, "x").parent_path();
}

namespace {

RecordStore store(const fs::path& hostStateDir) {
  return RecordStore(vgpuRecordDir(hostStateDir), "Vgpu record");
}

Result<VgpuRecord> fromJson(const Json& j, const fs::path& path, const std::string& name) {
  auto str = [&](const char* key) {
    return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>()
                                                                  : std::string();
  };
  if (!j.is_object() || str("slot").empty() || str("gpu").empty())
    return fail(ErrorKind::kTerminal,
                path.string() + " is not a Vgpu record (want a JSON object with gpu and slot)", {},
                "remove it once the vGPU it names is gone (or cleared by hand)");
  VgpuRecord r;
  r.name = name;
  r.agent = str("agent");
  r.uid = str("uid");
  r.model = str("model");
  r.gpu = str("gpu");
  r.slot = str("slot");
  r.device = str("device");
  auto number = [&](const char* key) {
    return j.contains(key) && j[key].is_number_integer() ? j[key].get<long>() : 0L;
  };
  r.typeId = number("typeId");
  r.previousTypeId = number("previousTypeId");
  r.profile = str("profile");
  r.mdevUuid = str("mdevUuid");
  r.ready = j.contains("ready") && j["ready"].is_boolean() && j["ready"].get<bool>();
  if (j.contains("spec") && j["spec"].is_object()) r.spec = j["spec"];
  return r;
}

}  // namespace

Result<std::optional<VgpuRecord>> readVgpuRecord(const fs::path& hostStateDir,
                                                 const std::string& name) {
  const RecordStore s = store(hostStateDir);
  auto j = s.read(name);
  if (!j) return std::unexpected(j.error());
  if (!*j) return std::optional<VgpuRecord>();
  auto r = fromJson(**j, s.path(name), name);
  if (!r) return std::unexpected(r.error());
  return std::optional<VgpuRecord>(std::move(*r));
}

Result<std::vector<VgpuRecord>> listVgpuRecords(const fs::path& hostStateDir) {
  const RecordStore s = store(hostStateDir);
  auto all = s.list();
  if (!all) return std::unexpected(all.error());
  std::vector<VgpuRecord> out;
  for (const auto& [name, j] : *all) {
    auto r = fromJson(j, s.path(name), name);
    if (!r) return std::unexpected(r.error());
    out.push_back(std::move(*r));
  }
  return out;
}

Result<void> writeVgpuRecord(const fs::path& hostStateDir, const VgpuRecord& r) {
  // The path is the contract's (nodeplane/host/vgpu_ref.hpp): the qemu plugin reads it.
  return store(hostStateDir)
      .write(r.name, {{"device", r.device},
                      {"gpu", r.gpu},
                      {"ready", r.ready},
                      {"agent", r.agent},
                      {"uid", r.uid},
                      {"model", r.model},
                      {"slot", r.slot},
                      {"typeId", r.typeId},
                      {"previousTypeId", r.previousTypeId},
                      {"profile", r.profile},
                      {"mdevUuid", r.mdevUuid},
                      {"spec", r.spec}});
}

Result<void> removeVgpuRecord(const fs::path& hostStateDir, const std::string& name) {
  return store(hostStateDir).remove(name);
}

std::string newVgpuUid() { return RecordStore::newUid(); }

bool madeUnder(const VgpuRecord& record, long current) {
  if (current == 0) return false;
  if (current == record.typeId) return true;
  return !record.ready && record.previousTypeId != 0 && current == record.previousTypeId;
}

std::string mdevUuidFor(const std::string& agentId, const std::string& name) {
  // Two 64-bit FNV-1a hashes with different offsets: stable across builds and hosts (std::hash
  // is not), and wide enough that two names of one agent do not meet.
  auto fnv = [](const std::string& s, std::uint64_t h) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 1099511628211ULL;
    }
    return h;
  };
  const std::string key = "nodeplane-vgpu\n" + agentId + "\n" + name;
  std::uint64_t hi = fnv(key, 14695981039346656037ULL);
  std::uint64_t lo = fnv(key + "\n", 0x9e3779b97f4a7c15ULL ^ hi);
  hi = (hi & ~0xf000ULL) | 0x8000ULL;                         // version 8
  lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // RFC 4122 variant
  char out[40];
  std::snprintf(out, sizeof out, "%08llx-%04llx-%04llx-%04llx-%012llx",
                static_cast<unsigned long long>(hi >> 32),
                static_cast<unsigned long long>((hi >> 16) & 0xffff),
                static_cast<unsigned long long>(hi & 0xffff),
                static_cast<unsigned long long>(lo >> 48),
                static_cast<unsigned long long>(lo & 0xffffffffffffULL));
  return out;
}

}  // namespace nodeplane::vgpu
