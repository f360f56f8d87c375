// The base of the engine's unit tests: an Engine over the widget fixture plugin
// (tests/fixtures/plugins/widget.cpp), loaded afresh for each configuration.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <optional>
#include <string>

#include "engine.hpp"

namespace nodeplane {

class WidgetEngineTest : public ::testing::Test {
 protected:
  // A fresh plugin host and engine with the widget plugin; `ctx.config["widget"]` is its section.
  Engine& loadWidget(const HostContext& ctx) {
    engine_.reset();
    host_.emplace();
    auto ok = host_->loadOne(
        std::filesystem::path(NODEPLANE_TEST_PLUGIN_DIR) / "widget" / "libnodeplane-widget.so",
        ctx);
    EXPECT_TRUE(ok) << ok.error().str();
    engine_.emplace(*host_, ctx);
    return *engine_;
  }

  Desired desired(const std::string& yaml) {
    return engine_->prepare(parseYaml(yaml, "desired.yaml"));
  }

  static state::Store openStore(const std::filesystem::path& dir) {
    auto s = state::Store::open(dir);
    EXPECT_TRUE(s) << s.error().str();
    return std::move(*s);
  }

  std::optional<PluginHost> host_;  // declared first: the engine goes before the plugins
  std::optional<Engine> engine_;
};

}  // namespace nodeplane
