#include "validate.hpp"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <utility>

#include "yaml_scalar.hpp"

namespace nodeplane {
namespace {

// Edit distance (optimal string alignment: a swap of two neighbours is one edit), ignoring case.
std::size_t editDistance(std::string_view a, std::string_view b) {
  auto eq = [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) ==
           std::tolower(static_cast<unsigned char>(y));
  };
  const std::size_t w = b.size() + 1;
  std::vector<std::size_t> d((a.size() + 1) * w);
  for (std::size_t i = 0; i <= a.size(); ++i) d[i * w] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t cost = eq(a[i - 1], b[j - 1]) ? 0 : 1;
      std::size_t v =
          std::min({d[(i - 1) * w + j] + 1, d[i * w + j - 1] + 1, d[(i - 1) * w + j - 1] + cost});
      if (i > 1 && j > 1 && eq(a[i - 1], b[j - 2]) && eq(a[i - 2], b[j - 1])) {
        v = std::min(v, d[(i - 2) * w + j - 2] + 1);
      }
      d[i * w + j] = v;
    }
  }
  return d[a.size() * w + b.size()];
}

// nlohmann throws on invalid UTF-8 (a cut multi-byte sequence, a "\xff" escape in YAML).
std::string safeDump(const Json& v) {
  return v.dump(-1, ' ', false, Json::error_handler_t::replace);
}

const char* expected(FieldType t) {
  switch (t) {
    case FieldType::kString:
      return "a string";
    case FieldType::kInteger:
      return "an integer";
    case FieldType::kBoolean:
      return "a boolean (true or false)";
    case FieldType::kStringList:
      return "a list of strings";
    case FieldType::kStringMap:
      return "a mapping of strings to strings";
    case FieldType::kObject:
      return "a mapping";
    case FieldType::kObjectList:
      return "a list of mappings";
    case FieldType::kAny:
      return "any value";
  }
  return "?";
}

class Checker {
 public:
  Checker(const Resource& r, std::vector<Error>& out) : r_(r), out_(out) {}

  void object(const Json& v, const std::vector<FieldSchema>& fields, const std::string& path) {
    if (!v.is_object()) {
      wrongType(path, "a mapping", v);
      return;
    }
    for (const auto& [key, value] : v.items()) {
      std::string p = path + "." + key;
      auto it = std::find_if(fields.begin(), fields.end(),
                             [&](const FieldSchema& f) { return f.name == key; });
      if (it == fields.end()) {
        unknown(p, key, fields);
        continue;
      }
      field(*it, value, p);
    }
    for (const auto& f : fields) {
      if (f.required && !v.contains(f.name)) {
        add(path + "." + f.name, "missing required field \"" + f.name + "\"");
      }
    }
  }

 private:
  void add(std::string path, std::string message, std::string hint = {}) {
    out_.push_back(
        r_.error(ErrorKind::kInvalidInput, std::move(path), std::move(message), std::move(hint)));
  }

  void wrongType(const std::string& path, std::string_view want, const Json& v) {
    std::string hint;
    if (v.is_string()) {
      Json plain = yaml::resolvePlainScalar(v.get_ref<const std::string&>());
      if ((want == expected(FieldType::kInteger) && plain.is_number_integer()) ||
          (want == expected(FieldType::kBoolean) && plain.is_boolean())) {
        hint = "write it without quotes";
      }
    }
    add(path, "expected " + std::string(want) + ", got " + describeValue(v), hint);
  }

  void unknown(const std::string& path, const std::string& key,
               const std::vector<FieldSchema>& fields) {
    std::vector<std::string> names;
    std::string known;
    for (const auto& f : fields) {
      names.push_back(f.name);
      known += (known.empty() ? "" : ", ") + f.name;
    }
    std::string message = "unknown field \"" + key + "\"";
    message += fields.empty() ? " (this kind has no spec fields)" : " (known: " + known + ")";
    if (path == "spec.adopt" || path == "spec.deletionPolicy") {  // where older versions had it
      add(path, message,
          "moved to metadata." + key + ": write it under metadata (for every kind), not spec");
      return;
    }
    std::string close = closestName(key, names);
    add(path, message, close.empty() ? "" : "did you mean \"" + close + "\"?");
  }

  void string(const FieldSchema& f, const Json& v, const std::string& path) {
    if (!v.is_string()) {
      wrongType(path, expected(FieldType::kString), v);
      return;
    }
    const auto& s = v.get_ref<const std::string&>();
    if (f.allowed.empty() || std::find(f.allowed.begin(), f.allowed.end(), s) != f.allowed.end()) {
      return;
    }
    std::string list;
    for (const auto& a : f.allowed) list += (list.empty() ? "" : ", ") + a;
    std::string close = closestName(s, f.allowed);
    add(path, describeValue(v) + " is not one of: " + list,
        close.empty() ? "" : "did you mean \"" + close + "\"?");
  }

  void integer(const FieldSchema& f, const Json& v, const std::string& path) {
    if (!v.is_number_integer()) {
      wrongType(path, expected(FieldType::kInteger), v);
      return;
    }
    // An unsigned value above int64 is above any maximum a schema can state.
    bool huge = v.is_number_unsigned() &&
                v.get<std::uint64_t>() >
                    static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    std::int64_t n = huge ? std::numeric_limits<std::int64_t>::max() : v.get<std::int64_t>();
    bool low = f.minimum && !huge && n < *f.minimum;
    bool high = f.maximum && (huge || n > *f.maximum);
    if (!low && !high) return;
    std::string text = v.dump();
    if (f.minimum && f.maximum) {
      add(path, text + " is out of range " + std::to_string(*f.minimum) + ".." +
                    std::to_string(*f.maximum));
    } else if (low) {
      add(path, text + " is out of range: the minimum is " + std::to_string(*f.minimum));
    } else {
      add(path, text + " is out of range: the maximum is " + std::to_string(*f.maximum));
    }
  }

  void field(const FieldSchema& f, const Json& v, const std::string& path) {
    if (f.sensitive) {  // checked as any field, but no message may quote the value
      const std::size_t before = out_.size();
      FieldSchema plain = f;
      plain.sensitive = false;
      field(plain, v, path);
      for (std::size_t i = before; i < out_.size(); ++i) {
        out_[i].message = "not a valid value (expected " + std::string(expected(f.type)) +
                          "; the value is sensitive, so it is not shown)";
        out_[i].hint.clear();
      }
      return;
    }
    switch (f.type) {
      case FieldType::kString:
        string(f, v, path);
        return;
      case FieldType::kInteger:
        integer(f, v, path);
        return;
      case FieldType::kBoolean:
        if (!v.is_boolean()) wrongType(path, expected(f.type), v);
        return;
      case FieldType::kStringList:
        if (!v.is_array()) {
          wrongType(path, expected(f.type), v);
          return;
        }
        for (std::size_t i = 0; i < v.size(); ++i) {
          string(f, v[i], path + "[" + std::to_string(i) + "]");
        }
        return;
      case FieldType::kStringMap:
        if (!v.is_object()) {
          wrongType(path, expected(f.type), v);
          return;
        }
        for (const auto& [key, value] : v.items()) {
          if (!value.is_string()) wrongType(path + "." + key, expected(FieldType::kString), value);
        }
        return;
      case FieldType::kObject:
        object(v, f.fields, path);
        return;
      case FieldType::kObjectList:
        if (!v.is_array()) {
          wrongType(path, expected(f.type), v);
          return;
        }
        for (std::size_t i = 0; i < v.size(); ++i) {
          object(v[i], f.fields, path + "[" + std::to_string(i) + "]");
        }
        return;
      case FieldType::kAny:
        return;
    }
  }

  const Resource& r_;
  std::vector<Error>& out_;
};

}  // namespace

std::string closestName(std::string_view name, const std::vector<std::string>& known) {
  // At most 3 edits count as a typo, and the distance is at least the difference in length: a
  // name more than 3 bytes longer or shorter than `k` is never close to it. This also keeps the
  // quadratic distance computation to names about as short as the known ones.
  constexpr std::size_t kMaxEdits = 3;
  std::string best;
  std::size_t bestDistance = std::numeric_limits<std::size_t>::max();
  for (const auto& k : known) {
    std::size_t gap = name.size() > k.size() ? name.size() - k.size() : k.size() - name.size();
    if (gap > kMaxEdits) continue;
    std::size_t d = editDistance(name, k);
    if (d < bestDistance) {
      bestDistance = d;
      best = k;
    }
  }
  // Close enough to be a typo: a third of the longer name, at least 1, at most 3 edits.
  std::size_t allowed =
      std::clamp<std::size_t>(std::max(name.size(), best.size()) / 3, 1, kMaxEdits);
  return bestDistance <= allowed ? best : std::string();
}

std::string describeValue(const Json& v) {
  switch (v.type()) {
    case Json::value_t::null:
      return "null";
    case Json::value_t::boolean:
      return std::string("boolean ") + (v.get<bool>() ? "true" : "false");
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
      return "integer " + v.dump();
    case Json::value_t::number_float:
      return "float " + v.dump();
    case Json::value_t::string: {
      const auto& s = v.get_ref<const std::string&>();
      if (s.size() > 60) return "string " + safeDump(Json(s.substr(0, 57))) + "...";
      return "string " + safeDump(v);
    }
    case Json::value_t::array:
      return "a list";
    case Json::value_t::object:
      return "a mapping";
    default:
      return "a binary value";
  }
}

std::vector<Error> validateAgainstSchema(const Resource& r, const KindSchema& schema) {
  std::vector<Error> out;
  Checker(r, out).object(r.spec, schema.spec, "spec");
  // Top to bottom as written, not in JSON's key order.
  std::stable_sort(out.begin(), out.end(), [](const Error& a, const Error& b) {
    return std::pair(a.where.line, a.where.column) < std::pair(b.where.line, b.where.column);
  });
  return out;
}

std::vector<Error> validateSection(const Json& value, const std::vector<FieldSchema>& fields,
                                   const std::string& path,
                                   const std::map<std::string, SourceLocation>& locations,
                                   const SourceLocation& where) {
  Resource located;
  located.where = where;
  located.locations = locations;
  std::vector<Error> out;
  Checker(located, out).object(value, fields, path);
  for (auto& e : out) e.resource.clear();
  std::stable_sort(out.begin(), out.end(), [](const Error& a, const Error& b) {
    return std::pair(a.where.line, a.where.column) < std::pair(b.where.line, b.where.column);
  });
  return out;
}

}  // namespace nodeplane
