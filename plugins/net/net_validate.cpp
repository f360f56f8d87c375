// What the schema cannot say: interface name rules, CIDR syntax, and the Vxlan endpoint rules.
#include <algorithm>
#include <map>

#include "addr_text.hpp"
#include "nat_table.hpp"
#include "net_schema.hpp"

namespace nodeplane::net {
namespace {

const char* familyName(int family) { return family == AF_INET ? "IPv4" : "IPv6"; }

void checkAddresses(const Resource& r, std::vector<Error>& out) {
  auto it = r.spec.find("addresses");
  if (it == r.spec.end() || !it->is_array()) return;
  std::map<std::string, std::size_t> seen;  // canonical IP -> first index
  for (std::size_t i = 0; i < it->size(); ++i) {
    const Json& v = (*it)[i];
    if (!v.is_string()) continue;  // the schema check reports the type
    const std::string path = "spec.addresses[" + std::to_string(i) + "]";
    const std::string text = v.get<std::string>();
    if (auto problem = cidrProblem(text)) {
      out.push_back(r.error(ErrorKind::kInvalidInput, path, *problem));
      continue;
    }
    Cidr c = *parseCidr(text);
    if (c.address.isLinkLocalV6()) {
      out.push_back(r.error(ErrorKind::kInvalidInput, path,
                            "IPv6 link-local addresses (fe80::/10) are assigned by the kernel, "
                            "not by nodeplane, got \"" +
                                text + "\""));
      continue;
    }
    auto [first, inserted] = seen.emplace(c.address.str(), i);
    if (!inserted)
      out.push_back(r.error(ErrorKind::kInvalidInput, path,
                            "address " + c.address.str() +
                                " is listed twice (also spec.addresses[" +
                                std::to_string(first->second) + "])"));
  }
}

void checkIfName(const Resource& r, const std::string& path, const Json& value,
                 std::vector<Error>& out) {
  if (!value.is_string()) return;
  if (auto problem = ifNameProblem(value.get<std::string>()))
    out.push_back(r.error(ErrorKind::kInvalidInput, path, *problem));
}

// local/remote/group: a plain IP address each, and a consistent combination.
void checkVxlan(const Resource& r, std::vector<Error>& out) {
  std::map<std::string, IpAddress> ips;
  for (const char* key : {"local", "remote", "group"}) {
    auto it = r.spec.find(key);
    if (it == r.spec.end() || !it->is_string()) continue;
    const std::string text = it->get<std::string>();
    auto ip = parseIp(text);
    if (!ip) {
      out.push_back(r.error(ErrorKind::kInvalidInput, std::string("spec.") + key,
                            "expected an IP address without prefix length, e.g. 10.0.0.1 or "
                            "fd00::1, got \"" +
                                text + "\""));
      continue;
    }
    ips.emplace(key, *ip);
  }
  const bool hasRemote = r.spec.contains("remote"), hasGroup = r.spec.contains("group");
  if (hasRemote && hasGroup)
    out.push_back(r.error(ErrorKind::kInvalidInput, "spec.group",
                          "remote and group are exclusive: set remote for a unicast "
                          "(point-to-point) tunnel or group for a multicast one"));
  if (auto g = ips.find("group"); g != ips.end() && !g->second.isMulticast())
    out.push_back(r.error(ErrorKind::kInvalidInput, "spec.group",
                          "group must be a multicast address (224.0.0.0/4 or ff00::/8), got \"" +
                              r.spec["group"].get<std::string>() + "\"",
                          "use remote for a unicast peer"));
  if (auto m = ips.find("remote"); m != ips.end() && m->second.isMulticast())
    out.push_back(r.error(ErrorKind::kInvalidInput, "spec.remote",
                          "remote must be a unicast address, got the multicast address \"" +
                              r.spec["remote"].get<std::string>() + "\"",
                          "use group for a multicast group"));
  if (hasGroup && !r.spec.contains("device"))
    out.push_back(r.error(ErrorKind::kInvalidInput, "spec.group",
                          "a multicast group needs an underlay interface to join it on",
                          "set spec.device"));
  if (auto l = ips.find("local"); l != ips.end()) {
    for (const char* peer : {"remote", "group"}) {
      auto p = ips.find(peer);
      if (p == ips.end() || p->second.family == l->second.family) continue;
      out.push_back(r.error(ErrorKind::kInvalidInput, std::string("spec.") + peer,
                            std::string("local is ") + familyName(l->second.family) + " but " +
                                peer + " is " + familyName(p->second.family) +
                                "; both ends of a tunnel must use the same address family"));
    }
  }
  if (auto d = r.spec.find("device"); d != r.spec.end()) checkIfName(r, "spec.device", *d, out);
}

// The NAT rule matches the bridge's IPv4 subnets: without one it would match nothing.
void checkMasquerade(const Resource& r, std::vector<Error>& out) {
  auto m = r.spec.find("masquerade");
  if (m == r.spec.end() || !m->is_boolean() || !m->get<bool>()) return;
  std::vector<std::string> addresses;
  if (auto a = r.spec.find("addresses"); a != r.spec.end() && a->is_array())
    for (const Json& v : *a)
      if (v.is_string()) addresses.push_back(v.get<std::string>());
  if (masqueradeSubnets(addresses).empty())
    out.push_back(r.error(ErrorKind::kInvalidInput, "spec.masquerade",
                          "masquerade needs an IPv4 address on the bridge: the NAT rule matches "
                          "the bridge's IPv4 subnets, and spec.addresses has none",
                          "add the gateway address of the guests' subnet, e.g. "
                          "addresses: [192.168.100.1/24]"));
}

}  // namespace

std::vector<Error> validateNet(const Resource& r) {
  std::vector<Error> out;
  if (auto problem = ifNameProblem(r.id.name))
    out.push_back(r.error(ErrorKind::kInvalidInput, "metadata.name", *problem));
  checkAddresses(r, out);
  if (auto b = r.spec.find("bridge"); b != r.spec.end()) {
    checkIfName(r, "spec.bridge", *b, out);
    if (b->is_string() && b->get<std::string>() == r.id.name)
      out.push_back(
          r.error(ErrorKind::kInvalidInput, "spec.bridge", "a link cannot be enslaved to itself"));
  }
  if (r.id.kind == kVxlan) checkVxlan(r, out);
  if (r.id.kind == kBridge) checkMasquerade(r, out);
  return out;
}

Json normalizeNet(const std::string& kind, const Json& spec) {
  Json out = spec;
  if (!out.is_object()) return out;
  if (auto it = out.find("addresses"); it != out.end() && it->is_array()) {
    std::vector<Json> items;
    for (const Json& v : *it) {
      std::optional<Cidr> c = v.is_string() ? parseCidr(v.get<std::string>()) : std::nullopt;
      items.push_back(c ? Json(c->str()) : v);
    }
    // Invalid entries (reported by validate) leave the order alone.
    if (std::all_of(items.begin(), items.end(), [](const Json& v) { return v.is_string(); }))
      std::sort(items.begin(), items.end(), [](const Json& a, const Json& b) {
        return a.get<std::string>() < b.get<std::string>();
      });
    *it = Json(items);
  }
  if (kind == kVxlan) {
    for (const char* key : {"local", "remote", "group"}) {
      auto it = out.find(key);
      if (it == out.end() || !it->is_string()) continue;
      if (auto ip = parseIp(it->get<std::string>())) *it = ip->str();
    }
  }
  return out;
}

}  // namespace nodeplane::net
