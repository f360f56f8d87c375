#include "plugin_host.hpp"

#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/dll/runtime_symbol_info.hpp>
#include <cerrno>
#include <cstring>
#include <exception>
#include <mutex>
#include <set>
#include <utility>

#include "nodeplane/text.hpp"

namespace nodeplane {
namespace {

// Runs `fn`, turning any exception into an Error that names the plugin.
template <class T, class Fn>
Result<T> guarded(const std::string& plugin, const char* what, Fn&& fn) {
  try {
    return fn();
  } catch (const std::exception& e) {
    return fail(ErrorKind::kTerminal, "plugin " + plugin + " threw from " + what + ": " + e.what());
  } catch (...) {
    return fail(ErrorKind::kTerminal, "plugin " + plugin + " threw from " + what);
  }
}

// Owns a file descriptor.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    std::swap(fd_, o.fd_);
    return *this;
  }
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

// A plugin runs as the agent (root), so only root may have written it or its directory. The
// checks run on the opened descriptor, the same file that is then loaded.
Result<void> checkOwnerAndMode(const struct stat& st, const std::string& what,
                               const std::filesystem::path& path) {
  if (st.st_mode & (S_IWGRP | S_IWOTH))
    return fail(ErrorKind::kTerminal, what + " is group- or world-writable", {},
                "chmod go-w " + path.string());
  if (::geteuid() == 0 && st.st_uid != 0)
    return fail(ErrorKind::kTerminal,
                what + " is owned by uid " + std::to_string(st.st_uid) + ", not root", {},
                "chown root " + path.string());
  return {};
}

Result<void> checkDir(int dirFd, const std::filesystem::path& dir) {
  struct stat st {};
  if (::fstat(dirFd, &st) != 0)
    return fail(ErrorKind::kTerminal,
                "cannot stat plugin directory " + dir.string() + ": " + std::strerror(errno));
  return checkOwnerAndMode(st, "plugin directory " + dir.string(), dir);
}

// Opens `name` in the directory `dirFd` without following a symlink (a link swapped in for a
// checked file would otherwise be what gets loaded) and checks what was opened.
Result<Fd> openPluginFile(int dirFd, const std::string& name, const std::filesystem::path& file) {
  Fd fd(::openat(dirFd, name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (fd.get() < 0) {
    if (errno == ELOOP)
      return fail(ErrorKind::kTerminal,
                  "is a symbolic link; plugins are loaded only from regular files in the plugin "
                  "directory",
                  {}, "replace it with the file it points to");
    return fail(ErrorKind::kTerminal, std::string("cannot open: ") + std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0)
    return fail(ErrorKind::kTerminal, std::string("cannot stat: ") + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return fail(ErrorKind::kTerminal, "not a regular file");
  if (auto ok = checkOwnerAndMode(st, "file", file); !ok) return std::unexpected(ok.error());
  return fd;
}

// The dynamic loader reuses an object already loaded under the same name without opening
// anything, so every /proc/self/fd/N path handed to dlopen must be new to this process: a
// descriptor number once used is never used again for a load.
std::mutex usedFdsMutex;
std::set<int> usedFds;

Result<Fd> withFreshNumber(Fd fd) {
  std::lock_guard lock(usedFdsMutex);
  int from = fd.get();
  while (usedFds.count(from)) {
    int copy = ::fcntl(fd.get(), F_DUPFD_CLOEXEC, from + 1);  // the lowest free number above
    if (copy < 0)
      return fail(ErrorKind::kTerminal,
                  std::string("cannot duplicate the descriptor: ") + std::strerror(errno));
    fd = Fd(copy);  // the previous number is closed
    from = copy;
  }
  usedFds.insert(from);
  return fd;
}

// Loads a checked descriptor (through /proc/self/fd/N: renaming another file over the name now
// changes nothing) and checks the ABI symbols every plugin and plugin runtime exports.
Result<std::pair<boost::dll::shared_library, PluginFactory*>> loadChecked(const Fd& fd) {
  const std::string viaFd = "/proc/self/fd/" + std::to_string(fd.get());
  boost::dll::shared_library lib;
  boost::dll::fs::error_code ec;
  lib.load(viaFd, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local, ec);
  if (ec) {
    // Boost says only "Bad file descriptor"; the dynamic loader says why (a missing symbol).
    const char* why = ::dlerror();
    return fail(ErrorKind::kTerminal,
                "cannot load (through " + viaFd + "): " + (why ? printable(why) : ec.message()));
  }
  if (!lib.has(kAbiSymbol))
    return fail(ErrorKind::kTerminal,
                std::string("not a nodeplane plugin: no ") + kAbiSymbol + " symbol");
  const auto abi = lib.get<const std::uint32_t>(kAbiSymbol);
  if (abi != kAbiVersion)
    return fail(ErrorKind::kTerminal,
                "built for plugin ABI " + std::to_string(abi) + ", this nodeplane speaks ABI " +
                    std::to_string(kAbiVersion),
                {}, "rebuild the plugin against this nodeplane");
  if (!lib.has(kAbiBuildSymbol))
    return fail(ErrorKind::kTerminal, std::string("no ") + kAbiBuildSymbol + " symbol", {},
                "rebuild the plugin against this nodeplane (NODEPLANE_PLUGIN exports it)");
  const char* built = &lib.get<const char>(kAbiBuildSymbol);
  const std::string build(built, ::strnlen(built, 512));
  if (build != kAbiBuild)
    return fail(ErrorKind::kTerminal,
                "built with \"" + printable(build.substr(0, 200)) + "\", this nodeplane with \"" +
                    kAbiBuild + "\"",
                {}, "rebuild the plugin with the compiler and libraries of this nodeplane");
  if (!lib.has(kFactorySymbol))
    return fail(ErrorKind::kTerminal, std::string("no ") + kFactorySymbol + " symbol");
  PluginFactory* factory = &lib.get<PluginFactory>(kFactorySymbol);
  return std::pair(std::move(lib), factory);
}

}  // namespace

Result<std::unique_ptr<Plugin>> loadRuntimeLibrary(const std::filesystem::path& dir,
                                                   const std::string& file, HostServices& services,
                                                   std::vector<boost::dll::shared_library>& keep) {
  const auto path = dir / file;
  auto refused = [&](const Error& e) {
    return fail(ErrorKind::kTerminal, "plugin runtime " + path.string() + " refused: " + e.message,
                {}, e.hint);
  };
  if (file.empty() || file.find('/') != std::string::npos || file.starts_with("."))
    return fail(ErrorKind::kTerminal, "invalid plugin runtime name \"" + printable(file) + "\"");
  Fd dirFd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dirFd.get() < 0)
    return fail(ErrorKind::kTerminal, "cannot open plugin runtime directory " + dir.string() +
                                          ": " + std::strerror(errno));
  if (auto ok = checkDir(dirFd.get(), dir); !ok) return refused(ok.error());
  auto opened = openPluginFile(dirFd.get(), file, path);
  if (!opened) return refused(opened.error());
  auto fd = withFreshNumber(std::move(*opened));
  if (!fd) return refused(fd.error());
  auto loaded = loadChecked(*fd);
  if (!loaded) return refused(loaded.error());
  std::string error;
  auto made =
      guarded<Plugin*>(file, "its factory", [&] { return (*loaded->second)(services, error); });
  if (!made) return std::unexpected(made.error());
  if (*made == nullptr)
    return fail(ErrorKind::kTerminal, "plugin runtime " + path.string() + ": factory failed: " +
                                          (error.empty() ? std::string("no reason given") : error));
  keep.push_back(std::move(loaded->first));
  return std::unique_ptr<Plugin>(*made);
}

namespace {}  // namespace

PluginHandle::PluginHandle(boost::dll::shared_library lib, std::unique_ptr<PluginServices> services,
                           std::unique_ptr<Plugin> plugin, std::filesystem::path file)
    : lib_(std::move(lib)),
      services_(std::move(services)),
      plugin_(std::move(plugin)),
      file_(std::move(file)) {}

PluginHandle::~PluginHandle() {
  stop();
  // The plugin object must go before its code does.
  plugin_.reset();
}

Result<void> PluginHandle::start() {
  if (started_) return {};
  if (startError_) return std::unexpected(*startError_);
  auto out = guarded<Result<void>>(name_, "start", [&] { return plugin_->start(); });
  Result<void> r = out ? *out : Result<void>(std::unexpected(out.error()));
  if (!r) {
    Error e = r.error();
    e.message = "plugin " + name_ + " could not start: " + e.message;
    startError_ = e;
    return std::unexpected(e);
  }
  started_ = true;
  return {};
}

void PluginHandle::stop() {
  if (!started_) return;
  started_ = false;
  (void)guarded<bool>(name_, "stop", [&] {
    plugin_->stop();
    return true;
  });
}

const KindSchema* PluginHandle::schema(const std::string& kind) const {
  for (const auto& k : kinds_)
    if (k.kind == kind) return &k;
  return nullptr;
}

std::vector<Error> PluginHandle::validate(const Resource& r) const {
  auto out = guarded<std::vector<Error>>(name_, "validate", [&] { return plugin_->validate(r); });
  if (out) return *out;
  Error e = out.error();
  e.resource = r.id.str();
  e.where = r.where;
  return {e};
}

std::vector<Error> PluginHandle::validateSet(const std::vector<const Resource*>& resources) const {
  if (resources.empty()) return {};
  auto out = guarded<std::vector<Error>>(name_, "validateSet",
                                         [&] { return plugin_->validateSet(resources); });
  if (out) return *out;
  return {out.error()};
}

Result<std::vector<Resource>> PluginHandle::expand(const Resource& r) const {
  auto out =
      guarded<Result<std::vector<Resource>>>(name_, "expand", [&] { return plugin_->expand(r); });
  if (!out) return std::unexpected(out.error());
  return *out;
}

Result<std::vector<Claim>> PluginHandle::claims(const Resource& r) const {
  return guarded<std::vector<Claim>>(name_, "claims", [&] { return plugin_->claims(r); });
}

Result<Json> PluginHandle::normalize(const std::string& kind, const Json& spec) const {
  return guarded<Json>(name_, "normalize", [&] { return plugin_->normalize(kind, spec); });
}

Result<std::vector<ObservedObject>> PluginHandle::observe(const std::vector<std::string>& kinds) {
  if (auto ok = start(); !ok) return std::unexpected(ok.error());
  auto out = guarded<Result<std::vector<ObservedObject>>>(name_, "observe",
                                                          [&] { return plugin_->observe(kinds); });
  if (!out) return std::unexpected(out.error());
  return *out;
}

std::string PluginHandle::busyFor(const Change& change, const ObservedObject& now) const {
  auto out = guarded<std::string>(name_, "busyFor", [&] { return plugin_->busyFor(change, now); });
  if (out) return *out;
  spdlog::warn("{}: {}; taken as in use while it is", change.id.str(), out.error().message);
  return plugin_->Plugin::busyFor(change, now);
}

Outcome PluginHandle::apply(const Change& change, ApplyContext& context) {
  if (auto ok = start(); !ok) return Outcome::failed(ok.error());
  auto out = guarded<Outcome>(name_, "apply", [&] { return plugin_->apply(change, context); });
  if (!out) return Outcome::failed(out.error());
  return *out;
}

Result<void> PluginHandle::recover(const Interrupted& entry, ApplyContext& context) {
  if (auto ok = start(); !ok) return std::unexpected(ok.error());
  auto out =
      guarded<Result<void>>(name_, "recover", [&] { return plugin_->recover(entry, context); });
  if (!out) return std::unexpected(out.error());
  return *out;
}

std::vector<CheckItem> PluginHandle::check() {
  auto out = guarded<std::vector<CheckItem>>(name_, "check", [&] { return plugin_->check(); });
  if (out) return *out;
  return {CheckItem{name_, false, true, out.error().message}};
}

Result<std::vector<std::pair<std::string, std::vector<FieldSchema>>>>
PluginHandle::moreConfigSections() const {
  return guarded<std::vector<std::pair<std::string, std::vector<FieldSchema>>>>(
      name_, "moreConfigSections", [&] { return plugin_->moreConfigSections(); });
}

Result<std::vector<FieldSchema>> PluginHandle::configSchema() const {
  return guarded<std::vector<FieldSchema>>(name_, "configSchema",
                                           [&] { return plugin_->configSchema(); });
}

Result<std::vector<EventSource>> PluginHandle::openEvents() {
  if (auto ok = start(); !ok) return std::unexpected(ok.error());
  auto out = guarded<Result<std::vector<EventSource>>>(name_, "openEvents",
                                                       [&] { return plugin_->openEvents(); });
  if (!out) return std::unexpected(out.error());
  return *out;
}

Result<Touched> PluginHandle::drainEvents(int fd) {
  auto out =
      guarded<Result<Touched>>(name_, "drainEvents", [&] { return plugin_->drainEvents(fd); });
  if (!out) return std::unexpected(out.error());
  return *out;
}

void PluginHandle::closeEvents() {
  (void)guarded<bool>(name_, "closeEvents", [&] {
    plugin_->closeEvents();
    return true;
  });
}

Result<PluginHost> PluginHost::load(const std::filesystem::path& dir, const HostContext& host) {
  Fd dirFd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dirFd.get() < 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      return fail(ErrorKind::kTerminal, "plugin directory " + dir.string() + " does not exist", {},
                  "pass --plugin-dir DIR");
    return fail(ErrorKind::kTerminal,
                "cannot open plugin directory " + dir.string() + ": " + std::strerror(errno));
  }
  // Listed through the same descriptor, so the names are those of the directory checked below.
  std::vector<std::string> names;
  {
    Fd listFd(::fcntl(dirFd.get(), F_DUPFD_CLOEXEC, 0));  // closedir() closes its own
    DIR* d = listFd.get() < 0 ? nullptr : ::fdopendir(listFd.get());
    if (d == nullptr)
      return fail(ErrorKind::kTerminal, "reading " + dir.string() + ": " + std::strerror(errno));
    (void)listFd.release();
    errno = 0;
    while (const dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name.starts_with("libnodeplane-") && name.ends_with(".so")) names.push_back(name);
    }
    const int err = errno;
    ::closedir(d);
    if (err != 0)
      return fail(ErrorKind::kTerminal, "reading " + dir.string() + ": " + std::strerror(err));
  }
  std::sort(names.begin(), names.end());
  const auto dirOk = checkDir(dirFd.get(), dir);
  PluginHost out;
  for (const auto& name : names) {
    const auto file = dir / name;
    auto ok = dirOk ? out.loadAt(dirFd.get(), name, file, host) : dirOk;
    if (!ok) out.refused_.push_back({file, ok.error().str()});
  }
  return out;
}

Result<void> PluginHost::loadOne(const std::filesystem::path& file, const HostContext& host) {
  const auto dir = file.has_parent_path() ? file.parent_path() : std::filesystem::path(".");
  Fd dirFd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dirFd.get() < 0)
    return fail(ErrorKind::kTerminal,
                "cannot open plugin directory " + dir.string() + ": " + std::strerror(errno));
  if (auto ok = checkDir(dirFd.get(), dir); !ok) return ok;
  return loadAt(dirFd.get(), file.filename().string(), file, host);
}

Result<void> PluginHost::loadAt(int dirFd, const std::string& fileName,
                                const std::filesystem::path& file, const HostContext& host) {
  auto opened = openPluginFile(dirFd, fileName, file);
  if (!opened) return std::unexpected(opened.error());
  auto fd = withFreshNumber(std::move(*opened));
  if (!fd) return std::unexpected(fd.error());
  auto loaded = loadChecked(*fd);
  if (!loaded) return std::unexpected(loaded.error());
  boost::dll::shared_library lib = std::move(loaded->first);
  PluginFactory& factory = *loaded->second;
  const std::string label = file.filename().string();
  std::string error;
  if (!shared_) shared_ = std::make_shared<SharedHostServices>(host);
  auto services = std::make_unique<PluginServices>(shared_);
  services->setRuntimeDir((file.has_parent_path() ? file.parent_path() : ".") / "runtime");
  auto made = guarded<Plugin*>(label, "its factory", [&] { return factory(*services, error); });
  if (!made) return std::unexpected(made.error());
  if (*made == nullptr)
    return fail(ErrorKind::kTerminal,
                "factory failed: " + (error.empty() ? std::string("no reason given") : error));
  auto handle = std::make_unique<PluginHandle>(std::move(lib), std::move(services),
                                               std::unique_ptr<Plugin>(*made), file);

  auto name = guarded<std::string>(label, "name", [&] { return handle->plugin_->name(); });
  if (!name) return std::unexpected(name.error());
  auto kinds =
      guarded<std::vector<KindSchema>>(*name, "kinds", [&] { return handle->plugin_->kinds(); });
  if (!kinds) return std::unexpected(kinds.error());
  auto par =
      guarded<unsigned>(*name, "maxParallel", [&] { return handle->plugin_->maxParallel(); });
  if (!par) return std::unexpected(par.error());
  for (const auto& k : *kinds) {
    if (auto it = byKind_.find(k.kind); it != byKind_.end())
      return fail(ErrorKind::kTerminal, "kind " + k.kind + " is already served by plugin " +
                                            it->second->name() + " (" +
                                            it->second->file().string() + ")");
  }
  for (const auto& p : plugins_)
    if (p->name() == *name)
      return fail(ErrorKind::kTerminal,
                  "a plugin named " + *name + " is already loaded from " + p->file().string());
  handle->name_ = *name;
  handle->services_->setSection(*name);
  handle->kinds_ = std::move(*kinds);
  handle->maxParallel_ = std::max(1u, *par);
  for (const auto& k : handle->kinds_) byKind_[k.kind] = handle.get();
  plugins_.push_back(std::move(handle));
  return {};
}

PluginHandle* PluginHost::forKind(const std::string& kind) const {
  auto it = byKind_.find(kind);
  return it == byKind_.end() ? nullptr : it->second;
}

const KindSchema* PluginHost::schema(const std::string& kind) const {
  auto* p = forKind(kind);
  return p ? p->schema(kind) : nullptr;
}

std::vector<std::string> PluginHost::kindNames() const {
  std::vector<std::string> out;
  for (const auto& [k, _] : byKind_) out.push_back(k);
  return out;
}

std::filesystem::path defaultPluginDir() {
  boost::dll::fs::error_code ec;
  auto exe = boost::dll::program_location(ec);
  if (!ec) {
    auto candidate = exe.parent_path() / "plugins";
    std::error_code fec;
    if (std::filesystem::is_directory(candidate, fec)) return candidate;
  }
  return NODEPLANE_INSTALL_PLUGIN_DIR;
}

}  // namespace nodeplane
