#include "docker_front.hpp"

#include "container_spec.hpp"

namespace nodeplane::docker {

DockerFront::~DockerFront() {
  // The runtime's object goes before this library does (its own library stays loaded).
  runtime_.reset();
}

std::vector<KindSchema> DockerFront::kinds() const { return {containerKind()}; }
std::vector<FieldSchema> DockerFront::configSchema() const { return dockerConfigSchema(); }
std::vector<Error> DockerFront::validate(const Resource& r) const {
  return validateOnHost(r, services_);
}
std::vector<Claim> DockerFront::claims(const Resource& r) const {
  return claimsOnHost(r, services_);
}
Json DockerFront::normalize(const std::string&, const Json& spec) const {
  return normalizeOnHost(spec, services_);
}

Result<Plugin*> DockerFront::runtime() {
  std::lock_guard lock(mu_);
  if (runtime_) return runtime_.get();
  if (loadError_) return std::unexpected(*loadError_);
  auto loaded = services_.loadRuntime(kRuntimeFile);
  if (!loaded) {
    loadError_ = loaded.error();
    return std::unexpected(loaded.error());
  }
  runtime_ = std::move(*loaded);
  return runtime_.get();
}

Result<void> DockerFront::start() {
  auto rt = runtime();
  if (!rt) return std::unexpected(rt.error());
  auto r = (*rt)->start();
  started_ = r.has_value();
  return r;
}

void DockerFront::stop() {
  if (started_ && runtime_) runtime_->stop();
  started_ = false;
}

std::vector<CheckItem> DockerFront::check() {
  auto rt = runtime();
  if (!rt) {
    CheckItem c;
    c.name = "docker";
    c.detail = "cannot load the docker plugin's runtime: " + rt.error().str();
    return {c};
  }
  return (*rt)->check();
}

Result<std::vector<ObservedObject>> DockerFront::observe(const std::vector<std::string>& kinds) {
  auto rt = runtime();
  if (!rt) return std::unexpected(rt.error());
  return (*rt)->observe(kinds);
}

Outcome DockerFront::apply(const Change& change, ApplyContext& context) {
  auto rt = runtime();
  if (!rt) return Outcome::failed(rt.error());
  return (*rt)->apply(change, context);
}

Result<void> DockerFront::recover(const Interrupted& interrupted, ApplyContext& context) {
  auto rt = runtime();
  if (!rt) return std::unexpected(rt.error());
  return (*rt)->recover(interrupted, context);
}

Result<std::vector<EventSource>> DockerFront::openEvents() {
  auto rt = runtime();
  if (!rt) return std::unexpected(rt.error());
  return (*rt)->openEvents();
}

Result<Touched> DockerFront::drainEvents(int fd) {
  auto rt = runtime();
  if (!rt) return std::unexpected(rt.error());
  return (*rt)->drainEvents(fd);
}

void DockerFront::closeEvents() {
  if (runtime_) runtime_->closeEvents();
}

}  // namespace nodeplane::docker
