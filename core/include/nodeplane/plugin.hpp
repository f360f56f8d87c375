// The plugin ABI: the only contract between the nodeplane core and a backend library.
//
// A plugin is a shared library `libnodeplane-<name>.so` that exports, with C linkage, the ABI
// version it was built against and one factory (NODEPLANE_PLUGIN below does both). The host
// refuses a library whose version differs from kAbiVersion. No exception may leave a plugin:
// the factory macro catches, and the host wraps every call as well.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "nodeplane/error.hpp"
#include "nodeplane/resource.hpp"
#include "nodeplane/schema.hpp"

namespace nodeplane {

// Bump on any change to a type in core/include/nodeplane: the host wants an exact match.
inline constexpr std::uint32_t kAbiVersion = 2;

#define NODEPLANE_STR_(x) #x
#define NODEPLANE_STR(x) NODEPLANE_STR_(x)
// What else must match for C++ types (std::string, std::vector, nlohmann::json) to cross the
// boundary: the compiler, the standard library build and its string ABI, the json library. A
// plugin exports it (NODEPLANE_PLUGIN does) and the host wants it equal to its own, so a plugin
// built with another toolchain is refused by name instead of crashing at its first call.
#define NODEPLANE_ABI_BUILD \
  "c++ " __VERSION__ "; libstdc++ " NODEPLANE_STR(__GLIBCXX__) " cxx11-abi " NODEPLANE_STR( \
      _GLIBCXX_USE_CXX11_ABI) "; nlohmann-json " NODEPLANE_STR(NLOHMANN_JSON_VERSION_MAJOR) "." \
      NODEPLANE_STR(NLOHMANN_JSON_VERSION_MINOR) "." NODEPLANE_STR(NLOHMANN_JSON_VERSION_PATCH)
inline constexpr const char kAbiBuild[] = NODEPLANE_ABI_BUILD;

// Every root a plugin touches, injectable so tests point them at fixtures.
struct HostContext {
  std::filesystem::path sysfsRoot = "/sys";
  std::filesystem::path devRoot = "/dev";
  std::filesystem::path procRoot = "/proc";
  std::filesystem::path runDir = "/run/nodeplane";
  std::filesystem::path stateDir = "/var/lib/nodeplane";
  std::filesystem::path imagesDir = "/var/lib/nodeplane/images";
  std::filesystem::path instancesDir = "/var/lib/nodeplane/instances";
  std::string dockerSocket = "/run/docker.sock";
  std::string systemdBus = "system";  // "system" or "user"
  std::string qemuBinary = "qemu-system-x86_64";
  std::string hostname;
  std::map<std::string, std::string> labels;
  Json config = Json::object();  // the agent config (whole), for plugin-specific sections
};

// One object found on the host, in the same schema as the desired spec.
struct ObservedObject {
  ResourceId id;
  Json spec = Json::object();
  bool marked = false;  // carries nodeplane's ownership mark on the object itself
};

enum class Action { kCreate, kUpdate, kReplace, kDelete };

inline const char* toString(Action a) {
  switch (a) {
    case Action::kCreate:
      return "create";
    case Action::kUpdate:
      return "update";
    case Action::kReplace:
      return "replace";
    case Action::kDelete:
      return "delete";
  }
  return "?";
}

// What a finished step did: "created", "updated", "replaced", "deleted" (also the outcome the
// state store records and `status` shows).
inline const char* pastTense(Action a) {
  switch (a) {
    case Action::kCreate:
      return "created";
    case Action::kUpdate:
      return "updated";
    case Action::kReplace:
      return "replaced";
    case Action::kDelete:
      return "deleted";
  }
  return "?";
}

struct FieldChange {
  std::string path;  // relative to spec: "mtu", "cloudInit.hostname"
  Json from;         // observed (null when absent)
  Json to;           // desired
  bool forcesReplace = false;
};

struct Change {
  Action action = Action::kCreate;
  ResourceId id;
  Json desired = Json::object();    // the full desired spec (create, update, replace)
  Json observed = Json::object();   // the observed spec (update, replace, delete)
  std::vector<FieldChange> fields;  // what differs (update, replace)
  bool adopt = false;               // mark an existing unmanaged object as ours
};

class Plugin {
 public:
  virtual ~Plugin() = default;

  virtual std::string name() const = 0;
  virtual std::vector<KindSchema> kinds() const = 0;

  // Checks beyond the schema (CIDR syntax, interface names, exclusive fields). Returns every
  // problem found; build them with Resource::error() so they carry file:line.
  virtual std::vector<Error> validate(const Resource& r) const = 0;

  // Children this resource owns (a VM's VfioDevices and Tap). The core plans, shows, owns and
  // deletes them like any other resource. Children set `owner` to the parent's id.
  virtual Result<std::vector<Resource>> expand(const Resource&) const {
    return std::vector<Resource>{};
  }

  // Host objects the resource uses exclusively (PCI addresses, `network interface "br0"`: two
  // kinds that would be the same kernel object); two resources may not claim the same one.
  virtual std::vector<std::string> claims(const Resource&) const { return {}; }

  // Canonical form of a spec, applied to desired and observed before they are compared
  // (canonical addresses, sorted sets).
  virtual Json normalize(const std::string& /*kind*/, const Json& spec) const { return spec; }

  // Every object of the given kinds (some of kinds()) on the host, managed or not. Called once
  // per pass for all of a plugin's kinds, so one host query can serve them all. A name taken by
  // something that is none of the given kinds (an interface `lo` or a veth for the net plugin)
  // may be reported with an empty kind and spec {"type": "veth"}, so a desired object of that
  // name shows as a conflict rather than a create.
  virtual Result<std::vector<ObservedObject>> observe(const std::vector<std::string>& kinds) = 0;

  // Make one change. Creates and adoptions must leave the ownership mark on the object.
  virtual Result<void> apply(const Change& change) = 0;

  // How many apply() calls the executor may run at once on this plugin.
  virtual unsigned maxParallel() const { return 1; }
};

// The exported symbols, with C linkage so their names are stable.
inline constexpr const char* kAbiSymbol = "nodeplane_abi_version";
inline constexpr const char* kAbiBuildSymbol = "nodeplane_abi_build";  // a char array: kAbiBuild
inline constexpr const char* kFactorySymbol = "nodeplane_create_plugin";

// Factory signature: returns a new plugin, or nullptr with `error` set. Never throws.
using PluginFactory = Plugin*(const HostContext& host, std::string& error);

}  // namespace nodeplane

// Use once in a plugin's entry file: NODEPLANE_PLUGIN(nodeplane::net::NetPlugin)
// The class needs a constructor taking `const nodeplane::HostContext&`.
#define NODEPLANE_PLUGIN(Type)                                                                    \
  extern "C" __attribute__((visibility("default"))) const std::uint32_t nodeplane_abi_version =   \
      ::nodeplane::kAbiVersion;                                                                   \
  extern "C" __attribute__((visibility("default"))) const char nodeplane_abi_build[] =            \
      NODEPLANE_ABI_BUILD;                                                                        \
  extern "C" __attribute__((visibility("default"))) ::nodeplane::Plugin* nodeplane_create_plugin( \
      const ::nodeplane::HostContext& host, std::string& error) noexcept {                        \
    try {                                                                                         \
      return new Type(host);                                                                      \
    } catch (const std::exception& e) {                                                           \
      error = e.what();                                                                           \
    } catch (...) {                                                                               \
      error = "unknown exception";                                                                \
    }                                                                                             \
    return nullptr;                                                                               \
  }
