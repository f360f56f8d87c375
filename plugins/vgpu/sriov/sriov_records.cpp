#include "sriov_records.hpp"

#include <algorithm>
#include <fstream>
#include <random>
#include <sstream>

#include "nodeplane/plugin_util.hpp"
#include "nodeplane/resource.hpp"

namespace nodeplane::vgpu {
namespace fs = std::filesystem;

fs::path sriovRecordDir(const fs::path& stateDir) { return stateDir / "sriov"; }

namespace {

Result<SriovRecord> parseRecord(const fs::path& path, const std::string& name) {
  std::ifstream in(path);
  if (!in) return fail(ErrorKind::kTerminal, "cannot read " + path.string());
  std::stringstream text;
  text << in.rdbuf();
  Json j = Json::parse(text.str(), nullptr, false);
  auto str = [&](const char* key) {
    return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string();
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
  const fs::path path = sriovRecordDir(stateDir) / (name + ".json");
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::optional<SriovRecord>();
  auto r = parseRecord(path, name);
  if (!r) return std::unexpected(r.error());
  return std::optional<SriovRecord>(std::move(*r));
}

Result<std::vector<SriovRecord>> listSriovRecords(const fs::path& stateDir) {
  std::vector<SriovRecord> out;
  const fs::path dir = sriovRecordDir(stateDir);
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
            [](const SriovRecord& a, const SriovRecord& b) { return a.name < b.name; });
  return out;
}

Result<void> writeSriovRecord(const fs::path& stateDir, const SriovRecord& r) {
  Json j = {{"device", r.device},
            {"agent", r.agent},
            {"originalNumVfs", r.originalNumVfs},
            {"uid", r.uid}};
  return writeFileAtomically(sriovRecordDir(stateDir) / (r.name + ".json"), j.dump(2) + "\n");
}

Result<void> removeSriovRecord(const fs::path& stateDir, const std::string& name) {
  const fs::path path = sriovRecordDir(stateDir) / (name + ".json");
  std::error_code ec;
  fs::remove(path, ec);
  if (ec) return fail(ErrorKind::kTerminal, "cannot remove " + path.string() + ": " + ec.message());
  return {};
}

std::string newSriovUid() {
  std::random_device rd;
  std::uniform_int_distribution<int> hex(0, 15);
  std::string s;
  for (int i = 0; i < 16; ++i) s += "0123456789abcdef"[hex(rd)];
  return s;
}

}  // namespace nodeplane::vgpu
