// The declarative schema of a kind's spec. The core checks every document against it (unknown
// field, wrong type, range, enum, required, dangling reference) before a plugin's own validate()
// sees the resource, builds the dependency graph from `references`, and uses `forcesReplace` and
// `compared` when it diffs.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "nodeplane/resource.hpp"

namespace nodeplane {

enum class FieldType {
  kString,
  kInteger,
  kBoolean,
  kStringList,
  kStringMap,   // string -> string
  kObject,      // members in `fields`
  kObjectList,  // each element has the members in `fields`
  kAny,         // checked only by the plugin (unions such as `gpus: all | [0, 1]`)
};

struct FieldSchema {
  std::string name;
  FieldType type = FieldType::kString;
  std::string description;
  bool required = false;
  std::optional<std::int64_t> minimum;  // integers: inclusive range
  std::optional<std::int64_t> maximum;
  std::vector<std::string> allowed;  // strings: the only values accepted, when not empty
  bool forcesReplace = false;        // a change cannot be made in place
  // A change is made in place but restarts the object (a VM's memory): the plan shows the
  // update as "restart", and the plugin sees FieldChange::forcesRestart.
  bool forcesRestart = false;
  bool compared = true;    // false for directives such as `adopt` (not host state)
  std::string references;  // kind this string field names (a dependency), or ""
  // The value never appears in `diff`, plan JSON, logs, `status` or the state file; a change
  // shows as "(sensitive value changed)" and a saved plan carries a hash of it. A plugin that
  // cannot read the value back from the host (Docker's container list has no environment)
  // reports it observed as {"sha256": "<hex>"}, the SHA-256 of the value's jsonText() (text.hpp)
  // (the value as normalize() left it): the diff compares that digest with the desired value's.
  // nodeplane/digest.hpp observedDigest() makes it.
  bool sensitive = false;
  std::vector<FieldSchema> fields;  // kObject / kObjectList members
};

// How the core confirms an applied change took: it observes the object again every `interval`
// until it matches the desired spec or `timeout` has passed ("did not converge").
struct VerifyPolicy {
  std::chrono::milliseconds interval{0};  // 0: at once, then every 100 ms
  std::chrono::milliseconds timeout{0};   // 0: three observations
};

struct KindSchema {
  std::string kind;
  std::string description;
  std::vector<FieldSchema> spec;
  VerifyPolicy verify;
  // expand() reads the host (a VM's IOMMU groups): the daemon expands again when the host
  // inventory changed instead of reusing the last expansion.
  bool expandReadsHost = false;
  // Kinds whose creates, updates and replaces in the same plan run before this kind's (a Vgpu
  // after the SriovPf that makes its virtual function), though no field names them.
  std::vector<std::string> appliedAfter;
};

// JSON Schema (draft 2020-12) of one kind's spec, for docs and editors.
inline Json toJsonSchema(const std::vector<FieldSchema>& fields) {
  Json props = Json::object();
  Json required = Json::array();
  for (const auto& f : fields) {
    Json p = Json::object();
    switch (f.type) {
      case FieldType::kString:
        p["type"] = "string";
        break;
      case FieldType::kInteger:
        p["type"] = "integer";
        break;
      case FieldType::kBoolean:
        p["type"] = "boolean";
        break;
      case FieldType::kStringList:
        p = {{"type", "array"}, {"items", {{"type", "string"}}}};
        break;
      case FieldType::kStringMap:
        p = {{"type", "object"}, {"additionalProperties", {{"type", "string"}}}};
        break;
      case FieldType::kObject:
        p = toJsonSchema(f.fields);
        break;
      case FieldType::kObjectList:
        p = {{"type", "array"}, {"items", toJsonSchema(f.fields)}};
        break;
      case FieldType::kAny:
        break;
    }
    if (f.minimum) p["minimum"] = *f.minimum;
    if (f.maximum) p["maximum"] = *f.maximum;
    if (!f.allowed.empty()) p["enum"] = f.allowed;
    if (!f.description.empty()) p["description"] = f.description;
    props[f.name] = p;
    if (f.required) required.push_back(f.name);
  }
  Json s = {{"type", "object"}, {"properties", props}, {"additionalProperties", false}};
  if (!required.empty()) s["required"] = required;
  return s;
}

}  // namespace nodeplane
