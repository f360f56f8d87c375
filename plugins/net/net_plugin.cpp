#include "net_plugin.hpp"

#include <linux/if.h>

#include <cerrno>
#include <exception>

#include "addr_text.hpp"
#include "link_apply.hpp"
#include "link_state.hpp"
#include "net_events.hpp"
#include "net_schema.hpp"
#include "netlink_socket.hpp"

namespace nodeplane::net {
namespace {

// Nothing may escape the plugin: a throw (bad JSON access, allocation) becomes an error.
template <class F>
auto guarded(const std::string& what, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::exception& e) {
    return fail(ErrorKind::kTerminal, what + ": internal error: " + e.what());
  } catch (...) {
    return fail(ErrorKind::kTerminal, what + ": internal error");
  }
}

Result<void> unknownKind(const std::string& kind) {
  return fail(ErrorKind::kTerminal, "the net plugin does not handle kind " + kind);
}

}  // namespace

NetPlugin::NetPlugin(HostServices& services)
    : services_(services),
      host_(services.context()),
      nl_(std::make_unique<NetlinkSocket>()),
      events_(std::make_unique<LinkEvents>()) {}

NetPlugin::~NetPlugin() = default;

std::vector<KindSchema> NetPlugin::kinds() const { return netKinds(); }

std::vector<Error> NetPlugin::validate(const Resource& r) const {
  try {
    return validateNet(r);
  } catch (const std::exception& e) {
    return {r.error(ErrorKind::kInvalidInput, "", std::string("internal error: ") + e.what())};
  }
}

std::vector<Claim> NetPlugin::claims(const Resource& r) const {
  return {interfaceClaim(r.id.name)};
}

Json NetPlugin::normalize(const std::string& kind, const Json& spec) const {
  try {
    return normalizeNet(kind, spec);
  } catch (...) {
    return spec;
  }
}

Result<std::vector<ObservedObject>> NetPlugin::observe(const std::vector<std::string>& kinds) {
  return guarded("observing links", [&]() -> Result<std::vector<ObservedObject>> {
    for (const auto& kind : kinds)
      if (!isNetKind(kind)) return std::unexpected(unknownKind(kind).error());
    auto links = dumpLinks(*nl_);  // one link dump + one address dump for every kind
    if (!links) return std::unexpected(netlinkFailure(links.error(), "listing network links"));
    events_->noteLinks(*links);
    std::vector<ObservedObject> out;
    for (const LinkState& l : *links) {
      bool matched = false;
      for (const auto& kind : kinds)
        if (linkIsKind(l, kind)) {
          matched = true;
          out.push_back(ObservedObject{ResourceId{kind, l.name}, observedSpec(kind, l, *links),
                                       l.alias == kOwnerMark});
        }
      if (!matched)  // lo, a veth, a NIC...: the name is taken all the same
        out.push_back(
            ObservedObject{ResourceId{"", l.name},
                           Json{{"type", !l.kind.empty()            ? l.kind
                                         : (l.flags & IFF_LOOPBACK) ? std::string("loopback")
                                                                    : std::string("device")}},
                           l.alias == kOwnerMark});
    }
    return out;
  });
}

Result<std::vector<EventSource>> NetPlugin::openEvents() {
  auto source = events_->open();
  if (!source) return std::unexpected(source.error());
  return std::vector<EventSource>{*source};
}

Result<Touched> NetPlugin::drainEvents(int fd) {
  return guarded("reading link events", [&] { return events_->drain(fd); });
}

void NetPlugin::closeEvents() { events_->close(); }

Outcome NetPlugin::apply(const Change& change, ApplyContext& /*context*/) {
  return Outcome::from(applyNow(change));
}

Result<void> NetPlugin::applyNow(const Change& change) {
  const ResourceId& id = change.id;
  return guarded(std::string(toString(change.action)) + " " + id.str(), [&]() -> Result<void> {
    if (!isNetKind(id.kind)) return unknownKind(id.kind);
    if (change.action != Action::kDelete) {
      // The last check before the kernel sees a name. The engine validates every desired file
      // and every saved plan (Engine::checkSaved) before apply(); this only guards a caller that
      // skipped both, since a name like "br%d" makes the kernel create br0, br1, ... unmarked.
      std::vector<std::pair<std::string, std::string>> names = {{"metadata.name", id.name}};
      for (const char* key : {"bridge", "device"})
        if (auto it = change.desired.find(key); it != change.desired.end() && it->is_string())
          names.emplace_back(std::string("spec.") + key, it->get<std::string>());
      for (const auto& [field, name] : names)
        if (auto problem = ifNameProblem(name))
          return fail(ErrorKind::kInvalidInput, std::string(toString(change.action)) +
                                                    " refused: " + field + ": " + *problem);
    }
    // The last check before the kernel acts on an existing link: at this moment it is still
    // the one nodeplane owns (marked, of this kind), and a delete names the ifindex just read,
    // so a link someone made under the same name since the pass observed it is never touched.
    int index = 0;
    if (change.action != Action::kCreate && !change.adopt) {
      auto link = getLink(*nl_, id.name);
      if (!link && link.error().errnum == ENODEV && change.action == Action::kDelete) return {};
      if (!link)
        return std::unexpected(netlinkFailure(
            link.error(),
            std::string(toString(change.action)) + " " + id.str() + ": looking it up"));
      if (link->alias != kOwnerMark || !linkIsKind(*link, id.kind)) {
        Error e;
        e.kind = ErrorKind::kConflict;
        e.message = std::string(toString(change.action)) + " refused: the link named " + id.name +
                    " is no longer the " + id.kind +
                    " nodeplane manages (it changed since it was observed); not touched";
        e.hint = "run the apply again to see the host as it is now";
        return std::unexpected(std::move(e));
      }
      index = link->index;
    }
    const Json desired = normalizeNet(id.kind, change.desired);
    switch (change.action) {
      case Action::kCreate:
        return createLink(*nl_, host_, id, desired);
      case Action::kUpdate:
        return updateLink(*nl_, id, desired, normalizeNet(id.kind, change.observed));
      case Action::kReplace:
        if (auto r = deleteLink(*nl_, host_, id, index); !r) return r;
        return createLink(*nl_, host_, id, desired);
      case Action::kDelete:
        return deleteLink(*nl_, host_, id, index);
      case Action::kRelease:
        return fail(ErrorKind::kTerminal, "release is not supported by the net plugin yet");
    }
    return fail(ErrorKind::kTerminal, "unknown action");
  });
}

}  // namespace nodeplane::net
