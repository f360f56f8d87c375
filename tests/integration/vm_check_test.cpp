// `nodeplane check` with the qemu plugin: the QEMU binary and its version, qemu-img, the
// accelerator VMs with accel auto get, OVMF, the ISO tool; and a QEMU that is not there.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <map>
#include <nlohmann/json.hpp>

#include "support/files.hpp"
#include "support/process.hpp"

namespace nodeplane::testing {
namespace {

using ::testing::HasSubstr;

std::map<std::string, nlohmann::json> qemuItems(const TempDir& tmp, const std::string& qemu) {
  tmp.write("agent.yaml",
            "apiVersion: nodeplane.io/v1\nkind: AgentConfig\nqemu:\n  binary: " + qemu + "\n");
  auto r = run({NODEPLANE_BINARY, "--config", (tmp.path() / "agent.yaml").string(), "--state-dir",
                (tmp.path() / "state").string(), "--plugin-dir", NODEPLANE_BUILD_PLUGIN_DIR,
                "--output", "json", "check"});
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  std::map<std::string, nlohmann::json> out;
  if (!j.is_object()) {
    ADD_FAILURE() << r.out << r.err;
    return out;
  }
  for (const auto& c : j["checks"])
    if (c.value("plugin", "") == "qemu") out[c.value("name", "")] = c;
  return out;
}

TEST(VmCheck, SaysWhatQemuToolsAndFirmwareAreThere) {
  if (::access("/usr/bin/qemu-system-x86_64", X_OK) != 0)
    GTEST_SKIP() << "qemu not installed (apt-get install qemu-system-x86)";
  TempDir tmp;
  auto items = qemuItems(tmp, "/usr/bin/qemu-system-x86_64");
  ASSERT_TRUE(items.count("qemu"));
  EXPECT_TRUE(items["qemu"]["ok"].get<bool>()) << items["qemu"];
  EXPECT_THAT(items["qemu"].value("detail", ""), HasSubstr("QEMU emulator version "));
  ASSERT_TRUE(items.count("qemu-img"));
  EXPECT_THAT(items["qemu-img"].value("detail", ""), HasSubstr("qemu-img version "));
  ASSERT_TRUE(items.count("qemu-accel"));
  EXPECT_THAT(items["qemu-accel"].value("detail", ""), HasSubstr("accel auto use"));
  ASSERT_TRUE(items.count("ovmf"));
  ASSERT_TRUE(items.count("iso-tool"));
  EXPECT_EQ(items["iso-tool"]["ok"].get<bool>(), ::access("/usr/bin/genisoimage", X_OK) == 0)
      << items["iso-tool"];
}

TEST(VmCheck, AQemuThatIsNotThereIsMissingAndSaysHowToGetIt) {
  TempDir tmp;
  auto items = qemuItems(tmp, "/nonexistent/qemu-system-x86_64");
  ASSERT_TRUE(items.count("qemu"));
  EXPECT_FALSE(items["qemu"]["ok"].get<bool>());
  EXPECT_TRUE(items["qemu"]["required"].get<bool>());
  EXPECT_THAT(items["qemu"].value("detail", ""), HasSubstr("/nonexistent/qemu-system-x86_64"));
  EXPECT_THAT(items["qemu"].value("detail", ""), HasSubstr("apt-get install qemu-system-x86"));
}

}  // namespace
}  // namespace nodeplane::testing
