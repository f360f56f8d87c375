// Strict reading of the store's own JSON files: every field has one type, unknown keys are
// refused, and the first problem is kept with its path ("owned[2].kind: expected a string, found
// number") so the error says exactly what is wrong.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include "nodeplane/resource.hpp"

namespace nodeplane::state::detail {

class FieldReader {
 public:
  bool ok() const { return problem_.empty(); }
  const std::string& problem() const { return problem_; }
  void fail(std::string message) {
    if (problem_.empty()) problem_ = std::move(message);
  }

  // True when `v` is an object; otherwise records the problem at `path`.
  bool object(const Json& v, const std::string& path) {
    if (v.is_object()) return true;
    fail(label(path) + "expected an object, found " + v.type_name());
    return false;
  }

  // Refuses any key of `obj` not in `known`.
  void onlyKeys(const Json& obj, std::initializer_list<std::string_view> known,
                const std::string& path) {
    for (const auto& [key, value] : obj.items()) {
      bool found = false;
      for (auto k : known) found = found || k == key;
      if (!found) fail(label(join(path, key)) + "unknown key");
    }
  }

  // A string field; nonEmpty refuses "".
  std::string str(const Json& obj, const char* key, const std::string& path,
                  bool nonEmpty = false) {
    auto it = obj.find(key);
    if (it == obj.end()) {
      fail(label(join(path, key)) + "missing");
      return {};
    }
    if (!it->is_string()) {
      fail(label(join(path, key)) + "expected a string, found " + it->type_name());
      return {};
    }
    auto s = it->get<std::string>();
    if (nonEmpty && s.empty()) fail(label(join(path, key)) + "must not be empty");
    return s;
  }

  // An unsigned integer field.
  std::uint64_t uint(const Json& obj, const char* key, const std::string& path) {
    auto it = obj.find(key);
    if (it == obj.end()) {
      fail(label(join(path, key)) + "missing");
      return 0;
    }
    if (!it->is_number_unsigned()) {
      fail(label(join(path, key)) + "expected a non-negative integer, found " +
           (it->is_number() ? it->dump() : std::string(it->type_name())));
      return 0;
    }
    return it->get<std::uint64_t>();
  }

  // {"kind":..,"name":..} at obj[key] when present.
  std::optional<ResourceId> optionalId(const Json& obj, const char* key, const std::string& path) {
    auto it = obj.find(key);
    if (it == obj.end()) return std::nullopt;
    auto p = join(path, key);
    if (!object(*it, p)) return std::nullopt;
    onlyKeys(*it, {"kind", "name"}, p);
    return ResourceId{str(*it, "kind", p, true), str(*it, "name", p, true)};
  }

  static std::string join(const std::string& path, std::string_view key) {
    return path.empty() ? std::string(key) : path + "." + std::string(key);
  }

 private:
  static std::string label(const std::string& path) {
    return path.empty() ? std::string() : path + ": ";
  }

  std::string problem_;
};

}  // namespace nodeplane::state::detail
