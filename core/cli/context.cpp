#include "context.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "nodeplane/text.hpp"
#include "plugin_config.hpp"

namespace nodeplane::cli {

Result<Context> Context::make(const GlobalOptions& g) {
  Context ctx;
  ctx.json_ = g.output == "json";
  const bool explicitConfig = !g.config.empty();
  auto cfg = loadAgentConfig(explicitConfig ? g.config : kDefaultConfigPath, explicitConfig);
  if (!cfg) return std::unexpected(cfg.error());
  ctx.config_ = std::move(*cfg);

  ctx.stateDir_ = !g.stateDir.empty()    ? std::filesystem::path(g.stateDir)
                  : ctx.config_.stateDir ? *ctx.config_.stateDir
                                         : std::filesystem::path("/var/lib/nodeplane");
  ctx.pluginDir_ = !g.pluginDir.empty()    ? std::filesystem::path(g.pluginDir)
                   : ctx.config_.pluginDir ? *ctx.config_.pluginDir
                                           : defaultPluginDir();
  if (!g.sysfsRoot.empty()) ctx.host_.sysfsRoot = g.sysfsRoot;
  if (!g.procRoot.empty()) ctx.host_.procRoot = g.procRoot;
  if (!g.devRoot.empty()) ctx.host_.devRoot = g.devRoot;
  ctx.host_.stateDir = ctx.stateDir_;
  if (ctx.config_.runDir) ctx.host_.runDir = *ctx.config_.runDir;
  if (ctx.config_.systemdBus) ctx.host_.systemdBus = *ctx.config_.systemdBus;
  ctx.host_.labels = ctx.config_.labels;
  ctx.host_.config = ctx.config_.raw;
  ctx.host_.hostname = ctx.config_.hostname;
  if (ctx.host_.hostname.empty()) {
    char name[256] = {};
    if (::gethostname(name, sizeof name - 1) == 0) ctx.host_.hostname = name;
  }
  return ctx;
}

std::expected<PluginHost*, std::vector<Error>> Context::plugins() {
  if (!plugins_) {
    auto host = PluginHost::load(pluginDir_, host_);
    if (!host) return std::unexpected(std::vector<Error>{host.error()});
    for (const auto& r : host->refused())
      spdlog::warn("plugin {} refused: {}", r.file.string(), r.reason);
    plugins_.emplace(std::move(*host));
    pluginErrors_ = configurePlugins(*plugins_, config_);
  }
  if (!pluginErrors_.empty()) return std::unexpected(pluginErrors_);
  return &*plugins_;
}

std::expected<Engine*, std::vector<Error>> Context::engine() {
  if (!engine_) {
    auto p = plugins();
    if (!p) return std::unexpected(p.error());
    engine_.emplace(**p, host_);
  }
  return &*engine_;
}

void printJson(const Json& j) { std::cout << jsonText(j, 2) << "\n"; }

int reportErrors(const Context& ctx, const std::vector<Error>& errors, const std::string& what) {
  if (ctx.json()) {
    Json arr = Json::array();
    for (const auto& e : errors) arr.push_back(errorToJson(e));
    printJson({{"ok", false}, {"message", what}, {"errors", arr}});
  } else {
    for (const auto& e : errors) std::cerr << "error: " << printable(e.str()) << "\n";
    if (!what.empty()) std::cerr << printable(what) << "\n";
  }
  return kError;
}

}  // namespace nodeplane::cli
