// The Container kind's spec side: schema, validation, normal form, claims, hash, create body and
// the observed form of a listed container. Pure functions: no Engine calls.
#include "container_spec.hpp"

#include <algorithm>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>

#include "nodeplane/digest.hpp"
#include "nodeplane/host/gpu_ref.hpp"
#include "nodeplane/text.hpp"

namespace nodeplane::docker {
namespace {

FieldSchema field(std::string name, FieldType type, std::string desc, bool replace = true) {
  FieldSchema f;
  f.name = std::move(name);
  f.type = type;
  f.description = std::move(desc);
  f.forcesReplace = replace;
  return f;
}

FieldSchema oneOf(std::string name, std::vector<std::string> allowed, std::string desc,
                  bool replace) {
  FieldSchema f = field(std::move(name), FieldType::kString, std::move(desc), replace);
  f.allowed = std::move(allowed);
  return f;
}

bool allDigits(const std::string& s) {
  return !s.empty() && s.size() <= 9 &&
         std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

// "text" as a message shows it: control characters escaped (text.hpp).
std::string quoted(const std::string& s) { return "\"" + printable(s) + "\""; }

std::string describe(const Json& v) { return host::describeValue(v); }

// ---- image references (github.com/distribution/reference, reference.go) ----

const std::regex& pathComponentRe() {
  static const std::regex re("[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*");
  return re;
}
const std::regex& domainComponentRe() {
  static const std::regex re("[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?");
  return re;
}
const std::regex& tagRe() {
  static const std::regex re("[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}");
  return re;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    auto at = s.find(sep, start);
    out.push_back(s.substr(start, at == std::string::npos ? std::string::npos : at - start));
    if (at == std::string::npos) return out;
    start = at + 1;
  }
}

// What is wrong with the registry host[:port] part, or nullopt.
std::optional<std::string> domainProblem(const std::string& domain) {
  std::string host = domain;
  if (!host.empty() && host.front() == '[') {  // [IPv6]:port
    auto close = host.find(']');
    if (close == std::string::npos ||
        !std::regex_match(host.substr(1, close - 1), std::regex("[0-9A-Fa-f:.]+")))
      return "registry \"" + printable(domain) + "\" is not a valid [IPv6] address";
    host = host.substr(close + 1);
    if (host.empty()) return std::nullopt;
    if (host.front() != ':' || !allDigits(host.substr(1)))
      return "registry port in \"" + printable(domain) + "\" is not a number";
    return std::nullopt;
  }
  if (auto colon = host.find(':'); colon != std::string::npos) {
    if (!allDigits(host.substr(colon + 1)))
      return "registry port in \"" + printable(domain) + "\" is not a number";
    host.resize(colon);
  }
  for (const auto& c : split(host, '.'))
    if (!std::regex_match(c, domainComponentRe()))
      return "registry \"" + printable(domain) +
             "\" is not a host name (letters, digits, '-' and '.')";
  return std::nullopt;
}

// What is wrong with an image reference, or nullopt when Docker accepts it.
std::optional<std::string> imageProblem(const std::string& ref) {
  if (ref.empty()) return "the image reference is empty";
  if (ref.size() > 255 + 72 + 129) return "the image reference is too long";
  std::string rest = ref;
  if (auto at = rest.find('@'); at != std::string::npos) {
    const std::string digest = rest.substr(at + 1);
    rest.resize(at);
    if (!std::regex_match(digest, std::regex("sha256:[0-9a-f]{64}")))
      return "digest \"" + printable(digest) +
             "\" is not sha256: followed by 64 lower-case hex digits";
  }
  // A tag follows the last ':' after the last '/' (a ':' before it is a registry port).
  const auto slash = rest.rfind('/');
  if (auto colon = rest.rfind(':');
      colon != std::string::npos && (slash == std::string::npos || colon > slash)) {
    const std::string tag = rest.substr(colon + 1);
    rest.resize(colon);
    if (!std::regex_match(tag, tagRe()))
      return "tag \"" + printable(tag) +
             "\" is not valid (letters, digits, '_', '.' and '-', not starting with '.' or '-', "
             "at most 128 characters)";
  }
  if (rest.empty()) return "the image reference has no repository name";
  if (rest.size() > 255) return "the repository name is longer than 255 characters";
  std::vector<std::string> parts = split(rest, '/');
  // The first part is a registry when it has a '.' or ':', is "localhost", or has upper case
  // (Docker's splitDockerDomain).
  const std::string& first = parts.front();
  const bool hasDomain =
      parts.size() > 1 &&
      (first.find_first_of(".:[") != std::string::npos || first == "localhost" ||
       std::any_of(first.begin(), first.end(), [](unsigned char c) { return std::isupper(c); }));
  if (hasDomain) {
    if (auto p = domainProblem(first)) return p;
    parts.erase(parts.begin());
  }
  for (const auto& c : parts) {
    if (std::regex_match(c, pathComponentRe())) continue;
    if (c.empty()) return "the repository path has an empty component";
    std::string lower = c;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char ch) { return std::tolower(ch); });
    if (lower != c && std::regex_match(lower, pathComponentRe()))
      return "repository name \"" + printable(c) + "\" must be lower-case";
    return "repository path component \"" + printable(c) +
           "\" is not valid (lower-case letters and digits, separated by '.', '_', '__' or '-')";
  }
  return std::nullopt;
}

bool isContainerName(const std::string& s) {
  static const std::regex re("[a-zA-Z0-9][a-zA-Z0-9_.-]+");
  return std::regex_match(s, re);
}

bool isEnvName(const std::string& s) {
  static const std::regex re("[A-Za-z_][A-Za-z0-9_]*");
  return std::regex_match(s, re);
}

std::string normalTarget(const std::string& t) {
  std::string s = std::filesystem::path(t).lexically_normal().string();
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

// ---- GPUs ----

std::string gpuName(const host::Gpu& g) {
  std::string s = g.function.address;
  if (g.index >= 0) s += " (index " + std::to_string(g.index) + ")";
  return s;
}

// One entry of spec.gpus: the GPU it names, or what is wrong (expected …).
struct Resolved {
  const host::Gpu* gpu = nullptr;
  std::string problem;
};

Resolved resolveEntry(const Json& v, const std::vector<host::Gpu>& inventory) {
  if (v.is_string() && v.get<std::string>() == "all")
    return {nullptr,
            "\"all\" cannot be mixed with a list of GPUs: write `gpus: all`, or list the GPUs"};
  host::GpuRef ref = host::resolveGpuRef(v, inventory);
  if (ref.gpu && !ref.gpu->isNvidia())
    return {nullptr, "the device at " + ref.gpu->function.address +
                         " is not an NVIDIA GPU (vendor " + ref.gpu->function.vendor +
                         "): only NVIDIA GPUs can be given to a container"};
  return {ref.gpu, ref.problem};
}

constexpr const char* kGpusExpected =
    "expected \"all\" or a list of GPU indices, PCI addresses and GPU-… UUIDs";

// The digest form of a sensitive value, as the core's diff compares it (sensitive.hpp).

// The normalized spec as it goes into the spec label: env as its digest, without state.
Json labelSpec(const Json& normalizedSpec) {
  Json s = withEnvDigest(normalizedSpec);
  s.erase("state");
  return s;
}

// "0-3,8,10-11" -> {0,1,2,3,8,10,11}; nullopt when malformed.
std::optional<std::set<int>> parseCpuList(const std::string& text) {
  std::set<int> out;
  std::string t = text;
  while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) t.pop_back();
  if (t.empty()) return out;
  for (const auto& part : split(t, ',')) {
    auto dash = part.find('-');
    std::string a = part.substr(0, dash), b = dash == std::string::npos ? a : part.substr(dash + 1);
    if (!allDigits(a) || !allDigits(b)) return std::nullopt;
    int lo = std::stoi(a), hi = std::stoi(b);
    if (hi < lo || hi - lo > 65536) return std::nullopt;
    for (int c = lo; c <= hi; ++c) out.insert(c);
  }
  return out;
}

std::string formatCpuList(const std::set<int>& cpus) {
  std::string out;
  for (auto it = cpus.begin(); it != cpus.end();) {
    int lo = *it, hi = lo;
    for (++it; it != cpus.end() && *it == hi + 1; ++it) hi = *it;
    out += (out.empty() ? "" : ",") + std::to_string(lo);
    if (hi > lo) out += "-" + std::to_string(hi);
  }
  return out;
}

Resource asResource(const std::string& name, const Json& spec) {
  Resource r;
  r.id = ResourceId{kKind, name};
  r.spec = spec;
  return r;
}

}  // namespace

KindSchema containerKind() {
  FieldSchema image = field("image", FieldType::kString,
                            "image reference: [registry[:port]/]path[:tag][@sha256:<digest>], "
                            "e.g. nvcr.io/nvidia/pytorch:24.05-py3");
  image.required = true;
  FieldSchema env = field("env", FieldType::kStringMap,
                          "environment variables (NAME: value); values are sensitive: never "
                          "shown, compared by their SHA-256");
  env.sensitive = true;
  FieldSchema source = field("source", FieldType::kString, "host path (absolute)", false);
  source.required = true;
  FieldSchema target =
      field("target", FieldType::kString, "path in the container (absolute)", false);
  target.required = true;
  FieldSchema mounts = field("mounts", FieldType::kObjectList, "bind mounts");
  mounts.fields = {
      source, target,
      field("readOnly", FieldType::kBoolean, "mount read-only (default false)", false)};

  KindSchema k;
  k.kind = kKind;
  k.description =
      "a Docker container, with the host's NVIDIA GPUs; metadata.name is the container name";
  k.spec = {
      image,
      field("command", FieldType::kStringList, "command (arguments to the entrypoint)"),
      field("entrypoint", FieldType::kStringList, "entrypoint, replacing the image's"),
      env,
      field("gpus", FieldType::kAny,
            "\"all\", or a list of GPU indices (PCI bus order among NVIDIA GPUs, as nvidia-smi "
            "shows), PCI addresses (0000:3b:00.0) and GPU-… UUIDs"),
      field("exclusive", FieldType::kBoolean,
            "take the GPUs exclusively (default false: containers may share a GPU)"),
      field("numaAffinity", FieldType::kBoolean,
            "pin CPUs and memory to the NUMA nodes of the GPUs (default false)"),
      mounts,
      field("network", FieldType::kString,
            "network mode: none, host, or a Docker network name (default: Docker's)"),
      oneOf("restart", {"no", "on-failure", "always", "unless-stopped"},
            "restart policy (default no)", true),
      oneOf("state", {"running", "stopped"}, "running (default) or stopped", false),
      [] {
        FieldSchema f = oneOf("pull", {"IfNotPresent", "Always", "Never"},
                              "when to pull the image (default IfNotPresent)", false);
        f.compared = false;
        return f;
      }(),
      field("labels", FieldType::kStringMap,
            "container labels (io.nodeplane.* are nodeplane's own and cannot be set)"),
  };
  return k;
}

std::vector<FieldSchema> dockerConfigSchema() {
  return {field("socket", FieldType::kString,
                "path of the Docker Engine API's unix socket (default /run/docker.sock)", false)};
}

Json withEnvDigest(const Json& normalizedSpec) {
  Json s = normalizedSpec;
  if (s.is_object())
    if (auto e = s.find("env"); e != s.end() && !(e->is_object() && e->empty()))
      *e = observedDigest(*e);
  return s;
}

Result<GpuSelection> resolveGpus(const Resource& r, const std::vector<host::Gpu>& inventory,
                                 std::vector<Error>& errors) {
  GpuSelection sel;
  auto it = r.spec.find("gpus");
  if (it == r.spec.end() || it->is_null()) return sel;
  const Json& gpus = *it;
  if (gpus.is_string() && gpus.get<std::string>() == "all") {
    sel.all = true;
    for (const auto& g : inventory)  // what the nvidia driver has: not GPUs passed to VMs
      if (g.isNvidia() && g.function.driver != "vfio-pci") sel.gpus.push_back(g);
    std::sort(sel.gpus.begin(), sel.gpus.end(),
              [](const host::Gpu& a, const host::Gpu& b) { return a.index < b.index; });
    return sel;
  }
  if (!gpus.is_array()) {
    Error e =
        r.error(ErrorKind::kInvalidInput, "spec.gpus",
                std::string(kGpusExpected) + ", got " + describe(gpus),
                gpus.is_string() || gpus.is_number_integer() ? "write a list: gpus: [0, 1]" : "");
    return std::unexpected(std::move(e));
  }
  std::map<std::string, std::size_t> seen;  // address -> first entry
  for (std::size_t i = 0; i < gpus.size(); ++i) {
    const std::string path = "spec.gpus[" + std::to_string(i) + "]";
    Resolved res = resolveEntry(gpus[i], inventory);
    if (!res.gpu) {
      errors.push_back(r.error(ErrorKind::kInvalidInput, path, res.problem));
      continue;
    }
    const host::Gpu& g = *res.gpu;
    if (g.function.driver == "vfio-pci") {
      errors.push_back(r.error(ErrorKind::kInvalidInput, path,
                               "GPU " + gpuName(g) +
                                   " is bound to vfio-pci (passed through to a VM): it cannot be "
                                   "shared with a container"));
      continue;
    }
    auto [first, inserted] = seen.emplace(g.function.address, i);
    if (!inserted) {
      errors.push_back(r.error(ErrorKind::kInvalidInput, path,
                               "GPU " + gpuName(g) + " is already named by spec.gpus[" +
                                   std::to_string(first->second) + "]"));
      continue;
    }
    sel.gpus.push_back(g);
  }
  return sel;
}

std::vector<Error> validateContainer(const Resource& r, const std::vector<host::Gpu>& inventory) {
  std::vector<Error> out;
  if (!isContainerName(r.id.name))
    out.push_back(r.error(ErrorKind::kInvalidInput, "metadata.name",
                          "invalid container name " + quoted(r.id.name) +
                              ": expected Docker's [a-zA-Z0-9][a-zA-Z0-9_.-]+ (a letter or digit, "
                              "then letters, digits, '_', '.' or '-'; at least 2 characters)"));
  if (!r.spec.is_object()) return out;
  if (auto it = r.spec.find("image"); it != r.spec.end() && it->is_string()) {
    if (auto p = imageProblem(it->get<std::string>()))
      out.push_back(r.error(ErrorKind::kInvalidInput, "spec.image",
                            "invalid image reference " + quoted(it->get<std::string>()) + ": " + *p,
                            "expected [registry[:port]/]path[:tag][@sha256:<64 hex digits>], "
                            "e.g. docker.io/library/ubuntu:22.04"));
  }
  if (auto it = r.spec.find("env"); it != r.spec.end() && it->is_object()) {
    for (const auto& [key, value] : it->items())
      if (!isEnvName(key))
        out.push_back(r.error(ErrorKind::kInvalidInput, "spec.env." + key,
                              "invalid environment variable name " + quoted(key) +
                                  ": expected [A-Za-z_][A-Za-z0-9_]* (a letter or '_', then "
                                  "letters, digits or '_')"));
  }
  if (auto it = r.spec.find("labels"); it != r.spec.end() && it->is_object()) {
    for (const auto& [key, value] : it->items())
      if (key.rfind("io.nodeplane.", 0) == 0)
        out.push_back(r.error(ErrorKind::kInvalidInput, "spec.labels." + key,
                              "label " + quoted(key) +
                                  " is under io.nodeplane., which is reserved for nodeplane's "
                                  "ownership labels",
                              "use a prefix of your own"));
  }
  if (auto it = r.spec.find("mounts"); it != r.spec.end() && it->is_array()) {
    std::map<std::string, std::size_t> targets;
    for (std::size_t i = 0; i < it->size(); ++i) {
      const Json& m = (*it)[i];
      if (!m.is_object()) continue;  // the schema check reports it
      const std::string base = "spec.mounts[" + std::to_string(i) + "]";
      for (const char* key : {"source", "target"}) {
        auto v = m.find(key);
        if (v == m.end() || !v->is_string()) continue;
        const std::string p = v->get<std::string>();
        if (p.empty() || p.front() != '/')
          out.push_back(r.error(ErrorKind::kInvalidInput, base + "." + key,
                                "expected an absolute path (starting with /), got " + quoted(p)));
      }
      auto t = m.find("target");
      if (t == m.end() || !t->is_string() || t->get<std::string>().empty() ||
          t->get<std::string>().front() != '/')
        continue;
      auto [first, inserted] = targets.emplace(normalTarget(t->get<std::string>()), i);
      if (!inserted)
        out.push_back(r.error(ErrorKind::kInvalidInput, base + ".target",
                              "duplicate mount target " + quoted(first->first) +
                                  " (also spec.mounts[" + std::to_string(first->second) +
                                  "].target): each target can be mounted once"));
    }
  }
  auto sel = resolveGpus(r, inventory, out);
  if (!sel) out.push_back(sel.error());
  if (auto na = r.spec.find("numaAffinity");
      na != r.spec.end() && na->is_boolean() && na->get<bool>()) {
    auto g = r.spec.find("gpus");
    const bool none = g == r.spec.end() || g->is_null() || (g->is_array() && g->empty());
    if (none)
      out.push_back(r.error(ErrorKind::kInvalidInput, "spec.numaAffinity",
                            "numaAffinity pins the container to the NUMA nodes of its GPUs, but "
                            "it has none: expected gpus to be set",
                            "set spec.gpus, or remove numaAffinity"));
  }
  return out;
}

Json normalizeContainer(const Json& spec, const std::vector<host::Gpu>& inventory) {
  Json out = spec;
  if (!out.is_object()) return out;
  auto dflt = [&](const char* key, Json v) {
    if (!out.contains(key) || out[key].is_null()) out[key] = std::move(v);
  };
  dflt("state", "running");
  dflt("restart", "no");
  dflt("pull", "IfNotPresent");
  dflt("exclusive", false);
  dflt("numaAffinity", false);
  // A field left out means Docker's default, not "don't care": removing `gpus:` or `env:` from a
  // file must recreate the container without them. Empty lists mean the image's own CMD and
  // ENTRYPOINT; network "default" is Docker's default network.
  dflt("command", Json::array());
  dflt("entrypoint", Json::array());
  dflt("env", Json::object());
  dflt("labels", Json::object());
  dflt("mounts", Json::array());
  dflt("gpus", Json::array());
  dflt("network", "default");
  if (auto g = out.find("gpus"); g != out.end() && g->is_array()) {
    std::vector<std::string> addresses;
    bool ok = true;
    for (const auto& v : *g) {
      Resolved res = resolveEntry(v, inventory);
      if (!res.gpu) {
        ok = false;
        break;
      }
      addresses.push_back(res.gpu->function.address);
    }
    if (ok) {
      std::sort(addresses.begin(), addresses.end());
      addresses.erase(std::unique(addresses.begin(), addresses.end()), addresses.end());
      *g = addresses;
    }
  }
  if (auto m = out.find("mounts"); m != out.end() && m->is_array()) {
    bool sortable = true;
    for (auto& v : *m) {
      if (!v.is_object() || !v.contains("target") || !v["target"].is_string()) {
        sortable = false;
        continue;
      }
      if (!v.contains("readOnly") || v["readOnly"].is_null()) v["readOnly"] = false;
    }
    if (sortable)
      std::stable_sort(m->begin(), m->end(), [](const Json& a, const Json& b) {
        return a["target"].get<std::string>() < b["target"].get<std::string>();
      });
  }
  return out;
}

std::vector<Claim> containerClaims(const Resource& r, const std::vector<host::Gpu>& inventory) {
  std::vector<Error> ignored;  // validate reports them
  auto sel = resolveGpus(r, inventory, ignored);
  if (!sel) return {};
  bool exclusive = false;
  if (auto e = r.spec.find("exclusive"); e != r.spec.end() && e->is_boolean())
    exclusive = e->get<bool>();
  std::vector<Claim> out;
  for (const auto& g : sel->gpus)
    out.push_back(Claim{.type = "gpu", .id = g.function.address, .exclusive = exclusive});
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::string specHash(const Json& normalizedSpec) {
  Json s = withEnvDigest(normalizedSpec);
  if (s.is_object()) {
    s.erase("state");
    s.erase("pull");
  }
  return sha256Hex(jsonText(s));
}

Result<Json> createBody(const std::string& name, const Json& normalizedSpec,
                        const std::vector<host::Gpu>& inventory,
                        const std::filesystem::path& sysfsRoot, const std::string& agentId) {
  const Json& s = normalizedSpec;
  if (!s.is_object() || !s.contains("image") || !s["image"].is_string())
    return fail(ErrorKind::kInvalidInput, "the spec has no image", "spec.image");
  if (agentId.empty())
    return fail(ErrorKind::kTerminal,
                "cannot create a container without an agent id (the state store is not open): "
                "its ownership labels need one");
  Json body = Json::object();
  body["Image"] = s["image"];
  // An empty list: the image's own CMD / ENTRYPOINT.
  if (auto c = s.find("command"); c != s.end() && c->is_array() && !c->empty()) body["Cmd"] = *c;
  if (auto e = s.find("entrypoint"); e != s.end() && e->is_array() && !e->empty())
    body["Entrypoint"] = *e;
  if (auto env = s.find("env"); env != s.end() && env->is_object()) {
    Json list = Json::array();
    for (const auto& [k, v] : env->items())
      list.push_back(k + "=" + (v.is_string() ? v.get<std::string>() : jsonText(v)));
    body["Env"] = list;
  }
  Json labels = Json::object();
  if (auto l = s.find("labels"); l != s.end() && l->is_object()) labels = *l;
  labels[kManagedLabel] = "true";
  labels[kResourceLabel] = std::string(kKind) + "/" + name;
  labels[kAgentLabel] = agentId;
  labels[kSpecHashLabel] = specHash(s);
  labels[kSpecLabel] = jsonText(labelSpec(s));
  body["Labels"] = labels;

  Json hc = Json::object();
  std::vector<Error> gpuErrors;
  auto sel = resolveGpus(asResource(name, s), inventory, gpuErrors);
  if (!sel) return std::unexpected(sel.error());
  if (!gpuErrors.empty()) {
    Error e = gpuErrors.front();
    e.kind = ErrorKind::kTerminal;  // the inventory changed since validate
    return std::unexpected(std::move(e));
  }
  if (sel->all) {
    hc["DeviceRequests"] =
        Json::array({{{"Driver", "nvidia"}, {"Count", -1}, {"Capabilities", {{"gpu"}}}}});
  } else if (!sel->gpus.empty()) {
    Json ids = Json::array();
    for (const auto& g : sel->gpus)
      ids.push_back(g.uuid.empty() ? std::to_string(g.index) : g.uuid);
    hc["DeviceRequests"] =
        Json::array({{{"Driver", "nvidia"}, {"DeviceIDs", ids}, {"Capabilities", {{"gpu"}}}}});
  }
  if (auto m = s.find("mounts"); m != s.end() && m->is_array()) {
    Json mounts = Json::array();
    for (const auto& v : *m)
      mounts.push_back({{"Type", "bind"},
                        {"Source", v.value("source", "")},
                        {"Target", v.value("target", "")},
                        {"ReadOnly", v.value("readOnly", false)}});
    hc["Mounts"] = mounts;
  }
  if (auto n = s.find("network"); n != s.end() && n->is_string()) hc["NetworkMode"] = *n;
  hc["RestartPolicy"] = {{"Name", s.value("restart", "no")}};
  if (s.value("numaAffinity", false)) {
    // GPUs whose NUMA node is unknown (-1, a single-node host) give nothing to pin to.
    std::set<int> nodes;
    for (const auto& g : sel->gpus)
      if (g.function.numaNode >= 0) nodes.insert(g.function.numaNode);
    std::set<int> cpus;
    for (int n : nodes) {
      const auto file =
          sysfsRoot / "devices/system/node" / ("node" + std::to_string(n)) / "cpulist";
      std::ifstream in(file);
      std::stringstream text;
      text << in.rdbuf();
      if (!in)
        return fail(ErrorKind::kTerminal,
                    "cannot read " + file.string() + " (the CPUs of NUMA node " +
                        std::to_string(n) + ", for numaAffinity)",
                    "spec.numaAffinity");
      auto list = parseCpuList(text.str());
      if (!list)
        return fail(ErrorKind::kTerminal,
                    file.string() + " is not a CPU list: " + quoted(text.str()),
                    "spec.numaAffinity");
      cpus.insert(list->begin(), list->end());
    }
    if (!nodes.empty()) {
      std::string mems;
      for (int n : nodes) mems += (mems.empty() ? "" : ",") + std::to_string(n);
      hc["CpusetCpus"] = formatCpuList(cpus);
      hc["CpusetMems"] = mems;
    }
  }
  body["HostConfig"] = hc;
  return body;
}

ObservedObject observedFromListEntry(const Json& entry, const std::string& agentId,
                                     const std::vector<host::Gpu>& inventory) {
  ObservedObject o;
  if (!entry.is_object()) return o;
  std::string name;
  if (auto n = entry.find("Names");
      n != entry.end() && n->is_array() && !n->empty() && (*n)[0].is_string())
    name = (*n)[0].get<std::string>();
  if (!name.empty() && name.front() == '/') name.erase(0, 1);
  o.id = ResourceId{kKind, name};
  if (auto id = entry.find("Id"); id != entry.end() && id->is_string()) o.uid = *id;
  Json labels =
      entry.contains("Labels") && entry["Labels"].is_object() ? entry["Labels"] : Json::object();
  auto label = [&](const char* key) -> std::string {
    auto it = labels.find(key);
    return it != labels.end() && it->is_string() ? it->get<std::string>() : "";
  };
  const bool managed = label(kManagedLabel) == "true";
  const std::string agent = label(kAgentLabel);
  const bool forThisName = label(kResourceLabel) == std::string(kKind) + "/" + name;
  if (managed && forThisName) {
    if (agent.empty())
      o.legacyMark = true;  // ours only when the state store records it (plugin.hpp)
    else if (!agentId.empty() && agent == agentId)
      o.marked = true;
    else
      o.markedByOther = agent;
  }
  auto st = entry.find("State");
  const std::string state = st != entry.end() && st->is_string() ? st->get<std::string>() : "";
  const std::string observedState =
      state == "running" || state == "restarting" || state == "paused" ? "running" : "stopped";

  Json spec;
  if (managed && forThisName) {
    const std::string text = label(kSpecLabel);
    spec = Json::parse(text, nullptr, false);
    if (spec.is_discarded() || !spec.is_object()) spec = Json();
  }
  if (spec.is_null()) {  // unlabelled, or a broken label: what the list shows
    o.incomplete =
        "a container nodeplane did not create (or whose io.nodeplane.spec label is broken): "
        "Docker's container list shows its image, network and labels, not its command, env, "
        "mounts or GPUs (write its file by hand)";
    spec = Json::object();
    if (auto i = entry.find("Image"); i != entry.end() && i->is_string()) spec["image"] = *i;
    if (auto h = entry.find("HostConfig"); h != entry.end() && h->is_object())
      if (auto nm = h->find("NetworkMode"); nm != h->end() && nm->is_string() && !nm->empty())
        spec["network"] = *nm;
    Json own = Json::object();
    for (const auto& [k, v] : labels.items())
      if (k.rfind("io.nodeplane.", 0) != 0 && v.is_string()) own[k] = v;
    if (!own.empty()) spec["labels"] = own;
  }
  // The GPUs it holds, as its spec label names them (the list does not show DeviceRequests): a
  // step that claims one of them exclusively waits for its delete (plugin.hpp, Claim).
  if (auto g = spec.find("gpus"); g != spec.end()) {
    auto e = spec.find("exclusive");
    const bool exclusive = e != spec.end() && e->is_boolean() && e->get<bool>();
    if (g->is_array()) {
      for (const auto& a : *g)
        if (a.is_string() && host::isPciAddress(a.get<std::string>()))
          o.holds.push_back(
              Claim{.type = "gpu", .id = a.get<std::string>(), .exclusive = exclusive});
    } else if (g->is_string() && g->get<std::string>() == "all") {
      for (const auto& gpu : inventory)
        if (gpu.isNvidia() && gpu.function.driver != "vfio-pci")
          o.holds.push_back(
              Claim{.type = "gpu", .id = gpu.function.address, .exclusive = exclusive});
    }
  }
  spec["state"] = observedState;
  o.spec = std::move(spec);
  return o;
}

std::vector<Error> validateOnHost(const Resource& r, HostServices& services) {
  try {
    auto gpus = services.gpus();
    if (!gpus) {
      if (r.spec.is_object() && r.spec.contains("gpus"))
        return {r.error(ErrorKind::kInvalidInput, "spec.gpus",
                        "cannot read the host's GPU inventory: " + gpus.error().str())};
      return validateContainer(r, {});
    }
    return validateContainer(r, *gpus);
  } catch (const std::exception& e) {
    return {r.error(ErrorKind::kInvalidInput, "", std::string("internal error: ") + e.what())};
  }
}

std::vector<Claim> claimsOnHost(const Resource& r, HostServices& services) {
  try {
    auto gpus = services.gpus();
    if (!gpus) return {};  // validate reports it
    return containerClaims(r, *gpus);
  } catch (...) {
    return {};
  }
}

Json normalizeOnHost(const Json& spec, HostServices& services) {
  try {
    auto gpus = services.gpus();
    return normalizeContainer(spec, gpus ? *gpus : std::vector<host::Gpu>{});
  } catch (...) {
    return spec;
  }
}

}  // namespace nodeplane::docker
