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
#include "nodeplane/plugin_util.hpp"

namespace nodeplane::net {
namespace {

Result<void> unknownKind(const std::string& kind) {
  return fail(ErrorKind::kTerminal, "the net plugin does not handle kind " + kind);
}

}  // namespace

static Result<void> notStarted() {
  return fail(ErrorKind::kTerminal, "the net plugin was not started (start() opens its socket)");
}

NetPlugin::NetPlugin(HostServices& services)
    : services_(services), host_(services.context()), events_(std::make_unique<LinkEvents>()) {}

NetPlugin::~NetPlugin() = default;

Result<void> NetPlugin::start() {
  auto nl = std::make_unique<NetlinkSocket>();
  if (auto r = nl->open(); !r) return std::unexpected(netlinkFailure(r.error(), "starting"));
  nl_ = std::move(nl);
  return {};
}

void NetPlugin::stop() { nl_.reset(); }

std::vector<CheckItem> NetPlugin::check() {
  // A socket of its own: check() runs without start().
  CheckItem c{"netlink", false, true, ""};
  NetlinkSocket nl;
  if (auto r = nl.open(); !r) {
    c.detail = "cannot open a NETLINK_ROUTE socket: " + describe(r.error());
    return {c};
  }
  auto links = dumpLinks(nl);
  if (!links) {
    c.detail = "cannot dump links over rtnetlink: " + describe(links.error());
    return {c};
  }
  c.ok = true;
  c.detail = "rtnetlink link dump: " + std::to_string(links->size()) +
             (links->size() == 1 ? " link" : " links");
  return {c};
}

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
  return catchAll("observing links", [&]() -> Result<std::vector<ObservedObject>> {
    for (const auto& kind : kinds)
      if (!isNetKind(kind)) return std::unexpected(unknownKind(kind).error());
    if (!nl_) return std::unexpected(notStarted().error());
    auto links = dumpLinks(*nl_);  // one link dump + one address dump for every kind
    if (!links) return std::unexpected(netlinkFailure(links.error(), "listing network links"));
    const std::string agent = services_.agentId();
    const std::string ours = ownerMark(agent);
    const std::string prefix = ownerMark("");
    // Who the alias says owns the link: this agent, another one, a legacy mark, or nobody.
    auto withMark = [&](ObservedObject o, const std::string& alias) {
      if (!agent.empty() && alias == ours)
        o.marked = true;
      else if (alias == kLegacyMark)
        o.legacyMark = true;
      else if (alias.starts_with(prefix) && alias.size() > prefix.size())
        o.markedByOther = alias.substr(prefix.size());
      return o;
    };
    events_->noteLinks(*links);
    std::vector<ObservedObject> out;
    for (const LinkState& l : *links) {
      bool matched = false;
      for (const auto& kind : kinds)
        if (linkIsKind(l, kind)) {
          matched = true;
          out.push_back(
              withMark({ResourceId{kind, l.name}, observedSpec(kind, l, *links)}, l.alias));
          out.back().uid = std::to_string(l.index);
        }
      if (!matched)  // lo, a veth, a NIC...: the name is taken all the same
        out.push_back(withMark({ResourceId{"", l.name},
                                Json{{"type", !l.kind.empty()            ? l.kind
                                              : (l.flags & IFF_LOOPBACK) ? std::string("loopback")
                                                                         : std::string("device")}}},
                               l.alias));
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
  return catchAll("reading link events", [&] { return events_->drain(fd); });
}

void NetPlugin::closeEvents() { events_->close(); }

Outcome NetPlugin::apply(const Change& change, ApplyContext& context) {
  return Outcome::from(applyNow(change, context));
}

Result<void> NetPlugin::applyNow(const Change& change, ApplyContext& context) {
  const ResourceId& id = change.id;
  return catchAll(std::string(toString(change.action)) + " " + id.str(), [&]() -> Result<void> {
    if (!isNetKind(id.kind)) return unknownKind(id.kind);
    if (!nl_) return notStarted();
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
    const std::string agent = services_.agentId();
    if (agent.empty())
      return fail(ErrorKind::kTerminal, std::string(toString(change.action)) + " " + id.str() +
                                            " refused: no agent id (the state store was not "
                                            "opened), so the link could not carry its mark");
    // The last check before the kernel acts on an existing link: at this moment it is still
    // the one the plan was made against (its ifindex, when the plan recorded one) and the one
    // nodeplane owns (marked by this agent, of this kind; an adoption: not another agent's),
    // and a delete names the ifindex just read, so a link someone made under the same name
    // since the pass observed it is never touched. A legacy mark passes: the core acts on one
    // only when its state store records the link.
    int index = 0;
    if (change.action != Action::kCreate) {
      auto link = getLink(*nl_, id.name);
      if (!link && link.error().errnum == ENODEV &&
          (change.action == Action::kDelete || change.action == Action::kRelease))
        return {};
      if (!link)
        return std::unexpected(netlinkFailure(
            link.error(),
            std::string(toString(change.action)) + " " + id.str() + ": looking it up"));
      const bool ours = link->alias == ownerMark(agent) || link->alias == kLegacyMark;
      const bool other = !ours && link->alias.starts_with(ownerMark(""));
      const bool sameUid = change.uid.empty() || change.uid == std::to_string(link->index);
      if (!linkIsKind(*link, id.kind) || !sameUid || (change.adopt ? other : !ours)) {
        Error e;
        e.kind = ErrorKind::kConflict;
        e.message = std::string(toString(change.action)) + " refused: the link named " + id.name +
                    " is no longer the " + id.kind +
                    (!sameUid ? " the plan was made against (ifindex " + change.uid + " then, " +
                                    std::to_string(link->index) + " now: re-created since)"
                     : other ? " it was (it carries another nodeplane agent's mark)"
                             : " nodeplane manages (it changed since it was observed)") +
                    "; not touched";
        e.hint = "run the apply again to see the host as it is now";
        return std::unexpected(std::move(e));
      }
      index = link->index;
      // The mark takes the alias of an adopted link: the alias it had (another tool's, a
      // person's note) is kept as the undo record, and a release puts it back.
      if (change.adopt && !ours && !link->alias.empty())
        if (auto kept = context.recordUndo(Json{{"alias", link->alias}}); !kept) return kept;
    }
    const std::string mark = ownerMark(agent);
    const Json desired = normalizeNet(id.kind, change.desired);
    switch (change.action) {
      case Action::kCreate:
        return createLink(*nl_, host_, id, desired, mark);
      case Action::kUpdate:
        return updateLink(*nl_, id, desired, normalizeNet(id.kind, change.observed), mark);
      case Action::kReplace:
        if (auto r = deleteLink(*nl_, host_, id, index); !r) return r;
        return createLink(*nl_, host_, id, desired, mark);
      case Action::kDelete:
        return deleteLink(*nl_, host_, id, index);
      case Action::kRelease: {
        const Json& undo = context.undo();
        auto alias = undo.is_object() ? undo.find("alias") : undo.end();
        return releaseLink(
            *nl_, id, index,
            alias != undo.end() && alias->is_string() ? alias->get<std::string>() : std::string());
      }
    }
    return fail(ErrorKind::kTerminal, "unknown action");
  });
}

}  // namespace nodeplane::net
