// Golden plan cases: tests/fixtures/golden/<case>/{desired.yaml, observed.json, owned.txt?,
// plan.txt}. Desired state goes through the real net plugin's schema, validation and
// normalisation; the observation is read from the file (normalised the same way), so the whole
// diff/plan path is checked without a kernel. To add a case, add a directory.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine.hpp"

namespace nodeplane {
namespace {

namespace fs = std::filesystem;

const fs::path kGolden = fs::path(NODEPLANE_SOURCE_DIR) / "tests/fixtures/golden";

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> cases() {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(kGolden)) out.push_back(e.path().filename());
  std::sort(out.begin(), out.end());
  return out;
}

class GoldenPlan : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenPlan, MatchesTheExpectedPlan) {
  const fs::path dir = kGolden / GetParam();
  auto plugins = PluginHost::load(NODEPLANE_BUILD_PLUGIN_DIR, {});
  ASSERT_TRUE(plugins) << plugins.error().str();
  Engine engine(*plugins, {});

  Desired desired = engine.prepare(parseYaml(slurp(dir / "desired.yaml"), "desired.yaml"));
  ASSERT_TRUE(desired.ok()) << desired.errors[0].str();

  Observation obs;
  for (const auto& o : Json::parse(slurp(dir / "observed.json"))) {
    // An entry of kind "" is a name taken by an interface of no managed kind (lo, a veth).
    if (o.at("kind") == "") {
      obs.taken["net"][o.at("name")] = o.at("spec").at("type");
      continue;
    }
    ObservedObject object{{o.at("kind"), o.at("name")}, o.at("spec"), o.value("marked", false)};
    auto n = plugins->forKind(object.id.kind)->normalize(object.id.kind, object.spec);
    ASSERT_TRUE(n);
    object.spec = *n;
    obs.kinds.insert(object.id.kind);
    obs.objects[object.id] = object;
  }
  for (const auto& k : plugins->kindNames()) obs.kinds.insert(k);

  char tmpl[] = "/tmp/nodeplane-golden-XXXXXX";
  const fs::path stateDir = ::mkdtemp(tmpl);
  auto store = state::Store::open(stateDir);
  ASSERT_TRUE(store);
  std::istringstream owned(fs::exists(dir / "owned.txt") ? slurp(dir / "owned.txt") : "");
  for (std::string line; std::getline(owned, line);) {
    auto slash = line.find('/');
    if (slash == std::string::npos) continue;
    state::OwnedObject o;
    o.id = {line.substr(0, slash), line.substr(slash + 1)};
    o.plugin = "net";
    store->setOwned(o);
  }
  Plan plan = engine.plan(desired, obs, *store, /*prune=*/true);
  fs::remove_all(stateDir);
  EXPECT_EQ(renderPlanText(plan), slurp(dir / "plan.txt")) << "case " << GetParam();
}

INSTANTIATE_TEST_SUITE_P(Cases, GoldenPlan, ::testing::ValuesIn(cases()), [](const auto& info) {
  std::string n = info.param;
  std::replace(n.begin(), n.end(), '-', '_');
  return n;
});

}  // namespace
}  // namespace nodeplane
