#include "vfio_records.hpp"

#include "nodeplane/record_store.hpp"

namespace nodeplane::qemu {
namespace fs = std::filesystem;

fs::path vfioRecordDir(const fs::path& stateDir) { return stateDir / "vfio"; }

namespace {

RecordStore store(const fs::path& stateDir) {
  return RecordStore(vfioRecordDir(stateDir), "VfioDevice record");
}

Result<VfioRecord> fromJson(const Json& j, const fs::path& path, const std::string& name) {
  auto str = [&](const char* key) {
    return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>()
                                                                  : std::string();
  };
  if (!j.is_object() || str("device").empty())
    return fail(ErrorKind::kTerminal,
                path.string() + " is not a VfioDevice record (want a JSON object with device)", {},
                "remove it only after putting the device back on its driver by hand");
  VfioRecord r;
  r.name = name;
  r.device = str("device");
  r.agent = str("agent");
  r.originalDriver = str("originalDriver");
  r.uid = str("uid");
  r.intent = str("intent");
  return r;
}

}  // namespace

Result<std::optional<VfioRecord>> readVfioRecord(const fs::path& stateDir,
                                                 const std::string& name) {
  const RecordStore s = store(stateDir);
  auto j = s.read(name);
  if (!j) return std::unexpected(j.error());
  if (!*j) return std::optional<VfioRecord>();
  auto r = fromJson(**j, s.path(name), name);
  if (!r) return std::unexpected(r.error());
  return std::optional<VfioRecord>(std::move(*r));
}

Result<std::vector<VfioRecord>> listVfioRecords(const fs::path& stateDir) {
  const RecordStore s = store(stateDir);
  auto all = s.list();
  if (!all) return std::unexpected(all.error());
  std::vector<VfioRecord> out;
  for (const auto& [name, j] : *all) {
    auto r = fromJson(j, s.path(name), name);
    if (!r) return std::unexpected(r.error());
    out.push_back(std::move(*r));
  }
  return out;
}

Result<void> writeVfioRecord(const fs::path& stateDir, const VfioRecord& r) {
  return store(stateDir).write(r.name, {{"device", r.device},
                                        {"agent", r.agent},
                                        {"originalDriver", r.originalDriver},
                                        {"uid", r.uid},
                                        {"intent", r.intent}});
}

Result<void> removeVfioRecord(const fs::path& stateDir, const std::string& name) {
  return store(stateDir).remove(name);
}

std::string newVfioUid() { return RecordStore::newUid(); }

}  // namespace nodeplane::qemu
