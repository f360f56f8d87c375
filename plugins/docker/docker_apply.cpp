// DockerPlugin::apply: create (pull when needed, create, start), update (state alone: start or
// stop; anything else, and an adoption, recreates: Docker cannot change a container's labels),
// replace, delete and release. Every step on an existing container first inspects it by the uid
// the plan was made against and acts only when it is still that container and this agent's (or,
// for an adoption, nobody's).
#include <algorithm>
#include <cctype>
#include <chrono>
#include <exception>
#include <map>
#include <optional>

#include "container_spec.hpp"
#include "docker_plugin.hpp"
#include "engine.hpp"

namespace nodeplane::docker {
namespace {

constexpr const char* kDeviceDriverError = "could not select device driver";
constexpr const char* kToolkitHint =
    "install the NVIDIA Container Toolkit (nvidia-container-runtime-hook) on the host and restart "
    "dockerd";

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string shortId(const std::string& id) { return id.substr(0, 12); }

// Docker's own words from an error answer ({"message": …}), else the body as it came.
std::string dockerMessage(const EngineResponse& r) {
  Json j = Json::parse(r.body, nullptr, false);
  if (j.is_object() && j.contains("message") && j["message"].is_string())
    return j["message"].get<std::string>();
  std::string body = r.body;
  while (!body.empty() && std::isspace(static_cast<unsigned char>(body.back()))) body.pop_back();
  return body.empty() ? "HTTP " + std::to_string(r.status) : body;
}

// An answer that is not 2xx as an error: 409 a conflict, 5xx retryable, any other 4xx invalid.
// Docker's "could not select device driver" (no NVIDIA Container Toolkit) is terminal, with
// what to install.
Error answerError(const EngineResponse& r, const std::string& what) {
  Error e;
  const std::string msg = dockerMessage(r);
  e.message = what + ": " + msg;
  e.kind = r.status == 409   ? ErrorKind::kConflict
           : r.status >= 500 ? ErrorKind::kRetryable
                             : ErrorKind::kInvalidInput;
  if (msg.find(kDeviceDriverError) != std::string::npos) {
    e.kind = ErrorKind::kTerminal;
    e.hint = kToolkitHint;
  }
  return e;
}

Error withContext(Error e, const std::string& what) {
  e.message = what + ": " + e.message;
  return e;
}

bool is2xx(long status) { return status >= 200 && status < 300; }

std::string labelOf(const Json& labels, const char* key) {
  if (!labels.is_object()) return {};
  auto it = labels.find(key);
  return it != labels.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// fromImage and tag of POST /images/create for a reference: "busybox" -> busybox, latest;
// "reg:5000/a/b:1" -> reg:5000/a/b, 1; "a@sha256:…" -> a, sha256:….
std::pair<std::string, std::string> splitReference(const std::string& ref) {
  if (auto at = ref.find('@'); at != std::string::npos)
    return {ref.substr(0, at), ref.substr(at + 1)};
  const auto slash = ref.rfind('/');
  const auto colon = ref.rfind(':');
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash))
    return {ref.substr(0, colon), ref.substr(colon + 1)};
  return {ref, "latest"};
}

// A failed pull: terminal when the registry said the image is not there or not ours to pull,
// retryable otherwise (network trouble, a registry that is down).
Error pullError(Error e, const std::string& image) {
  const std::string m = lower(e.message);
  const bool final =
      m.find("not found") != std::string::npos || m.find("denied") != std::string::npos ||
      m.find("manifest unknown") != std::string::npos ||
      m.find("does not exist") != std::string::npos || m.find("unauthorized") != std::string::npos;
  e.kind = final ? ErrorKind::kTerminal : ErrorKind::kRetryable;
  e.message = "pulling image " + image + ": " + e.message;
  if (!final && e.hint.empty()) e.hint = "a later pass pulls again";
  return e;
}

// Who a container belongs to, from its labels.
struct Ownership {
  bool ours = false;    // managed, this agent's id, labelled for this resource
  bool legacy = false;  // managed, labelled for this resource, no agent id (an older nodeplane)
  bool other = false;   // managed by another agent id
  bool labelled = false;
  std::string why;  // why it is not ours
};

Ownership ownershipOf(const Json& container, const std::string& agent, const ResourceId& id) {
  Ownership o;
  const Json config = container.value("Config", Json::object());
  const Json labels = config.is_object() ? config.value("Labels", Json::object()) : Json::object();
  const bool managed = labelOf(labels, kManagedLabel) == "true";
  const std::string who = labelOf(labels, kAgentLabel);
  const std::string res = labelOf(labels, kResourceLabel);
  o.labelled = managed;
  if (!managed) {
    o.why = "it carries no " + std::string(kManagedLabel) + "=true label (not made by nodeplane)";
  } else if (!who.empty() && who != agent) {
    o.other = true;
    o.why = "it carries another nodeplane agent's id (" + who + ")";
  } else if (res != id.str()) {
    o.why = "it is labelled for " + (res.empty() ? std::string("no resource") : res) + ", not " +
            id.str();
  } else if (who.empty()) {
    o.legacy = true;
  } else {
    o.ours = true;
  }
  return o;
}

}  // namespace

Outcome DockerPlugin::apply(const Change& change, ApplyContext& context) {
  const std::string what = std::string(toString(change.action)) + " " + change.id.str();
  try {
    return Outcome::from(applyNow(change, context));
  } catch (const std::exception& e) {
    return Outcome::failed(Error{ErrorKind::kTerminal, what + ": internal error: " + e.what()});
  } catch (...) {
    return Outcome::failed(Error{ErrorKind::kTerminal, what + ": internal error"});
  }
}

Result<void> DockerPlugin::applyNow(const Change& change, ApplyContext& context) {
  const ResourceId& id = change.id;
  const std::string action = toString(change.action);
  const std::string what = action + " " + id.str();
  if (id.kind != kKind)
    return fail(ErrorKind::kTerminal, "the docker plugin does not handle kind " + id.kind);
  if (!engine_)
    return fail(ErrorKind::kTerminal,
                "the docker plugin was not started (start() connects to dockerd)");
  const std::string agent = services_.agentId();
  if (agent.empty())
    return fail(ErrorKind::kTerminal, what +
                                          " refused: no agent id (the state store was not "
                                          "opened), so the container could not carry its "
                                          "labels");
  auto normalized = [&] {
    auto gpus = services_.gpus();
    return normalizeContainer(change.desired, gpus ? *gpus : std::vector<host::Gpu>{});
  };
  if (change.action == Action::kCreate) return createContainer(change, normalized(), context);

  // The container the plan was made against, as it is now.
  auto inspect = [&](const std::string& ref) -> Result<std::optional<Json>> {
    auto r = engine_->request("GET", "/containers/" + urlEncode(ref) + "/json");
    if (!r) return std::unexpected(withContext(r.error(), what + ": inspecting " + ref));
    if (r->status == 404) return std::optional<Json>();
    if (!is2xx(r->status)) return std::unexpected(answerError(*r, what + ": inspecting " + ref));
    Json j = Json::parse(r->body, nullptr, false);
    if (!j.is_object())
      return fail(ErrorKind::kRetryable, what + ": inspecting " + ref + ": not a JSON object");
    return std::optional<Json>(std::move(j));
  };
  auto current = inspect(change.uid.empty() ? id.name : change.uid);
  if (!current) return std::unexpected(current.error());
  if (!*current) {  // gone, or re-created under the same name since the plan
    auto byName = inspect(id.name);
    if (!byName) return std::unexpected(byName.error());
    if (*byName) {
      return fail(ErrorKind::kConflict,
                  what + " refused: the container named " + id.name +
                      " is not the one the plan was made against (id " + shortId(change.uid) +
                      " then, " + shortId((**byName).value("Id", "")) +
                      " now: re-created since); not touched",
                  {}, "run the apply again to see the host as it is now");
    }
    switch (change.action) {
      case Action::kDelete:
      case Action::kRelease:
        return setReleased(change.uid, false);  // nothing left to do
      case Action::kReplace:
        return createContainer(change, normalized(), context);
      default:
        return fail(ErrorKind::kRetryable, what + ": the container no longer exists", {},
                    "the next pass creates it");
    }
  }
  const Json& c = **current;
  const std::string uid = c.value("Id", "");
  std::string name = c.value("Name", "");
  if (name.starts_with('/')) name.erase(0, 1);
  if (name != id.name || (!change.uid.empty() && uid != change.uid))
    return fail(ErrorKind::kConflict,
                what + " refused: container " + shortId(change.uid) + " is now named " + name +
                    ", not " + id.name + " (renamed since the plan); not touched",
                {}, "run the apply again to see the host as it is now");
  const Ownership own = ownershipOf(c, agent, id);
  const bool released = isReleased(uid);
  const bool mine = (own.ours || own.legacy) && !released;
  auto refuse = [&](const std::string& why) {
    return fail(ErrorKind::kConflict, what + " refused: container " + id.name + " (" +
                                          shortId(uid) + ") " + why + "; not touched");
  };
  if (change.adopt) {
    // Anyone's but another agent's, or one labelled for another resource of ours.
    if (own.other) return refuse("is not this agent's: " + own.why);
    if (own.labelled && !own.ours && !own.legacy) return refuse("is not this agent's: " + own.why);
  } else if (!mine) {
    if (released && (own.ours || own.legacy) && change.action == Action::kRelease) return {};
    return refuse(released ? std::string("was released by this agent (deletionPolicy Orphan)")
                           : "is not this agent's: " + own.why);
  }
  const bool running =
      c.contains("State") && c["State"].is_object() && c["State"].value("Running", false);

  switch (change.action) {
    case Action::kDelete:
      return removeContainer(uid, what);
    case Action::kRelease:
      return setReleased(uid, true);
    case Action::kUpdate: {
      const Json desired = normalized();
      const bool onlyState = std::all_of(change.fields.begin(), change.fields.end(),
                                         [](const FieldChange& f) { return f.path == "state"; });
      bool inPlace = !change.adopt && onlyState;
      // A container this agent released, adopted back unchanged: it keeps its labels, so it is
      // ours again once it is off the list.
      if (change.adopt && released && own.ours &&
          labelOf(c.value("Config", Json::object()).value("Labels", Json::object()),
                  kSpecHashLabel) == specHash(desired)) {
        if (auto r = setReleased(uid, false); !r) return r;
        inPlace = true;
      }
      if (!inPlace) break;  // recreated below
      const bool wantRunning = desired.value("state", "running") == "running";
      if (wantRunning && !running) return startContainer(uid, what);
      if (!wantRunning && running) return stopContainer(uid, what);
      return {};
    }
    default:
      break;
  }
  // Replace, or an update that Docker cannot make in place: the image first (a failed pull
  // leaves the old container running), then the old container goes and the new one is made.
  const Json desired = normalized();
  if (auto r =
          ensureImage(desired.value("image", ""), desired.value("pull", "IfNotPresent"), context);
      !r)
    return r;
  context.progress("removing container " + id.name + " (" + shortId(uid) + ") to recreate it");
  if (auto r = removeContainer(uid, what); !r) return r;
  if (released)
    if (auto r = setReleased(uid, false); !r) return r;
  Json again = desired;
  again["pull"] = "Never";  // just made sure it is there
  return createContainer(change, again, context);
}

Result<void> DockerPlugin::createContainer(const Change& change, const Json& desired,
                                           ApplyContext& context) {
  const std::string& name = change.id.name;
  const std::string what = std::string(toString(change.action)) + " " + change.id.str();
  const std::string image = desired.value("image", "");
  if (auto r = ensureImage(image, desired.value("pull", "IfNotPresent"), context); !r) return r;
  auto gpus = services_.gpus();
  if (!gpus && desired.contains("gpus"))
    return std::unexpected(withContext(gpus.error(), what + ": reading the GPU inventory"));
  auto body = createBody(name, desired, gpus ? *gpus : std::vector<host::Gpu>{},
                         services_.context().sysfsRoot, services_.agentId());
  if (!body) return std::unexpected(withContext(body.error(), what));
  auto r = engine_->request("POST", "/containers/create?name=" + urlEncode(name), &*body);
  if (!r) return std::unexpected(withContext(r.error(), what + ": creating the container"));
  if (!is2xx(r->status)) return std::unexpected(answerError(*r, what + ": creating the container"));
  Json made = Json::parse(r->body, nullptr, false);
  const std::string uid = made.is_object() ? made.value("Id", "") : "";
  if (uid.empty())
    return fail(ErrorKind::kRetryable, what + ": dockerd answered the create without an Id");
  context.progress("created container " + name + " (" + shortId(uid) + ")");
  // A start that fails leaves the container (it carries the labels): the next pass starts it
  // again, or replaces it.
  if (desired.value("state", "running") == "running") return startContainer(uid, what);
  return {};
}

Result<void> DockerPlugin::ensureImage(const std::string& image, const std::string& pull,
                                       ApplyContext& context) {
  auto have = engine_->request("GET", "/images/" + image + "/json");
  if (!have) return std::unexpected(withContext(have.error(), "looking up image " + image));
  if (have->status != 404 && !is2xx(have->status))
    return std::unexpected(answerError(*have, "looking up image " + image));
  const bool present = is2xx(have->status);
  if (pull == "Never") {
    if (present) return {};
    return fail(ErrorKind::kTerminal, "image " + image + " is not present and pull is Never", {},
                "import or pull it on the host, or set pull: IfNotPresent");
  }
  if (present && pull != "Always") return {};

  const auto [from, tag] = splitReference(image);
  context.progress("pulling image " + image);
  std::map<std::string, std::string> lastStatus;  // layer id -> its last status: a line per change
  std::stop_token stop = context.stopToken();
  auto r = engine_->stream(
      "POST", "/images/create?fromImage=" + urlEncode(from) + "&tag=" + urlEncode(tag),
      [&](const Json& m) {
        if (stop.stop_requested()) return false;
        if (!m.is_object() || !m.contains("status") || !m["status"].is_string()) return true;
        const std::string layer = m.value("id", "");
        const std::string status = m["status"].get<std::string>();
        auto [it, fresh] = lastStatus.try_emplace(layer, status);
        if (!fresh && it->second == status) return true;
        it->second = status;
        context.progress("pulling " + image + ": " + (layer.empty() ? "" : layer + ": ") + status);
        return true;
      });  // no overall limit: a large pull takes long; only a silent stream fails
  if (stop.stop_requested())
    return fail(ErrorKind::kRetryable, "pulling image " + image +
                                           ": stopped (nodeplane is "
                                           "stopping)");
  if (!r) return std::unexpected(pullError(r.error(), image));
  return {};
}

Result<void> DockerPlugin::startContainer(const std::string& uid, const std::string& what) {
  auto r = engine_->request("POST", "/containers/" + uid + "/start");
  if (!r) return std::unexpected(withContext(r.error(), what + ": starting the container"));
  if (is2xx(r->status) || r->status == 304) return {};  // 304: running already
  return std::unexpected(answerError(*r, what + ": starting the container"));
}

Result<void> DockerPlugin::stopContainer(const std::string& uid, const std::string& what) {
  auto r = engine_->request("POST", "/containers/" + uid + "/stop?t=10", nullptr,
                            std::chrono::seconds(40));
  if (!r) return std::unexpected(withContext(r.error(), what + ": stopping the container"));
  if (is2xx(r->status) || r->status == 304) return {};  // 304: stopped already
  return std::unexpected(answerError(*r, what + ": stopping the container"));
}

Result<void> DockerPlugin::removeContainer(const std::string& uid, const std::string& what) {
  // force: a running container goes too; v=0: its volumes never do.
  auto r = engine_->request("DELETE", "/containers/" + uid + "?force=1&v=0", nullptr,
                            std::chrono::seconds(40));
  if (!r) return std::unexpected(withContext(r.error(), what + ": removing the container"));
  if (is2xx(r->status) || r->status == 404) return {};  // 404: gone already
  return std::unexpected(answerError(*r, what + ": removing the container"));
}

}  // namespace nodeplane::docker
