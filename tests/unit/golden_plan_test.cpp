// Golden plan cases: tests/fixtures/golden/<case>/{desired.yaml, observed.json, owned.txt?,
// node.json?, plan.txt, plan.json}. Desired state goes through the real net plugin's schema,
// validation and normalisation; the observation is read from the file (normalised the same way),
// so the whole diff/plan path is checked without a kernel. node.json ({"hostname", "labels"}) is
// the node the case plans for (metadata.nodes / nodeSelector select against it; "sysfs" names the
// tests/fixtures/sysfs tree its inventory is read from). widget.json loads the widget test plugin
// too, with that config; observed objects may list what they `holds`, and owned.txt lines may
// add `owner=Kind/name` and `dependsOn=Kind/a,Kind/b` (what the state store recorded). plan.txt is
// what `diff` prints, plan.json what `--output json diff` prints (its fingerprint, a hash of the
// live host, left empty). To add a case, add a directory with the inputs and run the test with
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
using ::nodeplane::testing::sysfsFixture;
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
  HostContext node;
  if (fs::exists(dir / "node.json")) {
    Json n = Json::parse(slurp(dir / "node.json"));
    node.hostname = n.value("hostname", "");
    node.labels = n.value("labels", std::map<std::string, std::string>{});
    if (n.contains("sysfs")) node.sysfsRoot = sysfsFixture(n["sysfs"]);
  }
  const bool widgets = fs::exists(dir / "widget.json");
  if (widgets) node.config["widget"] = Json::parse(slurp(dir / "widget.json"));
  auto plugins = PluginHost::load(NODEPLANE_BUILD_PLUGIN_DIR, node);
  ASSERT_TRUE(plugins) << plugins.error().str();
  if (widgets) {
    auto ok = plugins->loadOne(
        fs::path(NODEPLANE_TEST_PLUGIN_DIR) / "widget" / "libnodeplane-widget.so", node);
    ASSERT_TRUE(ok) << ok.error().str();
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
    for (const auto& h : o.value("holds", Json::array()))
      object.holds.push_back({h.at("type"), h.at("id"), h.value("exclusive", true)});
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
  // "Kind/name [owner=Kind/name] [dependsOn=Kind/name,Kind/name]"
  auto idOf = [](const std::string& s) {
    auto slash = s.find('/');
    return ResourceId{s.substr(0, slash), s.substr(slash + 1)};
  };
  for (std::string line; std::getline(owned, line);) {
    std::istringstream words(line);
    std::string id;
    if (!(words >> id) || id.find('/') == std::string::npos) continue;
    state::OwnedObject o;
    o.id = idOf(id);
    auto* p = plugins->forKind(o.id.kind);
    o.plugin = p ? p->name() : "net";
    for (std::string w; words >> w;) {
      if (w.starts_with("owner=")) o.owner = idOf(w.substr(6));
      if (w.starts_with("dependsOn=")) {
        std::istringstream list(w.substr(10));
        for (std::string d; std::getline(list, d, ',');) o.dependsOn.push_back(idOf(d));
      }
    }
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
