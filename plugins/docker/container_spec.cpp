// STUB: replaced by the spec helper.
#include "container_spec.hpp"

namespace nodeplane::docker {

KindSchema containerKind() {
  return KindSchema{.kind = kKind, .description = "a Docker container", .spec = {}};
}
std::vector<FieldSchema> dockerConfigSchema() { return {}; }
Result<GpuSelection> resolveGpus(const Resource&, const std::vector<host::Gpu>&,
                                 std::vector<Error>&) {
  return GpuSelection{};
}
std::vector<Error> validateContainer(const Resource&, const std::vector<host::Gpu>&) { return {}; }
Json normalizeContainer(const Json& spec, const std::vector<host::Gpu>&) { return spec; }
std::vector<Claim> containerClaims(const Resource&, const std::vector<host::Gpu>&) { return {}; }
std::string specHash(const Json&) { return ""; }
Result<Json> createBody(const std::string&, const Json&, const std::vector<host::Gpu>&,
                        const std::filesystem::path&, const std::string&) {
  return Json::object();
}
ObservedObject observedFromListEntry(const Json&, const std::string&) { return {}; }

}  // namespace nodeplane::docker
