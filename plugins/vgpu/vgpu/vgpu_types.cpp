#include "vgpu_types.hpp"

#include <algorithm>
#include <cctype>
#include <sstream>

namespace nodeplane::vgpu {

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

bool allDigits(const std::string& s) {
  return !s.empty() &&
         std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

std::string trim(const std::string& s) {
  auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

}  // namespace

const char* toString(Model m) {
  switch (m) {
    case Model::kSriov:
      return "sr-iov";
    case Model::kMdev:
      return "mdev";
    case Model::kUnknown:
      break;
  }
  return "unknown";
}

std::string shortName(const std::string& name) {
  std::string t = trim(name);
  auto sp = t.find_last_of(" \t");
  return sp == std::string::npos ? t : t.substr(sp + 1);
}

std::optional<NameInfo> parseTypeName(const std::string& name) {
  std::vector<std::string> part;
  std::stringstream in(name);
  for (std::string p; std::getline(in, p, '-');) part.push_back(p);
  if (part.size() < 2) return std::nullopt;
  // The last part: <GB><series letter>[ME|NOME|MEALL|GFX].
  std::string last = part.back();
  std::size_t i = 0;
  while (i < last.size() && std::isdigit(static_cast<unsigned char>(last[i]))) ++i;
  if (i == 0 || i + 1 > last.size() || !std::isalpha(static_cast<unsigned char>(last[i])))
    return std::nullopt;
  const std::string suffix = last.substr(i + 1);
  if (!suffix.empty() && suffix != "ME" && suffix != "NOME" && suffix != "MEALL" && suffix != "GFX")
    return std::nullopt;
  NameInfo info;
  const long gb = std::stol(last.substr(0, i));
  info.framebufferMiB = gb == 0 ? 512 : gb * 1024;  // GB 0 is 512 MB (§4)
  info.mediaExtension = suffix == "ME";
  if (part.size() >= 3 && allDigits(part[part.size() - 2])) {
    info.migBacked = true;
    info.slices = std::stoi(part[part.size() - 2]);
  }
  return info;
}

std::vector<VgpuType> parseCreatable(const std::string& text) {
  std::vector<VgpuType> out;
  std::stringstream in(text);
  for (std::string line; std::getline(in, line);) {
    const std::string t = trim(line);
    if (t.empty() || t.rfind("ID", 0) == 0) continue;  // the header, when there is one
    auto colon = t.find(':');
    if (colon == std::string::npos) continue;
    const std::string id = trim(t.substr(0, colon));
    const std::string name = shortName(t.substr(colon + 1));
    if (!allDigits(id) || id.size() < 3 || id.size() > 6 || name.empty()) continue;
    VgpuType v;
    v.id = std::stol(id);
    v.name = name;
    if (auto info = parseTypeName(name)) {
      v.framebufferMiB = info->framebufferMiB;
      v.migBacked = info->migBacked;
    }
    out.push_back(std::move(v));
  }
  std::sort(out.begin(), out.end(),
            [](const VgpuType& a, const VgpuType& b) { return a.id < b.id; });
  return out;
}

void parseMdevDescription(const std::string& text, VgpuType& type) {
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    item = trim(item);
    auto eq = item.find('=');
    if (eq == std::string::npos) continue;
    const std::string key = item.substr(0, eq), value = trim(item.substr(eq + 1));
    try {
      if (key == "framebuffer" && !value.empty()) {
        long n = std::stol(value);
        const char unit = value.back();
        type.framebufferMiB = unit == 'G' ? n * 1024 : unit == 'K' ? n / 1024 : n;
      } else if (key == "max_instance" && allDigits(value)) {
        type.maxInstances = std::stoi(value);
      }
    } catch (...) {  // a value that is not a number: keep what the name says
    }
  }
}

std::string describeSize(long mib) {
  if (mib > 0 && mib % 1024 == 0) return std::to_string(mib / 1024) + " GiB";
  return std::to_string(mib) + " MiB";
}

const VgpuType* TypeTable::byId(long id) const {
  for (const auto& t : types)
    if (t.id == id) return &t;
  return nullptr;
}

const VgpuType* TypeTable::byName(const std::string& name) const {
  const std::string want = lower(shortName(name));
  for (const auto& t : types)
    if (lower(t.name) == want) return &t;
  return nullptr;
}

const VgpuType* TypeTable::resolve(const std::string& profile) const {
  const std::string p = trim(profile);
  if (allDigits(p) && p.size() <= 9) return byId(std::stol(p));
  return byName(p);
}

long TypeTable::framebufferMiB() const {
  long fb = 0;
  for (const auto& t : types)
    if (!t.migBacked) fb = std::max(fb, t.framebufferMiB);
  for (const auto& t : types)  // a MIG GPU offers no time-sliced type: its largest MIG one
    if (fb == 0) fb = std::max(fb, t.framebufferMiB);
  return fb;
}

std::string TypeTable::names() const {
  std::string s;
  for (const auto& t : types) s += (s.empty() ? "" : ", ") + t.name;
  return s.empty() ? "none" : s;
}

bool TypeTable::migMode() const {
  if (types.empty()) return false;
  return std::all_of(types.begin(), types.end(), [](const VgpuType& t) { return t.migBacked; });
}

Json toJson(const TypeTable& t) {
  Json types = Json::array();
  for (const auto& v : t.types)
    types.push_back({{"id", v.id},
                     {"name", v.name},
                     {"framebufferMiB", v.framebufferMiB},
                     {"maxInstances", v.maxInstances},
                     {"migBacked", v.migBacked},
                     {"typeDir", v.typeDir}});
  return {{"gpu", t.gpu},
          {"model", toString(t.model)},
          {"complete", t.complete},
          {"totalVfs", t.totalVfs},
          {"types", types}};
}

std::optional<TypeTable> typeTableFromJson(const Json& j) {
  if (!j.is_object() || !j.contains("types") || !j["types"].is_array()) return std::nullopt;
  TypeTable t;
  t.gpu = j.value("gpu", "");
  const std::string model = j.value("model", "");
  t.model = model == "sr-iov" ? Model::kSriov : model == "mdev" ? Model::kMdev : Model::kUnknown;
  t.complete = j.value("complete", false);
  t.totalVfs = j.value("totalVfs", 0);
  for (const auto& v : j["types"]) {
    if (!v.is_object() || !v.contains("id") || !v["id"].is_number_integer()) return std::nullopt;
    VgpuType x;
    x.id = v["id"].get<long>();
    x.name = v.value("name", "");
    x.framebufferMiB = v.value("framebufferMiB", 0L);
    x.maxInstances = v.value("maxInstances", 0);
    x.migBacked = v.value("migBacked", false);
    x.typeDir = v.value("typeDir", "");
    t.types.push_back(std::move(x));
  }
  return t;
}

}  // namespace nodeplane::vgpu
