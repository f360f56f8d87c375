// Vgpu's spec side over plain sysfs trees: the two formats of the driver's type lists, model
// detection, VF addresses, validate and validateSet messages (file:line, field, what was
// expected), claims and the normal form.
#include <gtest/gtest.h>

#include "vgpu_fixture.hpp"
#include "vgpu_mig.hpp"
#include "vgpu_types.hpp"

namespace nodeplane::vgpu {
namespace {

namespace fs = std::filesystem;
using fixture::FakeDriver;
using fixture::Host;
using ::nodeplane::testing::writeFile;

TEST(VgpuTypes, CreatableListWithHeaderAsTheDriverWritesIt) {
  // Byte-exact L40S capture (§1.2): header, "%-5d : NVIDIA <name>".
  auto t = parseCreatable(
      "ID    : vGPU Name\n1145  : NVIDIA L40S-1B\n1155  : NVIDIA L40S-24Q\n2164  : NVIDIA "
      "L40S-3B\n");
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t[1].id, 1155);
  EXPECT_EQ(t[1].name, "L40S-24Q");
  EXPECT_EQ(t[1].framebufferMiB, 24 * 1024);
  EXPECT_FALSE(t[1].migBacked);
  EXPECT_EQ(t[2].name, "L40S-3B");
}

TEST(VgpuTypes, CreatableListWithoutHeaderShortIdsAndJunk) {
  // The RFC driver prints no header (§1.2); A10 ids have 3 digits; anything else is skipped.
  auto t = parseCreatable(
      "588   : NVIDIA A10-1B\n  597 :NVIDIA A10-24Q  \nnot a row\n12 : NVIDIA X-1Q\n1234567 : "
      "NVIDIA Y-1Q\n: NVIDIA\n");
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].id, 588);
  EXPECT_EQ(t[1].id, 597);
  EXPECT_EQ(t[1].name, "A10-24Q");
  EXPECT_TRUE(parseCreatable("ID    : vGPU Name\n").empty()) << "a full GPU: header only";
  EXPECT_TRUE(parseCreatable("").empty()) << "a VF with a type (RFC): nothing";
}

TEST(VgpuTypes, NamesSayTheSizeAndWhetherMigBacked) {
  auto ts = parseTypeName("L40S-24Q");
  ASSERT_TRUE(ts);
  EXPECT_EQ(ts->framebufferMiB, 24 * 1024);
  EXPECT_FALSE(ts->migBacked);
  auto mig = parseTypeName("A100-1-5CME");
  ASSERT_TRUE(mig);
  EXPECT_TRUE(mig->migBacked);
  EXPECT_EQ(mig->slices, 1);
  EXPECT_TRUE(mig->mediaExtension);
  EXPECT_EQ(parseTypeName("DC-0Q")->framebufferMiB, 512);
  EXPECT_FALSE(parseTypeName("L40S"));
  EXPECT_FALSE(parseTypeName("L40S-24"));
}

TEST(VgpuMig, EachMigBackedTypeNamesItsGpuInstanceProfile) {
  EXPECT_EQ(giProfileOf("A100-1-5C"), "1g.5gb");
  EXPECT_EQ(giProfileOf("A100-7-40C"), "7g.40gb");
  EXPECT_EQ(giProfileOf("A100-1-5CME"), "1g.5gb+me");
  EXPECT_EQ(giProfileOf("H100-1-10CMEALL"), "1g.10gb+me.all");
  EXPECT_EQ(giProfileOf("DC-1-24QGFX"), "1g.24gb+gfx");
  EXPECT_EQ(giProfileOf("L40S-24Q"), "") << "time-sliced";
  EXPECT_EQ(giProfileOf("A100-1-5CXYZ"), "") << "a suffix it does not know";
}

TEST(VgpuMig, GpuInstancesAsNvidiaSmiListsThem) {
  // `nvidia-smi mig -lgi` as NVIDIA/DCGM#138 shows it.
  auto m = parseGpuInstances(
      "+-------------------------------------------------------+\n"
      "| GPU instances:                                        |\n"
      "| GPU   Name             Profile  Instance   Placement  |\n"
      "|                          ID       ID       Start:Size |\n"
      "|=======================================================|\n"
      "|   0  MIG 1g.10gb         19        9          2:1     |\n"
      "+-------------------------------------------------------+\n"
      "|   0  MIG 1g.10gb         19       10          3:1     |\n"
      "+-------------------------------------------------------+\n"
      "|   0  MIG 3g.40gb          9        2          4:4     |\n"
      "+-------------------------------------------------------+\n");
  ASSERT_TRUE(m) << m.error().str();
  EXPECT_TRUE(m->on);
  ASSERT_EQ(m->instances.size(), 3u);
  EXPECT_EQ(m->instances[1].id, 10);
  EXPECT_EQ(m->count("1g.10gb"), 2);
  EXPECT_EQ(m->count("3g.40gb"), 1);
  EXPECT_EQ(m->count("1g.10gb+me"), 0);

  auto none = parseGpuInstances("No GPU instances found: Not Found\n");
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->on);
  EXPECT_TRUE(none->instances.empty());
  auto off = parseGpuInstances("No MIG-enabled devices found.\n");
  ASSERT_TRUE(off);
  EXPECT_FALSE(off->on);
  auto odd = parseGpuInstances("Failed to initialize NVML: Driver/library version mismatch\n");
  ASSERT_FALSE(odd);
  EXPECT_NE(odd.error().message.find("Driver/library version mismatch"), std::string::npos);
}

TEST(VgpuMig, ReadMigRunsNvidiaSmiWithArgvAndSaysWhenItCannot) {
  ::nodeplane::testing::TempDir dir;
  const fs::path smi = dir.path() / "nvidia-smi";
  // Exits 6 as nvidia-smi does when it finds nothing: the words count, not the code.
  writeFile(smi, "#!/bin/sh\necho \"No GPU instances found: Not Found ($*)\"\nexit 6\n");
  fs::permissions(smi, fs::perms(0755));
  auto m = readMig(smi, "0000:3b:00.0", std::chrono::seconds(10));
  ASSERT_TRUE(m) << m.error().str();
  EXPECT_TRUE(m->on);
  auto missing = readMig(dir.path() / "absent", "0000:3b:00.0", std::chrono::seconds(10));
  ASSERT_FALSE(missing);
  // What it was run with, as the output: an error quotes it.
  writeFile(smi, "#!/bin/sh\necho \"ARGV=<$*>\"\n");
  auto args = readMig(smi, "0000:3b:00.0", std::chrono::seconds(10));
  ASSERT_FALSE(args);
  EXPECT_NE(args.error().message.find("ARGV=<mig -lgi -i 0000:3b:00.0>"), std::string::npos)
      << args.error().message;
}

TEST(VgpuTypes, MdevDescription) {
  VgpuType t;
  parseMdevDescription(
      "num_heads=4, frl_config=60, framebuffer=4096M, max_resolution=7680x4320, max_instance=4", t);
  EXPECT_EQ(t.framebufferMiB, 4096);
  EXPECT_EQ(t.maxInstances, 4);
}

TEST(VgpuGpu, VfAddressesFollowOffsetAndStride) {
  // The A10 example (§1.6): offset 4, stride 1: virtfn10 -> 41:01.6, virtfn31 -> 41:04.3.
  EXPECT_EQ(offsetAddress("0000:41:00.0", 4), "0000:41:00.4");
  EXPECT_EQ(offsetAddress("0000:41:00.0", 4 + 10), "0000:41:01.6");
  EXPECT_EQ(offsetAddress("0000:41:00.0", 4 + 31), "0000:41:04.3");
  EXPECT_EQ(offsetAddress("0000:ff:1f.7", 1), "");
}

TEST(VgpuGpu, ModelIsReadPerGpu) {
  Host h;
  h.gpu("0000:41:00.0", "sriov", fixture::l40s(), 4, 4, 30);
  h.gpu("0000:3b:00.0", "mdev", fixture::a100(), 4, 4, 40);
  h.gpu("0000:61:00.0", "sriov", fixture::l40s(), 4, 0, 50);
  auto s = readGpu(h.sys, "0000:41:00.0");
  ASSERT_TRUE(s) << s.error().str();
  EXPECT_EQ(s->model, Model::kSriov);
  EXPECT_TRUE(s->live.complete);
  EXPECT_EQ(s->live.types.size(), 23u);
  EXPECT_EQ(s->live.byName("l40s-24q")->maxInstances, 2) << "48 GiB / 24";
  EXPECT_EQ(s->live.byName("L40S-1Q")->maxInstances, 4) << "capped by the 4 VFs";
  auto m = readGpu(h.sys, "0000:3b:00.0");
  ASSERT_TRUE(m) << m.error().str();
  EXPECT_EQ(m->model, Model::kMdev);
  EXPECT_EQ(m->live.byName("A100-4C")->typeDir, "nvidia-468");
  EXPECT_EQ(m->live.byName("A100-4C")->maxInstances, 4) << "max_instance of the description";
  auto off = readGpu(h.sys, "0000:61:00.0");
  ASSERT_TRUE(off) << off.error().str();
  EXPECT_EQ(off->model, Model::kUnknown) << "no VFs: the model cannot be seen";
  ASSERT_EQ(off->slots.size(), 4u);
  EXPECT_EQ(off->slots[3].address, "0000:61:00.7");
  EXPECT_FALSE(off->slots[3].present);
}

TEST(VgpuGpu, TheTableSeenEmptyIsKeptForWhenTheListHasShrunk) {
  Host h;
  h.gpu("0000:41:00.0", "sriov", fixture::l40s(), 4, 4, 30);
  const auto dir = h.state / "vgpu/types";
  auto empty = readGpu(h.sys, "0000:41:00.0");
  ASSERT_TRUE(empty);
  (void)typeTableOf(*empty, dir, true);
  writeFile(h.dir("0000:41:00.4") / "nvidia/current_vgpu_type", "1155\n");
  h.refresh("0000:41:00.0");
  auto used = readGpu(h.sys, "0000:41:00.0");
  ASSERT_TRUE(used);
  EXPECT_FALSE(used->live.complete);
  EXPECT_FALSE(used->live.byName("L40S-12Q")) << "collapsed to 24 GiB";
  EXPECT_TRUE(typeTableOf(*used, dir, false).byName("L40S-12Q")) << "the kept table has it";
  EXPECT_FALSE(typeTableOf(*used, h.state / "elsewhere", false).byName("L40S-12Q"));
}

struct Rig {
  explicit Rig(Json config = Json::object()) : driver(host, config) {
    host.gpu("0000:41:00.0", "sriov", fixture::l40s(), 4, 4, 30);
    host.gpu("0000:3b:00.0", "mdev", fixture::a100(), 4, 4, 40);
    host.gpu("0000:5e:00.0", "none", {}, 8, 2, 60, "8086");
    host.function("0000:1b:00.0", "10de", "2236", "030200", "nvidia", 21);  // no SR-IOV
    cfg = readVgpuConfig(driver.context());
  }
  Host host;
  FakeDriver driver;
  VgpuConfig cfg;
  VgpuKind kind{driver, cfg};

  static Resource res(const std::string& name, const Json& spec, int line = 1) {
    Resource r;
    r.id = {"Vgpu", name};
    r.spec = spec;
    r.where = {"vgpu.yaml", line, 1};
    for (const char* f : {"parent", "vf", "address", "profile"})
      r.locations[std::string("spec.") + f] = {"vgpu.yaml", line + 3, 11};
    return r;
  }
  std::vector<std::string> errors(const Json& spec) {
    std::vector<std::string> out;
    for (const auto& e : kind.validate(res("a", spec))) {
      EXPECT_EQ(e.kind, ErrorKind::kInvalidInput) << e.str();
      out.push_back(e.str());
    }
    return out;
  }
  std::vector<std::string> setErrors(const std::vector<Json>& specs) {
    std::vector<Resource> rs;
    for (std::size_t i = 0; i < specs.size(); ++i)
      rs.push_back(res("v" + std::to_string(i), specs[i], 1 + 10 * static_cast<int>(i)));
    std::vector<const Resource*> ptrs;
    for (const auto& r : rs) {
      EXPECT_TRUE(kind.validate(r).empty()) << r.spec.dump();
      ptrs.push_back(&r);
    }
    std::vector<std::string> out;
    for (const auto& e : kind.validateSet(ptrs)) out.push_back(e.str());
    return out;
  }
};

using Strings = std::vector<std::string>;

TEST(VgpuValidate, GoodSpecsPass) {
  Rig r;
  EXPECT_TRUE(r.errors({{"parent", "0000:41:00.0"}, {"vf", 1}, {"profile", "L40S-24Q"}}).empty());
  EXPECT_TRUE(r.errors({{"address", "0000:41:00.5"}, {"profile", "1155"}}).empty());
  EXPECT_TRUE(
      r.errors({{"parent", "0000:41:00.0"}, {"vf", 3}, {"profile", "NVIDIA L40S-2Q"}}).empty());
  EXPECT_TRUE(r.errors({{"parent", "0000:3B:00.0"}, {"vf", 0}, {"profile", "A100-4C"}}).empty());
}

TEST(VgpuValidate, ANameThatCannotNameItsRecordFile) {
  Rig r;
  auto e = r.kind.validate(
      r.res("../../etc/x", {{"parent", "0000:41:00.0"}, {"vf", 1}, {"profile", "L40S-24Q"}}));
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].field, "metadata.name");
  EXPECT_NE(e[0].message.find("invalid Vgpu name \"../../etc/x\": it starts with '.' (the name "
                              "is its ownership record's file name)"),
            std::string::npos)
      << e[0].str();
}

TEST(VgpuValidate, UnknownProfileListsWhatTheGpuOffers) {
  Rig r;
  EXPECT_EQ(r.errors({{"parent", "0000:41:00.0"}, {"vf", 1}, {"profile", "L40S-20Q"}}),
            (Strings{"vgpu.yaml:4:11: Vgpu/a spec.profile: profile L40S-20Q is not a vGPU type "
                     "of 0000:41:00.0 (it offers: L40S-1B, L40S-2B, L40S-1Q, L40S-2Q, L40S-3Q, "
                     "L40S-4Q, L40S-6Q, L40S-8Q, L40S-12Q, L40S-16Q, L40S-24Q, L40S-48Q, L40S-1A, "
                     "L40S-2A, L40S-3A, L40S-4A, L40S-6A, L40S-8A, L40S-12A, L40S-16A, L40S-24A, "
                     "L40S-48A, L40S-3B)"}));
  EXPECT_EQ(r.errors({{"parent", "0000:3b:00.0"}, {"vf", 1}, {"profile", "999"}}),
            (Strings{"vgpu.yaml:4:11: Vgpu/a spec.profile: profile 999 is not a vGPU type of "
                     "0000:3b:00.0 (it offers: A100-4C, A100-5C, A100-8C, A100-10C, A100-20C, "
                     "A100-40C)"}));
}

TEST(VgpuValidate, VfIndexAboveTheVfsPresent) {
  Rig r;
  EXPECT_EQ(r.errors({{"parent", "0000:41:00.0"}, {"vf", 4}, {"profile", "L40S-24Q"}}),
            (Strings{"vgpu.yaml:4:11: Vgpu/a spec.vf: vf 4 is not a virtual function of "
                     "0000:41:00.0, which has 4 now (0-3)"}));
}

TEST(VgpuValidate, VfAndAddressTogetherOrNeither) {
  Rig r;
  EXPECT_EQ(r.errors({{"parent", "0000:41:00.0"},
                      {"vf", 1},
                      {"address", "0000:41:00.5"},
                      {"profile", "L40S-24Q"}}),
            (Strings{"vgpu.yaml:4:11: Vgpu/a spec.vf: give either parent and vf, or address, not "
                     "both (address names the virtual function alone)"}));
  EXPECT_EQ(r.errors({{"profile", "L40S-24Q"}}),
            (Strings{"vgpu.yaml:1:1: Vgpu/a spec: no parent or address: which GPU is the vGPU "
                     "on? (give parent (the GPU) and vf, or address (the VF))"}));
  EXPECT_EQ(r.errors({{"parent", "0000:41:00.0"}, {"profile", "L40S-24Q"}}),
            (Strings{"vgpu.yaml:4:11: Vgpu/a spec.vf: which virtual function of 0000:41:00.0? "
                     "give vf (0-3)"}));
}

TEST(VgpuValidate, ParentNotNvidiaOrNotSriov) {
  Rig r;
  EXPECT_EQ(r.errors({{"parent", "0000:5e:00.0"}, {"vf", 0}, {"profile", "L40S-24Q"}}),
            (Strings{"vgpu.yaml:4:11: Vgpu/a spec.parent: 0000:5e:00.0 is not an NVIDIA GPU "
                     "(vendor 8086, class 030200): vGPUs are NVIDIA's (a SriovPf gives other "
                     "devices' virtual functions)"}));
  EXPECT_EQ(
      r.errors({{"parent", "0000:1b:00.0"}, {"vf", 0}, {"profile", "L40S-24Q"}}),
      (Strings{"vgpu.yaml:4:11: Vgpu/a spec.parent: 0000:1b:00.0 offers no vGPUs: it is neither "
               "an SR-IOV physical function (no sriov_totalvfs) nor an mdev parent (no "
               "mdev_supported_types) (install the NVIDIA vGPU host driver; a GPU without it is "
               "passed whole with a VfioDevice)"}));
  EXPECT_EQ(r.errors({{"address", "0000:41:00.0"}, {"profile", "L40S-24Q"}}),
            (Strings{"vgpu.yaml:4:11: Vgpu/a spec.address: 0000:41:00.0 is not a virtual "
                     "function (it is a physical function) (give parent: 0000:41:00.0 and vf: "
                     "<index> instead)"}));
  EXPECT_EQ(r.errors({{"parent", "7"}, {"vf", 0}, {"profile", "L40S-24Q"}}).size(), 1u);
}

TEST(VgpuValidate, AfterARebootTheVfsAreGoneAndTheKeptTableStillChecks) {
  Rig r;
  // Seen once while empty (observe keeps the table), then the VFs go (a reboot).
  ASSERT_TRUE(r.kind.observe());
  for (int k = 0; k < 4; ++k)
    fs::remove(r.host.dir("0000:41:00.0") / ("virtfn" + std::to_string(k)));
  writeFile(r.host.dir("0000:41:00.0") / "sriov_numvfs", "0\n");
  for (int k = 0; k < 4; ++k) fs::remove_all(r.host.dir(offsetAddress("0000:41:00.0", 4 + k)));
  EXPECT_TRUE(r.errors({{"parent", "0000:41:00.0"}, {"vf", 3}, {"profile", "L40S-24Q"}}).empty())
      << "a SriovPf of the same set enables them";
  EXPECT_TRUE(r.errors({{"address", "0000:41:00.6"}, {"profile", "L40S-24Q"}}).empty())
      << "where sriov_offset puts VF 2";
  EXPECT_EQ(r.errors({{"parent", "0000:41:00.0"}, {"vf", 4}, {"profile", "L40S-24Q"}}),
            (Strings{"vgpu.yaml:4:11: Vgpu/a spec.vf: vf 4 is not a virtual function of "
                     "0000:41:00.0, which has 4 at most (0-3)"}));
  EXPECT_EQ(r.errors({{"parent", "0000:41:00.0"}, {"vf", 0}, {"profile", "L40S-5Q"}}).size(), 1u)
      << "still checked against the kept table";
}

TEST(VgpuValidate, TimeSlicedProfileOnAMigGpu) {
  Rig r;
  // MIG mode on: the driver offers MIG-backed types only (§5).
  r.host.gpu("0000:81:00.0", "sriov", {{1001, "A100-1-5C", 5}, {1002, "A100-2-10C", 10}}, 4, 4, 80);
  EXPECT_EQ(r.errors({{"parent", "0000:81:00.0"}, {"vf", 0}, {"profile", "A100-10C"}}),
            (Strings{"vgpu.yaml:4:11: Vgpu/a spec.profile: A100-10C is a time-sliced profile, "
                     "and 0000:81:00.0 has MIG mode on (it offers MIG-backed profiles only: "
                     "A100-1-5C, A100-2-10C) (use a MIG-backed profile, or turn MIG mode off on "
                     "the GPU)"}));
  EXPECT_TRUE(r.errors({{"parent", "0000:81:00.0"}, {"vf", 0}, {"profile", "A100-1-5C"}}).empty());
}

TEST(VgpuValidateSet, MixedSizesOnAnEqualSizeGpu) {
  Rig r;
  EXPECT_EQ(r.setErrors({{{"parent", "0000:41:00.0"}, {"vf", 0}, {"profile", "L40S-24Q"}},
                         {{"parent", "0000:41:00.0"}, {"vf", 1}, {"profile", "L40S-12Q"}}}),
            (Strings{"vgpu.yaml:14:11: Vgpu/v1 spec.profile: equal-size mode: L40S-24Q (24 GiB, "
                     "Vgpu/v0) and L40S-12Q (12 GiB) on 0000:41:00.0 (put the GPU in "
                     "vgpu.mixedSize (agent config) to mix sizes, or use one size)"}));
  // Same size, other series: allowed (DC-3Q + DC-3A, §1.5).
  EXPECT_TRUE(r.setErrors({{{"parent", "0000:41:00.0"}, {"vf", 0}, {"profile", "L40S-24Q"}},
                           {{"parent", "0000:41:00.0"}, {"vf", 1}, {"profile", "L40S-24A"}}})
                  .empty());
}

TEST(VgpuValidateSet, MixedSizeGpusMayMixUpToTheirFramebuffer) {
  Rig r(Json{{"vgpu", {{"mixedSize", {"0000:41:00.0"}}}}});
  EXPECT_TRUE(r.setErrors({{{"parent", "0000:41:00.0"}, {"vf", 0}, {"profile", "L40S-24Q"}},
                           {{"parent", "0000:41:00.0"}, {"vf", 1}, {"profile", "L40S-12Q"}}})
                  .empty());
  EXPECT_EQ(r.setErrors({{{"parent", "0000:41:00.0"}, {"vf", 0}, {"profile", "L40S-24Q"}},
                         {{"parent", "0000:41:00.0"}, {"vf", 1}, {"profile", "L40S-12Q"}},
                         {{"parent", "0000:41:00.0"}, {"vf", 2}, {"profile", "L40S-16Q"}}}),
            (Strings{"vgpu.yaml:24:11: Vgpu/v2 spec.profile: L40S-24Q + L40S-12Q + L40S-16Q = 52 "
                     "GiB on 0000:41:00.0, which has 48 GiB"}));
}

TEST(VgpuValidateSet, MoreOfAProfileThanFit) {
  Rig r;
  EXPECT_EQ(r.setErrors({{{"parent", "0000:41:00.0"}, {"vf", 0}, {"profile", "L40S-24Q"}},
                         {{"parent", "0000:41:00.0"}, {"vf", 1}, {"profile", "L40S-24Q"}},
                         {{"address", "0000:41:00.6"}, {"profile", "1155"}}}),
            (Strings{"vgpu.yaml:24:11: Vgpu/v2 spec.profile: 3 x L40S-24Q on 0000:41:00.0, which "
                     "holds 2"}));
  EXPECT_EQ(r.setErrors({{{"parent", "0000:41:00.0"}, {"vf", 0}, {"profile", "L40S-24Q"}},
                         {{"parent", "0000:41:00.0"}, {"vf", 1}, {"profile", "L40S-24A"}},
                         {{"parent", "0000:41:00.0"}, {"vf", 2}, {"profile", "L40S-24Q"}}}),
            (Strings{"vgpu.yaml:24:11: Vgpu/v2 spec.profile: 3 vGPUs of 24 GiB (L40S-24Q, "
                     "L40S-24A) on 0000:41:00.0, which holds 2"}));
  // Two GPUs are counted apart.
  EXPECT_TRUE(r.setErrors({{{"parent", "0000:41:00.0"}, {"vf", 0}, {"profile", "L40S-48Q"}},
                           {{"parent", "0000:3b:00.0"}, {"vf", 0}, {"profile", "A100-40C"}}})
                  .empty());
}

TEST(VgpuClaims, TheVfAloneTheGpuShared) {
  Rig r;
  auto c = r.kind.claims(Rig::res("a", {{"parent", "0000:41:00.0"}, {"vf", 1}, {"profile", "x"}}));
  EXPECT_EQ(c, (std::vector<Claim>{{"pci", "0000:41:00.5", true, false},
                                   {"pci", "0000:41:00.0", false, false}}));
  EXPECT_EQ(r.kind.claims(Rig::res("b", {{"address", "0000:41:00.5"}, {"profile", "x"}})), c)
      << "the same VF by address";
}

TEST(VgpuNormalize, OneFormOfTheProfile) {
  Rig r;
  const Json want = {{"parent", "0000:41:00.0"}, {"vf", 1}, {"profile", "L40S-24Q"}};
  EXPECT_EQ(r.kind.normalize({{"parent", "0000:41:00.0"}, {"vf", 1}, {"profile", "1155"}}), want);
  EXPECT_EQ(r.kind.normalize({{"parent", "0000:41:00.0"}, {"vf", 1}, {"profile", 1155}}), want);
  EXPECT_EQ(
      r.kind.normalize({{"parent", "0000:41:00.0"}, {"vf", 1}, {"profile", "nvidia l40s-24q"}}),
      want);
  EXPECT_EQ(r.kind.normalize({{"address", "0000:41:00.5"}, {"profile", "L40S-99Q"}}),
            (Json{{"address", "0000:41:00.5"}, {"profile", "L40S-99Q"}}))
      << "what cannot be resolved stays as written";
}

TEST(VgpuRecords, MdevUuidIsStablePerAgentAndName) {
  const std::string a = mdevUuidFor("00000000000000a1", "tenant-a");
  EXPECT_EQ(a, mdevUuidFor("00000000000000a1", "tenant-a"));
  EXPECT_NE(a, mdevUuidFor("00000000000000a1", "tenant-b"));
  EXPECT_NE(a, mdevUuidFor("00000000000000a2", "tenant-a"));
  ASSERT_EQ(a.size(), 36u);
  EXPECT_EQ(a[14], '8') << "version 8";
  EXPECT_NE(std::string("89ab").find(a[19]), std::string::npos) << "RFC 4122 variant";
}

// Pascal/Turing: no SR-IOV, the PF itself is the mdev parent (§2), types counted from
// max_instance (a P40 takes 12 x 2B).
TEST(VgpuValidate, AnMdevParentWithoutSriovTakesNoVf) {
  Rig r;
  const std::string pf = "0000:af:00.0";
  r.host.function(pf, "10de", "1b38", "030200", "nvidia", 70);
  for (auto [id, name, mib, max] : {std::tuple{46, "P40-2B", 2048, 12}, {50, "P40-4C", 4096, 6}}) {
    const auto td = r.host.dir(pf) / "mdev_supported_types" / ("nvidia-" + std::to_string(id));
    writeFile(td / "name", std::string("GRID ") + name + "\n");
    writeFile(td / "description",
              "num_heads=4, frl_config=45, framebuffer=" + std::to_string(mib) +
                  "M, max_resolution=5120x2880, max_instance=" + std::to_string(max) + "\n");
    writeFile(td / "available_instances", std::to_string(max) + "\n");
  }
  EXPECT_TRUE(r.errors({{"parent", pf}, {"profile", "P40-2B"}}).empty());
  EXPECT_EQ(r.errors({{"parent", pf}, {"vf", 0}, {"profile", "P40-2B"}}),
            (Strings{"vgpu.yaml:4:11: Vgpu/a spec.vf: 0000:af:00.0 has no virtual functions (an "
                     "mdev parent without SR-IOV): leave out vf"}));
  EXPECT_EQ(r.kind.claims(Rig::res("a", {{"parent", pf}, {"profile", "P40-2B"}})),
            (std::vector<Claim>{{"pci", pf, false, false}}))
      << "its vGPUs share the GPU";
  std::vector<Json> specs(7, Json{{"parent", pf}, {"profile", "P40-4C"}});
  EXPECT_EQ(r.setErrors(specs), (Strings{"vgpu.yaml:64:11: Vgpu/v6 spec.profile: 7 x P40-4C on "
                                         "0000:af:00.0, which holds 6"}));
}

TEST(VgpuValidate, BareNumbersAreAnIndexAndATypeIdAnythingElseIsNot) {
  Rig r;
  // The inventory's index 0 is the first NVIDIA GPU: 0000:1b:00.0, which has no vGPUs.
  EXPECT_EQ(r.errors({{"parent", 0}, {"vf", 0}, {"profile", 1155}}).size(), 1u);
  EXPECT_TRUE(r.errors({{"parent", 2}, {"vf", 0}, {"profile", 1155}}).empty()) << "0000:41:00.0";
  EXPECT_TRUE(r.errors({{"parent", "0000:41:00.0"}, {"vf", 0}, {"profile", 1155}}).empty());
  EXPECT_EQ(r.errors({{"parent", "0000:41:00.0"}, {"vf", 0}, {"profile", Json::array()}}),
            (Strings{"vgpu.yaml:4:11: Vgpu/a spec.profile: expected a vGPU profile: its name "
                     "(L40S-24Q) or a numeric type id, got a list"}));
  EXPECT_EQ(r.errors({{"parent", true}, {"vf", 0}, {"profile", "L40S-24Q"}}),
            (Strings{"vgpu.yaml:4:11: Vgpu/a spec.parent: expected a GPU: a PCI address, an "
                     "inventory index or a GPU-… UUID, got boolean true"}));
}

}  // namespace
}  // namespace nodeplane::vgpu
