// The kinds the net plugin owns, their schema, and the checks and canonical form the schema
// cannot express.
#pragma once

#include <string>
#include <vector>

#include "nodeplane/error.hpp"
#include "nodeplane/plugin.hpp"
#include "nodeplane/resource.hpp"
#include "nodeplane/schema.hpp"

namespace nodeplane::net {

inline constexpr const char* kBridge = "Bridge";
inline constexpr const char* kVxlan = "Vxlan";
inline constexpr const char* kTap = "Tap";

// The alias nodeplane writes on links it creates or adopts (IFLA_IFALIAS).
inline constexpr const char* kOwnerMark = "nodeplane";

inline constexpr int kDefaultVxlanPort = 4789;  // IANA; the kernel's own default varies

std::vector<KindSchema> netKinds();

// What a resource claims (Plugin::claims) for the kernel interface it is: one name space for every
// kind of every plugin that makes interfaces.
inline Claim interfaceClaim(const std::string& name) { return Claim{"interface", name}; }
bool isNetKind(const std::string& kind);

std::vector<Error> validateNet(const Resource& r);

// Canonical addresses (sorted), canonical IPs for local/remote/group. Values that do not parse
// are left as they are (validate reports them).
Json normalizeNet(const std::string& kind, const Json& spec);

}  // namespace nodeplane::net
