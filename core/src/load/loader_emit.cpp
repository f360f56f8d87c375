// emitYamlDocuments: JSON documents -> multi-document YAML that parseYaml reads back unchanged.
#include <yaml-cpp/emitter.h>
#include <yaml-cpp/emittermanip.h>
#include <yaml-cpp/null.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <optional>
#include <string_view>
#include <vector>

#include "loader.hpp"
#include "yaml_scalar.hpp"

namespace nodeplane {
namespace {

void emitString(YAML::Emitter& out, const std::string& s) {
  // yaml-cpp escapes C0 and C1 controls in double quotes but writes DEL as it is (plain or
  // quoted), and the loader refuses raw control characters: for such a string escape all that is
  // not ASCII (\x7F, \xE9 read back the same).
  const bool del = s.find('\x7f') != std::string::npos;
  if (!del && yaml::isSafePlainString(s)) {
    out << s;
    return;
  }
  if (del) out << YAML::EscapeNonAscii;
  out << YAML::DoubleQuoted << s;
  if (del) out << YAML::EmitNonAscii;
}

// The shortest text that reads back as the same double, and as a float (never as an integer).
std::string floatText(double d) {
  if (std::isnan(d)) return ".nan";
  if (std::isinf(d)) return d > 0 ? ".inf" : "-.inf";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d);
  std::string s(buf, end);
  if (s.find_first_of(".eE") == std::string::npos) s += ".0";
  return s;
}

void emitValue(YAML::Emitter& out, const Json& v, std::string_view path);

void emitMap(YAML::Emitter& out, const Json& v, std::string_view path) {
  if (v.empty()) {
    out << YAML::Flow << YAML::BeginMap << YAML::EndMap;
    return;
  }
  // Documents and metadata read best in a fixed order; everything else keeps JSON's (sorted).
  static const std::vector<std::string> kDocOrder = {"apiVersion", "kind", "metadata", "spec"};
  static const std::vector<std::string> kMetaOrder = {"name", "nodes", "nodeSelector"};
  static const std::vector<std::string> kNone;
  const auto& first = path.empty() ? kDocOrder : path == "metadata" ? kMetaOrder : kNone;
  out << YAML::BeginMap;
  auto one = [&](const std::string& key, const Json& value) {
    out << YAML::Key;
    emitString(out, key);
    out << YAML::Value;
    emitValue(out, value, path.empty() ? std::string_view(key) : std::string_view("-"));
  };
  for (const auto& key : first) {
    if (auto it = v.find(key); it != v.end()) one(key, *it);
  }
  for (const auto& [key, value] : v.items()) {
    if (std::find(first.begin(), first.end(), key) == first.end()) one(key, value);
  }
  out << YAML::EndMap;
}

void emitValue(YAML::Emitter& out, const Json& v, std::string_view path) {
  switch (v.type()) {
    case Json::value_t::null:
      out << YAML::Null;
      return;
    case Json::value_t::boolean:
      out << (v.get<bool>() ? "true" : "false");
      return;
    case Json::value_t::number_integer:
      out << v.get<std::int64_t>();
      return;
    case Json::value_t::number_unsigned:
      out << v.get<std::uint64_t>();
      return;
    case Json::value_t::number_float:
      out << floatText(v.get<double>());
      return;
    case Json::value_t::string:
      emitString(out, v.get_ref<const std::string&>());
      return;
    case Json::value_t::array:
      if (v.empty()) {
        out << YAML::Flow << YAML::BeginSeq << YAML::EndSeq;
        return;
      }
      out << YAML::BeginSeq;
      for (const auto& e : v) emitValue(out, e, "-");
      out << YAML::EndSeq;
      return;
    case Json::value_t::object:
      emitMap(out, v, path);
      return;
    default:
      out << YAML::Null;
      return;
  }
}

}  // namespace

std::string emitYamlDocuments(const std::vector<Json>& documents) {
  std::string text;
  for (const auto& doc : documents) {
    YAML::Emitter out;
    emitValue(out, doc, "");
    text += "---\n";
    text += out.c_str();
    text += "\n";
  }
  return text;
}

std::optional<std::string> exportProblem(const Json& document) {
  try {
    (void)document.dump();  // strict: throws on a string that is not UTF-8
  } catch (const Json::type_error&) {
    return "it holds text that is not UTF-8, which a desired-state file cannot carry";
  }
  LoadResult back = parseYaml(emitYamlDocuments({document}), "export");
  if (!back.errors.empty())
    return "the YAML written for it does not load: " + back.errors[0].message;
  if (back.resources.size() != 1) return "the YAML written for it is not one resource";
  const Resource& r = back.resources[0];
  const Json metadata = document.value("metadata", Json::object());
  if (Json(r.id.kind) != document.value("kind", Json()) ||
      Json(r.id.name) != metadata.value("name", Json()) ||
      r.spec != document.value("spec", Json::object()))
    return "the YAML written for it reads back as something else";
  return std::nullopt;
}

}  // namespace nodeplane
