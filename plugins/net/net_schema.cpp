#include "net_schema.hpp"

namespace nodeplane::net {
namespace {

FieldSchema integer(std::string name, std::int64_t min, std::int64_t max, std::string desc) {
  FieldSchema f;
  f.name = std::move(name);
  f.type = FieldType::kInteger;
  f.minimum = min;
  f.maximum = max;
  f.description = std::move(desc);
  return f;
}

FieldSchema field(std::string name, FieldType type, std::string desc) {
  FieldSchema f;
  f.name = std::move(name);
  f.type = type;
  f.description = std::move(desc);
  return f;
}

FieldSchema replacing(FieldSchema f) {
  f.forcesReplace = true;
  return f;
}

FieldSchema mtu() { return integer("mtu", 68, 65535, "MTU in bytes"); }
FieldSchema up() { return field("up", FieldType::kBoolean, "administrative state (IFF_UP)"); }
FieldSchema addresses() {
  return field("addresses", FieldType::kStringList,
               "IPv4/IPv6 addresses with prefix length, e.g. 192.168.1.1/24, fd00::1/64");
}
FieldSchema bridge() {
  FieldSchema f = field("bridge", FieldType::kString, "Bridge this link is enslaved to");
  f.references = kBridge;
  return f;
}
}  // namespace

std::vector<KindSchema> netKinds() {
  KindSchema br{kBridge, "Linux bridge; metadata.name is the interface name", {}};
  br.spec = {mtu(), addresses(), up(),
             field("stp", FieldType::kBoolean, "kernel spanning tree (IFLA_BR_STP_STATE)"),
             field("masquerade", FieldType::kBoolean,
                   "NAT: masquerade the bridge's IPv4 subnets leaving through any other "
                   "interface (a rule in nftables table ip nodeplane; needs net.ipv4.ip_forward)")};

  // The kernel refuses to change vni and dstPort in place ("Cannot change VNI"); the endpoint
  // and underlay fields are replaced too, since in-place changes of them vary across kernels
  // and leave stale default FDB entries behind. learning changes in place.
  KindSchema vx{kVxlan, "VXLAN tunnel endpoint; metadata.name is the interface name", {}};
  FieldSchema vni = replacing(integer("vni", 1, 16777215, "VXLAN network identifier"));
  vni.required = true;
  vx.spec = {vni,
             replacing(field("local", FieldType::kString, "local (source) IP address")),
             replacing(field("remote", FieldType::kString, "unicast remote IP address")),
             replacing(field("group", FieldType::kString, "multicast group IP address")),
             replacing(field("device", FieldType::kString, "underlay interface name")),
             replacing(integer("dstPort", 1, 65535, "UDP destination port (default 4789)")),
             field("learning", FieldType::kBoolean, "learn remote MAC addresses"),
             mtu(),
             bridge(),
             up(),
             addresses()};

  KindSchema tap{kTap, "persistent tap device; metadata.name is the interface name", {}};
  tap.spec = {bridge(), mtu(), up(), addresses()};
  return {br, vx, tap};
}

bool isNetKind(const std::string& kind) {
  return kind == kBridge || kind == kVxlan || kind == kTap;
}

}  // namespace nodeplane::net
