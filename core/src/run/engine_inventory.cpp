// The engine's use of the host inventory while preparing the desired state: the sources of
// claims (claims.hpp) and whether an earlier desired state is stale because the inventory
// changed (KindSchema::expandReadsHost, IOMMU-group claims).
#include <fmt/format.h>

#include "engine.hpp"

namespace nodeplane {

ClaimSources Engine::claimSources() const {
  ClaimSources s;
  s.claimsOf = [this](const Resource& r) -> Result<std::vector<Claim>> {
    PluginHandle* p = plugins_.forKind(r.id.kind);
    if (!p) return std::vector<Claim>{};
    return p->claims(r);
  };
  s.pciFunctions = [this]() -> Result<std::vector<host::PciFunction>> {
    if (auto* shared = plugins_.shared()) return shared->pciFunctions();
    return host::readPciFunctions(host_.sysfsRoot);
  };
  s.sysfsRoot = host_.sysfsRoot;
  s.gpus = [this]() -> Result<std::vector<host::Gpu>> {
    if (auto* shared = plugins_.shared()) return shared->gpus();
    return host::readGpuInventory(host_.sysfsRoot, host_.procRoot);
  };
  return s;
}

bool Engine::expansionReadsHost(const std::vector<Resource>& resources) const {
  for (const auto& r : resources) {
    if (r.owner) continue;  // children do not expand
    if (const KindSchema* ks = plugins_.schema(r.id.kind); ks && ks->expandReadsHost) return true;
  }
  return false;
}

std::string Engine::inventoryFingerprint() const {
  auto functions = claimSources().pciFunctions();
  if (!functions) return "";
  std::uint64_t h = 1469598103934665603ull;
  auto mix = [&](std::string_view s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 1099511628211ull;
    }
    h ^= 0xff;  // field separator
    h *= 1099511628211ull;
  };
  for (const auto& f : *functions) {
    mix(f.address);
    mix(f.vendor);
    mix(f.device);
    mix(f.classCode);
    mix(f.driver);
    mix(std::to_string(f.numaNode));
    mix(f.iommuGroup ? std::to_string(*f.iommuGroup) : "-");
  }
  return fmt::format("{:016x}", h);
}

void Engine::recordRelations(const Desired& desired, state::Store& store) const {
  for (const auto& r : desired.resources) {
    auto it = store.owned().find(r.id);
    if (it == store.owned().end()) continue;
    if (it->second.owner == r.owner && it->second.dependsOn == r.dependsOn) continue;
    state::OwnedObject o = it->second;
    o.owner = r.owner;
    o.dependsOn = r.dependsOn;
    store.setOwned(std::move(o));
  }
}

void Engine::newPass() {
  if (auto* shared = plugins_.shared()) shared->newPass();
  plugins_.retryFailedStarts();
}

bool Engine::stale(const Desired& desired) const {
  return desired.readsHost && inventoryFingerprint() != desired.inventory;
}

}  // namespace nodeplane
