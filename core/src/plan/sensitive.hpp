// Sensitive fields (FieldSchema::sensitive): their values never leave the process in text. A diff
// shows "(sensitive value changed)" (FieldChange::sensitive, with no values), and a saved plan
// carries, in place of each value, {"sensitive": "sha256:<hex>"}: a SHA-256 over the resource,
// the field path and the value. `apply --plan` needs the values again, so it takes the desired
// files too (-f) and puts each value back only when it hashes to what the plan holds: a plan
// made from other values than the files hold now is refused.
#pragma once

#include <string>
#include <vector>

#include "nodeplane/resource.hpp"
#include "nodeplane/schema.hpp"
#include "plan.hpp"

namespace nodeplane {

// The paths ("token", "cloudInit.userData") of the sensitive fields of a schema; a sensitive
// object is one path, not descended into.
std::vector<std::string> sensitivePaths(const std::vector<FieldSchema>& fields);

// {"sensitive": "sha256:<hex>"} for `value` at `path` of `id`.
Json sensitiveHash(const ResourceId& id, const std::string& path, const Json& value);

// An observed sensitive value a plugin cannot read back (Docker lists no environment; a seed ISO
// is not parsed back) may be reported as its digest, {"sha256": "<hex>"}: the SHA-256 of the
// value's compact JSON text (jsonText(), text.hpp). True when `observed` is such a digest of
// `desired`.
bool matchesObservedDigest(const Json& desired, const Json& observed);

// The first of `paths` that holds a value in `spec` (set, not null, not an empty map, list or
// string: an empty env holds no secret), or "".
std::string firstSensitiveValue(Json spec, const std::vector<std::string>& paths);

// `spec` with the value at each of `paths` (where set) replaced by its sensitiveHash().
Json redactSensitive(Json spec, const ResourceId& id, const std::vector<std::string>& paths);

// Puts the real values of a saved plan's sensitive fields back from `desired` (the desired
// resources as loaded from -f; null when none were given). Every error found: a step whose
// resource has sensitive values but is not in `desired`, or whose value hashes otherwise.
// `file` names the plan in the errors.
std::vector<Error> resolveSensitive(Plan& plan, const std::vector<Resource>* desired,
                                    const std::string& file);

}  // namespace nodeplane
