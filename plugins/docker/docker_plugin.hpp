// The docker plugin: Container resources on the Docker Engine (its API on a unix socket), with the
// host's NVIDIA GPUs as DeviceRequests. Ownership is on the container itself (labels, see
// container_spec.hpp); observe is one list call; any change of spec recreates the container, a
// change of `state` alone starts or stops it. Drift comes from Docker's /events stream.
#pragma once

#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "nodeplane/plugin.hpp"

namespace nodeplane::docker {

class Engine;
class EventStream;

class DockerPlugin : public Plugin {
 public:
  explicit DockerPlugin(HostServices& services);
  ~DockerPlugin() override;

  std::string name() const override { return "docker"; }
  std::vector<KindSchema> kinds() const override;
  std::vector<FieldSchema> configSchema() const override;
  // Connects (/_ping, API version negotiation). dockerd not running: an error, and the daemon
  // tries again at its next pass.
  Result<void> start() override;
  void stop() override;
  // "docker" (reachable, server and API version), "nvidia-container" (the nvidia device driver:
  // /info Runtimes, or nvidia-container-runtime-hook on dockerd's PATH); neither is required
  // unless a Container resource is desired.
  std::vector<CheckItem> check() override;
  std::vector<Error> validate(const Resource& r) const override;
  std::vector<Claim> claims(const Resource& r) const override;
  Json normalize(const std::string& kind, const Json& spec) const override;
  Result<std::vector<ObservedObject>> observe(const std::vector<std::string>& kinds) override;
  Outcome apply(const Change& change, ApplyContext& context) override;
  // Docker's /events (container die, stop, destroy, rename, create, start; every container, so
  // a hand-made container taking a desired name is seen too): touches the container named.
  Result<std::vector<EventSource>> openEvents() override;
  Result<Touched> drainEvents(int fd) override;
  void closeEvents() override;
  // Each apply is a few API calls on a connection of its own: containers converge in parallel.
  unsigned maxParallel() const override { return 8; }

 private:
  HostServices& services_;
  std::string socket_;
  std::unique_ptr<Engine> engine_;  // from start() to stop()
  std::unique_ptr<EventStream> events_;
};

}  // namespace nodeplane::docker
