#include "vgpu_plugin.hpp"

#include "nodeplane/plugin_util.hpp"
#include "sriov_kind.hpp"
#include "vgpu_kind.hpp"

namespace nodeplane::vgpu {

VgpuPlugin::VgpuPlugin(HostServices& services)
    : services_(services),
      config_(readVgpuConfig(services.context())),
      sriov_(std::make_unique<SriovKind>(services, config_)),
      vgpu_(std::make_unique<VgpuKind>(services, config_)) {}

VgpuPlugin::~VgpuPlugin() = default;

std::vector<KindSchema> VgpuPlugin::kinds() const { return {sriov_->schema(), vgpu_->schema()}; }

std::vector<FieldSchema> VgpuPlugin::configSchema() const { return vgpuConfigSchema(); }

Result<void> VgpuPlugin::start() {
  config_ = readVgpuConfig(services_.context());  // the section was checked after construction
  return {};
}

std::vector<CheckItem> VgpuPlugin::check() { return sriov_->check(); }

std::vector<Error> VgpuPlugin::validate(const Resource& r) const {
  return r.id.kind == kSriovPfKind ? sriov_->validate(r) : vgpu_->validate(r);
}

std::vector<Error> VgpuPlugin::validateSet(const std::vector<const Resource*>& resources) const {
  std::vector<const Resource*> vgpus;  // placement: the vGPUs of one GPU must fit it together
  for (const auto* r : resources)
    if (r->id.kind == kVgpuKind) vgpus.push_back(r);
  return vgpu_->validateSet(vgpus);
}

std::vector<Claim> VgpuPlugin::claims(const Resource& r) const {
  return r.id.kind == kSriovPfKind ? sriov_->claims(r) : vgpu_->claims(r);
}

Json VgpuPlugin::normalize(const std::string& kind, const Json& spec) const {
  return kind == kSriovPfKind ? sriov_->normalize(spec) : vgpu_->normalize(spec);
}

Result<std::vector<ObservedObject>> VgpuPlugin::observe(const std::vector<std::string>& kinds) {
  return catchAll("observing SR-IOV PFs and vGPUs", [&]() -> Result<std::vector<ObservedObject>> {
    std::vector<ObservedObject> out;
    for (const auto& kind : kinds) {
      auto part = kind == kSriovPfKind ? sriov_->observe() : vgpu_->observe();
      if (!part) return part;
      out.insert(out.end(), std::make_move_iterator(part->begin()),
                 std::make_move_iterator(part->end()));
    }
    return out;
  });
}

std::string VgpuPlugin::busyFor(const Change& change, const ObservedObject& now) const {
  if (change.id.kind == kSriovPfKind && sriov_->deleteLeavesVfs(change)) return {};
  return Plugin::busyFor(change, now);
}

Outcome VgpuPlugin::apply(const Change& change, ApplyContext& context) {
  auto r = catchAll("applying " + change.id.str(), [&]() -> Result<Outcome> {
    return change.id.kind == kSriovPfKind ? sriov_->apply(change, context)
                                          : vgpu_->apply(change, context);
  });
  return r ? *r : Outcome::failed(r.error());
}

}  // namespace nodeplane::vgpu
