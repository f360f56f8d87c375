// Golden plan cases: tests/fixtures/golden/<case>/{desired.yaml, observed.json, owned.txt?,
// node.json?, plan.txt, plan.json}. Desired state goes through the real net plugin's schema,
// validation and normalisation; the observation is read from the file (normalised the same way),
// so the whole diff/plan path is checked without a kernel. node.json ({"hostname", "labels"}) is
// the node the case plans for (metadata.nodes / nodeSelector select against it). plan.txt is what
// `diff` prints, plan.json what `--output json diff` prints (its fingerprint, a hash of the live
// host, left empty). To add a case, add a directory with the inputs and run the test with
// NODEPLANE_GOLDEN_UPDATE=1 to write both plans; then read them.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "engine.hpp"
#include "support/files.hpp"

namespace nodeplane {
namespace {

namespace fs = std::filesystem;

const fs::path kGolden = fs::path(NODEPLANE_SOURCE_DIR) / "tests/fixtures/golden";

using ::nodeplane::testing::slurp;
using ::nodeplane::testing::TempDir;
using ::nodeplane::testing::writeFile;

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
  HostContext node;
  if (fs::exists(dir / "node.json")) {
    Json n = Json::parse(slurp(dir / "node.json"));
    node.hostname = n.value("hostname", "");
    node.labels = n.value("labels", std::map<std::string, std::string>{});
  }
  Engine engine(*plugins, node);

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

  TempDir stateDir;
  auto store = state::Store::open(stateDir.path());
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
  const std::string text = renderPlanText(plan);
  const std::string json = planToJson(plan).dump(2) + "\n";
  if (const char* update = std::getenv("NODEPLANE_GOLDEN_UPDATE"); update && *update == '1') {
    writeFile(dir / "plan.txt", text);
    writeFile(dir / "plan.json", json);
  }
  ASSERT_TRUE(fs::exists(dir / "plan.txt")) << dir / "plan.txt";
  ASSERT_TRUE(fs::exists(dir / "plan.json")) << dir / "plan.json";
  EXPECT_EQ(text, slurp(dir / "plan.txt")) << "case " << GetParam();
  // Compared as JSON, shown indented: key order and spacing are not the contract.
  Json expected = Json::parse(slurp(dir / "plan.json"), nullptr, false);
  ASSERT_FALSE(expected.is_discarded()) << dir / "plan.json"
                                        << " is not JSON";
  EXPECT_EQ(json, expected.dump(2) + "\n") << "case " << GetParam();
}

INSTANTIATE_TEST_SUITE_P(Cases, GoldenPlan, ::testing::ValuesIn(cases()), [](const auto& info) {
  std::string n = info.param;
  std::replace(n.begin(), n.end(), '-', '_');
  return n;
});

}  // namespace
}  // namespace nodeplane
