// A private Debian dockerd for the tests that need a real Docker Engine: its own temp dir under
// /tmp (data root, exec root, unix socket, pid file, log), no iptables, no bridge, so it touches
// nothing of the host's Docker and two test runs never collide. Containers on it need
// HostConfig.NetworkMode "none" (or "host"). Nothing can be pulled here: importBusybox() makes an
// image from busybox-static. On destruction it stops dockerd and its containerd by PID, kills
// any shim left of its containers, unmounts what is mounted under its dir and removes the dir.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include "docker/engine/engine.hpp"
#include "support/process.hpp"

namespace nodeplane::testing {

// The image importBusybox() makes by default: /bin/busybox and a link for each of its applets
// (sh, sleep, cat, env, echo, ls, grep, true …); its CMD sleeps until SIGTERM, then exits 0.
inline constexpr const char* kBusyboxImage = "nodeplane-test/busybox:1";

struct DockerdOptions {
  // Put first on dockerd's PATH ("" for none): where a test puts a stub
  // nvidia-container-runtime-hook (writeNvidiaHookStub) so that DeviceRequests work.
  std::filesystem::path extraPath;
};

class Dockerd {
 public:
  // Starts dockerd in a fresh /tmp/np-dk-XXXXXX and waits (up to 60 s) until /_ping answers;
  // ok() says whether it did, error() why not (with the end of dockerd's log).
  explicit Dockerd(DockerdOptions options = {});
  ~Dockerd();
  Dockerd(const Dockerd&) = delete;
  Dockerd& operator=(const Dockerd&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  const std::filesystem::path& dir() const { return dir_; }
  std::string socket() const { return (dir_ / "docker.sock").string(); }
  pid_t pid() const { return dockerd_.pid; }
  pid_t containerdPid() const { return containerd_; }
  // A client connected to it (API version negotiated); valid while it runs.
  docker::Engine& engine() { return *engine_; }
  std::string log() const;

  // Imports busybox-static as `tag` ("repo:tag"). "" or why not.
  std::string importBusybox(const std::string& tag = kBusyboxImage);
  // Stops dockerd (SIGTERM, up to 30 s, then SIGKILL) and then its containerd. "" or why not.
  std::string stop();
  // Starts it again on the same dirs (images and containers kept). "" or why not.
  std::string start();

 private:
  DockerdOptions options_;
  std::filesystem::path dir_;
  Spawned dockerd_;
  pid_t containerd_ = -1;
  std::unique_ptr<docker::Engine> engine_;
  std::string error_;
};

// The test binary's dockerd, shared by every test that does not stop it (so tests use unique
// container names), started on first use with kBusyboxImage imported, stopped at exit. nullptr
// when it cannot start, with why in `why`.
Dockerd* sharedDockerd(std::string* why = nullptr);

// Writes an executable `binDir/nvidia-container-runtime-hook` that appends its arguments (one
// line) to `recordDir/argv`, copies its stdin (the OCI state) to `recordDir/stdin.<pid>` and exits
// 0. Returns the hook's path.
std::filesystem::path writeNvidiaHookStub(const std::filesystem::path& binDir,
                                          const std::filesystem::path& recordDir);

// A unique container name for this test process: "<prefix>-<pid>-<n>".
std::string uniqueName(const std::string& prefix);

}  // namespace nodeplane::testing

// Skips (like the netlink tests) when not root: dockerd needs root. As root, a dockerd that does
// not start fails the test.
#define NODEPLANE_REQUIRE_DOCKERD_ROOT()                                 \
  do {                                                                   \
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to run a dockerd"; \
  } while (0)
