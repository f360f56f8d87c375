#include "plugin_config.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "validate.hpp"

namespace nodeplane {
namespace {

Error sectionError(const AgentConfig& config, const std::string& field, std::string message,
                   std::string hint = {}) {
  Error e;
  e.kind = ErrorKind::kInvalidInput;
  auto it = config.locations.find(field);
  e.where = it != config.locations.end() ? it->second : config.where;
  e.field = field;
  e.message = std::move(message);
  e.hint = std::move(hint);
  return e;
}

}  // namespace

std::vector<Error> configurePlugins(PluginHost& plugins, const AgentConfig& config) {
  std::vector<Error> errors;
  std::vector<std::string> names;
  for (const auto& p : plugins.plugins()) {
    names.push_back(p->name());
    auto it = config.sections.find(p->name());
    Json section =
        it == config.sections.end() || it->second.is_null() ? Json::object() : it->second;
    auto schema = p->configSchema();
    if (!schema) {
      errors.push_back(schema.error());
      continue;
    }
    std::vector<Error> found;
    if (schema->empty() && section.is_object() && !section.empty()) {
      for (const auto& [key, value] : section.items())
        found.push_back(sectionError(
            config, p->name() + "." + key,
            "unknown field \"" + key + "\" (plugin " + p->name() + " takes no settings)"));
    } else {
      found = validateSection(
          section, *schema, p->name(), config.locations,
          it == config.sections.end() ? config.where : sectionError(config, p->name(), "").where);
    }
    p->services().setConfig(found.empty() ? std::move(section) : Json::object());
    errors.insert(errors.end(), found.begin(), found.end());
    // Further sections the plugin reads (the qemu plugin's `vfio:`), checked the same way.
    auto more = p->moreConfigSections();
    if (!more) {
      errors.push_back(more.error());
      continue;
    }
    for (const auto& [name, fields] : *more) {
      names.push_back(name);
      auto at = config.sections.find(name);
      if (at == config.sections.end() || at->second.is_null()) continue;
      auto bad = validateSection(at->second, fields, name, config.locations,
                                 sectionError(config, name, "").where);
      errors.insert(errors.end(), bad.begin(), bad.end());
    }
  }
  for (const auto& [key, value] : config.sections) {
    if (std::find(names.begin(), names.end(), key) != names.end()) continue;
    const auto& refused = plugins.refused();
    if (std::any_of(refused.begin(), refused.end(), [&](const RefusedPlugin& r) {
          return r.file.filename() == "libnodeplane-" + key + ".so";
        })) {
      spdlog::warn("agent config section \"{}\" is not used: its plugin was refused", key);
      continue;
    }
    std::string loaded;
    for (const auto& n : names) loaded += (loaded.empty() ? "" : ", ") + n;
    std::vector<std::string> candidates = names;
    const auto& own = agentConfigKeys();
    candidates.insert(candidates.end(), own.begin(), own.end());
    const std::string close = closestName(key, candidates);
    errors.push_back(sectionError(config, key,
                                  "no loaded plugin is named \"" + key +
                                      "\" (a mapping at the top of the agent config is " +
                                      "the section of the plugin of that name; loaded: " +
                                      (loaded.empty() ? std::string("none") : loaded) + ")",
                                  close.empty() ? "remove the section or install the plugin"
                                                : "did you mean \"" + close + "\"?"));
  }
  std::stable_sort(errors.begin(), errors.end(), [](const Error& a, const Error& b) {
    return std::pair(a.where.line, a.where.column) < std::pair(b.where.line, b.where.column);
  });
  return errors;
}

}  // namespace nodeplane
