// Checking a resource's spec against its kind's declarative schema.
#pragma once

#include <vector>

#include "nodeplane/error.hpp"
#include "nodeplane/resource.hpp"
#include "nodeplane/schema.hpp"

namespace nodeplane {

// Every problem of `r.spec` against `schema`: unknown field, wrong type, out of range, not one of
// the allowed values, missing required field. Field paths are "spec.x.y[2]"; each error is
// located with r.locate(path). Reference targets are not checked here (the graph does that).
std::vector<Error> validateAgainstSchema(const Resource& r, const KindSchema& schema);

}  // namespace nodeplane
