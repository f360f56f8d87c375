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

// The alias nodeplane writes on links it creates or adopts (IFLA_IFALIAS): "nodeplane:<agent id>",
// so two agents (two state directories) on one host tell their links apart. A link marked with
// the bare legacy mark "nodeplane" (versions before agent ids) is ours only if our state store
// records it (ObservedObject::legacyMark); an update re-marks it with the agent id.
inline constexpr const char* kLegacyMark = "nodeplane";
inline std::string ownerMark(const std::string& agentId) {
  return std::string(kLegacyMark) + ":" + agentId;
}

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
