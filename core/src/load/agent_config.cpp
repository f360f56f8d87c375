#include "agent_config.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include "validate.hpp"
#include "yaml_events.hpp"

namespace nodeplane {
namespace {

Error configError(const std::string& file, const YAML::Mark& m, const std::string& field,
                  const std::string& msg) {
  Error e;
  e.kind = ErrorKind::kInvalidInput;
  e.where = {file, m.line + 1, m.column + 1};
  e.field = field;
  e.message = msg;
  return e;
}

// A small tree (a config file), so the node API is fine here.
Json toJson(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map: {
      Json o = Json::object();
      for (const auto& kv : n) o[kv.first.as<std::string>()] = toJson(kv.second);
      return o;
    }
    case YAML::NodeType::Sequence: {
      Json a = Json::array();
      for (const auto& x : n) a.push_back(toJson(x));
      return a;
    }
    case YAML::NodeType::Scalar: {
      const std::string s = n.Scalar();
      if (n.Tag() == "?") {
        bool b;
        long long i;
        if (YAML::convert<bool>::decode(n, b) && (s == "true" || s == "false")) return b;
        if (YAML::convert<long long>::decode(n, i)) return i;
      }
      return s;
    }
    default:
      return nullptr;
  }
}

}  // namespace

Result<AgentConfig> parseAgentConfig(const std::string& text, const std::string& file) {
  // The desired-state reader first, for its limits (alias expansion in bytes, key length,
  // nesting depth) and its duplicate-key check: toJson() below copies every alias.
  yaml::Stream checked = yaml::parseStream(text, file);
  if (!checked.errors.empty()) return std::unexpected(checked.errors.front());
  for (const auto& d : checked.documents) {
    if (!d.errors.empty()) return std::unexpected(d.errors.front());
  }
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    Error err = configError(file, e.mark, "", e.msg);
    return std::unexpected(err);
  }
  AgentConfig cfg;
  if (root.IsNull()) return cfg;
  if (!root.IsMap())
    return std::unexpected(configError(file, root.Mark(), "", "expected a mapping"));
  const yaml::Document* doc = checked.documents.empty() ? nullptr : &checked.documents.front();
  const std::vector<std::string>& known = agentConfigKeys();
  try {
    for (const auto& kv : root) {
      const std::string key = kv.first.as<std::string>();
      const auto& v = kv.second;
      auto bad = [&](const std::string& what) {
        return std::unexpected(configError(file, v.Mark(), key, what));
      };
      if (std::find(known.begin(), known.end(), key) == known.end()) {
        // A plugin's section: a mapping named after the plugin, checked once plugins are loaded
        // (a list is taken too, so that the check says what it should be). A scalar is a
        // misspelt setting.
        if (!v.IsScalar()) {
          const Json* value = doc && doc->value.is_object() && doc->value.contains(key)
                                  ? &doc->value[key]
                                  : nullptr;
          cfg.sections[key] = value ? *value : Json();
          continue;
        }
        std::string list;
        for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
        const std::string close = closestName(key, known);
        Error e = configError(file, kv.first.Mark(), key,
                              "unknown key \"" + key + "\" (known: " + list +
                                  "; a plugin's section is a mapping named after the plugin)");
        if (!close.empty()) e.hint = "did you mean \"" + close + "\"?";
        return std::unexpected(e);
      }
      if (key == "apiVersion" && v.as<std::string>() != kApiVersion)
        return bad("expected " + std::string(kApiVersion) + ", got \"" + v.as<std::string>() +
                   "\"");
      if (key == "kind" && v.as<std::string>() != "AgentConfig")
        return bad("expected AgentConfig, got \"" + v.as<std::string>() + "\"");
      if (key == "hostname") cfg.hostname = v.as<std::string>();
      if (key == "labels") {
        if (!v.IsMap()) return bad("expected a mapping of label: value");
        for (const auto& l : v) cfg.labels[l.first.as<std::string>()] = l.second.as<std::string>();
      }
      // Bounded: the daemon computes with these in milliseconds (a retry delay doubles up to
      // resyncSeconds), where a number of seconds near 2^63 would overflow into a negative delay.
      constexpr long long kYear = 365LL * 24 * 3600;
      auto positive = [&](long long& out, long long max) -> bool {
        long long n = 0;
        if (!YAML::convert<long long>::decode(v, n) || n <= 0 || n > max) return false;
        out = n;
        return true;
      };
      long long n = 0;
      if (key == "resyncSeconds") {
        if (!positive(n, kYear))
          return bad("expected a positive number of seconds, at most " + std::to_string(kYear) +
                     " (a year)");
        cfg.resync = std::chrono::seconds(n);
      }
      if (key == "debounceMilliseconds") {
        if (!positive(n, 3600 * 1000))
          return bad("expected a positive number of milliseconds, at most 3600000 (an hour)");
        cfg.debounce = std::chrono::milliseconds(n);
      }
      if (key == "lockTimeoutSeconds") {
        if (!positive(n, kYear))
          return bad("expected a positive number of seconds, at most " + std::to_string(kYear) +
                     " (a year)");
        cfg.lockTimeout = std::chrono::seconds(n);
      }
      if (key == "allowEmpty") {
        if (!v.IsScalar() || (v.Scalar() != "true" && v.Scalar() != "false"))
          return bad("expected true or false");
        cfg.allowEmpty = v.Scalar() == "true";
      }
      if (key == "stateDir") cfg.stateDir = v.as<std::string>();
      if (key == "runDir") {
        if (!v.IsScalar() || v.Scalar().empty() || v.Scalar().front() != '/')
          return bad("expected an absolute path (the default is /run/nodeplane)");
        cfg.runDir = v.Scalar();
      }
      if (key == "pluginDir") cfg.pluginDir = v.as<std::string>();
      if (key == "systemd") {
        // systemd: {bus: system | user | unix:path=…}: the manager the plugins start units on.
        if (!v.IsMap()) return bad("expected a mapping: {bus: system | user | unix:path=...}");
        for (const auto& s : v) {
          const std::string sub = s.first.as<std::string>();
          if (sub != "bus")
            return std::unexpected(configError(file, s.first.Mark(), "systemd." + sub,
                                               "unknown field \"" + sub + "\" (known: bus)"));
          const std::string bus = s.second.IsScalar() ? s.second.Scalar() : "";
          if (bus != "system" && bus != "user" && !bus.starts_with("unix:"))
            return std::unexpected(configError(
                file, s.second.Mark(), "systemd.bus",
                "expected system, user or a D-Bus address (unix:path=...), got \"" + bus + "\""));
          cfg.systemdBus = bus;
        }
      }
    }
    cfg.raw = toJson(root);
    if (doc) cfg.locations = doc->locations;
    cfg.where = {file, 1, 0};
  } catch (const YAML::Exception& e) {
    return std::unexpected(configError(file, e.mark, "", e.msg));
  }
  return cfg;
}

const std::vector<std::string>& agentConfigKeys() {
  static const std::vector<std::string> keys = {"apiVersion",         "kind",
                                                "hostname",           "labels",
                                                "resyncSeconds",      "debounceMilliseconds",
                                                "lockTimeoutSeconds", "allowEmpty",
                                                "stateDir",           "runDir",
                                                "pluginDir",          "systemd"};
  return keys;
}

Result<AgentConfig> loadAgentConfig(const std::filesystem::path& path, bool explicitPath) {
  std::ifstream in(path);
  if (!in) {
    if (!explicitPath && !std::filesystem::exists(path)) return AgentConfig{};
    return fail(ErrorKind::kInvalidInput, "cannot read agent config " + path.string());
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return parseAgentConfig(ss.str(), path.string());
}

}  // namespace nodeplane
