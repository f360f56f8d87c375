#include "claims.hpp"

#include <algorithm>
#include <map>
#include <optional>
#include <set>

namespace nodeplane {

std::pair<std::string, std::string> claimKey(const Claim& c) {
  if (c.type == "gpu" && host::isPciAddress(c.id)) return {"pci", c.id};
  return {c.type, c.id};
}

Claim resolveGpuClaim(const Claim& c, const std::vector<host::Gpu>& gpus, std::string& named) {
  named.clear();
  if (c.type != "gpu" || c.id.empty() || host::isPciAddress(c.id)) return c;
  const bool isIndex = c.id.size() <= 4 && std::all_of(c.id.begin(), c.id.end(), [](char ch) {
                         return ch >= '0' && ch <= '9';
                       });
  for (const auto& g : gpus) {
    if (!g.isNvidia()) continue;
    if ((isIndex && std::to_string(g.index) == c.id) || (!g.uuid.empty() && g.uuid == c.id)) {
      Claim out = c;
      out.id = g.function.address;
      named = isIndex ? "GPU index " + c.id : c.id;
      return out;
    }
  }
  return c;
}

namespace {

// Widens `c` (a "pci" claim with iommuGroup) to the functions of its group; appends to `out`.
Result<void> widen(const Claim& c, const ClaimSources& sources,
                   std::optional<Result<std::vector<host::PciFunction>>>& inventory,
                   std::vector<DesiredClaim>& out) {
  if (!inventory) inventory = sources.pciFunctions();
  if (!*inventory)
    return fail(ErrorKind::kTerminal, "claims " + c.str() +
                                          " with its IOMMU group, but the PCI inventory cannot "
                                          "be read: " +
                                          inventory->error().message);
  const auto& functions = **inventory;
  const host::PciFunction* self = nullptr;
  for (const auto& f : functions)
    if (f.address == c.id) self = &f;
  if (!self)
    return fail(ErrorKind::kInvalidInput, "claims " + c.str() + ", which this host does not have",
                {}, "list the host's PCI functions with `nodeplane check`");
  if (!self->iommuGroup)
    return fail(ErrorKind::kInvalidInput,
                "claims " + c.str() + " with its IOMMU group, but it is in no IOMMU group", {},
                "turn the IOMMU on (intel_iommu=on or amd_iommu=on on the kernel command line)");
  auto members = host::readIommuGroup(sources.sysfsRoot, *self->iommuGroup);
  if (!members) return std::unexpected(members.error());
  Claim base = c;
  base.iommuGroup = false;
  out.push_back({base, ""});
  for (const auto& address : *members) {
    if (address == c.id) continue;
    const host::PciFunction* f = nullptr;
    for (const auto& g : functions)
      if (g.address == address) f = &g;
    if (f && f->isBridge()) continue;  // bridges stay with the host
    Claim m = base;
    m.id = address;
    out.push_back({m, "in the IOMMU group of " + c.str()});
  }
  return {};
}

}  // namespace

CollectedClaims collectClaims(const std::vector<Resource>& resources, const ClaimSources& sources,
                              std::vector<Error>& errors) {
  CollectedClaims out;
  out.of.resize(resources.size());
  std::optional<Result<std::vector<host::PciFunction>>> inventory;  // read once, when needed
  std::optional<std::vector<host::Gpu>> gpus;                       // likewise
  for (std::size_t i = 0; i < resources.size(); ++i) {
    const Resource& r = resources[i];
    auto claims = sources.claimsOf(r);
    if (!claims) {
      errors.push_back(r.error(ErrorKind::kInvalidInput, "", claims.error().message));
      continue;
    }
    std::vector<DesiredClaim> all;
    for (const auto& written : *claims) {
      Claim c = written;
      if (c.type == "gpu" && !host::isPciAddress(c.id) && sources.gpus) {
        if (!gpus) {
          auto read = sources.gpus();
          gpus = read ? std::move(*read) : std::vector<host::Gpu>{};
        }
        std::string named;
        c = resolveGpuClaim(written, *gpus, named);
        if (!named.empty()) {  // the same device as a claim of its address
          out.readHost = true;
          all.push_back({c, named});
          continue;
        }
      }
      if (c.type != "pci" || !c.iommuGroup) {
        all.push_back({c, ""});
        continue;
      }
      out.readHost = true;
      if (auto ok = widen(c, sources, inventory, all); !ok) {
        Error e = r.error(ok.error().kind, "", ok.error().message, ok.error().hint);
        errors.push_back(std::move(e));
      }
    }
    // One object claimed twice by one resource (two functions of one group): once, the first.
    std::set<std::pair<std::string, std::string>> seen;
    for (auto& c : all)
      if (seen.insert(claimKey(c.claim)).second) out.of[i].push_back(std::move(c));
  }
  return out;
}

void checkDesiredClaims(const std::vector<Resource>& resources,
                        const std::vector<std::vector<DesiredClaim>>& claims,
                        std::vector<Error>& errors) {
  struct First {
    const Resource* by;
    bool exclusive;
  };
  std::map<std::pair<std::string, std::string>, First> claimed;
  for (std::size_t i = 0; i < resources.size() && i < claims.size(); ++i) {
    const Resource& r = resources[i];
    for (const auto& c : claims[i]) {
      auto [it, fresh] = claimed.emplace(claimKey(c.claim), First{&r, c.claim.exclusive});
      if (fresh || it->second.by == &r) continue;
      const First& first = it->second;
      // An owner and the children it expanded to are one thing (a VM and its VfioDevices).
      if (r.owner == first.by->id || first.by->owner == r.id) continue;
      if (!c.claim.exclusive && !first.exclusive) continue;  // shared by both: fine
      std::string how;
      if (c.claim.exclusive != first.exclusive)
        how = c.claim.exclusive ? " exclusively" : " (shared)";
      std::string theirs = c.claim.exclusive == first.exclusive ? ""
                           : first.exclusive                    ? " exclusively"
                                                                : " (shared)";
      errors.push_back(r.error(ErrorKind::kInvalidInput, "",
                               "claims " + c.str() + how + ", already claimed" + theirs + " by " +
                                   first.by->id.str() + " at " + first.by->where.str()));
    }
  }
}

}  // namespace nodeplane
