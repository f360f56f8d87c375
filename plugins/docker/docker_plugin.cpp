// STUB: replaced by the plugin helper.
#include "docker_plugin.hpp"

#include "container_spec.hpp"
#include "engine.hpp"
#include "engine_events.hpp"

namespace nodeplane::docker {

DockerPlugin::DockerPlugin(HostServices& services) : services_(services) {}
DockerPlugin::~DockerPlugin() = default;
std::vector<KindSchema> DockerPlugin::kinds() const { return {containerKind()}; }
std::vector<FieldSchema> DockerPlugin::configSchema() const { return dockerConfigSchema(); }
Result<void> DockerPlugin::start() { return fail(ErrorKind::kRetryable, "not implemented"); }
void DockerPlugin::stop() {}
std::vector<Error> DockerPlugin::validate(const Resource&) const { return {}; }
std::vector<Claim> DockerPlugin::claims(const Resource&) const { return {}; }
Json DockerPlugin::normalize(const std::string&, const Json& spec) const { return spec; }
Result<std::vector<ObservedObject>> DockerPlugin::observe(const std::vector<std::string>&) {
  return std::vector<ObservedObject>{};
}
Outcome DockerPlugin::apply(const Change&, ApplyContext&) {
  return Outcome::failed(Error{ErrorKind::kRetryable, "not implemented"});
}

}  // namespace nodeplane::docker
