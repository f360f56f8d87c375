// The Container kind's spec side: schema, validation (against the host's GPU inventory),
// normal form, the ownership labels and spec hash, and the Engine API body that creates it.
// Pure functions over JSON and the inventory: no Engine calls here (unit-tested without dockerd).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "nodeplane/error.hpp"
#include "nodeplane/host/pci.hpp"
#include "nodeplane/plugin.hpp"
#include "nodeplane/resource.hpp"
#include "nodeplane/schema.hpp"

namespace nodeplane::docker {

inline constexpr const char* kKind = "Container";

// Ownership labels on every container nodeplane creates (Docker cannot change a container's
// labels later: a change of any of them recreates it).
inline constexpr const char* kManagedLabel = "io.nodeplane.managed";     // "true"
inline constexpr const char* kResourceLabel = "io.nodeplane.resource";   // "Container/<name>"
inline constexpr const char* kAgentLabel = "io.nodeplane.agent";         // the agent id
inline constexpr const char* kSpecHashLabel = "io.nodeplane.spec-hash";  // specHash(spec)
// The normalized spec as JSON, each sensitive value (env) as its digest {"sha256": …}: what
// observe() reports, without an inspect per container.
inline constexpr const char* kSpecLabel = "io.nodeplane.spec";

KindSchema containerKind();
// The `docker:` section of the agent config: {socket} (default /run/docker.sock).
std::vector<FieldSchema> dockerConfigSchema();

// spec.gpus resolved against the inventory.
struct GpuSelection {
  bool all = false;
  std::vector<host::Gpu> gpus;  // in the order written ("all": every NVIDIA GPU, by index)
};
// Each entry of spec.gpus ("all", or a list of inventory indices, PCI addresses, "GPU-…" UUIDs)
// resolved; errors appended to `errors` (field path "spec.gpus[1]", with what was expected) for an
// unknown index, address or UUID, a device that is not an NVIDIA GPU, a GPU bound to vfio-pci,
// "all" inside a list, a GPU named twice; those entries are left out of the selection. The
// result is an error (not appended) only when spec.gpus is neither "all" nor a list. "all" is
// every NVIDIA GPU not bound to vfio-pci (what the nvidia driver gives a container).
Result<GpuSelection> resolveGpus(const Resource& r, const std::vector<host::Gpu>& inventory,
                                 std::vector<Error>& errors);

// Every problem beyond the schema, built with r.error() (file:line, field path): the container
// name (Docker's [a-zA-Z0-9][a-zA-Z0-9_.-]*), the image reference, env names, mount paths
// (absolute, no duplicate targets), gpus (resolveGpus), numaAffinity without gpus.
std::vector<Error> validateContainer(const Resource& r, const std::vector<host::Gpu>& inventory);

// The normal form: defaults filled (state running, restart "no", pull IfNotPresent, exclusive and
// numaAffinity false; command, entrypoint, mounts, gpus [] and env, labels {}: a field left out is
// Docker's default, so removing one from a file is a change; network "default"), gpus as "all" or
// the sorted PCI addresses of the GPUs named (so an index that now names another GPU is a change),
// mounts sorted by target. Idempotent; what the inventory cannot resolve is left as written
// (validate reports it).
Json normalizeContainer(const Json& spec, const std::vector<host::Gpu>& inventory);

// The GPUs the container takes: one "gpu" claim per GPU by PCI address, shared unless
// spec.exclusive.
std::vector<Claim> containerClaims(const Resource& r, const std::vector<host::Gpu>& inventory);

// The three above with the pass's GPU inventory from `services` (what the plugin and its light
// front, docker_front.hpp, both answer); a throw becomes an error / the spec as written.
std::vector<Error> validateOnHost(const Resource& r, HostServices& services);
std::vector<Claim> claimsOnHost(const Resource& r, HostServices& services);
Json normalizeOnHost(const Json& spec, HostServices& services);

// The normalized desired spec with `env` replaced by its digest {"sha256": SHA-256 hex of the
// env's jsonText()}: what the core's diff compares an observed sensitive value against. An empty
// env stays {} (it holds no secret: export can write it).
Json withEnvDigest(const Json& normalizedSpec);

// SHA-256 (hex) of withEnvDigest(normalized desired spec) without `state` and `pull`: what the
// container was created from. Equal hashes: leave it; different: recreate.
std::string specHash(const Json& normalizedSpec);

// The body of POST /containers/create?name=<name>: Image, Cmd, Entrypoint, Env, Labels (the
// spec's and the ownership labels), HostConfig {DeviceRequests (driver nvidia, [["gpu"]], the
// GPUs' UUIDs as DeviceIDs when known, else indices; Count -1 for all), Mounts (bind), NetworkMode,
// RestartPolicy, CpusetCpus/CpusetMems from the NUMA nodes of the GPUs when numaAffinity (read
// from <sysfsRoot>/devices/system/node/node<N>/cpulist; GPUs whose NUMA node is unknown (-1)
// pin nothing)}. An error when agentId is "" (the labels need it), when the GPUs no longer
// resolve, or when a cpulist cannot be read.
Result<Json> createBody(const std::string& name, const Json& normalizedSpec,
                        const std::vector<host::Gpu>& inventory,
                        const std::filesystem::path& sysfsRoot, const std::string& agentId);

// One entry of GET /containers/json?all=1 as an observed object: id from the name, uid the
// container id, marked when its managed and agent labels are this agent's (markedByOther for
// another agent id), spec from kSpecLabel with `state` from the entry's State ("running" for
// running/restarting/paused, else "stopped"). An unlabelled container gets what the list shows
// (image, state, network, labels), and so does one whose spec label is not a JSON object. With
// `agentId` "" (no state store opened) no container is ours: an agent label makes it
// markedByOther, as the net plugin does. The mark counts only when io.nodeplane.resource names
// this container ("Container/<its name>": one renamed by hand is not the resource it was made
// for). A managed label without an agent label is a legacyMark (the core refuses it unless the
// state store records it, and says to adopt it). `holds`: one "gpu" claim per PCI address in
// the spec label's gpus (exclusive as the label says); for "all", one per NVIDIA GPU of
// `inventory` not bound to vfio-pci (what "all" gives a container); none for an unlabelled one.
ObservedObject observedFromListEntry(const Json& entry, const std::string& agentId,
                                     const std::vector<host::Gpu>& inventory = {});

}  // namespace nodeplane::docker
