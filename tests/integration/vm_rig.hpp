// What the VirtualMachine integration tests share: a real `systemd --user` manager on a private
// bus, a tiny blank qcow2 base image, an agent config that points the qemu plugin at both (QEMU
// under TCG), and the real CLI binary.
#pragma once

#include <gtest/gtest.h>
#include <poll.h>
#include <sdbus-c++/sdbus-c++.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "qmp.hpp"
#include "support/files.hpp"
#include "support/process.hpp"
#include "support/systemd_user.hpp"
#include "units.hpp"

namespace nodeplane::testing {

inline constexpr const char* kQemuBinary = "/usr/bin/qemu-system-x86_64";
inline constexpr const char* kQemuImg = "/usr/bin/qemu-img";

class VmRig : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (a systemd --user manager of its own)";
    if (::access(kQemuBinary, X_OK) != 0 || ::access(kQemuImg, X_OK) != 0)
      GTEST_SKIP() << "qemu not installed (apt-get install qemu-system-x86 qemu-utils)";
    if (std::string why = SystemdUser::unavailable(); !why.empty()) GTEST_SKIP() << why;
    manager_ = std::make_unique<SystemdUser>();
    if (!manager_->setupError().empty()) GTEST_SKIP() << manager_->setupError();
    ASSERT_TRUE(manager_->ok()) << manager_->error();
    bus_ = sdbus::createSessionBusConnectionWithAddress(manager_->address());
    for (const char* d : {"images", "instances", "run", "state", "desired"})
      std::filesystem::create_directories(root_ / d);
    auto img = run(
        {kQemuImg, "create", "-q", "-f", "qcow2", (root_ / "images/blank.qcow2").string(), "16M"});
    ASSERT_EQ(img.code, 0) << img.err;
    root_.write("agent.yaml",
                "apiVersion: nodeplane.io/v1\nkind: AgentConfig\nresyncSeconds: 3600\n"
                "debounceMilliseconds: 100\nlockTimeoutSeconds: 10\nrunDir: " +
                    (root_ / "run").string() + "\nsystemd: {bus: \"" + manager_->address() +
                    "\"}\nqemu:\n  binary: " + kQemuBinary + "\n  imgBinary: " + kQemuImg +
                    "\n  imagesDir: " + (root_ / "images").string() +
                    "\n  instancesDir: " + (root_ / "instances").string() + "\n  accel: tcg\n");
  }
  void TearDown() override {
    if (daemon_) {
      sendSignal(daemon_, SIGTERM);
      if (!waitExit(daemon_, std::chrono::seconds(30))) killAndReap(daemon_);
    }
    bus_.reset();
    if (manager_) manager_->stop();  // stops every VM unit it runs
  }

  // A VirtualMachine file in desired/ (spec lines indented by the caller's text).
  void writeVm(const std::string& name, const std::string& specLines) {
    root_.write("desired/" + name + ".yaml",
                "apiVersion: nodeplane.io/v1\nkind: VirtualMachine\nmetadata: {name: " + name +
                    "}\nspec:\n" + specLines);
  }
  static std::string tinyVm(const std::string& extra = "") {
    return "  vcpus: 1\n  memoryMiB: 128\n  disk: {base: blank}\n  firmware: bios\n"
           "  accel: tcg\n  shutdownTimeoutSec: 2\n" +
           extra;
  }

  std::vector<std::string> argv(std::vector<std::string> command) const {
    std::vector<std::string> a = {
        NODEPLANE_BINARY,           "--config",     (root_ / "agent.yaml").string(), "--state-dir",
        (root_ / "state").string(), "--plugin-dir", NODEPLANE_BUILD_PLUGIN_DIR};
    a.insert(a.end(), command.begin(), command.end());
    return a;
  }
  CliResult np(std::vector<std::string> command) const {
    return run(argv(std::move(command)), {}, std::chrono::seconds(180));
  }
  CliResult apply() const { return np({"apply", "-f", (root_ / "desired").string()}); }

  void startDaemon() {
    auto a = argv({"--log-level", "debug", "run", "-f", (root_ / "desired").string()});
    daemon_ = spawnLogged(a, root_ / "daemon.out", root_ / "daemon.log");
    ASSERT_TRUE(daemon_) << daemon_.error;
  }
  std::string logTail() const {
    std::string t = slurp(root_ / "daemon.log");
    if (t.size() > 30000) t = "...\n" + t.substr(t.size() - 30000);
    return "\n--- daemon log ---\n" + t + "--- end of log ---";
  }

  qemu::UnitManager units() { return qemu::UnitManager(*bus_); }
  // The VM's unit as the manager has it; nullopt when not loaded.
  std::optional<qemu::UnitState> unit(const std::string& vm) {
    auto s = units().state("nodeplane-vm-" + vm + ".service");
    return s ? *s : std::nullopt;
  }
  bool unitActive(const std::string& vm) {
    auto u = unit(vm);
    return u && u->activeState == "active";
  }
  std::filesystem::path qmpSocket(const std::string& vm) const {
    return root_ / "run/qemu" / (vm + ".qmp");
  }
  // QMP's status of the VM ("running"), or why it cannot be read.
  std::string qmpStatus(const std::string& vm) {
    auto c = qemu::QmpClient::connect(qmpSocket(vm), std::chrono::seconds(5));
    if (!c) return c.error().message;
    auto s = c->execute("query-status");
    if (!s) return s.error().message;
    return s->value("status", std::string("?"));
  }

  // Asks `cond` until it holds or `limit` passes (and, with a daemon, while it runs).
  ::testing::AssertionResult eventually(const std::string& what, std::chrono::milliseconds limit,
                                        const std::function<bool()>& cond) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
      if (cond()) return ::testing::AssertionSuccess();
      if (daemon_ && !running(daemon_))
        return ::testing::AssertionFailure()
               << "the daemon exited while waiting for: " << what << logTail();
      if (std::chrono::steady_clock::now() >= deadline)
        return ::testing::AssertionFailure()
               << "timed out waiting for: " << what << (daemon_ ? logTail() : "");
      ::poll(nullptr, 0, 20);  // the interval between two questions, not a synchronisation
    }
  }

  std::unique_ptr<SystemdUser> manager_;
  std::unique_ptr<sdbus::IConnection> bus_;
  TempDir root_;
  Spawned daemon_;
};

}  // namespace nodeplane::testing
