#include "vgpu_records.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>

#include "nodeplane/host/vgpu_ref.hpp"
#include "nodeplane/plugin_util.hpp"

namespace nodeplane::vgpu {

namespace fs = std::filesystem;

fs::path vgpuRecordDir(const fs::path& hostStateDir) {
  return host::vgpuRecordPath(hostStateDir, "x").parent_path();
}

namespace {

Result<VgpuRecord> parseRecord(const fs::path& path, const std::string& name) {
  std::ifstream in(path);
  if (!in) return fail(ErrorKind::kTerminal, "cannot read " + path.string());
  std::stringstream text;
  text << in.rdbuf();
  Json j = Json::parse(text.str(), nullptr, false);
  auto str = [&](const char* key) {
    return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string();
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
  r.typeId = j.contains("typeId") && j["typeId"].is_number_integer() ? j["typeId"].get<long>() : 0;
  r.profile = str("profile");
  r.mdevUuid = str("mdevUuid");
  r.ready = j.contains("ready") && j["ready"].is_boolean() && j["ready"].get<bool>();
  if (j.contains("spec") && j["spec"].is_object()) r.spec = j["spec"];
  return r;
}

}  // namespace

Result<std::optional<VgpuRecord>> readVgpuRecord(const fs::path& hostStateDir,
                                                 const std::string& name) {
  const fs::path path = host::vgpuRecordPath(hostStateDir, name);
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::optional<VgpuRecord>();
  auto r = parseRecord(path, name);
  if (!r) return std::unexpected(r.error());
  return std::optional<VgpuRecord>(std::move(*r));
}

Result<std::vector<VgpuRecord>> listVgpuRecords(const fs::path& hostStateDir) {
  std::vector<VgpuRecord> out;
  const fs::path dir = vgpuRecordDir(hostStateDir);
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
            [](const VgpuRecord& a, const VgpuRecord& b) { return a.name < b.name; });
  return out;
}

Result<void> writeVgpuRecord(const fs::path& hostStateDir, const VgpuRecord& r) {
  Json j = {{"device", r.device},     {"gpu", r.gpu},       {"ready", r.ready},
            {"agent", r.agent},       {"uid", r.uid},       {"model", r.model},
            {"slot", r.slot},         {"typeId", r.typeId}, {"profile", r.profile},
            {"mdevUuid", r.mdevUuid}, {"spec", r.spec}};
  return writeFileAtomically(host::vgpuRecordPath(hostStateDir, r.name), j.dump(2) + "\n");
}

Result<void> removeVgpuRecord(const fs::path& hostStateDir, const std::string& name) {
  const fs::path path = host::vgpuRecordPath(hostStateDir, name);
  std::error_code ec;
  fs::remove(path, ec);
  if (ec) return fail(ErrorKind::kTerminal, "cannot remove " + path.string() + ": " + ec.message());
  return {};
}

std::string newVgpuUid() {
  std::random_device rd;
  std::uniform_int_distribution<int> hex(0, 15);
  std::string s;
  for (int i = 0; i < 16; ++i) s += "0123456789abcdef"[hex(rd)];
  return s;
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
