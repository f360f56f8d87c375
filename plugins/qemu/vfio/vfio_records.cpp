#include "vfio_records.hpp"

#include <algorithm>
#include <fstream>
#include <random>
#include <sstream>

#include "nodeplane/plugin_util.hpp"
#include "nodeplane/resource.hpp"

namespace nodeplane::qemu {
namespace fs = std::filesystem;

fs::path vfioRecordDir(const fs::path& stateDir) { return stateDir / "vfio"; }

namespace {

Result<VfioRecord> parseRecord(const fs::path& path, const std::string& name) {
  std::ifstream in(path);
  if (!in) return fail(ErrorKind::kTerminal, "cannot read " + path.string());
  std::stringstream text;
  text << in.rdbuf();
  Json j = Json::parse(text.str(), nullptr, false);
  auto str = [&](const char* key) {
    return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string();
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
  const fs::path path = vfioRecordDir(stateDir) / (name + ".json");
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::optional<VfioRecord>();
  auto r = parseRecord(path, name);
  if (!r) return std::unexpected(r.error());
  return std::optional<VfioRecord>(std::move(*r));
}

Result<std::vector<VfioRecord>> listVfioRecords(const fs::path& stateDir) {
  std::vector<VfioRecord> out;
  const fs::path dir = vfioRecordDir(stateDir);
  std::error_code ec;
  if (!fs::exists(dir, ec)) return out;
  for (fs::directory_iterator it(dir, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    const fs::path p = it->path();
    if (p.extension() != ".json") continue;  // .tmp files of an interrupted write
    auto r = parseRecord(p, p.stem().string());
    if (!r) return std::unexpected(r.error());
    out.push_back(std::move(*r));
  }
  if (ec) return fail(ErrorKind::kTerminal, "cannot list " + dir.string() + ": " + ec.message());
  std::sort(out.begin(), out.end(),
            [](const VfioRecord& a, const VfioRecord& b) { return a.name < b.name; });
  return out;
}

Result<void> writeVfioRecord(const fs::path& stateDir, const VfioRecord& r) {
  Json j = {{"device", r.device},
            {"agent", r.agent},
            {"originalDriver", r.originalDriver},
            {"uid", r.uid},
            {"intent", r.intent}};
  return writeFileAtomically(vfioRecordDir(stateDir) / (r.name + ".json"), j.dump(2) + "\n");
}

Result<void> removeVfioRecord(const fs::path& stateDir, const std::string& name) {
  const fs::path path = vfioRecordDir(stateDir) / (name + ".json");
  std::error_code ec;
  fs::remove(path, ec);
  if (ec) return fail(ErrorKind::kTerminal, "cannot remove " + path.string() + ": " + ec.message());
  return {};
}

std::string newVfioUid() {
  std::random_device rd;
  std::uniform_int_distribution<int> hex(0, 15);
  std::string s;
  for (int i = 0; i < 16; ++i) s += "0123456789abcdef"[hex(rd)];
  return s;
}

}  // namespace nodeplane::qemu
