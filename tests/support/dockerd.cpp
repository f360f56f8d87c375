#include "support/dockerd.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <fstream>
#include <sstream>
#include <vector>

#include "support/files.hpp"

extern char** environ;

namespace nodeplane::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string tail(const std::string& text, std::size_t n = 2000) {
  return text.size() <= n ? text : "…" + text.substr(text.size() - n);
}

// Waits until `pid` (not necessarily our child) is gone; false at the deadline.
bool waitGone(pid_t pid, std::chrono::milliseconds timeout) {
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return errno == ESRCH;
  pollfd p{fd, POLLIN, 0};  // readable once the process has exited
  int r = ::poll(&p, 1, static_cast<int>(timeout.count()));
  ::close(fd);
  return r > 0;
}

// SIGTERM, wait, SIGKILL, wait: for processes that are not our children.
void terminate(pid_t pid, std::chrono::milliseconds grace) {
  if (pid <= 0 || ::kill(pid, 0) != 0) return;
  ::kill(pid, SIGTERM);
  if (waitGone(pid, grace)) return;
  ::kill(pid, SIGKILL);
  waitGone(pid, 10s);
}

std::string cmdline(pid_t pid) {
  std::string s = slurp(fs::path("/proc") / std::to_string(pid) / "cmdline");
  std::replace(s.begin(), s.end(), '\0', ' ');
  return s;
}

// Processes whose command line names `dir` (the shims of its containers): ours alone.
std::vector<pid_t> processesNaming(const fs::path& dir) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    pid_t pid = std::stoi(name);
    if (pid == ::getpid()) continue;
    if (cmdline(pid).find(dir.string() + "/") != std::string::npos) out.push_back(pid);
  }
  return out;
}

// Mount points at or under `dir`, deepest first. Octal escapes (\040) in mountinfo are decoded.
std::vector<std::string> mountsUnder(const fs::path& dir) {
  std::vector<std::string> out;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  const std::string prefix = dir.string();
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string id, parent, dev, root, point;
    f >> id >> parent >> dev >> root >> point;
    std::string decoded;
    for (std::size_t i = 0; i < point.size(); ++i) {
      if (point[i] == '\\' && i + 3 < point.size()) {
        decoded += static_cast<char>(std::stoi(point.substr(i + 1, 3), nullptr, 8));
        i += 3;
      } else {
        decoded += point[i];
      }
    }
    if (decoded == prefix || decoded.starts_with(prefix + "/")) out.push_back(decoded);
  }
  std::sort(out.begin(), out.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  return out;
}

void unmountAll(const fs::path& dir) {
  // A mount may be stacked; repeat until nothing is left (bounded).
  for (int round = 0; round < 8; ++round) {
    auto points = mountsUnder(dir);
    if (points.empty()) return;
    for (const auto& p : points) ::umount2(p.c_str(), MNT_DETACH);
  }
}

}  // namespace

Dockerd::Dockerd(DockerdOptions options) : options_(std::move(options)) {
  std::string tmpl = "/tmp/np-dk-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    error_ = "mkdtemp " + tmpl + ": " + ::strerror(errno);
    return;
  }
  dir_ = tmpl;
  error_ = start();
}

Dockerd::~Dockerd() {
  if (dir_.empty()) return;
  if (engine_ && dockerd_.pid > 0) {
    // Containers first, by force (SIGKILL): dockerd's own shutdown would wait for each to stop.
    if (auto list = engine_->call("GET", "/containers/json?all=1", nullptr, 10s);
        list && list->is_array())
      for (const auto& c : *list)
        (void)engine_->request("DELETE", "/containers/" + c.value("Id", "") + "?force=1&v=1",
                               nullptr, 10s);
  }
  stop();
  for (pid_t pid : processesNaming(dir_)) terminate(pid, 5s);
  unmountAll(dir_);
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

std::string Dockerd::log() const { return slurp(dir_ / "dockerd.log"); }

std::string Dockerd::start() {
  if (dockerd_.pid > 0) return "dockerd already runs (pid " + std::to_string(dockerd_.pid) + ")";
  const std::string d = dir_.string();
  std::vector<std::string> argv = {"/usr/sbin/dockerd",
                                   "--iptables=false",
                                   "--ip6tables=false",
                                   "--bridge=none",
                                   "--ip-masq=false",
                                   "--userland-proxy=false",
                                   "--shutdown-timeout=2",
                                   "--data-root=" + d + "/data",
                                   "--exec-root=" + d + "/exec",
                                   "--host=unix://" + d + "/docker.sock",
                                   "--pidfile=" + d + "/docker.pid"};
  std::string path = "PATH=";
  if (!options_.extraPath.empty()) path += options_.extraPath.string() + ":";
  path += "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view v(*e);
    if (v.starts_with("PATH=") || v.starts_with("NOTIFY_SOCKET=") || v.starts_with("LISTEN_FDS=") ||
        v.starts_with("LISTEN_PID=") || v.starts_with("WATCHDOG_") || v.starts_with("DOCKER_"))
      continue;
    env.emplace_back(v);
  }
  env.push_back(path);
  std::vector<char*> args, envp;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  const std::string logPath = (dir_ / "dockerd.log").string();
  const pid_t parent = ::getpid();

  pid_t pid = ::fork();
  if (pid < 0) return std::string("fork: ") + ::strerror(errno);
  if (pid == 0) {
    // Dies with the test process even when it crashes (the rest is the destructor's job).
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(127);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGPIPE}) ::signal(sig, SIG_DFL);
    int in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    int out = ::open(logPath.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (in < 0 || out < 0) ::_exit(127);
    ::dup2(in, STDIN_FILENO);
    ::dup2(out, STDOUT_FILENO);
    ::dup2(out, STDERR_FILENO);
    ::setsid();
    ::execve(args[0], args.data(), envp.data());
    ::_exit(127);
  }
  dockerd_ = adoptChild(pid);

  // Wait for /_ping (dockerd creates its socket only when its API is ready), or its exit.
  engine_ = std::make_unique<docker::Engine>(socket(), 5s);
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  std::string last;
  for (;;) {
    if (auto ok = engine_->connect())
      break;
    else
      last = ok.error().str();
    if (auto status = waitExit(dockerd_, 20ms))
      return "dockerd exited (" + describeStatus(*status) + ") before answering: " + tail(log());
    if (std::chrono::steady_clock::now() > deadline) {
      std::string why = "dockerd did not answer /_ping within 60 s (" + last + "): " + tail(log());
      stop();
      return why;
    }
  }
  // The containerd dockerd started for itself (stopped by PID after dockerd, should it linger).
  std::string pidText = slurp(dir_ / "exec/containerd/containerd.pid");
  containerd_ = pidText.empty() ? -1 : std::atoi(pidText.c_str());
  return "";
}

std::string Dockerd::stop() {
  if (dockerd_.pid <= 0) return "";
  std::string why;
  sendSignal(dockerd_, SIGTERM);
  if (!waitExit(dockerd_, 30s)) {
    why = "dockerd did not stop within 30 s of SIGTERM: killed";
    killAndReap(dockerd_);
  }
  if (containerd_ > 0 && cmdline(containerd_).find(dir_.string()) != std::string::npos)
    terminate(containerd_, 10s);
  containerd_ = -1;
  return why;
}

std::string Dockerd::importBusybox(const std::string& tag) {
  const fs::path root = dir_ / "rootfs";
  std::error_code ec;
  fs::remove_all(root, ec);
  for (const char* d : {"bin", "etc", "tmp", "proc", "sys", "dev", "root"})
    fs::create_directories(root / d, ec);
  fs::copy_file("/bin/busybox", root / "bin/busybox", ec);
  if (ec) return "copy /bin/busybox: " + ec.message() + " (apt-get install busybox-static)";
  CliResult list = run({"/bin/busybox", "--list"});
  if (list.code != 0) return "busybox --list: " + list.err;
  std::istringstream applets(list.out);
  for (std::string a; std::getline(applets, a);)
    if (!a.empty() && a != "busybox") fs::create_symlink("busybox", root / "bin" / a, ec);
  writeFile(root / "etc/passwd", "root:x:0:0:root:/root:/bin/sh\n");
  writeFile(root / "etc/group", "root:x:0:\n");
  const fs::path tarball = dir_ / "rootfs.tar";
  CliResult tar = run({"/bin/tar", "-C", root.string(), "-cf", tarball.string(), "."});
  if (tar.code != 0) return "tar: " + tar.err;
  fs::remove_all(root, ec);
  std::string data = slurp(tarball);
  fs::remove(tarball, ec);

  auto colon = tag.rfind(':');
  std::string repo = colon == std::string::npos ? tag : tag.substr(0, colon);
  std::string version = colon == std::string::npos ? "latest" : tag.substr(colon + 1);
  const std::string cmd = R"(CMD ["sh", "-c", "trap 'exit 0' TERM; sleep 2147483647 & wait"])";
  docker::Engine::Upload upload{data, "application/x-tar"};
  auto ok = engine_->stream(
      "POST",
      "/images/create?fromSrc=-&repo=" + docker::urlEncode(repo) +
          "&tag=" + docker::urlEncode(version) + "&changes=" + docker::urlEncode(cmd),
      [](const Json&) { return true; }, 60s, &upload);
  if (!ok) return "import " + tag + ": " + ok.error().str();
  return "";
}

Dockerd* sharedDockerd(std::string* why) {
  static std::unique_ptr<Dockerd> shared;
  static std::string error;
  if (!shared && error.empty()) {
    shared = std::make_unique<Dockerd>();
    if (!shared->ok())
      error = shared->error();
    else
      error = shared->importBusybox(kBusyboxImage);
    if (!error.empty()) shared.reset();
  }
  if (why != nullptr) *why = error;
  return shared.get();
}

fs::path writeNvidiaHookStub(const fs::path& binDir, const fs::path& recordDir) {
  fs::create_directories(binDir);
  fs::create_directories(recordDir);
  const fs::path hook = binDir / "nvidia-container-runtime-hook";
  writeFile(hook,
            "#!/bin/sh\n"
            "printf '%s\\n' \"$*\" >> '" +
                (recordDir / "argv").string() +
                "'\n"
                "cat > '" +
                (recordDir / "stdin.").string() +
                "'$$\n"
                "exit 0\n");
  ::chmod(hook.c_str(), 0755);
  return hook;
}

std::string uniqueName(const std::string& prefix) {
  static std::atomic<int> n{0};
  return prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(++n);
}

}  // namespace nodeplane::testing
