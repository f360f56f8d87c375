// What the agent loads as the docker plugin (libnodeplane-docker.so): the Container spec side
// (schema, validate, claims, normalize) and nothing that needs libcurl. Everything that talks to
// dockerd (check, start, observe, apply, events) is DockerPlugin in the plugin's runtime,
// <plugin dir>/runtime/libnodeplane-docker-runtime.so, loaded the first time it is needed
// (HostServices::loadRuntime). A host that declares no Container never maps libcurl and the 30
// libraries it brings (about 4.5 MB of the idle daemon's resident memory).
#pragma once

#include <memory>
#include <mutex>
#include <optional>

#include "nodeplane/plugin.hpp"

namespace nodeplane::docker {

inline constexpr const char* kRuntimeFile = "libnodeplane-docker-runtime.so";

class DockerFront : public Plugin {
 public:
  explicit DockerFront(HostServices& services) : services_(services) {}
  ~DockerFront() override;

  std::string name() const override { return "docker"; }
  std::vector<KindSchema> kinds() const override;
  std::vector<FieldSchema> configSchema() const override;
  std::vector<Error> validate(const Resource& r) const override;
  std::vector<Claim> claims(const Resource& r) const override;
  Json normalize(const std::string& kind, const Json& spec) const override;
  unsigned maxParallel() const override { return 8; }  // DockerPlugin's

  // The runtime's.
  Result<void> start() override;
  void stop() override;
  std::vector<CheckItem> check() override;
  Result<std::vector<ObservedObject>> observe(const std::vector<std::string>& kinds) override;
  Outcome apply(const Change& change, ApplyContext& context) override;
  // busyFor() is the default: no Docker object reports itself in use (ObservedObject::busy).
  Result<void> recover(const Interrupted& interrupted, ApplyContext& context) override;
  Result<std::vector<EventSource>> openEvents() override;
  Result<Touched> drainEvents(int fd) override;
  void closeEvents() override;

 private:
  // Loaded once; an error is kept and said again (the file will not fix itself in this process).
  Result<Plugin*> runtime();

  HostServices& services_;
  std::mutex mu_;
  std::unique_ptr<Plugin> runtime_;
  std::optional<Error> loadError_;
  bool started_ = false;
};

}  // namespace nodeplane::docker
