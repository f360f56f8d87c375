// `nodeplane check` items of the docker plugin: called without start(), so it opens an Engine of
// its own on the configured socket.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>

#include "docker_plugin.hpp"
#include "engine.hpp"

namespace nodeplane::docker {
namespace {

constexpr const char* kHook = "nvidia-container-runtime-hook";
constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

std::string configuredSocket(const HostServices& services) {
  const Json& config = services.config();
  if (config.is_object() && config.contains("socket") && config["socket"].is_string())
    return config["socket"].get<std::string>();
  return services.context().dockerSocket;
}

// The PID of the process listening on `socket` (SO_PEERCRED of a connection to it); -1 if none.
pid_t listenerPid(const std::string& socket) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket.size() >= sizeof addr.sun_path) {
    ::close(fd);
    return -1;
  }
  std::memcpy(addr.sun_path, socket.c_str(), socket.size() + 1);
  pid_t pid = -1;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) pid = cred.pid;
  }
  ::close(fd);
  return pid;
}

// PATH from <procRoot>/<pid>/environ: nullopt when unreadable, the default PATH when unset.
std::optional<std::string> pathOf(const std::filesystem::path& procRoot, pid_t pid) {
  std::FILE* f = std::fopen((procRoot / std::to_string(pid) / "environ").c_str(), "rb");
  if (f == nullptr) return std::nullopt;
  std::string env;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) env.append(buf, n);
  std::fclose(f);
  for (size_t start = 0; start < env.size();) {
    size_t end = env.find('\0', start);
    if (end == std::string::npos) end = env.size();
    std::string_view var(env.data() + start, end - start);
    if (var.starts_with("PATH=")) return std::string(var.substr(5));
    start = end + 1;
  }
  return std::string(kDefaultPath);
}

CheckItem nvidiaItem(Engine& engine, const std::string& socket, const HostContext& host) {
  CheckItem item{"nvidia-container", false, false, ""};
  auto info = engine.call("GET", "/info");
  if (info && info->contains("Runtimes") && (*info)["Runtimes"].is_object() &&
      (*info)["Runtimes"].contains("nvidia")) {
    item.ok = true;
    item.detail = "dockerd has the nvidia runtime: Containers with gpus work";
    return item;
  }
  const std::string fix =
      "Containers with gpus fail to start; install the NVIDIA Container Toolkit "
      "(nvidia-container-toolkit) and restart dockerd";
  pid_t pid = listenerPid(socket);
  if (pid <= 0) {
    item.detail =
        "no nvidia runtime in dockerd's /info, and dockerd's PID (to read its PATH) is "
        "unknown: " +
        fix;
    return item;
  }
  auto path = pathOf(host.procRoot, pid);
  if (!path) {
    item.detail = "no nvidia runtime in dockerd's /info, and " +
                  (host.procRoot / std::to_string(pid) / "environ").string() +
                  " (dockerd's PATH) cannot be read: " + fix;
    return item;
  }
  for (size_t start = 0; start <= path->size();) {
    size_t end = path->find(':', start);
    if (end == std::string::npos) end = path->size();
    std::string dir = path->substr(start, end - start);
    start = end + 1;
    if (dir.empty()) continue;
    std::string hook = dir + "/" + kHook;
    if (::access(hook.c_str(), X_OK) == 0 && std::filesystem::is_regular_file(hook)) {
      item.ok = true;
      item.detail = hook + " on dockerd's PATH: Containers with gpus work";
      return item;
    }
  }
  item.detail = std::string("no nvidia runtime in dockerd's /info and no ") + kHook +
                " on dockerd's PATH (" + *path + "): " + fix;
  return item;
}

}  // namespace

std::vector<CheckItem> DockerPlugin::check() {
  const std::string socket = configuredSocket(services_);
  Engine engine(socket, std::chrono::seconds(5));
  CheckItem docker{"docker", false, false, ""};
  if (auto ok = engine.connect(); !ok) {
    docker.detail = ok.error().message +
                    " (needed only for Container resources: install Docker (apt-get install "
                    "docker.io) and start it (systemctl start docker), or set docker.socket in the "
                    "agent config to where dockerd listens)";
    return {docker, {"nvidia-container", false, false, "unknown: dockerd is not reachable"}};
  }
  auto version = engine.call("GET", "/version");
  std::string server = version ? version->value("Version", std::string("?")) : "?";
  std::string api = version ? version->value("ApiVersion", std::string("?")) : "?";
  docker.ok = true;
  docker.detail = "dockerd " + server + " at " + socket + ", Engine API " + api;
  if (api != engine.apiVersion()) docker.detail += " (spoken: " + engine.apiVersion() + ")";
  return {docker, nvidiaItem(engine, socket, services_.context())};
}

}  // namespace nodeplane::docker
