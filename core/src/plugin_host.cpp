#include "plugin_host.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/dll/runtime_symbol_info.hpp>
#include <cstring>
#include <exception>

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

// File checks before dlopen: a plugin runs as the agent (root), so only root may have written it.
Result<void> checkFile(const std::filesystem::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0)
    return fail(ErrorKind::kTerminal, std::string("cannot stat: ") + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return fail(ErrorKind::kTerminal, "not a regular file");
  if (st.st_mode & (S_IWGRP | S_IWOTH))
    return fail(ErrorKind::kTerminal, "file is group- or world-writable", {},
                "chmod go-w " + file.string());
  if (::geteuid() == 0 && st.st_uid != 0)
    return fail(ErrorKind::kTerminal,
                "file is owned by uid " + std::to_string(st.st_uid) + ", not root", {},
                "chown root " + file.string());
  return {};
}

}  // namespace

PluginHandle::PluginHandle(boost::dll::shared_library lib, std::unique_ptr<Plugin> plugin,
                           std::filesystem::path file)
    : lib_(std::move(lib)), plugin_(std::move(plugin)), file_(std::move(file)) {}

PluginHandle::~PluginHandle() {
  // The plugin object must go before its code does.
  plugin_.reset();
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

Result<std::vector<Resource>> PluginHandle::expand(const Resource& r) const {
  auto out =
      guarded<Result<std::vector<Resource>>>(name_, "expand", [&] { return plugin_->expand(r); });
  if (!out) return std::unexpected(out.error());
  return *out;
}

Result<std::vector<std::string>> PluginHandle::claims(const Resource& r) const {
  return guarded<std::vector<std::string>>(name_, "claims", [&] { return plugin_->claims(r); });
}

Result<Json> PluginHandle::normalize(const std::string& kind, const Json& spec) const {
  return guarded<Json>(name_, "normalize", [&] { return plugin_->normalize(kind, spec); });
}

Result<std::vector<ObservedObject>> PluginHandle::observe(const std::vector<std::string>& kinds) {
  auto out = guarded<Result<std::vector<ObservedObject>>>(name_, "observe",
                                                          [&] { return plugin_->observe(kinds); });
  if (!out) return std::unexpected(out.error());
  return *out;
}

Result<void> PluginHandle::apply(const Change& change) {
  auto out = guarded<Result<void>>(name_, "apply", [&] { return plugin_->apply(change); });
  if (!out) return std::unexpected(out.error());
  return *out;
}

Result<PluginHost> PluginHost::load(const std::filesystem::path& dir, const HostContext& host) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    return fail(ErrorKind::kTerminal, "plugin directory " + dir.string() + " does not exist", {},
                "pass --plugin-dir DIR");
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const auto name = entry.path().filename().string();
    if (name.starts_with("libnodeplane-") && name.ends_with(".so")) files.push_back(entry.path());
  }
  if (ec) return fail(ErrorKind::kTerminal, "reading " + dir.string() + ": " + ec.message());
  std::sort(files.begin(), files.end());
  PluginHost out;
  for (const auto& f : files) {
    if (auto ok = out.loadOne(f, host); !ok) out.refused_.push_back({f, ok.error().str()});
  }
  return out;
}

Result<void> PluginHost::loadOne(const std::filesystem::path& file, const HostContext& host) {
  if (auto ok = checkFile(file); !ok) return ok;
  boost::dll::shared_library lib;
  boost::dll::fs::error_code ec;
  lib.load(file, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local, ec);
  if (ec) return fail(ErrorKind::kTerminal, "cannot load: " + ec.message());
  if (!lib.has(kAbiSymbol))
    return fail(ErrorKind::kTerminal,
                std::string("not a nodeplane plugin: no ") + kAbiSymbol + " symbol");
  const auto abi = lib.get<const std::uint32_t>(kAbiSymbol);
  if (abi != kAbiVersion)
    return fail(ErrorKind::kTerminal,
                "built for plugin ABI " + std::to_string(abi) + ", this nodeplane speaks ABI " +
                    std::to_string(kAbiVersion),
                {}, "rebuild the plugin against this nodeplane");
  if (!lib.has(kFactorySymbol))
    return fail(ErrorKind::kTerminal, std::string("no ") + kFactorySymbol + " symbol");
  auto& factory = lib.get<PluginFactory>(kFactorySymbol);
  const std::string label = file.filename().string();
  std::string error;
  auto made = guarded<Plugin*>(label, "its factory", [&] { return factory(host, error); });
  if (!made) return std::unexpected(made.error());
  if (*made == nullptr)
    return fail(ErrorKind::kTerminal,
                "factory failed: " + (error.empty() ? std::string("no reason given") : error));
  auto handle =
      std::make_unique<PluginHandle>(std::move(lib), std::unique_ptr<Plugin>(*made), file);

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
