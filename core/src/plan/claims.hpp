// Claims: the host objects desired resources take (plugin.hpp, Claim). The core collects them
// (PCI claims widened to their IOMMU group), checks desired against desired at validation, and
// desired against what observed objects hold when it plans (plan.cpp).
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "nodeplane/error.hpp"
#include "nodeplane/host/pci.hpp"
#include "nodeplane/plugin.hpp"

namespace nodeplane {

// One claim of a desired resource, after widening.
struct DesiredClaim {
  Claim claim;
  // "" or why it is taken: "in the IOMMU group of pci 0000:3b:00.0"; for a GPU claimed by index
  // or UUID (resolved to its address), how it was named: "GPU index 2", "GPU-…".
  std::string via;
  // `pci 0000:3b:00.1 (in the IOMMU group of pci 0000:3b:00.0)`
  std::string str() const { return claim.str() + (via.empty() ? "" : " (" + via + ")"); }
};

// What identifies the object claimed: (type, id), where a "gpu" named by its PCI address is
// the "pci" function of that address (a container's GPU and a VM's passthrough are one device).
// A "gpu" named by inventory index or UUID is first resolved to its address (resolveGpuClaim).
std::pair<std::string, std::string> claimKey(const Claim& c);

// `c` with a "gpu" id that is an inventory index ("0") or a driver UUID ("GPU-…") replaced by
// that NVIDIA GPU's PCI address; `named` gets what it was named ("" when unchanged). Any other
// claim, and an index or UUID the inventory does not have (validation says so), is unchanged.
Claim resolveGpuClaim(const Claim& c, const std::vector<host::Gpu>& gpus, std::string& named);

struct ClaimSources {
  // The plugin's claims() of a resource.
  std::function<Result<std::vector<Claim>>(const Resource&)> claimsOf;
  // The host's PCI functions (the pass's inventory snapshot).
  std::function<Result<std::vector<host::PciFunction>>()> pciFunctions;
  std::filesystem::path sysfsRoot;  // for the members of an IOMMU group
  // The host's GPUs (the pass's snapshot): a "gpu" claim by index or UUID names the same device
  // as one by its PCI address. Unset or unreadable: such claims stay as written.
  std::function<Result<std::vector<host::Gpu>>()> gpus;
};

struct CollectedClaims {
  std::vector<std::vector<DesiredClaim>> of;  // per resource, in the order given
  bool readHost = false;  // a claim was widened or resolved through the host inventory
};

// Every claim of every resource. A "pci" claim with iommuGroup takes every function of that
// function's IOMMU group (PCI bridges excluded) with the same exclusivity. Errors (with the
// resource's file:line): claims() failed, a function the host does not have, a function with no
// IOMMU group; such a resource claims nothing more.
CollectedClaims collectClaims(const std::vector<Resource>& resources, const ClaimSources& sources,
                              std::vector<Error>& errors);

// Two resources claiming one object where either claims it exclusively (two shared claims are
// fine: containers share GPUs; so are an owner and a child it expanded to, a VM and its
// VfioDevice): an error on the second, naming the first with its file:line.
void checkDesiredClaims(const std::vector<Resource>& resources,
                        const std::vector<std::vector<DesiredClaim>>& claims,
                        std::vector<Error>& errors);

}  // namespace nodeplane
