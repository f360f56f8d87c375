// Load + validate + diff + plan of 10 000 resources (5000 Bridges + 5000 Vxlans, each Vxlan on
// its own Bridge), measured two ways:
//   BM_ColdLoadPlan:  parseYaml (one in-memory text) -> Engine::prepare -> Engine::plan against
//                     an empty observation (everything is a create). Goal < 600 ms.
//   BM_DaemonNoopPass: what core/src/daemon.cpp does: SourceCache::loadIfChanged of 100 unchanged
//   files x
//                     100 docs in a temp dir (the kept desired state is reused as no file
//                     changed) -> plan against an observation equal to desired, everything owned
//                     (the daemon's "nothing changed" pass). Goal < 50 ms.
// plus the phases of the no-op pass on their own, and parseYaml throughput in MB/s.
//
// The net plugin is loaded from NODEPLANE_PLUGIN_DIR, else from the build tree's plugins/.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine.hpp"
#include "loader.hpp"
#include "plan.hpp"
#include "plugin_host.hpp"
#include "store.hpp"

namespace fs = std::filesystem;
using namespace nodeplane;

namespace {

constexpr int kPairs = 5000;  // 5000 Bridges + 5000 Vxlans = 10 000 resources
constexpr int kFiles = 100;   // daemon pass: 100 files of 100 documents

// Documents for pair i: a Bridge with mtu, an address, up; a Vxlan on it with vni, local,
// remote, dstPort, mtu, up.
void appendPair(std::string& out, int i) {
  char buf[640];
  int n = std::snprintf(buf, sizeof buf,
                        "---\n"
                        "apiVersion: nodeplane.io/v1\n"
                        "kind: Bridge\n"
                        "metadata:\n"
                        "  name: br%d\n"
                        "spec:\n"
                        "  mtu: 1450\n"
                        "  addresses: [\"10.%d.%d.1/24\", \"fd00:%x::1/64\"]\n"
                        "  up: true\n"
                        "---\n"
                        "apiVersion: nodeplane.io/v1\n"
                        "kind: Vxlan\n"
                        "metadata:\n"
                        "  name: vx%d\n"
                        "spec:\n"
                        "  vni: %d\n"
                        "  local: 10.255.0.1\n"
                        "  remote: 10.255.%d.%d\n"
                        "  dstPort: 4789\n"
                        "  learning: false\n"
                        "  mtu: 1400\n"
                        "  bridge: br%d\n"
                        "  up: true\n",
                        i, 100 + i / 256, i % 256, i + 1, i, 1000 + i, 1 + i / 250, 1 + i % 250, i);
  out.append(buf, static_cast<std::size_t>(n));
}

std::string allDocs() {
  std::string s;
  s.reserve(kPairs * 520);
  for (int i = 0; i < kPairs; ++i) appendPair(s, i);
  return s;
}

fs::path pluginDir() {
  if (const char* d = std::getenv("NODEPLANE_PLUGIN_DIR")) return d;
  return NODEPLANE_BENCH_PLUGIN_DIR;
}

// One plugin host + engine for the whole run (the net plugin opens a netlink socket; that works
// unprivileged).
struct World {
  PluginHost plugins;
  Engine engine;
  fs::path tmp;  // desired files + a state directory, removed at exit

  explicit World(PluginHost p) : plugins(std::move(p)), engine(plugins, HostContext{}) {
    char tmpl[] = "/tmp/nodeplane-bench-XXXXXX";
    if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    tmp = tmpl;
    fs::create_directory(tmp / "desired");
    int pair = 0;
    for (int f = 0; f < kFiles; ++f) {
      std::string text;
      for (int k = 0; k < kPairs / kFiles; ++k) appendPair(text, pair++);
      char name[32];
      std::snprintf(name, sizeof name, "%03d-links.yaml", f);
      std::ofstream(tmp / "desired" / name) << text;
    }
  }
  ~World() {
    std::error_code ec;
    fs::remove_all(tmp, ec);
  }
};

World& world() {
  static std::unique_ptr<World> w = [] {
    auto host = PluginHost::load(pluginDir(), HostContext{});
    if (!host)
      throw std::runtime_error("cannot load plugins from " + pluginDir().string() + ": " +
                               host.error().str());
    if (!host->forKind("Bridge"))
      throw std::runtime_error("no net plugin in " + pluginDir().string());
    return std::make_unique<World>(std::move(*host));
  }();
  return *w;
}

Observation emptyObservation() {
  Observation o;
  o.kinds = {"Bridge", "Vxlan", "Tap"};
  return o;
}

// What observe() would report once the host equals desired: every desired object present,
// marked, with its (normalised) spec.
Observation observationOf(const Desired& d) {
  Observation o = emptyObservation();
  for (const auto& r : d.resources) o.objects[r.id] = ObservedObject{r.id, r.spec, true};
  return o;
}

state::Store storeAt(const fs::path& dir, const Desired* owning) {
  auto s = state::Store::open(dir);
  if (!s) throw std::runtime_error(s.error().str());
  if (owning)
    for (const auto& r : owning->resources) s->setOwned({r.id, "net", r.owner, {}, "x"});
  return std::move(*s);
}

void check(bool ok, benchmark::State& st, const std::string& what) {
  if (!ok) st.SkipWithError(what.c_str());
}

// (a) cold: everything parsed, validated, normalised and planned from scratch.
void BM_ColdLoadPlan(benchmark::State& st) {
  World& w = world();
  const std::string text = allDocs();
  state::Store store = storeAt(w.tmp / "state-empty", nullptr);
  const Observation obs = emptyObservation();
  std::size_t creates = 0;
  for (auto _ : st) {
    LoadResult loaded = parseYaml(text, "bench.yaml");
    Desired d = w.engine.prepare(std::move(loaded));
    Plan p = w.engine.plan(d, obs, store, true);
    creates = p.count(Action::kCreate);
    benchmark::DoNotOptimize(p);
  }
  check(creates == 2 * kPairs, st, "expected 10000 creates, got " + std::to_string(creates));
  st.counters["resources"] = 2 * kPairs;
  st.counters["bytes"] = static_cast<double>(text.size());
}
BENCHMARK(BM_ColdLoadPlan)->Unit(benchmark::kMillisecond)->MinTime(3.0);

// The phases of (a) separately.
void BM_Cold_ParseOnly(benchmark::State& st) {
  const std::string text = allDocs();
  for (auto _ : st) benchmark::DoNotOptimize(parseYaml(text, "bench.yaml"));
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * text.size()));
}
BENCHMARK(BM_Cold_ParseOnly)->Unit(benchmark::kMillisecond);

void BM_Cold_PrepareOnly(benchmark::State& st) {
  World& w = world();
  const LoadResult loaded = parseYaml(allDocs(), "bench.yaml");
  for (auto _ : st) {
    st.PauseTiming();
    LoadResult copy = loaded;
    st.ResumeTiming();
    Desired d = w.engine.prepare(std::move(copy));
    check(d.ok(), st, d.ok() ? "" : d.errors.front().str());
    benchmark::DoNotOptimize(d);
  }
}
BENCHMARK(BM_Cold_PrepareOnly)->Unit(benchmark::kMillisecond);

void BM_Cold_PlanOnly(benchmark::State& st) {
  World& w = world();
  const Desired d = w.engine.prepare(parseYaml(allDocs(), "bench.yaml"));
  state::Store store = storeAt(w.tmp / "state-empty", nullptr);
  const Observation obs = emptyObservation();
  for (auto _ : st) benchmark::DoNotOptimize(w.engine.plan(d, obs, store, true));
}
BENCHMARK(BM_Cold_PlanOnly)->Unit(benchmark::kMillisecond);

// (b) the daemon's pass when nothing changed.
void BM_DaemonNoopPass(benchmark::State& st) {
  World& w = world();
  const std::vector<fs::path> sources{w.tmp / "desired"};
  SourceCache cache;
  const Desired first = w.engine.prepare(*cache.loadIfChanged(sources));
  check(first.ok() && first.resources.size() == 2 * kPairs, st, "desired files do not load");
  const Observation obs = observationOf(first);
  state::Store store = storeAt(w.tmp / "state-owned", &first);
  std::size_t changes = 0, reparsed = 0;
  // As the daemon does: the validated desired state, kept while no file changes.
  std::optional<Desired> kept = first;
  for (auto _ : st) {
    if (auto loaded = cache.loadIfChanged(sources)) kept = w.engine.prepare(std::move(*loaded));
    Plan p = w.engine.plan(*kept, obs, store, true);
    changes += p.entries.size();
    reparsed += cache.parsedLastTime();
    benchmark::DoNotOptimize(p);
  }
  check(changes == 0, st, "no-op pass planned " + std::to_string(changes) + " changes");
  st.counters["reparsed_files"] =
      benchmark::Counter(static_cast<double>(reparsed), benchmark::Counter::kAvgIterations);
}
BENCHMARK(BM_DaemonNoopPass)->Unit(benchmark::kMillisecond)->MinTime(3.0);

void BM_Noop_SourceCacheLoad(benchmark::State& st) {
  World& w = world();
  const std::vector<fs::path> sources{w.tmp / "desired"};
  SourceCache cache;
  (void)cache.loadIfChanged(sources);
  for (auto _ : st) benchmark::DoNotOptimize(cache.loadIfChanged(sources));
}
BENCHMARK(BM_Noop_SourceCacheLoad)->Unit(benchmark::kMillisecond);

void BM_Noop_PrepareOnly(benchmark::State& st) {
  World& w = world();
  const LoadResult loaded = loadSources({w.tmp / "desired"});
  for (auto _ : st) {
    st.PauseTiming();
    LoadResult copy = loaded;
    st.ResumeTiming();
    benchmark::DoNotOptimize(w.engine.prepare(std::move(copy)));
  }
}
BENCHMARK(BM_Noop_PrepareOnly)->Unit(benchmark::kMillisecond);

void BM_Noop_PlanOnly(benchmark::State& st) {
  World& w = world();
  const Desired d = w.engine.prepare(loadSources({w.tmp / "desired"}));
  const Observation obs = observationOf(d);
  state::Store store = storeAt(w.tmp / "state-owned2", &d);
  for (auto _ : st) benchmark::DoNotOptimize(w.engine.plan(d, obs, store, true));
}
BENCHMARK(BM_Noop_PlanOnly)->Unit(benchmark::kMillisecond);

// parseYaml throughput on documents of the shape above, at a few sizes.
void BM_ParseYamlThroughput(benchmark::State& st) {
  std::string text;
  for (int i = 0; i < st.range(0); ++i) appendPair(text, i);
  std::size_t docs = 0;
  for (auto _ : st) {
    LoadResult r = parseYaml(text, "bench.yaml");
    docs = r.resources.size();
    benchmark::DoNotOptimize(r);
  }
  check(docs == static_cast<std::size_t>(2 * st.range(0)), st, "parse lost documents");
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations() * text.size()));
  st.counters["docs"] = static_cast<double>(docs);
}
BENCHMARK(BM_ParseYamlThroughput)->Arg(50)->Arg(5000)->Unit(benchmark::kMicrosecond);

}  // namespace
