#include "host_services.hpp"

#include <fcntl.h>
#include <sdbus-c++/sdbus-c++.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <thread>

namespace nodeplane {
namespace fs = std::filesystem;
namespace {

// `file` under `root`: relative paths are taken from the root, absolute ones must lie in it; no
// ".." and no symbolic link may lead out of it.
Result<fs::path> underRoot(const fs::path& root, const fs::path& file) {
  for (const auto& part : file)
    if (part == "..")
      return fail(ErrorKind::kTerminal,
                  "refusing to write " + file.string() + ": a sysfs path may not contain \"..\"");
  const fs::path path = (file.is_absolute() ? file : root / file).lexically_normal();
  std::error_code ec;
  const fs::path realRoot = fs::weakly_canonical(root, ec);
  const fs::path realPath = ec ? fs::path() : fs::weakly_canonical(path, ec);
  auto inside = [](const fs::path& p, const fs::path& r) {
    auto rel = p.lexically_relative(r);
    return !rel.empty() && *rel.begin() != "..";
  };
  if (ec || !inside(path, root.lexically_normal()) || !inside(realPath, realRoot))
    return fail(ErrorKind::kTerminal, "refusing to write " + path.string() +
                                          ": it is not under the sysfs root " + root.string());
  return path;
}

// What the writer thread and the caller share; the thread keeps it alive after an abandon.
struct PendingWrite {
  std::mutex mu;
  std::condition_variable cv;
  bool finished = false;
  bool abandoned = false;  // the caller gave up: the thread counts itself out when it returns
  Result<void> result;
};

Result<void> writeNow(const fs::path& path, const std::string& value) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return fail(ErrorKind::kTerminal, "cannot open " + path.string() + ": " + std::strerror(errno));
  ssize_t n = ::write(fd, value.data(), value.size());
  int err = errno;
  ::close(fd);
  // EBUSY, EAGAIN, EINTR: the kernel or a driver says "not now" (a device resetting, a driver
  // still settling): retried with backoff. Anything else stays refused until something changes.
  if (n < 0)
    return fail(err == EBUSY || err == EAGAIN || err == EINTR ? ErrorKind::kRetryable
                                                              : ErrorKind::kTerminal,
                "writing \"" + value + "\" to " + path.string() + ": " + std::strerror(err));
  return {};
}

}  // namespace

SharedHostServices::SharedHostServices(HostContext host) : host_(std::move(host)) {}
SharedHostServices::~SharedHostServices() = default;

std::string SharedHostServices::agentId() const {
  std::lock_guard lock(mu_);
  return agentId_;
}

void SharedHostServices::setAgentId(std::string id) {
  std::lock_guard lock(mu_);
  agentId_ = std::move(id);
}

void SharedHostServices::newPass() {
  std::lock_guard lock(mu_);
  functions_.reset();
  gpus_.reset();
}

Result<std::vector<host::PciFunction>> SharedHostServices::pciFunctions() {
  std::lock_guard lock(mu_);
  if (!functions_) functions_ = host::readPciFunctions(host_.sysfsRoot);
  return *functions_;
}

Result<std::vector<host::Gpu>> SharedHostServices::gpus() {
  std::lock_guard lock(mu_);
  if (!gpus_) gpus_ = host::readGpuInventory(host_.sysfsRoot, host_.procRoot);
  return *gpus_;
}

void PluginServices::setSection(const std::string& name) {
  const Json& all = shared_->context().config;
  auto it = all.is_object() ? all.find(name) : all.end();
  config_ = it != all.end() && it->is_object() ? *it : Json::object();
}

Result<void> SharedHostServices::writeSysfs(const fs::path& file, std::string_view value,
                                            std::chrono::milliseconds timeout) {
  auto path = underRoot(host_.sysfsRoot, file);
  if (!path) return std::unexpected(path.error());
  if (int hung = hungWrites_->load(); hung >= kMaxHungWrites)
    return fail(ErrorKind::kRetryable,
                std::to_string(hung) + " earlier sysfs writes have not returned; not writing to " +
                    path->string());
  // The write runs on its own thread: open() or write() of a sysfs file (`unbind`, a driver's
  // `bind`) can block in the kernel for as long as a driver wants. The caller waits `timeout`,
  // then leaves the thread to finish on its own (it only touches what it shares here).
  auto pending = std::make_shared<PendingWrite>();
  std::thread([pending, hung = hungWrites_, p = *path, v = std::string(value)] {
    Result<void> r = writeNow(p, v);
    std::lock_guard lock(pending->mu);
    pending->result = std::move(r);
    pending->finished = true;
    if (pending->abandoned) hung->fetch_sub(1);
    pending->cv.notify_all();
  }).detach();
  std::unique_lock lock(pending->mu);
  if (!pending->cv.wait_for(lock, timeout, [&] { return pending->finished; })) {
    pending->abandoned = true;
    hungWrites_->fetch_add(1);
    return fail(ErrorKind::kRetryable, "writing \"" + std::string(value) + "\" to " +
                                           path->string() + " did not return within " +
                                           std::to_string(timeout.count()) + " ms");
  }
  return pending->result;
}

Result<sdbus::IConnection*> SharedHostServices::systemdBus() {
  std::lock_guard lock(busMu_);
  if (bus_) return bus_.get();
  const std::string& bus = host_.systemdBus;
  try {
    if (bus == "system")
      bus_ = sdbus::createSystemBusConnection();
    else if (bus == "user")
      bus_ = sdbus::createSessionBusConnection();
    else if (bus.starts_with("unix:"))
      bus_ = sdbus::createSessionBusConnectionWithAddress(bus);
    else
      return fail(ErrorKind::kTerminal,
                  "unknown systemd bus \"" + bus + "\" (want system, user or a unix: address)");
  } catch (const sdbus::Error& e) {
    return fail(ErrorKind::kRetryable,
                "cannot connect to the " + bus + " bus: " + e.getName() + ": " + e.getMessage());
  } catch (const std::exception& e) {
    return fail(ErrorKind::kRetryable, "cannot connect to the " + bus + " bus: " + e.what());
  }
  return bus_.get();
}

Result<std::unique_ptr<Plugin>> SharedHostServices::loadRuntime(const std::filesystem::path& dir,
                                                                const std::string& file,
                                                                HostServices& services) {
  std::lock_guard lock(runtimesMu_);
  return loadRuntimeLibrary(dir, file, services, runtimes_);
}

}  // namespace nodeplane
