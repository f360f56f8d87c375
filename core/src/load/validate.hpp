// Checking a resource's spec against its kind's declarative schema.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "nodeplane/error.hpp"
#include "nodeplane/resource.hpp"
#include "nodeplane/schema.hpp"

namespace nodeplane {

// Every problem of `r.spec` against `schema`: unknown field, wrong type, out of range, not one of
// the allowed values, missing required field. Field paths are "spec.x.y[2]"; each error is
// located with r.locate(path). Reference targets are not checked here (the graph does that).
std::vector<Error> validateAgainstSchema(const Resource& r, const KindSchema& schema);

// The same checks over a value that is not a resource's spec (a plugin's section of the agent
// config): field paths start at `path` ("net"), are located through `locations` (else at
// `where`), and the errors name no resource.
std::vector<Error> validateSection(const Json& value, const std::vector<FieldSchema>& fields,
                                   const std::string& path,
                                   const std::map<std::string, SourceLocation>& locations,
                                   const SourceLocation& where);

// Shared with the loader's envelope checks.
// The known name closest to a misspelled one ("mtux" -> "mtu"), or "" when none is close.
std::string closestName(std::string_view name, const std::vector<std::string>& known);
// A value as an error message shows it: `string "abc"`, `integer 5`, `float 1.5`, `a list`, ...
std::string describeValue(const Json& value);

}  // namespace nodeplane
