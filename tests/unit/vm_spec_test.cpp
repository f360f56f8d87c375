// The VirtualMachine spec side (plugins/qemu/vm/vm_spec.hpp) over the g-vm fixture host (four
// L40S with their audio functions, one group shared with a USB controller, 32 CPUs, 257672 MiB):
// schema, validation messages, normal form, expansion, claims, the typed spec, the QEMU argv and
// the cloud-init seed's content. No QEMU, no tools (tests/integration/vm_argv_test.cpp runs them).
#include "vm_spec.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <regex>

#include "diff.hpp"
#include "nodeplane/host/vgpu_ref.hpp"
#include "plan.hpp"
#include "support/files.hpp"
#include "support/plugin_rig.hpp"
#include "validate.hpp"

namespace nodeplane::qemu {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
namespace fs = std::filesystem;
using testing::TempDir;

HostContext vmHost(const std::string& fixture = "g-vm", const fs::path& stateDir = "/nonexistent") {
  HostContext h;
  h.stateDir = stateDir;
  h.sysfsRoot = testing::sysfsFixture(fixture);
  h.procRoot = testing::procFixture(fixture);
  return h;
}

class VmSpecTest : public ::testing::Test {
 protected:
  VmSpecTest() : rig(vmHost("g-vm", state.path()), "qemu") {
    images.write("ubuntu-22.04.qcow2", "not really qcow2: validate only looks for the file");
    config.imagesDir = images.path();
    config.instancesDir = instances.path();
    config.runDir = "/run/nodeplane/qemu";
    config.vfioAllow = {"10de:*"};
  }

  Resource vm(Json spec, std::string name = "vm1") {
    Resource r;
    r.id = ResourceId{kVirtualMachineKind, std::move(name)};
    r.spec = std::move(spec);
    r.where = SourceLocation{"vm.yaml", 1, 1};
    r.locations["metadata.name"] = SourceLocation{"vm.yaml", 3, 9};
    r.locations["spec.gpus"] = SourceLocation{"vm.yaml", 8, 9};
    r.locations["spec.gpus[0]"] = SourceLocation{"vm.yaml", 8, 10};
    r.locations["spec.memoryMiB"] = SourceLocation{"vm.yaml", 6, 14};
    return r;
  }

  static Json base() {
    return Json{{"vcpus", 8}, {"memoryMiB", 16384}, {"disk", {{"base", "ubuntu-22.04"}}}};
  }
  static Json with(Json spec, const std::string& key, Json value) {
    spec[key] = std::move(value);
    return spec;
  }

  std::vector<std::string> errors(const Resource& r) {
    std::vector<std::string> out;
    for (const auto& e : validateVm(r, rig.services, config)) out.push_back(e.str());
    return out;
  }
  std::string oneError(const Resource& r) {
    auto e = errors(r);
    EXPECT_EQ(e.size(), 1u) << ::testing::PrintToString(e);
    return e.empty() ? std::string() : e.front();
  }

  TempDir state;  // before rig: its state directory
  test::PluginRig rig;
  TempDir images, instances;
  QemuConfig config;
};

// ---- schema ----

const FieldSchema* fieldAt(const std::vector<FieldSchema>& fields, const std::string& path) {
  auto dot = path.find('.');
  const std::string head = path.substr(0, dot);
  for (const auto& f : fields)
    if (f.name == head)
      return dot == std::string::npos ? &f : fieldAt(f.fields, path.substr(dot + 1));
  return nullptr;
}

TEST(VmSchema, WhatRestartsTheVmAndWhatIsAppliedWithoutARestart) {
  const KindSchema k = virtualMachineSchema();
  EXPECT_EQ(k.kind, "VirtualMachine");
  EXPECT_TRUE(k.expandReadsHost);
  for (const char* p : {"vcpus", "memoryMiB", "gpus", "firmware", "disk.base", "accel",
                        "numaAffinity", "network.bridge", "network.mac"}) {
    const FieldSchema* f = fieldAt(k.spec, p);
    ASSERT_NE(f, nullptr) << p;
    EXPECT_TRUE(f->forcesRestart) << p;
    EXPECT_FALSE(f->forcesReplace) << p;
  }
  for (const char* p : {"state", "keepBound", "retainDisk", "shutdownTimeoutSec", "cloudInit",
                        "cloudInit.hostname", "cloudInit.sshAuthorizedKeys", "cloudInit.userData",
                        "network.address", "network.gateway", "disk.sizeGiB", "disk", "network"}) {
    const FieldSchema* f = fieldAt(k.spec, p);
    ASSERT_NE(f, nullptr) << p;
    EXPECT_FALSE(f->forcesRestart) << p;
    EXPECT_FALSE(f->forcesReplace) << p;
  }
  EXPECT_TRUE(fieldAt(k.spec, "cloudInit.userData")->sensitive);
  EXPECT_EQ(fieldAt(k.spec, "network.bridge")->references, "Bridge");
  EXPECT_TRUE(fieldAt(k.spec, "disk.base")->required);
  EXPECT_EQ(fieldAt(k.spec, "gpus")->type, FieldType::kAny);
  EXPECT_EQ(fieldAt(k.spec, "firmware")->allowed, (std::vector<std::string>{"uefi", "bios"}));
  EXPECT_EQ(fieldAt(k.spec, "accel")->allowed, (std::vector<std::string>{"kvm", "tcg", "auto"}));
  EXPECT_EQ(fieldAt(k.spec, "state")->allowed, (std::vector<std::string>{"running", "stopped"}));
}

TEST(VmSchema, TheDiffMarksAMemoryChangeAsARestartAndStateAsNot) {
  const auto k = virtualMachineSchema();
  Json observed = {{"memoryMiB", 8192}, {"state", "running"}, {"disk", {{"base", "a"}}}};
  Json desired = {{"memoryMiB", 16384}, {"state", "stopped"}, {"disk", {{"base", "b"}}}};
  auto changes = diffSpec(desired, observed, k.spec);
  ASSERT_EQ(changes.size(), 3u);
  EXPECT_EQ(changes[0].path, "memoryMiB");
  EXPECT_TRUE(changes[0].forcesRestart);
  EXPECT_EQ(changes[1].path, "disk.base");
  EXPECT_TRUE(changes[1].forcesRestart);
  EXPECT_EQ(changes[2].path, "state");
  EXPECT_FALSE(changes[2].forcesRestart);
}

// What `diff` prints for a VM whose memory changed (the observed VM stands in for the run side's
// observe): the normal form on both sides, the core's diff and its plan text.
TEST_F(VmSpecTest, DiffShowsAMemoryChangeAsARestart) {
  Json observed = normalizeVm(with(base(), "memoryMiB", 8192), rig.services);
  Json desired = normalizeVm(with(base(), "memoryMiB", 16384), rig.services);
  Plan plan;
  PlanEntry e;
  e.change.action = Action::kUpdate;
  e.change.id = ResourceId{kVirtualMachineKind, "vm1"};
  e.change.fields = diffSpec(desired, observed, virtualMachineSchema().spec);
  plan.entries.push_back(e);
  EXPECT_THAT(renderPlanText(plan),
              HasSubstr("~ VirtualMachine/vm1 restart (memoryMiB: 8192 -> 16384)\n"));
  // state alone is an update, not a restart.
  e.change.fields =
      diffSpec(with(desired, "state", "stopped"), desired, virtualMachineSchema().spec);
  plan.entries = {e};
  EXPECT_THAT(renderPlanText(plan),
              HasSubstr("~ VirtualMachine/vm1 update state: running -> stopped\n"));
}

TEST(VmSchema, RangesAreCheckedByTheCore) {
  Resource r;
  r.id = ResourceId{kVirtualMachineKind, "vm1"};
  r.spec = {{"vcpus", 0},
            {"memoryMiB", 16},
            {"disk", {{"base", "x"}, {"sizeGiB", 0}}},
            {"shutdownTimeoutSec", 0},
            {"network", {{"mac", "52:54:00:00:00:01"}}}};
  std::vector<std::string> messages;
  for (const auto& e : validateAgainstSchema(r, virtualMachineSchema()))
    messages.push_back(e.str());
  EXPECT_THAT(messages, ::testing::UnorderedElementsAre(
                            "VirtualMachine/vm1 spec.vcpus: 0 is out of range 1..1024",
                            "VirtualMachine/vm1 spec.memoryMiB: 16 is out of range 64..16777216",
                            "VirtualMachine/vm1 spec.disk.sizeGiB: 0 is out of range 1..65536",
                            "VirtualMachine/vm1 spec.shutdownTimeoutSec: 0 is out of range 1..3600",
                            "VirtualMachine/vm1 spec.network.bridge: missing required field "
                            "\"bridge\""));
}

// ---- validation: the issue's bad input about a VM, each with its message ----

TEST_F(VmSpecTest, AValidVmHasNoErrors) {
  Json s = base();
  s["gpus"] = {1, "0000:1B:00.0", "GPU-bb000000-0000-4000-8000-0000000040a5"};
  s["network"] = {{"bridge", "br-vm"},
                  {"mac", "52:54:00:12:34:56"},
                  {"address", "192.168.100.10/24"},
                  {"gateway", "192.168.100.1"}};
  s["cloudInit"] = {{"hostname", "vm1.lab"},
                    {"sshAuthorizedKeys", {"ssh-ed25519 AAAAC3Nza key@host"}},
                    {"userData", "#cloud-config\npackages: [htop]\n"}};
  s["firmware"] = "uefi";
  config.firmwareDir = "/usr/share/OVMF";
  images.write("fw/OVMF_CODE.fd", "code");
  images.write("fw/OVMF_VARS.fd", "vars");
  config.firmwareDir = images / "fw";
  EXPECT_THAT(errors(vm(s)), ::testing::IsEmpty());
}

TEST_F(VmSpecTest, ANameThatIsNotAUnitNamePart) {
  EXPECT_EQ(oneError(vm(base(), "VM_1")),
            "vm.yaml:3:9: VirtualMachine/VM_1 metadata.name: invalid VM name \"VM_1\": expected "
            "[a-z0-9][a-z0-9-]{0,62} (lower-case letters, digits and '-', at most 63 characters), "
            "as it is part of the unit name nodeplane-vm-<name>.service");
  EXPECT_EQ(errors(vm(base(), std::string(64, 'a'))).size(), 1u);
  EXPECT_EQ(errors(vm(base(), "-vm")).size(), 1u);
  EXPECT_TRUE(errors(vm(base(), std::string(63, 'a'))).empty());
}

TEST_F(VmSpecTest, AMalformedPciAddress) {
  EXPECT_EQ(oneError(vm(with(base(), "gpus", {"0000:3b:00"}))),
            "vm.yaml:8:10: VirtualMachine/vm1 spec.gpus[0]: malformed PCI address "
            "\"0000:3b:00\": expected <domain>:<bus>:<device>.<function> in hex, e.g. "
            "0000:3b:00.0");
}

TEST_F(VmSpecTest, AGpuIndexOrUuidThatDoesNotExist) {
  const std::string known =
      "NVIDIA GPUs here: 0000:1b:00.0 (index 0), 0000:3b:00.0 (index 1), 0000:9b:00.0 (index 2), "
      "0000:bb:00.0 (index 3)";
  EXPECT_EQ(oneError(vm(with(base(), "gpus", {7}))),
            "vm.yaml:8:10: VirtualMachine/vm1 spec.gpus[0]: no NVIDIA GPU with index 7 on this "
            "host (" +
                known + ")");
  EXPECT_EQ(oneError(vm(with(base(), "gpus", {"GPU-00000000-0000-4000-8000-000000000000"}))),
            "vm.yaml:8:10: VirtualMachine/vm1 spec.gpus[0]: no NVIDIA GPU with UUID "
            "\"GPU-00000000-0000-4000-8000-000000000000\" on this host (UUIDs are known for GPUs "
            "the nvidia driver has; " +
                known + ")");
  EXPECT_EQ(oneError(vm(with(base(), "gpus", {"0000:3b:00.1"}))),
            "vm.yaml:8:10: VirtualMachine/vm1 spec.gpus[0]: the device at 0000:3b:00.1 (10de:22ba, "
            "class 040300, driver snd_hda_intel) is not a GPU: name the GPU's own function; the "
            "other functions of its IOMMU group come with it (" +
                known + ")");
  EXPECT_THAT(
      oneError(vm(with(base(), "gpus", {1, "0000:3b:00.0"}))),
      HasSubstr("spec.gpus[1]: GPU 0000:3b:00.0 (index 1) is already named by spec.gpus[0]"));
  EXPECT_THAT(oneError(vm(with(base(), "gpus", 1))),
              HasSubstr("spec.gpus: expected a list of GPU indices, PCI addresses and GPU-… UUIDs, "
                        "got integer 1"));
}

// A GPU's UUID is known only while the nvidia driver has it: once the VM runs (the GPU on
// vfio-pci), the UUID it was named by still resolves, to the address it was seen at.
TEST_F(VmSpecTest, AGpuNamedByUuidStillResolvesWhileOnVfio) {
  const Json s = with(base(), "gpus", {"GPU-3b000000-0000-4000-8000-0000000040a5"});
  ASSERT_TRUE(errors(vm(s)).empty());  // seen with the driver: remembered
  TempDir noDriver;                    // a proc tree without the driver's files: no UUIDs
  HostContext h = vmHost("g-vm", state.path());
  h.procRoot = noDriver.path();
  test::PluginRig passedThrough(h, "qemu");
  EXPECT_TRUE(validateVm(vm(s), passedThrough.services, config).empty());
  EXPECT_EQ(normalizeVm(s, passedThrough.services)["gpus"], Json({"0000:3b:00.0"}));
  // Never seen: the error names the UUID.
  TempDir otherState;
  h.stateDir = otherState.path();
  test::PluginRig fresh(h, "qemu");
  auto errs = validateVm(vm(s), fresh.services, config);
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_THAT(errs[0].str(),
              HasSubstr("no NVIDIA GPU with UUID \"GPU-3b000000-0000-4000-8000-0000000040a5\""));
}

TEST_F(VmSpecTest, AGroupFunctionNotAdmittedByTheAllowlistIsNamed) {
  config.vfioAllow = {"10de:26b9"};  // the GPUs, not their audio functions
  EXPECT_EQ(oneError(vm(with(base(), "gpus", {1}))),
            "vm.yaml:8:10: VirtualMachine/vm1 spec.gpus[0]: GPU 0000:3b:00.0 (index 1) cannot be "
            "passed through: function 0000:3b:00.1 (10de:22ba, class 040300, driver "
            "snd_hda_intel) of its IOMMU group 31 is not admitted by vfio.allow (every function "
            "of the group moves to vfio-pci with the GPU: add \"10de:22ba\" or \"0000:3b:00.1\" to "
            "vfio.allow in the agent config)");
  config.vfioAllow = {"10de:*"};  // the USB controller sharing GPU 2's group is not NVIDIA's
  EXPECT_THAT(oneError(vm(with(base(), "gpus", {2}))),
              HasSubstr("GPU 0000:9b:00.0 (index 2) cannot be passed through: function "
                        "0000:9c:00.0 (8086:a36d, class 0c0330, driver xhci_hcd) of its IOMMU "
                        "group 91 is not admitted by vfio.allow"));
  config.vfioAllow = {};
  EXPECT_THAT(oneError(vm(with(base(), "gpus", {0}))),
              HasSubstr("GPU 0000:1b:00.0 (index 0) cannot be passed through: the GPU itself is "
                        "not admitted by vfio.allow (empty: no device may go to vfio-pci)"));
}

TEST_F(VmSpecTest, AGpuWithoutAnIommuGroup) {
  test::PluginRig noIommu(vmHost("c-no-iommu", state.path()), "qemu");
  auto errs = validateVm(vm(with(base(), "gpus", {"0000:01:00.0"})), noIommu.services, config);
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_THAT(errs[0].str(), HasSubstr("GPU 0000:01:00.0 (index 0) cannot be passed through: "
                                       "0000:01:00.0 has no IOMMU group: the IOMMU is off"));
}

TEST_F(VmSpecTest, AMissingBaseImageIsNamedByItsPath) {
  Json s = base();
  s["disk"]["base"] = "debian-12";
  EXPECT_EQ(oneError(vm(s)), "vm.yaml:1:1: VirtualMachine/vm1 spec.disk.base: base image " +
                                 (images / "debian-12.qcow2").string() +
                                 " not found (put the qcow2 image there, or point qemu.imagesDir "
                                 "in the agent config at the folder that has it)");
  s["disk"]["base"] = "../etc/passwd";
  EXPECT_THAT(oneError(vm(s)), HasSubstr("invalid base image name \"../etc/passwd\""));
}

TEST_F(VmSpecTest, MemoryAndVcpusAboveTheHostsAreRefused) {
  EXPECT_EQ(oneError(vm(with(base(), "memoryMiB", 300000))),
            "vm.yaml:6:14: VirtualMachine/vm1 spec.memoryMiB: memoryMiB 300000 is more than this "
            "host's memory (257672 MiB, MemTotal in " +
                (testing::procFixture("g-vm") / "meminfo").string() + ") (at most 257672)");
  EXPECT_TRUE(errors(vm(with(base(), "memoryMiB", 257672))).empty());
  EXPECT_EQ(oneError(vm(with(base(), "vcpus", 33))),
            "vm.yaml:1:1: VirtualMachine/vm1 spec.vcpus: vcpus 33 is more than this host's CPUs "
            "(32, from " +
                (testing::sysfsFixture("g-vm") / "devices/system/cpu/online").string() +
                ") (at most 32)");
  EXPECT_TRUE(errors(vm(with(base(), "vcpus", 32))).empty());
}

TEST_F(VmSpecTest, AMulticastOrMalformedMac) {
  auto net = [&](Json n) { return vm(with(base(), "network", std::move(n))); };
  EXPECT_THAT(oneError(net({{"bridge", "br0"}, {"mac", "01:00:5e:00:00:01"}})),
              HasSubstr("spec.network.mac: MAC address \"01:00:5e:00:00:01\" is a multicast "
                        "address (the low bit of its first byte is set): a NIC needs a unicast "
                        "address, e.g. 52:54:00:12:34:56"));
  EXPECT_THAT(oneError(net({{"bridge", "br0"}, {"mac", "52:54:00:12:34"}})),
              HasSubstr("spec.network.mac: malformed MAC address \"52:54:00:12:34\": expected six "
                        "hex pairs separated by ':', e.g. 52:54:00:12:34:56"));
  EXPECT_THAT(oneError(net({{"bridge", "br0"}, {"address", "192.168.100.10"}})),
              HasSubstr("spec.network.address: invalid address \"192.168.100.10\": expected an IP "
                        "address with its prefix length (CIDR), e.g. 192.168.100.10/24"));
  EXPECT_THAT(oneError(net({{"bridge", "br0"}, {"address", "192.168.100.10/33"}})),
              HasSubstr("invalid address \"192.168.100.10/33\""));
  EXPECT_THAT(
      oneError(net({{"bridge", "br0"}, {"address", "192.168.100.10/24"}, {"gateway", "10.0.0.1"}})),
      HasSubstr("spec.network.gateway: gateway 10.0.0.1 is outside the VM's subnet "
                "192.168.100.10/24"));
  EXPECT_THAT(oneError(net({{"bridge", "br0"}, {"gateway", "192.168.100.1"}})),
              HasSubstr("a gateway needs a static address"));
  EXPECT_TRUE(
      errors(net({{"bridge", "br0"}, {"address", "fd00:1::10/64"}, {"gateway", "fd00:1::1"}}))
          .empty());
}

TEST_F(VmSpecTest, NumaAffinityNeedsGpusOnOneNode) {
  Json s = with(base(), "numaAffinity", true);
  EXPECT_THAT(oneError(vm(s)), HasSubstr("numaAffinity pins the VM to the NUMA node of its GPUs, "
                                         "and it has none"));
  s["gpus"] = {0, 3};
  EXPECT_THAT(oneError(vm(s)),
              HasSubstr("the GPUs are on NUMA nodes 0 and 1: numaAffinity needs them on one node"));
  s["gpus"] = {0, 1};
  EXPECT_TRUE(errors(vm(s)).empty());
}

TEST_F(VmSpecTest, CloudInitValuesAreChecked) {
  Json s = base();
  s["cloudInit"] = {{"hostname", "bad_host"},
                    {"sshAuthorizedKeys", {"ssh-ed25519 A\nssh-rsa B"}},
                    {"userData", "packages: [secret-value]"}};
  auto e = errors(vm(s));
  ASSERT_EQ(e.size(), 3u);
  EXPECT_THAT(e[0], HasSubstr("spec.cloudInit.hostname: invalid host name \"bad_host\""));
  EXPECT_THAT(e[1], HasSubstr("spec.cloudInit.sshAuthorizedKeys[0]: expected one public key on "
                              "one line"));
  EXPECT_THAT(e[2], HasSubstr("spec.cloudInit.userData: user-data must start with a cloud-init "
                              "header line"));
  EXPECT_THAT(e[2], Not(HasSubstr("secret-value")));
}

TEST_F(VmSpecTest, UefiNeedsOvmf) {
  config.firmwareDir = images / "no-ovmf";
  EXPECT_THAT(oneError(vm(with(base(), "firmware", "uefi"))),
              HasSubstr("spec.firmware: firmware uefi: no OVMF firmware in " +
                        (images / "no-ovmf").string()));
}

// ---- normal form, expansion, claims, typed spec ----

TEST_F(VmSpecTest, NormalFormFillsDefaultsAndResolvesGpusToSortedAddresses) {
  Json s = base();
  s["gpus"] = {3, "0000:1B:00.0", "GPU-3b000000-0000-4000-8000-0000000040a5", 9};
  s["network"] = {{"bridge", "br-vm"}, {"mac", "52:54:00:AB:CD:EF"}};
  s["cloudInit"] = {{"hostname", "x"}};
  Json n = normalizeVm(s, rig.services);
  EXPECT_EQ(n["gpus"], Json({"0000:1b:00.0", "0000:3b:00.0", "0000:bb:00.0", 9}));
  EXPECT_EQ(n["network"]["mac"], "52:54:00:ab:cd:ef");
  EXPECT_EQ(n["cloudInit"]["sshAuthorizedKeys"], Json::array());
  EXPECT_EQ(n["firmware"], "bios");
  EXPECT_EQ(n["accel"], "auto");
  EXPECT_EQ(n["state"], "running");
  EXPECT_EQ(n["shutdownTimeoutSec"], 60);
  EXPECT_EQ(n["numaAffinity"], false);
  EXPECT_EQ(n["retainDisk"], false);
  EXPECT_EQ(n["keepBound"], false);
  EXPECT_FALSE(n["disk"].contains("sizeGiB"));
  EXPECT_EQ(normalizeVm(n, rig.services), n) << "idempotent";
  Json noMac = base();
  noMac["network"] = {{"bridge", "br-vm"}};
  EXPECT_FALSE(normalizeVm(noMac, rig.services)["network"].contains("mac"));
}

TEST_F(VmSpecTest, ExpansionIsOneVfioDevicePerFunctionOfEachGroupAndATap) {
  Json s = with(base(), "gpus", {2, 1});
  s["network"] = {{"bridge", "br-vm"}};
  auto children = expandVm(vm(s), rig.services);
  ASSERT_TRUE(children) << children.error().str();
  std::vector<std::string> ids;
  for (const auto& c : *children) ids.push_back(c.id.str());
  // Groups in address order; bridges (the root ports) left out; the USB controller sharing GPU
  // 2's group comes with it.
  EXPECT_THAT(ids, ElementsAre("VfioDevice/vm1-0000-3b-00-0", "VfioDevice/vm1-0000-3b-00-1",
                               "VfioDevice/vm1-0000-9b-00-0", "VfioDevice/vm1-0000-9b-00-1",
                               "VfioDevice/vm1-0000-9c-00-0", "Tap/vm-vm1"));
  EXPECT_EQ((*children)[1].spec, Json({{"device", "0000:3b:00.1"}, {"bound", true}}));
  EXPECT_TRUE((*children)[1].dependsOn.empty());
  EXPECT_EQ((*children)[5].spec, Json({{"bridge", "br-vm"}, {"up", true}}));
  EXPECT_TRUE((*children)[5].dependsOn.empty());
}

TEST_F(VmSpecTest, AStoppedVmReleasesItsDevicesAfterItStopsUnlessKeepBound) {
  Json s = with(base(), "gpus", {0});
  s["state"] = "stopped";
  auto children = expandVm(vm(s), rig.services);
  ASSERT_TRUE(children);
  ASSERT_EQ(children->size(), 2u);
  for (const auto& c : *children) {
    EXPECT_EQ(c.spec["bound"], false) << c.id.str();
    EXPECT_THAT(c.dependsOn, ElementsAre(ResourceId{"VirtualMachine", "vm1"})) << c.id.str();
  }
  s["keepBound"] = true;
  children = expandVm(vm(s), rig.services);
  ASSERT_TRUE(children);
  for (const auto& c : *children) {
    EXPECT_EQ(c.spec["bound"], true) << c.id.str();
    EXPECT_TRUE(c.dependsOn.empty()) << c.id.str();
  }
}

TEST_F(VmSpecTest, ClaimsAreEachGpuExclusiveWithItsGroup) {
  auto claims = vmClaims(vm(with(base(), "gpus", {"GPU-bb000000-0000-4000-8000-0000000040a5", 0})),
                         rig.services);
  EXPECT_THAT(claims, ElementsAre(Claim{.type = "pci", .id = "0000:1b:00.0", .iommuGroup = true},
                                  Claim{.type = "pci", .id = "0000:bb:00.0", .iommuGroup = true}));
  EXPECT_TRUE(claims[0].exclusive);
}

TEST_F(VmSpecTest, TheTypedSpecHasTheFunctionsInGroupOrderAndTheNumaNode) {
  Json s = base();
  s["gpus"] = {1, 0};
  s["numaAffinity"] = true;
  s["network"] = {{"bridge", "br-vm"}, {"address", "192.168.100.10/24"}};
  auto v = parseVmSpec("vm1", normalizeVm(s, rig.services), rig.services);
  ASSERT_TRUE(v) << v.error().str();
  EXPECT_THAT(v->gpus, ElementsAre("0000:1b:00.0", "0000:3b:00.0"));
  EXPECT_THAT(v->functions,
              ElementsAre("0000:1b:00.0", "0000:1b:00.1", "0000:3b:00.0", "0000:3b:00.1"));
  EXPECT_EQ(v->numaNode, 0);
  EXPECT_EQ(v->mac, derivedMac("vm1"));
  EXPECT_EQ(v->tap, "vm-vm1");
  EXPECT_TRUE(v->cloudInit) << "a static address needs the seed's network-config";
  EXPECT_EQ(v->vcpus, 8);
  EXPECT_EQ(v->memoryMiB, 16384);
  EXPECT_EQ(v->diskBase, "ubuntu-22.04");
  EXPECT_EQ(v->firmware, "bios");
  EXPECT_TRUE(v->running);
}

TEST(VmNames, DerivedMacIsStableUnicastAndLocallyAdministered) {
  const std::string a = derivedMac("vm1");
  EXPECT_EQ(a, derivedMac("vm1"));
  EXPECT_NE(a, derivedMac("vm2"));
  EXPECT_EQ(a.rfind("52:54:00:", 0), 0u);
  EXPECT_EQ(macProblem(a), std::nullopt);
  EXPECT_EQ(vmUuid("vm1"), vmUuid("vm1"));
  EXPECT_NE(vmUuid("vm1"), vmUuid("vm2"));
  EXPECT_TRUE(std::regex_match(
      vmUuid("vm1"),
      std::regex("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")));
}

TEST(VmNames, TapNamesFitAnInterfaceNameAndDifferForLongNames) {
  EXPECT_EQ(tapName("vm1"), "vm-vm1");
  EXPECT_EQ(tapName("abcdefghijkl"), "vm-abcdefghijkl");
  const std::string a = tapName(std::string(63, 'a')), b = tapName(std::string(62, 'a') + "b");
  EXPECT_LE(a.size(), 15u);
  EXPECT_LE(b.size(), 15u);
  EXPECT_NE(a, b);
  EXPECT_NE(tapName("abcdefghijklm"), tapName("abcdefghijkln"));
}

// ---- QEMU argv ----

class VmArgvTest : public VmSpecTest {
 protected:
  VmArgvTest() {
    // A stand-in QEMU: qemuArgv only resolves the binary (the real one runs in the integration
    // tier).
    images.write("bin/qemu-system-x86_64", "#!/bin/sh\n");
    ::chmod((images / "bin/qemu-system-x86_64").c_str(), 0755);
    config.binary = (images / "bin/qemu-system-x86_64").string();
    images.write("fw/OVMF_CODE_4M.fd", "code");
    images.write("fw/OVMF_VARS_4M.fd", "vars");
    config.firmwareDir = images / "fw";
    config.runDir = images / "run";
  }
};

TEST_F(VmArgvTest, TheWholeCommandLine) {
  Json s = base();
  s["gpus"] = {1, 2};
  s["network"] = {
      {"bridge", "br-vm"}, {"mac", "52:54:00:12:34:56"}, {"address", "192.168.100.10/24"}};
  s["firmware"] = "uefi";
  auto v = parseVmSpec("vm1", normalizeVm(s, rig.services), rig.services);
  ASSERT_TRUE(v) << v.error().str();
  const VmLayout l = vmLayout(config, "vm1");
  auto argv = qemuArgv(*v, l, config, "kvm");
  ASSERT_TRUE(argv) << argv.error().str();
  const std::string d = l.dir.string();
  EXPECT_THAT(
      *argv,
      ElementsAre(config.binary, "-name", "guest=vm1,debug-threads=on", "-uuid", vmUuid("vm1"),
                  "-machine", "q35", "-accel", "kvm", "-cpu", "host", "-m", "16384M", "-smp", "8",
                  "-nodefaults", "-no-user-config", "-display", "none", "-chardev",
                  "file,id=console0,path=" + d + "/console.log", "-serial", "chardev:console0",
                  "-qmp", "unix:" + (images / "run/vm1.qmp").string() + ",server=on,wait=off",
                  "-drive",
                  "if=pflash,format=raw,unit=0,readonly=on,file=" +
                      (images / "fw/OVMF_CODE_4M.fd").string(),
                  "-drive", "if=pflash,format=raw,unit=1,file=" + d + "/OVMF_VARS.fd", "-drive",
                  "file=" + d + "/disk.qcow2,if=none,id=disk0,format=qcow2,discard=unmap",
                  "-device", "virtio-blk-pci,drive=disk0,bootindex=1", "-drive",
                  "file=" + d + "/seed.iso,if=none,id=seed0,format=raw,media=cdrom,readonly=on",
                  "-device", "ide-cd,drive=seed0,bus=ide.0", "-netdev",
                  "tap,id=net0,ifname=vm-vm1,script=no,downscript=no,vhost=on", "-device",
                  "virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56", "-device",
                  "pcie-root-port,id=rp0,chassis=1,slot=0", "-device",
                  "vfio-pci,host=0000:3b:00.0,bus=rp0,addr=0x0.0,multifunction=on", "-device",
                  "vfio-pci,host=0000:3b:00.1,bus=rp0,addr=0x0.1", "-device",
                  "pcie-root-port,id=rp1,chassis=2,slot=0", "-device",
                  "vfio-pci,host=0000:9b:00.0,bus=rp1,addr=0x0.0,multifunction=on", "-device",
                  "vfio-pci,host=0000:9b:00.1,bus=rp1,addr=0x0.1", "-device",
                  "pcie-root-port,id=rp2,chassis=3,slot=0", "-device",
                  "vfio-pci,host=0000:9c:00.0,bus=rp2,addr=0x0.0"));
}

TEST_F(VmArgvTest, BiosTcgWithoutNetworkOrSeed) {
  auto v = parseVmSpec("vm1", normalizeVm(base(), rig.services), rig.services);
  ASSERT_TRUE(v);
  auto argv = qemuArgv(*v, vmLayout(config, "vm1"), config, "tcg");
  ASSERT_TRUE(argv) << argv.error().str();
  const std::string all = ::testing::PrintToString(*argv);
  EXPECT_THAT(*argv, ::testing::Contains("max"));
  for (const char* absent : {"pflash", "seed0", "netdev", "vfio-pci", "vhost"})
    EXPECT_THAT(all, Not(HasSubstr(absent))) << absent;
}

TEST_F(VmArgvTest, ValuesQemuWouldReadDifferentlyAreRefused) {
  auto v = parseVmSpec("vm1", normalizeVm(base(), rig.services), rig.services);
  ASSERT_TRUE(v);
  auto r = qemuArgv(*v, vmLayout(config, "vm1"), config, "hvf");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "VirtualMachine/vm1: accelerator \"hvf\" is not kvm or tcg");
  QemuConfig comma = config;
  comma.instancesDir = images / "a,b";
  r = qemuArgv(*v, vmLayout(comma, "vm1"), comma, "tcg");
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("disk overlay path \"" + (images / "a,b").string() +
                                           "/vm1/disk.qcow2\" has a ',' or a control character"));
  VmSpec bad = *v;
  bad.bridge = "br0";
  bad.tap = "vm-vm1";
  bad.mac = "01:00:5e:00:00:01";
  r = qemuArgv(bad, vmLayout(config, "vm1"), config, "tcg");
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("is a multicast address"));
  QemuConfig noQemu = config;
  noQemu.binary = "no-such-qemu-binary";
  r = qemuArgv(*v, vmLayout(noQemu, "vm1"), noQemu, "tcg");
  ASSERT_FALSE(r);
  EXPECT_THAT(r.error().message, HasSubstr("QEMU: no-such-qemu-binary not found on PATH"));
}

// ---- cloud-init seed content ----

VmSpec seedSpec() {
  VmSpec s;
  s.name = "vm1";
  s.cloudInit = true;
  s.hostname = "gpu-vm";
  s.sshAuthorizedKeys = {"ssh-ed25519 AAAAC3Nz user@host"};
  s.bridge = "kohaku-br0";
  s.mac = "52:54:00:12:34:56";
  s.address = "192.168.100.10/24";
  s.gateway = "192.168.100.1";
  return s;
}

TEST(VmSeed, GeneratedUserDataMetaDataAndNetworkConfig) {
  SeedFiles f = seedFiles(seedSpec(), "i-0123");
  EXPECT_EQ(f.userData,
            "#cloud-config\nhostname: \"gpu-vm\"\nssh_authorized_keys:\n  - \"ssh-ed25519 "
            "AAAAC3Nz user@host\"\n");
  EXPECT_EQ(f.metaData,
            "instance-id: \"i-0123\"\nlocal-hostname: \"gpu-vm\"\npublic-keys:\n  - \"ssh-ed25519 "
            "AAAAC3Nz user@host\"\n");
  EXPECT_EQ(f.networkConfig,
            "version: 2\nethernets:\n  nic0:\n    match:\n      macaddress: "
            "\"52:54:00:12:34:56\"\n    set-name: eth0\n    addresses:\n      - "
            "\"192.168.100.10/24\"\n    routes:\n      - to: default\n        via: "
            "\"192.168.100.1\"\n");
}

TEST(VmSeed, GivenUserDataIsVerbatimAndTheKeysStillReachTheGuest) {
  VmSpec s = seedSpec();
  s.userData = "#cloud-config\npackages: [htop]";
  s.hostname.clear();
  s.address.clear();
  SeedFiles f = seedFiles(s, "i-1");
  EXPECT_EQ(f.userData, "#cloud-config\npackages: [htop]\n");
  EXPECT_EQ(f.metaData,
            "instance-id: \"i-1\"\nlocal-hostname: \"vm1\"\npublic-keys:\n  - \"ssh-ed25519 "
            "AAAAC3Nz user@host\"\n");
  EXPECT_EQ(f.networkConfig, "") << "no static address: the guest's own (DHCP)";
}

TEST(VmSeed, AKeyWithQuotesStaysOneYamlString) {
  VmSpec s = seedSpec();
  s.sshAuthorizedKeys = {"ssh-ed25519 AAAA \"quoted\": #not-a-comment"};
  EXPECT_THAT(seedFiles(s, "i").userData,
              HasSubstr("  - \"ssh-ed25519 AAAA \\\"quoted\\\": #not-a-comment\"\n"));
}

// ---- vGPUs (Vgpu resources of the vgpu plugin) ----

TEST(VmSchema, VgpusReferenceVgpuResourcesAndRestartTheVm) {
  const auto k = virtualMachineSchema();
  const FieldSchema* f = fieldAt(k.spec, "vgpus");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->references, "Vgpu");
  EXPECT_TRUE(f->forcesRestart);
}

TEST_F(VmSpecTest, EachVgpuIsAnExclusiveClaimSoTwoVmsCannotShareOne) {
  auto claims = vmClaims(vm(with(base(), "vgpus", {"tenant-a", "tenant-b"})), rig.services);
  EXPECT_THAT(claims, ElementsAre(Claim{.type = "vgpu", .id = "tenant-a"},
                                  Claim{.type = "vgpu", .id = "tenant-b"}));
  EXPECT_TRUE(claims[0].exclusive);
}

TEST_F(VmArgvTest, AVgpuIsItsRecordedDeviceOnARootPortOfItsOwn) {
  const auto record = host::vgpuRecordPath(state.path(), "tenant-a");
  std::filesystem::create_directories(record.parent_path());
  std::ofstream(record)
      << R"({"device": "/sys/bus/pci/devices/0000:41:00.5", "gpu": "0000:41:00.0", "ready": true})";
  Json s = with(base(), "gpus", {1});
  s["vgpus"] = {"tenant-a"};
  auto v = parseVmSpec("vm1", normalizeVm(s, rig.services), rig.services);
  ASSERT_TRUE(v) << v.error().str();
  EXPECT_THAT(v->vgpuDevices, ElementsAre("/sys/bus/pci/devices/0000:41:00.5"));
  auto argv = qemuArgv(*v, vmLayout(config, "vm1"), config, "tcg");
  ASSERT_TRUE(argv) << argv.error().str();
  const std::vector<std::string> tail(argv->end() - 4, argv->end());
  EXPECT_THAT(tail, ElementsAre("-device", "pcie-root-port,id=rpv0,chassis=2,slot=0", "-device",
                                "vfio-pci,sysfsdev=/sys/bus/pci/devices/0000:41:00.5,bus=rpv0,"
                                "addr=0x0"));
}

TEST_F(VmSpecTest, ARunningVmWaitsForAVgpuThatIsNotMadeYet) {
  Json s = with(base(), "vgpus", {"tenant-b"});
  auto v = parseVmSpec("vm1", normalizeVm(s, rig.services), rig.services);
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().kind, ErrorKind::kRetryable);
  EXPECT_THAT(v.error().message, HasSubstr("Vgpu/tenant-b is not made yet"));
  s["state"] = "stopped";  // a stopped VM needs no device yet
  EXPECT_TRUE(parseVmSpec("vm1", normalizeVm(s, rig.services), rig.services));
}

}  // namespace
}  // namespace nodeplane::qemu
