#include "net_plugin.hpp"

#include <linux/if.h>

#include <algorithm>
#include <cerrno>
#include <exception>
#include <fstream>

#include "addr_text.hpp"
#include "link_apply.hpp"
#include "link_state.hpp"
#include "nat_table.hpp"
#include "net_events.hpp"
#include "net_schema.hpp"
#include "netlink_socket.hpp"
#include "nft_events.hpp"
#include "nodeplane/plugin_util.hpp"

namespace nodeplane::net {
namespace {

Result<void> unknownKind(const std::string& kind) {
  return fail(ErrorKind::kTerminal, "the net plugin does not handle kind " + kind);
}

// What `masquerade: true` needs from nftables, without loading libnftables.
CheckItem checkNftables(const std::string& agentId) {
  CheckItem c{"nftables", false, false, ""};
  auto probe = probeNatTable();
  if (!probe) {
    c.detail = "cannot query nf_tables (needed for Bridge masquerade): " + probe.error().message;
    return c;
  }
  const std::string table = std::string("table ip ") + kNatTable;
  const std::string prefix = ownerMark("");
  if (!probe->exists) {
    c.ok = true;
    c.detail = "nf_tables answers; " + table + " absent (made when a Bridge sets masquerade)";
  } else if (!agentId.empty() && probe->comment == ownerMark(agentId)) {
    c.ok = true;
    c.detail = "nf_tables answers; " + table + " is this agent's";
  } else if (probe->comment.starts_with(prefix) && probe->comment.size() > prefix.size()) {
    c.ok = agentId.empty();  // without a state store this agent's id is unknown
    c.detail = "nf_tables answers; " + table + " carries the mark of agent " +
               probe->comment.substr(prefix.size());
  } else {
    c.detail = table +
               " exists and nodeplane did not make it: masquerade is refused until it is "
               "removed or renamed (nft delete " +
               table + ")";
  }
  return c;
}

// A NAT bridge forwards its guests' packets: the kernel must route between interfaces.
CheckItem checkIpForward(const std::filesystem::path& procRoot) {
  CheckItem c{"ip-forward", false, false, ""};
  const auto file = procRoot / "sys/net/ipv4/ip_forward";
  std::ifstream in(file);
  std::string value;
  if (!(in >> value)) {
    c.detail = "cannot read " + file.string() + " (needed to judge Bridge masquerade)";
    return c;
  }
  c.ok = value == "1";
  c.detail = c.ok ? "net.ipv4.ip_forward is 1 (NAT bridges can forward)"
                  : "net.ipv4.ip_forward is " + value +
                        ": a Bridge with masquerade: true gives its guests no way out; turn it "
                        "on with `sysctl -w net.ipv4.ip_forward=1` and keep it with a file in "
                        "/etc/sysctl.d/ (nodeplane never changes it)";
  return c;
}

}  // namespace

static Result<void> notStarted() {
  return fail(ErrorKind::kTerminal, "the net plugin was not started (start() opens its socket)");
}

NetPlugin::NetPlugin(HostServices& services)
    : services_(services),
      host_(services.context()),
      events_(std::make_unique<LinkEvents>()),
      nftEvents_(std::make_unique<NftEvents>()) {}

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
  } else if (auto links = dumpLinks(nl); !links) {
    c.detail = "cannot dump links over rtnetlink: " + describe(links.error());
  } else {
    c.ok = true;
    c.detail = "rtnetlink link dump: " + std::to_string(links->size()) +
               (links->size() == 1 ? " link" : " links");
  }
  return {c, checkNftables(services_.agentId()), checkIpForward(host_.procRoot)};
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
    if (std::find(kinds.begin(), kinds.end(), kBridge) != kinds.end()) observeMasquerade(out);
    return out;
  });
}

// `masquerade` of every Bridge: true when nodeplane's table holds the bridge's rule for its
// current IPv4 subnets. The probe is one nfnetlink request; libnftables is loaded only when the
// table exists. When nftables cannot be read (a kernel without nf_tables), the field is left out
// and an apply that needs it says why.
void NetPlugin::observeMasquerade(std::vector<ObservedObject>& objects) {
  auto table = readNatTable(services_.agentId());
  if (!table) return;
  for (auto& o : objects) {
    if (o.id.kind != kBridge) continue;
    std::vector<std::string> addresses;
    for (const Json& a : o.spec.value("addresses", Json::array()))
      if (a.is_string()) addresses.push_back(a.get<std::string>());
    o.spec["masquerade"] = hasMasquerade(*table, o.id.name, masqueradeSubnets(addresses));
  }
}

Result<std::vector<EventSource>> NetPlugin::openEvents() {
  auto source = events_->open();
  if (!source) return std::unexpected(source.error());
  std::vector<EventSource> sources{*source};
  if (auto nft = nftEvents_->open()) sources.push_back(*nft);
  return sources;
}

Result<Touched> NetPlugin::drainEvents(int fd) {
  if (fd >= 0 && fd == nftEvents_->fd())
    return catchAll("reading nftables events", [&] { return nftEvents_->drain(fd); });
  return catchAll("reading link events", [&] { return events_->drain(fd); });
}

void NetPlugin::closeEvents() {
  events_->close();
  nftEvents_->close();
}

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
    // observe() reports `masquerade` only where it could read nftables: a bridge going away on a
    // kernel without nf_tables has no rule to remove, and no error to fail its delete with.
    const bool natReadable = change.observed.contains("masquerade");
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
        return id.kind == kBridge && natReadable ? removeMasquerade(agent, id.name)
                                                 : Result<void>{};
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
    // A bridge's NAT rule follows the link: set (or removed) once the link is as desired, removed
    // before the link goes. A release removes it too: it lives in nodeplane's table, which a
    // person cannot take over.
    auto masquerade = [&]() -> Result<void> {
      auto m = desired.find("masquerade");
      if (id.kind != kBridge || m == desired.end() || !m->is_boolean()) return {};
      if (!m->get<bool>()) return removeMasquerade(agent, id.name);
      std::vector<std::string> addresses;
      for (const Json& a : desired.value("addresses", Json::array()))
        if (a.is_string()) addresses.push_back(a.get<std::string>());
      return ensureMasquerade(agent, id.name, masqueradeSubnets(addresses));
    };
    if ((change.action == Action::kDelete || change.action == Action::kRelease) &&
        id.kind == kBridge && natReadable)
      if (auto r = removeMasquerade(agent, id.name); !r) return r;
    // A table of that name nodeplane did not make refuses the step before the link is touched.
    if (auto m = desired.find("masquerade");
        id.kind == kBridge && m != desired.end() && *m == Json(true))
      if (auto r = masqueradeAllowed(agent); !r) return r;
    switch (change.action) {
      case Action::kCreate:
        if (auto r = createLink(*nl_, host_, id, desired, mark); !r) return r;
        return masquerade();
      case Action::kUpdate:
        if (auto r = updateLink(*nl_, id, desired, normalizeNet(id.kind, change.observed), mark);
            !r)
          return r;
        return masquerade();
      case Action::kReplace:
        if (auto r = deleteLink(*nl_, host_, id, index); !r) return r;
        if (auto r = createLink(*nl_, host_, id, desired, mark); !r) return r;
        return masquerade();
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
