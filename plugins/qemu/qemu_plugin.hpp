// The qemu plugin: VirtualMachine (vm/) and VfioDevice (vfio/). This class only dispatches by
// kind; each kind's whole life is in its folder.
#pragma once

#include <memory>

#include "nodeplane/plugin.hpp"
#include "qemu_config.hpp"

namespace nodeplane::qemu {

class VfioKind;
class VmKind;

class QemuPlugin : public Plugin {
 public:
  explicit QemuPlugin(HostServices& services);
  ~QemuPlugin() override;

  std::string name() const override { return "qemu"; }
  std::vector<KindSchema> kinds() const override;
  std::vector<FieldSchema> configSchema() const override;  // qemu:
  std::vector<std::pair<std::string, std::vector<FieldSchema>>> moreConfigSections()
      const override;  // vfio:
  Result<void> start() override;
  void stop() override;
  std::vector<CheckItem> check() override;
  std::vector<Error> validate(const Resource& r) const override;
  Result<std::vector<Resource>> expand(const Resource& r) const override;
  std::vector<Claim> claims(const Resource& r) const override;
  Json normalize(const std::string& kind, const Json& spec) const override;
  Result<std::vector<ObservedObject>> observe(const std::vector<std::string>& kinds) override;
  Outcome apply(const Change& change, ApplyContext& context) override;
  Result<void> recover(const Interrupted& interrupted, ApplyContext& context) override;
  Result<std::vector<EventSource>> openEvents() override;
  Result<Touched> drainEvents(int fd) override;
  void closeEvents() override;
  // One step at a time: VfioDevice steps move drivers of one IOMMU group, VM steps share the bus.
  unsigned maxParallel() const override { return 1; }

 private:
  HostServices& services_;
  QemuConfig config_;
  std::unique_ptr<VfioKind> vfio_;
  std::unique_ptr<VmKind> vm_;
};

}  // namespace nodeplane::qemu
