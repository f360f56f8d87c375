// The vgpu plugin: SriovPf (sriov/) and Vgpu (vgpu/). This class only dispatches by kind; each
// kind's whole life is in its folder; pf.hpp is what both read of PFs, VFs and their users.
#pragma once

#include <memory>

#include "nodeplane/plugin.hpp"
#include "vgpu_config.hpp"

namespace nodeplane::vgpu {

class SriovKind;
class VgpuKind;

class VgpuPlugin : public Plugin {
 public:
  explicit VgpuPlugin(HostServices& services);
  ~VgpuPlugin() override;

  std::string name() const override { return "vgpu"; }
  std::vector<KindSchema> kinds() const override;
  std::vector<FieldSchema> configSchema() const override;  // vgpu:
  Result<void> start() override;
  std::vector<CheckItem> check() override;
  std::vector<Error> validate(const Resource& r) const override;
  std::vector<Error> validateSet(const std::vector<const Resource*>& resources) const override;
  std::vector<Claim> claims(const Resource& r) const override;
  Json normalize(const std::string& kind, const Json& spec) const override;
  Result<std::vector<ObservedObject>> observe(const std::vector<std::string>& kinds) override;
  // A SriovPf delete or replace whose count to put back is the count it has only forgets the
  // record there: it does not wait for the users of its VFs.
  std::string busyFor(const Change& change, const ObservedObject& now) const override;
  Outcome apply(const Change& change, ApplyContext& context) override;
  // One step at a time: a GPU's VFs share its placement, and sriov-manage rebinds the whole PF.
  unsigned maxParallel() const override { return 1; }

 private:
  HostServices& services_;
  VgpuConfig config_;
  std::unique_ptr<SriovKind> sriov_;
  std::unique_ptr<VgpuKind> vgpu_;
};

}  // namespace nodeplane::vgpu
