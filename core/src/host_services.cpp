#include "host_services.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace nodeplane {

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
  if (!gpus_) gpus_ = host::readGpuInventory(host_.sysfsRoot);
  return *gpus_;
}

void PluginServices::setSection(const std::string& name) {
  const Json& all = shared_->context().config;
  auto it = all.is_object() ? all.find(name) : all.end();
  config_ = it != all.end() && it->is_object() ? *it : Json::object();
}

Result<void> PluginServices::writeSysfs(const std::filesystem::path& file, std::string_view value,
                                        std::chrono::milliseconds /*timeout*/) {
  // TODO(issue 6): run where a hung write can be abandoned.
  const auto path = file.is_absolute() ? file : context().sysfsRoot / file;
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return fail(ErrorKind::kTerminal, "cannot open " + path.string() + ": " + std::strerror(errno));
  ssize_t n = ::write(fd, value.data(), value.size());
  int err = errno;
  ::close(fd);
  if (n < 0)
    return fail(ErrorKind::kTerminal, "writing \"" + std::string(value) + "\" to " + path.string() +
                                          ": " + std::strerror(err));
  return {};
}

Result<sdbus::IConnection*> PluginServices::systemdBus() {
  return fail(ErrorKind::kTerminal, "the systemd bus is not offered to plugins yet");
}

}  // namespace nodeplane
