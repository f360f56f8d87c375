// The one resolver of `gpus:` entries that Containers and VirtualMachines share.
#include "nodeplane/host/gpu_ref.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/files.hpp"

namespace nodeplane::host {
namespace {

using ::nodeplane::testing::procFixture;
using ::nodeplane::testing::sysfsFixture;
using ::testing::HasSubstr;

std::vector<Gpu> vmHost() {
  auto gpus = readGpuInventory(sysfsFixture("g-vm"), procFixture("g-vm"));
  EXPECT_TRUE(gpus) << gpus.error().str();
  return gpus ? *gpus : std::vector<Gpu>{};
}

TEST(GpuRef, AnIndexAnAddressOrAUuidInAnyCase) {
  const auto gpus = vmHost();
  ASSERT_EQ(gpus.size(), 4u);
  for (const Json& ref : {Json(1), Json("1"), Json("0000:3b:00.0"), Json("0000:3B:00.0"),
                          Json("GPU-3b000000-0000-4000-8000-0000000040a5"),
                          Json("gpu-3B000000-0000-4000-8000-0000000040A5")}) {
    GpuRef r = resolveGpuRef(ref, gpus);
    ASSERT_NE(r.gpu, nullptr) << ref.dump() << ": " << r.problem;
    EXPECT_EQ(r.gpu->function.address, "0000:3b:00.0") << ref.dump();
  }
}

TEST(GpuRef, ARememberedUuidFindsTheGpuThatShowsNoneNow) {
  auto gpus = vmHost();
  for (auto& g : gpus)
    if (g.function.address == "0000:9b:00.0") g.uuid.clear();  // on vfio-pci
  const std::string uuid = "GPU-9b000000-0000-4000-8000-0000000040a5";
  EXPECT_EQ(resolveGpuRef(uuid, gpus).gpu, nullptr);
  GpuRef r =
      resolveGpuRef(uuid, gpus, {{"gpu-9b000000-0000-4000-8000-0000000040a5", "0000:9b:00.0"}});
  ASSERT_NE(r.gpu, nullptr) << r.problem;
  EXPECT_EQ(r.gpu->function.address, "0000:9b:00.0");
}

TEST(GpuRef, WhatIsWrongAndWhichGpusThereAre) {
  const auto gpus = vmHost();
  const std::string here =
      "NVIDIA GPUs here: 0000:1b:00.0 (index 0), 0000:3b:00.0 (index 1), 0000:9b:00.0 (index 2), "
      "0000:bb:00.0 (index 3)";
  EXPECT_EQ(resolveGpuRef(9, gpus).problem,
            "no NVIDIA GPU with index 9 on this host (" + here + ")");
  EXPECT_EQ(resolveGpuRef("0000:5e:00.0", gpus).problem,
            "no GPU at PCI address 0000:5e:00.0 on this host (" + here + ")");
  EXPECT_THAT(resolveGpuRef("GPU-nope", gpus).problem,
              HasSubstr("no NVIDIA GPU with UUID \"GPU-nope\" on this host"));
  EXPECT_EQ(resolveGpuRef("3b:00.0", gpus).problem,
            "malformed PCI address \"3b:00.0\": expected <domain>:<bus>:<device>.<function> in "
            "hex, e.g. 0000:3b:00.0");
  EXPECT_EQ(resolveGpuRef(true, gpus).problem,
            "expected a GPU index, a PCI address or a GPU-… UUID, got boolean true");
  EXPECT_EQ(resolveGpuRef({}, std::vector<Gpu>{}).problem,
            "expected a GPU index, a PCI address or a GPU-… UUID, got null");
  EXPECT_THAT(resolveGpuRef(0, std::vector<Gpu>{}).problem,
              HasSubstr("(this host has no NVIDIA GPUs)"));
}

}  // namespace
}  // namespace nodeplane::host
