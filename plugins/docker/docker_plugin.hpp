// The docker plugin: Container resources on the Docker Engine (its API on a unix socket), with the
// host's NVIDIA GPUs as DeviceRequests. Ownership is on the container itself (labels, see
// container_spec.hpp); observe is one list call; any change of spec recreates the container, a
// change of `state` alone starts or stops it. Drift comes from Docker's /events stream.
#pragma once

#include <filesystem>
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
  // apply() by action (docker_apply.cpp); each returns what apply() reports.
  Result<void> applyNow(const Change& change, ApplyContext& context);
  Result<void> createContainer(const Change& change, const Json& desired, ApplyContext& context);
  Result<void> ensureImage(const std::string& image, const std::string& pull,
                           ApplyContext& context);
  Result<void> startContainer(const std::string& uid, const std::string& what);
  Result<void> stopContainer(const std::string& uid, const std::string& what);
  Result<void> removeContainer(const std::string& uid, const std::string& what);
  // The containers this agent released (deletionPolicy Orphan): Docker cannot take their labels
  // off, so their ids are kept in <stateDir>/docker/released.json and observe() reports them
  // unmarked. Guarded by releasedMu_ (apply() runs on several threads).
  bool isReleased(const std::string& uid);
  Result<void> setReleased(const std::string& uid, bool released);
  Result<void> loadReleased();  // with releasedMu_ held
  std::filesystem::path releasedFile() const;

  HostServices& services_;
  std::string socket_;
  std::unique_ptr<Engine> engine_;  // from start() to stop()
  std::unique_ptr<EventStream> events_;
  std::mutex releasedMu_;
  bool releasedLoaded_ = false;
  std::set<std::string> released_;
  std::set<std::string> lastSeen_;  // the container ids of the last observe()
  bool observedOnce_ = false;
};

}  // namespace nodeplane::docker
