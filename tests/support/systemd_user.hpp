// A real `systemd --user` manager on a private bus for the tests that need a service manager:
// its own temp dir (the runtime dir, the bus socket), a private /run in its own mount namespace
// when the host was not booted with systemd, so two test runs never collide. Everything it
// started is stopped by PID when it goes.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "support/files.hpp"
#include "support/process.hpp"

namespace nodeplane::testing {

// The PIDs below `pid` (children, grandchildren, ...), read from /proc.
std::vector<pid_t> descendants(pid_t pid);

// A process started by the test; stopped (SIGTERM, then SIGKILL after a deadline) and reaped by
// PID when it goes, together with anything it started that outlived it.
class Child {
 public:
  Child() = default;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() { stop(); }

  void adopt(pid_t pid);
  pid_t pid() const { return child_.pid; }
  bool running() const;
  void stop(std::chrono::milliseconds grace = std::chrono::seconds(5));

 private:
  Spawned child_;
};

class SystemdUser {
 public:
  // Why a user manager cannot run here ("" when it can): systemd not installed, no user
  // dbus.socket unit, not root on a host not booted with systemd. Tests skip with it.
  static std::string unavailable();

  // Starts `systemd --user` in a fresh temp dir and waits (up to `timeout`) until
  // org.freedesktop.systemd1 answers on its bus. setupError(): the child could not set itself up
  // (no mount namespace here: a skip); error(): it started but did not come up (a failure).
  explicit SystemdUser(std::chrono::milliseconds timeout = std::chrono::seconds(60));
  ~SystemdUser();
  SystemdUser(const SystemdUser&) = delete;
  SystemdUser& operator=(const SystemdUser&) = delete;

  bool ok() const { return setupError_.empty() && error_.empty(); }
  const std::string& setupError() const { return setupError_; }
  const std::string& error() const { return error_; }
  // "unix:path=<runtime dir>/bus"
  std::string address() const;
  const std::filesystem::path& runtimeDir() const { return runtimeDir_; }
  pid_t pid() const { return manager_.pid(); }
  bool running() const { return manager_.running(); }
  // The manager's version ("252") as it answers on the bus, "" when it does not.
  std::string version(std::chrono::milliseconds timeout = std::chrono::seconds(2)) const;
  // Stops the manager (it stops its units) and whatever it left behind, by PID.
  void stop();

 private:
  TempDir dir_;
  std::filesystem::path runtimeDir_;
  std::vector<std::filesystem::path> cgroups_;  // its own, removed when it stops
  Child manager_;
  std::string setupError_;
  std::string error_;
};

}  // namespace nodeplane::testing
