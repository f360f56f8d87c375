#include "sriov_records.hpp"

#include "nodeplane/record_store.hpp"

namespace nodeplane::vgpu {
namespace fs = std::filesystem;

fs::path sriovRecordDir(const fs::path& stateDir) { return stateDir / "sriov"; }

namespace {

RecordStore store(const fs::path& stateDir) {
  return RecordStore(sriovRecordDir(stateDir), "SriovPf record");
}

Result<SriovRecord> fromJson(const Json& j, const fs::path& path, const std::string& name) {
  auto str = [&](const char* key) {
    return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>()
                                                                  : std::string();
  };
  if (!j.is_object() || str("device").empty() || !j.contains("originalNumVfs") ||
      !j["originalNumVfs"].is_number_integer() || j["originalNumVfs"].get<int>() < 0)
    return fail(ErrorKind::kTerminal,
                path.string() +
                    " is not a SriovPf record (want a JSON object with device and "
                    "originalNumVfs, a count of 0 or more)",
                {}, "set the PF's VF count back by hand, then remove the file");
  SriovRecord r;
  r.name = name;
  r.device = str("device");
  r.agent = str("agent");
  r.originalNumVfs = j["originalNumVfs"].get<int>();
  r.uid = str("uid");
  return r;
}

}  // namespace

Result<std::optional<SriovRecord>> readSriovRecord(const fs::path& stateDir,
                                                   const std::string& name) {
  const RecordStore s = store(stateDir);
  auto j = s.read(name);
  if (!j) return std::unexpected(j.error());
  if (!*j) return std::optional<SriovRecord>();
  auto r = fromJson(**j, s.path(name), name);
  if (!r) return std::unexpected(r.error());
  return std::optional<SriovRecord>(std::move(*r));
}

Result<std::vector<SriovRecord>> listSriovRecords(const fs::path& stateDir) {
  const RecordStore s = store(stateDir);
  auto all = s.list();
  if (!all) return std::unexpected(all.error());
  std::vector<SriovRecord> out;
  for (const auto& [name, j] : *all) {
    auto r = fromJson(j, s.path(name), name);
    if (!r) return std::unexpected(r.error());
    out.push_back(std::move(*r));
  }
  return out;
}

Result<void> writeSriovRecord(const fs::path& stateDir, const SriovRecord& r) {
  return store(stateDir).write(r.name, {{"device", r.device},
                                        {"agent", r.agent},
                                        {"originalNumVfs", r.originalNumVfs},
                                        {"uid", r.uid}});
}

Result<void> removeSriovRecord(const fs::path& stateDir, const std::string& name) {
  return store(stateDir).remove(name);
}

std::string newSriovUid() { return RecordStore::newUid(); }

}  // namespace nodeplane::vgpu
