// Loads backend plugins (libnodeplane-<name>.so) with Boost.DLL and routes each kind to its plugin.
// Every call into a plugin goes through PluginHandle, which turns a throw into an Error.
#pragma once

#include <boost/dll/shared_library.hpp>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "host_services.hpp"
#include "nodeplane/plugin.hpp"

namespace nodeplane {

// One loaded plugin. The library is declared first so it is destroyed last: it outlives the
// plugin object and everything the plugin made.
class PluginHandle {
 public:
  PluginHandle(boost::dll::shared_library lib, std::unique_ptr<PluginServices> services,
               std::unique_ptr<Plugin> plugin, std::filesystem::path file);
  ~PluginHandle();
  PluginHandle(const PluginHandle&) = delete;
  PluginHandle& operator=(const PluginHandle&) = delete;

  const std::string& name() const { return name_; }
  const std::filesystem::path& file() const { return file_; }
  const std::vector<KindSchema>& kinds() const { return kinds_; }
  const KindSchema* schema(const std::string& kind) const;
  unsigned maxParallel() const { return maxParallel_; }

  std::vector<Error> validate(const Resource& r) const;
  std::vector<Error> validateSet(const std::vector<const Resource*>& resources) const;
  Result<std::vector<Resource>> expand(const Resource& r) const;
  Result<std::vector<Claim>> claims(const Resource& r) const;
  Result<Json> normalize(const std::string& kind, const Json& spec) const;
  Result<std::vector<ObservedObject>> observe(const std::vector<std::string>& kinds);
  // Who stops `change` now (Plugin::busyFor); for a plugin that throws, the default answer
  // (`now.busy` for an update, replace or delete): when in doubt, the object is left to its user.
  std::string busyFor(const Change& change, const ObservedObject& now) const;
  Outcome apply(const Change& change, ApplyContext& context);
  Result<void> recover(const Interrupted& entry, ApplyContext& context);
  // Readiness items; the plugin is not started for them (see Plugin::check).
  std::vector<CheckItem> check();
  Result<std::vector<FieldSchema>> configSchema() const;
  Result<std::vector<std::pair<std::string, std::vector<FieldSchema>>>> moreConfigSections() const;
  // Event sources (the daemon, on its poll thread): see Plugin::openEvents().
  Result<std::vector<EventSource>> openEvents();
  Result<Touched> drainEvents(int fd);
  void closeEvents();

  // Starts the plugin once (the first observe/apply needs it); an error is kept and returned
  // again. stop() (also run by the destructor) joins the plugin's threads.
  Result<void> start();
  void stop();
  bool started() const { return started_; }
  // The next start() tries again instead of returning the kept error (the daemon, once per pass:
  // what a plugin needs, dockerd or a bus, may have come up since).
  void retryStart() { startError_.reset(); }
  PluginServices& services() { return *services_; }

 private:
  friend class PluginHost;
  boost::dll::shared_library lib_;
  std::unique_ptr<PluginServices> services_;  // outlives the plugin
  std::unique_ptr<Plugin> plugin_;
  std::filesystem::path file_;
  std::string name_;
  std::vector<KindSchema> kinds_;
  unsigned maxParallel_ = 1;
  bool started_ = false;
  std::optional<Error> startError_;
};

struct RefusedPlugin {
  std::filesystem::path file;
  std::string reason;
};

class PluginHost {
 public:
  // Loads every libnodeplane-*.so in `dir` (sorted by name). A library that fails a check is
  // refused (see refused()) and the others still load. When the directory itself is group- or
  // world-writable, or not owned by root while running as root, every library in it is refused
  // with that reason.
  static Result<PluginHost> load(const std::filesystem::path& dir, const HostContext& host);

  // Loads one library; the error says why it was refused. The file is opened once (a symlink is
  // refused), its owner and mode are checked on that descriptor, and the library is loaded
  // through it (/proc/self/fd/N), so a file swapped in after the check is never what runs. Its
  // directory is checked like load()'s.
  Result<void> loadOne(const std::filesystem::path& file, const HostContext& host);

  PluginHandle* forKind(const std::string& kind) const;
  const KindSchema* schema(const std::string& kind) const;
  const std::vector<std::unique_ptr<PluginHandle>>& plugins() const { return plugins_; }
  const std::vector<RefusedPlugin>& refused() const { return refused_; }
  // What every plugin's HostServices share (the inventory snapshot, the agent id).
  // Null until the first library is loaded.
  SharedHostServices* shared() { return shared_.get(); }
  // retryStart() on every plugin whose start failed.
  void retryFailedStarts() {
    for (auto& p : plugins_) p->retryStart();
  }
  std::vector<std::string> kindNames() const;  // sorted

 private:
  Result<void> loadAt(int dirFd, const std::string& fileName, const std::filesystem::path& file,
                      const HostContext& host);

  std::vector<std::unique_ptr<PluginHandle>> plugins_;
  std::map<std::string, PluginHandle*> byKind_;
  std::vector<RefusedPlugin> refused_;
  std::shared_ptr<SharedHostServices> shared_;
};

// The directory plugins are loaded from when --plugin-dir is not given: `plugins/` next to the
// executable when it exists (a build tree), else the install location.
std::filesystem::path defaultPluginDir();

}  // namespace nodeplane
