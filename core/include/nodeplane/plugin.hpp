// The plugin ABI: the only contract between the nodeplane core and a backend library.
//
// A plugin is a shared library `libnodeplane-<name>.so` that exports, with C linkage, the ABI
// version it was built against and one factory (NODEPLANE_PLUGIN below does both). The host
// refuses a library whose version differs from kAbiVersion. No exception may leave a plugin:
// the factory macro catches, and the host wraps every call as well.
#pragma once

#include <chrono>
#include <compare>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "nodeplane/error.hpp"
#include "nodeplane/host/pci.hpp"
#include "nodeplane/resource.hpp"
#include "nodeplane/schema.hpp"

namespace sdbus {
class IConnection;
}

namespace nodeplane {

// Bump on any change to a type in core/include/nodeplane: the host wants an exact match.
inline constexpr std::uint32_t kAbiVersion = 9;

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

// A host object a resource takes: a PCI function, a GPU, a network interface name. Two desired
// resources may not both take one unless both share it; a desired resource may not take one that
// an object it does not replace holds now (see ObservedObject::holds): its step waits for the
// delete of that object, or for the update or replace that drops the claim. A "gpu" whose id is
// a PCI address is the "pci" function of that address.
struct Claim {
  std::string type;  // "pci", "gpu", "interface"
  std::string id;    // "0000:3b:00.0", "GPU-…", "br0"
  bool exclusive = true;
  // "pci" only: taking this function takes every function of its IOMMU group with it (VFIO
  // passthrough); the core widens the claim through the host inventory.
  bool iommuGroup = false;

  // `network interface "br0"`, `pci 0000:3b:00.0`: how errors name it.
  std::string str() const {
    if (type == "interface") return "network interface \"" + id + "\"";
    return type + " " + id;
  }
  auto operator<=>(const Claim&) const = default;
  bool operator==(const Claim&) const = default;
};

// One object found on the host, in the same schema as the desired spec.
struct ObservedObject {
  ResourceId id;
  Json spec = Json::object();
  bool marked = false;  // carries this agent's ownership mark on the object itself
  // The identity of this instance of the object (an ifindex, a container id, a unit's invocation
  // id), "" when the kind has none. Deletes and replaces are preconditioned on it: an object
  // re-created under the same name since the plan was made is another object.
  std::string uid;
  // Carries the mark of another nodeplane agent (its agent id): not ours, never touched.
  std::string markedByOther;
  // Carries a mark without an agent id (written before marks had one): ours only when this
  // agent's state store records the object, and then re-marked with the agent id by an update;
  // otherwise treated like markedByOther (another agent's, or ours from a lost store: a person
  // decides).
  bool legacyMark = false;
  std::vector<Claim> holds;  // what it holds now (a VM's PCI functions)
  // Why `spec` is not the whole object, "" when it is: the plugin could not read every field
  // back (a container nodeplane did not create: Docker's list shows no command, env or GPUs).
  // `export` leaves such an object out and says this, rather than write a spec that would
  // recreate it without what it cannot see.
  std::string incomplete;
  // Who uses the object now, "" when nobody: "in use by VirtualMachine/vm1" (a vGPU a running VM
  // has open). An update, replace or delete of a busy object is not made (unless the plugin's
  // busyFor() says that change leaves the user alone): the plan shows it as waiting, the step
  // fails as a conflict that names the user (Error::inUse), and the daemon holds it, observing
  // the object again on a timer, until nobody uses it, then proceeds.
  std::string busy;
  // A live line for `status`: what the object is doing now ("unit active/running, guest
  // running"; "L40S-24Q on 0000:41:00.5, held by VirtualMachine/vm1"). Not compared.
  std::string detail;
};

enum class Action {
  kCreate,
  kUpdate,
  kReplace,
  kDelete,
  kRelease,  // deletionPolicy Orphan: remove the ownership mark, leave the object in place
};

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
    case Action::kRelease:
      return "release";
  }
  return "?";
}

// What a finished step did: "created", "updated", "replaced", "deleted", "released" (also the
// outcome the state store records and `status` shows).
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
    case Action::kRelease:
      return "released";
  }
  return "?";
}

struct FieldChange {
  std::string path;  // relative to spec: "mtu", "cloudInit.hostname"
  Json from;         // observed (null when absent)
  Json to;           // desired
  bool forcesReplace = false;
  // A sensitive field (FieldSchema::sensitive): from and to are left null, so the value is
  // never shown; the plugin reads it from Change::desired.
  bool sensitive = false;
  bool forcesRestart = false;  // FieldSchema::forcesRestart: the update restarts the object
};

struct Change {
  Action action = Action::kCreate;
  ResourceId id;
  Json desired = Json::object();    // the full desired spec (create, update, replace)
  Json observed = Json::object();   // the observed spec (update, replace, delete, release)
  std::vector<FieldChange> fields;  // what differs (update, replace)
  bool adopt = false;               // mark an existing unmanaged object as ours
  // update, replace, delete, release: the ObservedObject::uid the plan was made against. A plugin
  // whose kind has uids acts only on the object that still has it.
  std::string uid;
};

// How the outcome of a step is classified (controller-runtime's model).
struct Outcome {
  enum Class {
    kDone,        // the change is made (verify will confirm it)
    kInProgress,  // started, not finished: look again after `recheckAfter` (a VM booting)
    kRetryable,   // failed for now (busy, daemon unreachable): capped exponential backoff
    kTerminal,    // failed until a file or the host changes (conflict, invalid input, refused)
  };
  Class cls = kDone;
  Error error;                                // kRetryable, kTerminal
  std::chrono::milliseconds recheckAfter{0};  // kInProgress
  std::string waitingFor;                     // kInProgress: "the guest to reach running"

  static Outcome done() { return {}; }
  static Outcome inProgress(std::chrono::milliseconds after, std::string waitingFor) {
    Outcome o;
    o.cls = kInProgress;
    o.recheckAfter = after;
    o.waitingFor = std::move(waitingFor);
    return o;
  }
  // Classified by error.kind: kRetryable is retryable, every other kind terminal.
  static Outcome failed(Error e) {
    Outcome o;
    o.cls = e.kind == ErrorKind::kRetryable ? kRetryable : kTerminal;
    o.error = std::move(e);
    return o;
  }
  // A Result<void> as an outcome: done, or failed(error).
  static Outcome from(const Result<void>& r) { return r ? done() : failed(r.error()); }
  bool ok() const { return cls == kDone || cls == kInProgress; }
};

// True when one of the changed fields restarts the object (FieldSchema::forcesRestart).
inline bool restarts(const Change& c) {
  for (const auto& f : c.fields)
    if (f.forcesRestart) return true;
  return false;
}

// One readiness item of `nodeplane check`.
struct CheckItem {
  std::string name;  // "netlink", "systemd-bus", "kvm", "iommu", "vfio", "docker"
  bool ok = false;
  bool required = false;  // a missing required piece makes `check` exit 1
  std::string detail;     // what was found, or what is missing and how to fix it
};

class Plugin;

// What the core offers a plugin, owned by the core and handed to the plugin's factory (one per
// plugin: config() is that plugin's section). Cheap to hold: nothing here connects to anything
// until it is asked for.
class HostServices {
 public:
  virtual ~HostServices() = default;

  // The roots (sysfs, /dev, /proc, run and state directories) and the node's identity.
  virtual const HostContext& context() const = 0;
  // This plugin's section of the agent config (`net:`, `docker:` …), checked against the
  // plugin's configSchema() before start(); an empty object when absent.
  virtual const Json& config() const = 0;
  // The agent instance (an id kept in the state directory): ownership marks carry it, so two
  // agents on one host never take each other's objects. "" before the state store is opened.
  virtual std::string agentId() const = 0;
  // The PCI functions and GPUs of the host, read once per pass (a snapshot shared by plugins).
  virtual Result<std::vector<host::PciFunction>> pciFunctions() = 0;
  virtual Result<std::vector<host::Gpu>> gpus() = 0;
  // Writes `value` to a sysfs file (relative paths are under context().sysfsRoot; a path with
  // "..", or that leads out of the root, is refused) and gives up after `timeout`: a write to
  // `unbind` can hang in the kernel, so it runs where it can be abandoned and reported
  // (kRetryable, "… did not return within 5000 ms"). A write refused with EBUSY, EAGAIN or EINTR
  // ("not now") is kRetryable, any other refusal kTerminal. The result is only what the write
  // returned: read the file back to verify.
  virtual Result<void> writeSysfs(const std::filesystem::path& file, std::string_view value,
                                  std::chrono::milliseconds timeout) = 0;
  // The one shared connection to systemd's manager bus (context().systemdBus), opened on first
  // use. Owned by the core; valid until the plugin's stop() returns.
  virtual Result<sdbus::IConnection*> systemdBus() = 0;
  // Loads the heavy half of this plugin: <plugin directory>/runtime/<file>, a library made with
  // NODEPLANE_PLUGIN like a plugin and checked like one (a regular file, not a symbolic link,
  // owned by root, not group- or world-writable, the same ABI), whose factory gets these same
  // services. A plugin whose dependencies would cost every agent memory (the docker plugin's
  // libcurl) answers kinds(), validate() and normalize() itself and loads the rest when it is
  // first used. The library is never unloaded; the plugin deletes the object before it goes.
  virtual Result<std::unique_ptr<Plugin>> loadRuntime(const std::string& file);
};

// What apply() gets besides the change.
class ApplyContext {
 public:
  virtual ~ApplyContext() = default;
  // Requested when the daemon is stopping: finish or undo the step in flight and return soon
  // (Outcome::failed with ErrorKind::kRetryable, or kInProgress).
  virtual std::stop_token stopToken() const = 0;
  // When the executor stops waiting for this step; a step past it should return kInProgress.
  virtual std::chrono::steady_clock::time_point deadline() const = 0;
  // "unbinding 0000:3b:00.1 from snd_hda_intel": logged, and shown by `apply`.
  virtual void progress(std::string_view message) = 0;
  // Records what to restore when this object is deleted (the driver a PCI function had before
  // vfio-pci), journaled and synced before it returns: call it before the disruptive step. The
  // last record of a step is kept in the state store with the object and handed back on delete.
  virtual Result<void> recordUndo(const Json& undo) = 0;
  // The undo record kept for this object (delete, replace, release); an empty object when none.
  virtual const Json& undo() const = 0;
  virtual HostServices& host() = 0;
};

// A journal entry an interrupted apply left: a step that was started and not recorded done.
struct Interrupted {
  Action action = Action::kCreate;
  ResourceId id;
  Json undo = Json::object();  // the last undo record the step saved, if any
};

// A source of host events the daemon polls for the plugin (a netlink socket, a Docker event
// stream, a D-Bus match).
struct EventSource {
  std::string name;  // "netlink link+address", for logs
  int fd = -1;       // pollable; owned by the plugin
};

// What an event may have changed: the daemon observes only that before the next full resync.
struct Touched {
  bool everything = false;         // all of this plugin's kinds
  std::set<std::string> kinds;     // these kinds, every object
  std::set<ResourceId> resources;  // these objects
  bool empty() const { return !everything && kinds.empty() && resources.empty(); }
};

class Plugin {
 public:
  virtual ~Plugin() = default;

  virtual std::string name() const = 0;
  virtual std::vector<KindSchema> kinds() const = 0;
  // The schema of this plugin's agent-config section (the key is name()): a typo there is an
  // error with file:line, as in desired files. Empty: the plugin takes no section.
  virtual std::vector<FieldSchema> configSchema() const { return {}; }
  // Further top-level sections of the agent config this plugin reads (the qemu plugin's `vfio:`),
  // each checked against its schema like configSchema(); the plugin reads them from
  // HostContext::config.
  virtual std::vector<std::pair<std::string, std::vector<FieldSchema>>> moreConfigSections() const {
    return {};
  }

  // Lifecycle. The factory only constructs (cheap, no connection: `validate`, `plugins` and
  // `check` never start a plugin). start() runs once, before the first observe, apply or recover;
  // an error there fails every later call with "plugin <name> could not start: …" (start() is not
  // tried again in that process). stop() runs only after a successful start(), before the library
  // is unloaded (end of a command, daemon exit): it joins every thread the plugin started and
  // closes its event sources.
  virtual Result<void> start() { return {}; }
  virtual void stop() {}

  // Readiness items for `nodeplane check` (a netlink socket, dockerd, the systemd bus). Called
  // WITHOUT start(): check() diagnoses what start() and apply would need, so it must probe on its
  // own (open and close its own connection) and say how to fix what is missing.
  virtual std::vector<CheckItem> check() { return {}; }

  // Checks beyond the schema (CIDR syntax, interface names, exclusive fields). Returns every
  // problem found; build them with Resource::error() so they carry file:line.
  virtual std::vector<Error> validate(const Resource& r) const = 0;
  // Checks across all the desired resources of this plugin's kinds (children included), once
  // each has passed validate(): what no single resource shows (the vGPUs placed on one GPU must
  // fit it together). Build the errors with Resource::error().
  virtual std::vector<Error> validateSet(const std::vector<const Resource*>& /*resources*/) const {
    return {};
  }

  // Children this resource owns (a VM's VfioDevices and Tap). The core plans, shows, owns and
  // deletes them like any other resource. Children set `owner` to the parent's id, and may set
  // `dependsOn`. The owner is applied after its children and deleted before them (stop the VM,
  // then release its devices), unless a child uses its owner (a reference or dependsOn). A kind
  // whose expansion reads the host sets KindSchema::expandReadsHost.
  virtual Result<std::vector<Resource>> expand(const Resource&) const {
    return std::vector<Resource>{};
  }

  // Host objects the resource takes (see Claim).
  virtual std::vector<Claim> claims(const Resource&) const { return {}; }

  // Who stops `change` of an object in use (ObservedObject::busy not empty), "" when nothing
  // does. Asked only for a busy object, so it can only lift a wait: when the plan is made, with
  // that pass's observation, and again at the moment of acting, with the object observed afresh
  // (a step before it may have freed it). The default: `now.busy` for an update, replace or
  // delete. A plugin answers "" for a change that leaves what the user holds alone (a SriovPf
  // whose delete only forgets its record: the count to put back is the count it has); its
  // apply() must then check again itself before it writes, and refuse with inUse().
  virtual std::string busyFor(const Change& change, const ObservedObject& now) const {
    const bool touches = change.action == Action::kUpdate || change.action == Action::kReplace ||
                         change.action == Action::kDelete;
    return touches ? now.busy : std::string();
  }

  // Canonical form of a spec, applied to desired and observed before they are compared
  // (canonical addresses, sorted sets).
  virtual Json normalize(const std::string& /*kind*/, const Json& spec) const { return spec; }

  // Every object of the given kinds (some of kinds()) on the host, managed or not. Called once
  // per pass for all of a plugin's kinds, so one host query can serve them all. A name taken by
  // something that is none of the given kinds (an interface `lo` or a veth for the net plugin)
  // may be reported with an empty kind and spec {"type": "veth"}, so a desired object of that
  // name shows as a conflict rather than a create.
  virtual Result<std::vector<ObservedObject>> observe(const std::vector<std::string>& kinds) = 0;

  // Make one change. Creates and adoptions must leave the ownership mark (with the agent id) on
  // the object; a release removes it and leaves the object. What the mark replaced (the net
  // plugin: an alias the link had before it was adopted) belongs in an undo record
  // (ApplyContext::recordUndo) so that a release can put it back.
  virtual Outcome apply(const Change& change, ApplyContext& context) = 0;

  // Settles a journal entry the core cannot settle alone (an undo record of a step that was
  // interrupted): finish the step or undo it. An error keeps the entry for the next start.
  virtual Result<void> recover(const Interrupted&, ApplyContext&) { return {}; }

  // Event sources, valid from start() to stop(). openEvents() (re)opens them; drainEvents() reads
  // everything pending on one and says what may have changed (empty: nothing the plugin cares
  // about, no pass). A drain error, or POLLERR/POLLHUP on a source, makes the daemon call
  // closeEvents() and openEvents() again with backoff. These three run on the daemon's poll
  // thread, concurrently with observe()/apply() on the pass thread. Touched::resources may name
  // objects nobody desires (a bridge made by hand): the daemon ignores those it neither desires
  // nor owns.
  virtual Result<std::vector<EventSource>> openEvents() { return std::vector<EventSource>{}; }
  virtual Result<Touched> drainEvents(int /*fd*/) { return Touched{}; }
  virtual void closeEvents() {}

  // How many apply() calls the executor may run at once on this plugin.
  virtual unsigned maxParallel() const { return 1; }
};

inline Result<std::unique_ptr<Plugin>> HostServices::loadRuntime(const std::string& file) {
  return fail(ErrorKind::kTerminal, "cannot load " + file + ": this host loads no plugin runtimes");
}

// The exported symbols, with C linkage so their names are stable.
inline constexpr const char* kAbiSymbol = "nodeplane_abi_version";
inline constexpr const char* kAbiBuildSymbol = "nodeplane_abi_build";  // a char array: kAbiBuild
inline constexpr const char* kFactorySymbol = "nodeplane_create_plugin";

// Factory signature: returns a new plugin, or nullptr with `error` set. Never throws.
using PluginFactory = Plugin*(HostServices& host, std::string& error);

}  // namespace nodeplane

// Use once in a plugin's entry file: NODEPLANE_PLUGIN(nodeplane::net::NetPlugin)
// The class needs a constructor taking `nodeplane::HostServices&` (kept for the plugin's life).
#define NODEPLANE_PLUGIN(Type)                                                                    \
  extern "C" __attribute__((visibility("default"))) const std::uint32_t nodeplane_abi_version =   \
      ::nodeplane::kAbiVersion;                                                                   \
  extern "C" __attribute__((visibility("default"))) const char nodeplane_abi_build[] =            \
      NODEPLANE_ABI_BUILD;                                                                        \
  extern "C" __attribute__((visibility("default"))) ::nodeplane::Plugin* nodeplane_create_plugin( \
      ::nodeplane::HostServices& host, std::string& error) noexcept {                             \
    try {                                                                                         \
      return new Type(host);                                                                      \
    } catch (const std::exception& e) {                                                           \
      error = e.what();                                                                           \
    } catch (...) {                                                                               \
      error = "unknown exception";                                                                \
    }                                                                                             \
    return nullptr;                                                                               \
  }
