// NAT for bridges (`Bridge.spec.masquerade`): one nftables table owned by nodeplane,
//
//   table ip nodeplane {                       # comment "nodeplane:<agent id>": the ownership mark
//     chain postrouting { type nat hook postrouting priority srcnat; policy accept;
//       ip saddr { 192.168.100.0/24 } oifname != "br-vm" masquerade comment "bridge br-vm"
//     }
//   }
//
// one rule per bridge, for the bridge's IPv4 subnets leaving through any other interface; the
// rule's comment names the bridge, so observe maps it back. A table of that name without this
// agent's mark (made by hand, or by another agent) is never touched: masquerade is refused.
// The table goes when its last rule does.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "nodeplane/error.hpp"
#include "nodeplane/resource.hpp"

namespace nodeplane::net {

inline constexpr const char* kNatTable = "nodeplane";  // family ip
inline constexpr const char* kNatChain = "postrouting";

inline std::string masqueradeComment(const std::string& bridge) { return "bridge " + bridge; }

// What the kernel says about table `ip nodeplane`, over raw nfnetlink (no libnftables).
struct NatTableProbe {
  bool exists = false;
  std::string comment;  // the table's comment (NFTA_TABLE_USERDATA), "" when none
};
Result<NatTableProbe> probeNatTable();

// One rule of the chain, as read back from `list table` JSON.
struct NatRule {
  std::uint64_t handle = 0;
  std::string chain;
  std::string comment;
  // Set only when the rule has exactly the shape nodeplane writes (saddr match, oifname !=,
  // masquerade); a rule edited by hand into anything else leaves it unset.
  std::optional<std::vector<std::string>> subnets;  // canonical "a.b.c.d/len", sorted
  std::string outNot;                               // the oifname it excludes
};

struct NatTable {
  enum Owner { kAbsent, kOurs, kForeign } owner = kAbsent;
  std::string comment;         // kForeign: what the table's comment says
  std::vector<NatRule> rules;  // kOurs: every rule of the table
  bool onlyOurChain = true;    // kOurs: nothing but chain postrouting (no other chain, no sets)
};

// The table as this agent sees it; lists it through libnftables only when it exists.
Result<NatTable> readNatTable(const std::string& agentId);

// Parses `nft -j list table ip nodeplane` output (pure: unit-tested on fixture text).
Result<NatTable> parseNatListing(const Json& listing);

// The IPv4 networks of a bridge's addresses ("192.168.100.1/24" -> "192.168.100.0/24"),
// canonical, sorted, without one that another contains. IPv6 addresses are left out.
std::vector<std::string> masqueradeSubnets(const std::vector<std::string>& addresses);

// True when the table holds exactly one rule for `bridge` and it is the one nodeplane would write
// for `subnets` (the observed `masquerade: true`).
bool hasMasquerade(const NatTable& table, const std::string& bridge,
                   const std::vector<std::string>& subnets);

// Success when masquerade can be set: the table is absent or this agent's; otherwise the
// kConflict error ensureMasquerade() would return, before anything is changed.
Result<void> masqueradeAllowed(const std::string& agentId);

// Makes the table hold exactly the rule for `bridge` and `subnets` (non-empty): creates the table
// (with this agent's mark) and chain when absent, replaces a stale rule in one transaction.
// Refuses (kConflict) when the table is not this agent's.
Result<void> ensureMasquerade(const std::string& agentId, const std::string& bridge,
                              const std::vector<std::string>& subnets);

// Removes the rules for `bridge` from this agent's table, and the table when no rule is left.
// Nothing to do (success) when the table is absent or not this agent's.
Result<void> removeMasquerade(const std::string& agentId, const std::string& bridge);

}  // namespace nodeplane::net
