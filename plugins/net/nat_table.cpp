#include "nat_table.hpp"

#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <netlink/attr.h>
#include <netlink/msg.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "addr_text.hpp"
#include "net_schema.hpp"
#include "netlink_socket.hpp"
#include "nft_library.hpp"

namespace nodeplane::net {
namespace {

// NFPROTO_IPV4 (linux/netfilter.h, which clashes with glibc's netinet/in.h): AF_INET's value.
constexpr int kNfprotoIpv4 = AF_INET;

constexpr int kSrcnatPriority = 100;  // `priority srcnat`
// libnftnl's udata TLV (struct nftnl_udata: type, length, value): the table's comment.
constexpr unsigned char kUdataTableComment = 0;  // NFTNL_UDATA_TABLE_COMMENT

std::string tableComment(const nlattr* udata) {
  if (!udata) return {};
  const auto* p = static_cast<const unsigned char*>(nla_data(udata));
  const int size = nla_len(udata);
  for (int i = 0; i + 2 <= size;) {
    const unsigned char type = p[i], len = p[i + 1];
    if (i + 2 + len > size) break;
    if (type == kUdataTableComment) {
      const char* text = reinterpret_cast<const char*>(p + i + 2);
      return std::string(text, strnlen(text, len));
    }
    i += 2 + len;
  }
  return {};
}

// "10.0.0.0/8" from {"prefix": {"addr": "10.0.0.0", "len": 8}} or "10.0.0.1" (a /32), canonical.
std::optional<std::string> prefixText(const Json& v) {
  std::string text;
  if (v.is_string()) {
    text = v.get<std::string>() + "/32";
  } else if (v.is_object() && v.contains("prefix") && v["prefix"].is_object()) {
    const Json& p = v["prefix"];
    if (!p.contains("addr") || !p["addr"].is_string() || !p.contains("len") ||
        !p["len"].is_number_unsigned())
      return std::nullopt;
    text = p["addr"].get<std::string>() + "/" + std::to_string(p["len"].get<unsigned>());
  } else {
    return std::nullopt;
  }
  auto c = parseCidr(text);
  if (!c || c->address.family != AF_INET) return std::nullopt;
  return c->str();
}

// The expressions nodeplane writes, and nothing else: saddr match, oifname !=, masquerade.
void parseShape(const Json& expr, NatRule& rule) {
  if (!expr.is_array() || expr.size() != 3) return;
  const Json& saddr = expr[0].value("match", Json());
  const Json& out = expr[1].value("match", Json());
  if (!saddr.is_object() || !out.is_object() || !expr[2].is_object() ||
      !expr[2].contains("masquerade") || !expr[2]["masquerade"].is_null())
    return;
  if (saddr.value("op", "") != "==" ||
      saddr.value("left", Json()) != Json({{"payload", {{"protocol", "ip"}, {"field", "saddr"}}}}))
    return;
  if (out.value("op", "") != "!=" ||
      out.value("left", Json()) != Json({{"meta", {{"key", "oifname"}}}}) ||
      !out.value("right", Json()).is_string())
    return;
  const Json right = saddr.value("right", Json());
  std::vector<std::string> subnets;
  if (right.is_object() && right.contains("set")) {
    if (!right["set"].is_array()) return;
    for (const Json& v : right["set"]) {
      auto t = prefixText(v);
      if (!t) return;
      subnets.push_back(*t);
    }
  } else {
    auto t = prefixText(right);
    if (!t) return;
    subnets.push_back(*t);
  }
  std::sort(subnets.begin(), subnets.end());
  rule.subnets = std::move(subnets);
  rule.outNot = out["right"].get<std::string>();
}

Json prefixJson(const std::string& subnet) {
  const auto slash = subnet.find('/');
  return {{"prefix",
           {{"addr", subnet.substr(0, slash)}, {"len", std::stoi(subnet.substr(slash + 1))}}}};
}

Json ruleJson(const std::string& bridge, const std::vector<std::string>& subnets) {
  Json right;
  if (subnets.size() == 1) {
    right = prefixJson(subnets.front());
  } else {
    Json set = Json::array();
    for (const auto& s : subnets) set.push_back(prefixJson(s));
    right = {{"set", set}};
  }
  Json expr = Json::array();
  expr.push_back({{"match",
                   {{"op", "=="},
                    {"left", {{"payload", {{"protocol", "ip"}, {"field", "saddr"}}}}},
                    {"right", right}}}});
  expr.push_back(
      {{"match", {{"op", "!="}, {"left", {{"meta", {{"key", "oifname"}}}}}, {"right", bridge}}}});
  expr.push_back({{"masquerade", nullptr}});
  return {{"family", "ip"},
          {"table", kNatTable},
          {"chain", kNatChain},
          {"comment", masqueradeComment(bridge)},
          {"expr", expr}};
}

Json ruleRef(const NatRule& r) {
  return {
      {"rule", {{"family", "ip"}, {"table", kNatTable}, {"chain", r.chain}, {"handle", r.handle}}}};
}

Error notOurs(const NatTable& t) {
  Error e;
  e.kind = ErrorKind::kConflict;
  const std::string prefix = ownerMark("");
  std::string why =
      t.comment.starts_with(prefix) && t.comment.size() > prefix.size()
          ? "it carries another nodeplane agent's mark (" + t.comment.substr(prefix.size()) + ")"
      : t.comment.empty() ? "nodeplane did not make it (it has no comment)"
                          : "nodeplane did not make it (its comment is \"" + t.comment + "\")";
  e.message = std::string("nftables table ip ") + kNatTable + " exists and " + why +
              "; not touched, so masquerade cannot be set";
  e.hint = std::string("remove or rename that table (nft delete table ip ") + kNatTable +
           "), or set masquerade: false";
  return e;
}

bool validAgentId(const std::string& id) {
  return !id.empty() && id.find_first_not_of("0123456789abcdef") == std::string::npos;
}

}  // namespace

Result<NatTableProbe> probeNatTable() {
  NetlinkSocket nl(NETLINK_NETFILTER);
  nfgenmsg header{};
  header.nfgen_family = kNfprotoIpv4;
  header.version = NFNETLINK_V0;
  NlMsg msg =
      makeMessage((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE, 0, &header, sizeof header);
  if (!msg || nla_put_string(msg.get(), NFTA_TABLE_NAME, kNatTable) < 0)
    return fail(ErrorKind::kRetryable, "building an nftables table request: out of memory");
  NatTableProbe out;
  auto r = nl.request(msg.get(), [&](const nlmsghdr* h) {
    if ((h->nlmsg_type & 0xff) != NFT_MSG_NEWTABLE) return;
    nlattr* tb[NFTA_TABLE_MAX + 1] = {};
    if (nlmsg_parse(const_cast<nlmsghdr*>(h), sizeof(nfgenmsg), tb, NFTA_TABLE_MAX, nullptr) < 0)
      return;
    out.exists = true;
    out.comment = tableComment(tb[NFTA_TABLE_USERDATA]);
  });
  if (!r && r.error().errnum == ENOENT) return NatTableProbe{};
  if (!r) {
    Error e;
    e.kind = r.error().errnum == EPERM ? ErrorKind::kTerminal : ErrorKind::kRetryable;
    e.message =
        std::string("looking up nftables table ip ") + kNatTable + ": " + describe(r.error());
    if (r.error().errnum == EPERM) e.hint = "nodeplane needs CAP_NET_ADMIN";
    return std::unexpected(std::move(e));
  }
  return out;
}

Result<NatTable> parseNatListing(const Json& listing) {
  if (!listing.is_object() || !listing.contains("nftables") || !listing["nftables"].is_array())
    return fail(ErrorKind::kRetryable, "nftables listing without an \"nftables\" array");
  NatTable t;
  t.owner = NatTable::kOurs;
  for (const Json& item : listing["nftables"]) {
    if (!item.is_object() || item.size() != 1) continue;
    const auto& [key, value] = *item.items().begin();
    if (key == "metainfo" || key == "table") continue;
    if (key == "chain") {
      if (value.value("name", "") != kNatChain) t.onlyOurChain = false;
      continue;
    }
    if (key != "rule") {  // a set, map, counter...: someone else put it there
      t.onlyOurChain = false;
      continue;
    }
    NatRule rule;
    rule.handle = value.value("handle", std::uint64_t{0});
    rule.chain = value.value("chain", "");
    rule.comment = value.value("comment", "");
    parseShape(value.value("expr", Json()), rule);
    t.rules.push_back(std::move(rule));
  }
  return t;
}

Result<NatTable> readNatTable(const std::string& agentId) {
  auto probe = probeNatTable();
  if (!probe) return std::unexpected(probe.error());
  NatTable t;
  if (!probe->exists) return t;
  if (agentId.empty() || probe->comment != ownerMark(agentId)) {
    t.owner = NatTable::kForeign;
    t.comment = probe->comment;
    return t;
  }
  auto text = runNft(std::string("list table ip ") + kNatTable, true,
                     std::string("listing nftables table ip ") + kNatTable);
  if (!text) return std::unexpected(text.error());
  Json listing = Json::parse(*text, nullptr, false);
  if (listing.is_discarded())
    return fail(ErrorKind::kRetryable,
                std::string("listing nftables table ip ") + kNatTable + ": output is not JSON");
  return parseNatListing(listing);
}

std::vector<std::string> masqueradeSubnets(const std::vector<std::string>& addresses) {
  std::vector<Cidr> nets;
  for (const auto& a : addresses) {
    auto c = parseCidr(a);
    if (!c || c->address.family != AF_INET) continue;
    for (int bit = c->prefix; bit < 32; ++bit)
      c->address.bytes[bit / 8] &= static_cast<std::uint8_t>(~(0x80u >> (bit % 8)));
    nets.push_back(*c);
  }
  auto contains = [](const Cidr& outer, const Cidr& inner) {
    if (outer.prefix > inner.prefix) return false;
    for (int bit = 0; bit < outer.prefix; ++bit) {
      const std::uint8_t m = 0x80u >> (bit % 8);
      if ((outer.address.bytes[bit / 8] & m) != (inner.address.bytes[bit / 8] & m)) return false;
    }
    return true;
  };
  std::vector<std::string> out;
  for (std::size_t i = 0; i < nets.size(); ++i) {
    bool inner = false;
    for (std::size_t j = 0; j < nets.size() && !inner; ++j)
      if (i != j && contains(nets[j], nets[i]) &&
          (nets[j].prefix < nets[i].prefix || j < i))  // equal networks: keep the first
        inner = true;
    if (!inner) out.push_back(nets[i].str());
  }
  std::sort(out.begin(), out.end());
  return out;
}

bool hasMasquerade(const NatTable& table, const std::string& bridge,
                   const std::vector<std::string>& subnets) {
  if (table.owner != NatTable::kOurs || subnets.empty()) return false;
  const std::string comment = masqueradeComment(bridge);
  const NatRule* found = nullptr;
  for (const auto& r : table.rules) {
    if (r.comment != comment) continue;
    if (found) return false;  // two rules for one bridge: not what nodeplane writes
    found = &r;
  }
  return found && found->chain == kNatChain && found->subnets == subnets && found->outNot == bridge;
}

Result<void> masqueradeAllowed(const std::string& agentId) {
  auto probe = probeNatTable();
  if (!probe) return std::unexpected(probe.error());
  if (!probe->exists || (!agentId.empty() && probe->comment == ownerMark(agentId))) return {};
  NatTable t;
  t.owner = NatTable::kForeign;
  t.comment = probe->comment;
  return std::unexpected(notOurs(t));
}

Result<void> ensureMasquerade(const std::string& agentId, const std::string& bridge,
                              const std::vector<std::string>& subnets) {
  const std::string what = "setting the masquerade rule of bridge " + bridge;
  if (subnets.empty())
    return fail(ErrorKind::kInvalidInput, what + ": the bridge has no IPv4 address");
  auto table = readNatTable(agentId);
  if (!table)
    return fail(table.error().kind, what + ": " + table.error().message, {}, table.error().hint);
  if (table->owner == NatTable::kForeign) return std::unexpected(notOurs(*table));
  if (hasMasquerade(*table, bridge, subnets)) return {};
  if (table->owner == NatTable::kAbsent) {
    // The mark rides on the table's comment, which libnftables 1.0.6 neither reads nor writes in
    // JSON: this one command is text, with nothing in it but constants and the hex agent id.
    // `create` (not `add`) fails when someone made the table since the probe.
    if (!validAgentId(agentId))
      return fail(ErrorKind::kTerminal, what + ": no valid agent id to mark the table with");
    auto made = runNft(std::string("create table ip ") + kNatTable + " { comment \"" +
                           ownerMark(agentId) + "\"; }",
                       false, what + ": creating table ip " + kNatTable);
    if (!made) return std::unexpected(made.error());
  }
  // One transaction: the chain (a no-op when present), out with a stale rule, in with the new one.
  Json cmds = Json::array();
  cmds.push_back({{"add",
                   {{"chain",
                     {{"family", "ip"},
                      {"table", kNatTable},
                      {"name", kNatChain},
                      {"type", "nat"},
                      {"hook", "postrouting"},
                      {"prio", kSrcnatPriority},
                      {"policy", "accept"}}}}}});
  for (const auto& r : table->rules)
    if (r.comment == masqueradeComment(bridge)) cmds.push_back({{"delete", ruleRef(r)}});
  cmds.push_back({{"add", {{"rule", ruleJson(bridge, subnets)}}}});
  auto r = runNft(Json({{"nftables", cmds}}).dump(), true, what);
  if (!r) return std::unexpected(r.error());
  return {};
}

Result<void> removeMasquerade(const std::string& agentId, const std::string& bridge) {
  const std::string what = "removing the masquerade rule of bridge " + bridge;
  auto table = readNatTable(agentId);
  if (!table)
    return fail(table.error().kind, what + ": " + table.error().message, {}, table.error().hint);
  if (table->owner != NatTable::kOurs) return {};
  Json cmds = Json::array();
  std::size_t left = 0;
  for (const auto& r : table->rules) {
    if (r.comment == masqueradeComment(bridge))
      cmds.push_back({{"delete", ruleRef(r)}});
    else
      ++left;
  }
  if (left == 0 && table->onlyOurChain) {  // the last rule: the table goes with it
    cmds = Json::array({{{"delete", {{"table", {{"family", "ip"}, {"name", kNatTable}}}}}}});
  } else if (cmds.empty()) {
    return {};
  }
  auto r = runNft(Json({{"nftables", cmds}}).dump(), true, what);
  if (!r) return std::unexpected(r.error());
  return {};
}

}  // namespace nodeplane::net
