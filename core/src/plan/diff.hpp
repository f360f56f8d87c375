// The diff of one resource: a pure function of the normalised desired and observed specs.
// Fields the desired spec does not set are "don't care"; directives (compared = false) are
// never compared.
#pragma once

#include <vector>

#include "nodeplane/plugin.hpp"
#include "nodeplane/schema.hpp"

namespace nodeplane {

std::vector<FieldChange> diffSpec(const Json& desired, const Json& observed,
                                  const std::vector<FieldSchema>& fields);

}  // namespace nodeplane
