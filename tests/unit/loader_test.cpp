// parseYaml: values, locations and every envelope / syntax / safety error, each with its
// file:line:column and field path.
#include "loader.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include "support/files.hpp"
#include "support/memory_limit.hpp"

namespace nodeplane {
namespace {

using ::testing::HasSubstr;

std::string fixture(const std::string& name) {
  return ::nodeplane::testing::slurp(std::string(NODEPLANE_SOURCE_DIR) + "/tests/fixtures/yaml/" +
                                     name);
}

// The only error of `r`, failing the test when there are none or several.
Error onlyError(const LoadResult& r) {
  EXPECT_EQ(r.errors.size(), 1u);
  if (r.errors.size() != 1u) {
    for (const auto& e : r.errors) ADD_FAILURE() << "  " << e.str();
  }
  return r.errors.empty() ? Error{} : r.errors.front();
}

std::string dump(const LoadResult& r) {
  std::string s;
  for (const auto& e : r.errors) s += e.str() + "\n";
  return s;
}

constexpr const char* kBridge = R"(apiVersion: nodeplane.io/v1
kind: Bridge
metadata:
  name: br0
spec:
  mtu: 1500
  addresses: ["192.168.100.1/24", "10.0.0.1/8"]
  up: true
)";

TEST(ParseYaml, ReadsAResource) {
  auto r = parseYaml(kBridge, "b.yaml");
  ASSERT_TRUE(r.errors.empty()) << dump(r);
  ASSERT_EQ(r.resources.size(), 1u);
  const Resource& res = r.resources[0];
  EXPECT_EQ(res.id, (ResourceId{"Bridge", "br0"}));
  EXPECT_EQ(res.spec, Json::parse(R"({"mtu":1500,"addresses":["192.168.100.1/24","10.0.0.1/8"],
                                       "up":true})"));
  EXPECT_EQ(res.where.str(), "b.yaml:2:1");  // the kind: line
  EXPECT_EQ(res.locations.at("metadata.name").str(), "b.yaml:4:3");
  EXPECT_EQ(res.locations.at("spec.mtu").str(), "b.yaml:6:3");
  EXPECT_EQ(res.locations.at("spec.addresses[1]").str(), "b.yaml:7:35");
  EXPECT_TRUE(res.nodes.empty());
}

TEST(ParseYaml, ScalarsFollowTheCore12Schema) {
  auto r = parseYaml(R"(apiVersion: nodeplane.io/v1
kind: T
metadata: {name: t}
spec:
  n: null
  tilde: ~
  empty:
  t: true
  f: False
  yes: yes
  i: -42
  hex: 0x1F
  oct: 0o17
  big: 18446744073709551615
  fl: 1.5
  exp: 1e3
  inf: -.inf
  qi: "1500"
  qb: 'true'
  qn: "null"
  tagged: !!str 42
  ver: 1.2.3
  ip: 10.0.0.1
)",
                     "s.yaml");
  ASSERT_TRUE(r.errors.empty()) << dump(r);
  const Json& s = r.resources.at(0).spec;
  EXPECT_TRUE(s["n"].is_null());
  EXPECT_TRUE(s["tilde"].is_null());
  EXPECT_TRUE(s["empty"].is_null());
  EXPECT_EQ(s["t"], true);
  EXPECT_EQ(s["f"], false);
  EXPECT_EQ(s["yes"], "yes");  // YAML 1.2: a string
  EXPECT_EQ(s["i"], -42);
  EXPECT_EQ(s["hex"], 31);
  EXPECT_EQ(s["oct"], 15);
  EXPECT_EQ(s["big"].get<std::uint64_t>(), 18446744073709551615ull);
  EXPECT_TRUE(s["fl"].is_number_float());
  EXPECT_EQ(s["fl"], 1.5);
  EXPECT_EQ(s["exp"], 1000.0);
  EXPECT_TRUE(std::isinf(s["inf"].get<double>()));
  EXPECT_EQ(s["qi"], "1500");
  EXPECT_EQ(s["qb"], "true");
  EXPECT_EQ(s["qn"], "null");
  EXPECT_EQ(s["tagged"], "42");
  EXPECT_EQ(s["ver"], "1.2.3");
  EXPECT_EQ(s["ip"], "10.0.0.1");
}

TEST(ParseYaml, SyntaxErrorHasItsLine) {
  auto r = parseYaml(
      "apiVersion: nodeplane.io/v1\nkind: Bridge\nmetadata:\n  name: [br0\nspec: {}\n", "bad.yaml");
  Error e = onlyError(r);
  EXPECT_THAT(e.message, HasSubstr("YAML syntax error"));
  EXPECT_EQ(e.kind, ErrorKind::kInvalidInput);
  EXPECT_EQ(e.where.file, "bad.yaml");
  EXPECT_EQ(e.where.line, 5);
  EXPECT_TRUE(r.resources.empty());
}

TEST(ParseYaml, SyntaxErrorInABlockMapping) {
  auto r = parseYaml("apiVersion: nodeplane.io/v1\nkind: Bridge\n  bad: indent\n", "bad.yaml");
  Error e = onlyError(r);
  EXPECT_THAT(e.message, HasSubstr("YAML syntax error"));
  EXPECT_EQ(e.where.line, 3);
}

TEST(ParseYaml, TabIndentationNamesTheLine) {
  auto r = parseYaml(fixture("tab_indent.yaml"), "tab.yaml");
  Error e = onlyError(r);
  EXPECT_EQ(e.message, "tab character in indentation (YAML allows only spaces)");
  EXPECT_EQ(e.where.str(), "tab.yaml:7:1");
  EXPECT_TRUE(r.resources.empty());
}

TEST(ParseYaml, TabsInsideBlockScalarsAreData) {
  auto r = parseYaml(std::string(kBridge) + "  script: |\n    all:\n    \tmake\n  stp: false\n",
                     "b.yaml");
  ASSERT_TRUE(r.errors.empty()) << dump(r);
  EXPECT_EQ(r.resources.at(0).spec["script"], "all:\n\tmake\n");
  EXPECT_EQ(r.resources.at(0).spec["stp"], false);
}

TEST(ParseYaml, UnknownTopLevelKeySuggestsTheClosest) {
  auto r = parseYaml(
      "apiVersion: nodeplane.io/v1\nkind: Bridge\nmetadata: {name: br0}\nspce:\n  mtu: 1\n",
      "u.yaml");
  Error e = onlyError(r);
  EXPECT_EQ(e.message, "unknown field \"spce\" (known: apiVersion, kind, metadata, spec)");
  EXPECT_EQ(e.hint, "did you mean \"spec\"?");
  EXPECT_EQ(e.field, "spce");
  EXPECT_EQ(e.resource, "Bridge/br0");
  EXPECT_EQ(e.where.str(), "u.yaml:4:1");
}

TEST(ParseYaml, UnknownMetadataKey) {
  auto r = parseYaml(
      "apiVersion: nodeplane.io/v1\nkind: Bridge\nmetadata:\n  name: br0\n"
      "  labels: {a: b}\n  node: [x]\n",
      "m.yaml");
  ASSERT_EQ(r.errors.size(), 2u) << dump(r);
  EXPECT_EQ(r.errors[0].field, "metadata.labels");
  EXPECT_EQ(r.errors[0].where.str(), "m.yaml:5:3");
  EXPECT_THAT(r.errors[0].message, HasSubstr("unknown field \"labels\""));
  EXPECT_EQ(r.errors[1].field, "metadata.node");
  EXPECT_EQ(r.errors[1].hint, "did you mean \"nodes\"?");
  EXPECT_EQ(r.errors[1].where.line, 6);
}

TEST(ParseYaml, WrongApiVersionSaysWhatWasFound) {
  auto r =
      parseYaml("apiVersion: nodeplane.io/v2\nkind: Bridge\nmetadata: {name: br0}\n", "v.yaml");
  Error e = onlyError(r);
  EXPECT_EQ(e.message, "apiVersion is string \"nodeplane.io/v2\", expected \"nodeplane.io/v1\"");
  EXPECT_EQ(e.field, "apiVersion");
  EXPECT_EQ(e.where.str(), "v.yaml:1:1");
  EXPECT_TRUE(r.resources.empty());
}

TEST(ParseYaml, MissingApiVersion) {
  auto r = parseYaml("kind: Bridge\nmetadata: {name: br0}\n", "v.yaml");
  Error e = onlyError(r);
  EXPECT_EQ(e.message, "missing apiVersion (expected \"nodeplane.io/v1\")");
  EXPECT_EQ(e.where.str(), "v.yaml:1:1");
  EXPECT_EQ(e.resource, "Bridge/br0");
}

TEST(ParseYaml, MissingKindAndName) {
  auto r = parseYaml("apiVersion: nodeplane.io/v1\nmetadata: {}\nspec: {}\n", "k.yaml");
  ASSERT_EQ(r.errors.size(), 2u) << dump(r);
  EXPECT_EQ(r.errors[0].message, "missing kind");
  EXPECT_EQ(r.errors[0].field, "kind");
  EXPECT_EQ(r.errors[0].where.str(), "k.yaml:1:1");
  EXPECT_EQ(r.errors[1].message, "missing metadata.name");
  EXPECT_EQ(r.errors[1].field, "metadata.name");
  EXPECT_EQ(r.errors[1].where.str(), "k.yaml:2:1");
  EXPECT_TRUE(r.resources.empty());
}

TEST(ParseYaml, NameMustBeANonEmptyString) {
  auto r =
      parseYaml("apiVersion: nodeplane.io/v1\nkind: Bridge\nmetadata:\n  name: \"\"\n", "n.yaml");
  Error e = onlyError(r);
  EXPECT_EQ(e.message, "metadata.name must be a non-empty string, got string \"\"");
  EXPECT_EQ(e.where.str(), "n.yaml:4:3");

  r = parseYaml("apiVersion: nodeplane.io/v1\nkind: [Bridge]\nmetadata: {name: 12}\n", "n.yaml");
  ASSERT_EQ(r.errors.size(), 2u) << dump(r);
  EXPECT_EQ(r.errors[0].message, "kind must be a non-empty string, got a list");
  EXPECT_EQ(r.errors[1].message, "metadata.name must be a non-empty string, got integer 12");
}

TEST(ParseYaml, NodesAndNodeSelector) {
  auto r = parseYaml(R"(apiVersion: nodeplane.io/v1
kind: Bridge
metadata:
  name: br0
  nodes: [gpu-01, "gpu-*"]
  nodeSelector: {zone: a, gpu: "true"}
)",
                     "n.yaml");
  ASSERT_TRUE(r.errors.empty()) << dump(r);
  EXPECT_EQ(r.resources.at(0).nodes, (std::vector<std::string>{"gpu-01", "gpu-*"}));
  EXPECT_EQ(r.resources.at(0).nodeSelector.at("gpu"), "true");

  r = parseYaml(R"(apiVersion: nodeplane.io/v1
kind: Bridge
metadata:
  name: br0
  nodes:
    - gpu-01
    - 7
  nodeSelector: {gpu: true}
)",
                "n.yaml");
  ASSERT_EQ(r.errors.size(), 2u) << dump(r);  // in the order written
  EXPECT_EQ(r.errors[0].field, "metadata.nodes[1]");
  EXPECT_EQ(r.errors[0].message, "expected a string, got integer 7");
  EXPECT_EQ(r.errors[0].where.str(), "n.yaml:7:7");
  EXPECT_EQ(r.errors[1].field, "metadata.nodeSelector.gpu");
  EXPECT_EQ(r.errors[1].message, "expected a string, got boolean true");
  EXPECT_EQ(r.errors[1].where.line, 8);
}

TEST(ParseYaml, SpecMustBeAMappingButMayBeAbsent) {
  auto r =
      parseYaml("apiVersion: nodeplane.io/v1\nkind: Bridge\nmetadata: {name: br0}\n", "s.yaml");
  ASSERT_TRUE(r.errors.empty()) << dump(r);
  EXPECT_EQ(r.resources.at(0).spec, Json::object());

  r = parseYaml("apiVersion: nodeplane.io/v1\nkind: Bridge\nmetadata: {name: br0}\nspec: [1]\n",
                "s.yaml");
  Error e = onlyError(r);
  EXPECT_EQ(e.message, "spec must be a mapping, got a list");
  EXPECT_EQ(e.field, "spec");
  EXPECT_EQ(e.where.str(), "s.yaml:4:1");
}

TEST(ParseYaml, DocumentThatIsNotAMapping) {
  auto r = parseYaml(std::string(kBridge) + "---\njust a string\n---\n- a\n- b\n", "d.yaml");
  ASSERT_EQ(r.errors.size(), 2u) << dump(r);
  EXPECT_THAT(r.errors[0].message, HasSubstr("document 2 is not a mapping"));
  EXPECT_THAT(r.errors[0].message, HasSubstr("string \"just a string\""));
  EXPECT_EQ(r.errors[0].where.str(), "d.yaml:10:1");
  EXPECT_THAT(r.errors[1].message, HasSubstr("document 3 is not a mapping (found a list)"));
  EXPECT_EQ(r.errors[1].where.str(), "d.yaml:12:1");
  EXPECT_EQ(r.resources.size(), 1u);
}

TEST(ParseYaml, DuplicateKeysNamesBothLines) {
  auto r = parseYaml(fixture("duplicate_keys.yaml"), "dup.yaml");
  ASSERT_EQ(r.errors.size(), 2u) << dump(r);
  EXPECT_EQ(r.errors[0].message, "duplicate key \"mtu\" (first at line 6)");
  EXPECT_EQ(r.errors[0].field, "spec.mtu");
  EXPECT_EQ(r.errors[0].where.str(), "dup.yaml:8:3");
  EXPECT_EQ(r.errors[0].resource, "Bridge/br0");
  EXPECT_EQ(r.errors[1].message, "duplicate key \"hostname\" (first at line 10)");
  EXPECT_EQ(r.errors[1].field, "spec.cloudInit.hostname");
  EXPECT_EQ(r.errors[1].where.str(), "dup.yaml:11:5");
  // The first value wins (the file is invalid anyway).
  EXPECT_EQ(r.resources.at(0).spec["mtu"], 1500);
}

TEST(ParseYaml, DuplicateTopLevelKeyAndDuplicateValueMapping) {
  auto r = parseYaml(std::string(kBridge) + "spec:\n  mtu: {a: 1, a: 2}\n", "dup.yaml");
  ASSERT_EQ(r.errors.size(), 1u) << dump(r);
  EXPECT_EQ(r.errors[0].message, "duplicate key \"spec\" (first at line 5)");
  EXPECT_EQ(r.errors[0].where.str(), "dup.yaml:9:1");
}

TEST(ParseYaml, BinaryGarbageIsRefused) {
  std::mt19937 rng(42);
  for (int round = 0; round < 50; ++round) {
    std::string junk(512, '\0');
    for (auto& c : junk) c = static_cast<char>(rng());
    junk[100] = '\0';
    auto r = parseYaml(junk, "junk.yaml");
    ASSERT_EQ(r.errors.size(), 1u) << dump(r);
    EXPECT_TRUE(r.errors[0].message.find("binary data") != std::string::npos ||
                r.errors[0].message.find("not UTF-8") != std::string::npos)
        << r.errors[0].message;
    EXPECT_TRUE(r.resources.empty());
  }
}

TEST(ParseYaml, NulByteNamesItsLine) {
  std::string text = std::string(kBridge) + "  stp: fa";
  text += '\0';
  text += "lse\n";
  Error e = onlyError(parseYaml(text, "nul.yaml"));
  EXPECT_EQ(e.message, "binary data (NUL byte): not UTF-8 text");
  EXPECT_EQ(e.where.str(), "nul.yaml:9:10");
}

TEST(ParseYaml, InvalidUtf8NamesItsLine) {
  std::string text = std::string(kBridge) + "  name: caf\xE9\n";  // Latin-1, not UTF-8
  Error e = onlyError(parseYaml(text, "l1.yaml"));
  EXPECT_EQ(e.message, "not UTF-8 text (invalid byte 0xE9)");
  EXPECT_EQ(e.where.str(), "l1.yaml:9:12");

  e = onlyError(parseYaml("a: \xFF\xFE\n", "ff.yaml"));
  EXPECT_EQ(e.message, "not UTF-8 text (invalid byte 0xFF)");
  EXPECT_EQ(e.where.str(), "ff.yaml:1:4");
}

TEST(ParseYaml, Utf8TextIsFine) {
  auto r = parseYaml(std::string(kBridge) + "  note: \"caf\xC3\xA9 \xE2\x9C\x93\"\n", "u.yaml");
  ASSERT_TRUE(r.errors.empty()) << dump(r);
  EXPECT_EQ(r.resources.at(0).spec["note"], "caf\xC3\xA9 \xE2\x9C\x93");
}

TEST(ParseYaml, BillionLaughsHitsTheAliasLimit) {
  auto r = parseYaml(fixture("billion_laughs.yaml"), "lol.yaml");
  Error e = onlyError(r);
  EXPECT_THAT(e.message, HasSubstr("aliases and anchors expand to more than 64 MiB"));
  EXPECT_THAT(e.message, HasSubstr("alias expansion limit"));
  EXPECT_EQ(e.where.file, "lol.yaml");
  EXPECT_GE(e.where.line, 10);
  EXPECT_TRUE(r.resources.empty());
}

TEST(ParseYaml, SmallAliasesAreExpanded) {
  auto r = parseYaml(std::string(kBridge) + "  a: &addr [\"1.1.1.1/32\"]\n  b: *addr\n", "a.yaml");
  ASSERT_TRUE(r.errors.empty()) << dump(r);
  EXPECT_EQ(r.resources.at(0).spec["b"], Json::parse(R"(["1.1.1.1/32"])"));
  EXPECT_EQ(r.resources.at(0).locations.at("spec.b").line, 10);
}

// parseYaml with at most `headroom` more bytes of memory: its first error as
// "file:line:col: message".
std::string firstErrorWithin(std::size_t headroom, const std::string& text) {
  return testing::withMemoryLimit(headroom, [&] {
    auto r = parseYaml(text, "big.yaml");
    if (r.errors.empty()) return std::string("no error");
    return r.errors[0].where.str() + ": " + r.errors[0].message;
  });
}

TEST(ParseYaml, AliasesOfALargeScalarAreCountedInBytes) {
  // 4000 aliases of one 1 MiB scalar: a 1 MiB file that expands to 4 GiB.
  std::string text =
      std::string(kBridge) + "  big: &big " + std::string(1 << 20, 'x') + "\n  copies: [*big";
  for (int i = 1; i < 4000; ++i) text += ", *big";
  text += "]\n";
  EXPECT_EQ(firstErrorWithin(512u << 20, text),
            "big.yaml:10:384: aliases and anchors expand to more than 64 MiB (alias expansion "
            "limit; is this a \"billion laughs\" document?)");
}

TEST(ParseYaml, NestedAnchorsOfALargeScalarAreCountedInBytes) {
  // 60 anchors, one inside the other, around a 4 MiB scalar: each anchor keeps a copy (240 MiB).
  std::string text = std::string(kBridge) + "  big: ";
  for (int i = 0; i < 60; ++i) text += "&a" + std::to_string(i) + " [";
  text += std::string(4 << 20, 'x') + std::string(60, ']') + "\n";
  std::string error = firstErrorWithin(200u << 20, text);
  EXPECT_THAT(error, ::testing::StartsWith("big.yaml:9:"));
  EXPECT_THAT(error, HasSubstr(": aliases and anchors expand to more than 64 MiB"));
}

TEST(ParseYaml, ManySmallValuesAreCountedInBytes) {
  // A 4 MiB flow list of one-digit numbers: 2 M values, each with its field location.
  std::string text = std::string(kBridge) + "  a: [1";
  for (int i = 1; i < 2'000'000; ++i) text += ",1";
  text += "]\n";
  std::string error = firstErrorWithin(400u << 20, text);
  EXPECT_THAT(error, ::testing::StartsWith("big.yaml:9:"));
  EXPECT_THAT(error, HasSubstr(": the parsed file takes more than 256 MiB of memory (values and "
                               "their locations; memory limit per file: split it into several "
                               "files)"));
}

TEST(ParseYaml, LongKeysAreRefused) {
  // yaml-cpp refuses implicit keys over 1024 characters (the YAML limit); explicit keys (`? k`)
  // have no limit there.
  auto r = parseYaml(std::string(kBridge) + "  ? " + std::string(2000, 'k') + "\n  : 1\n  mtx: 2\n",
                     "k.yaml");
  Error e = onlyError(r);
  EXPECT_EQ(e.str(), "k.yaml:9:5: Bridge/br0 spec." + std::string(40, 'k') +
                         "...: a key of 2000 bytes is longer than the limit of 1024 bytes");
  ASSERT_EQ(r.resources.size(), 1u);  // its value is dropped, the rest is read
  EXPECT_EQ(r.resources[0].spec["mtx"], 2);
  EXPECT_EQ(r.resources[0].spec.size(), 4u);

  // A 2 MiB key: an error in bounded memory and time (no "did you mean" over it).
  std::string text = std::string(kBridge) + "  ? " + std::string(2 << 20, 'k') + "\n  : 1\n";
  EXPECT_EQ(firstErrorWithin(512u << 20, text),
            "big.yaml:9:5: a key of 2097152 bytes is longer than the limit of 1024 bytes");
  // A key made by an alias.
  text = std::string(kBridge) + "  a: &k " + std::string(2000, 'k') + "\n  *k : 1\n";
  EXPECT_EQ(firstErrorWithin(512u << 20, text),
            "big.yaml:10:3: a key of 2000 bytes is longer than the limit of 1024 bytes");
}

TEST(ParseYaml, MergeKeysFollowYaml11) {
  auto r = parseYaml(R"(apiVersion: nodeplane.io/v1
kind: Bridge
metadata: {name: br0}
spec:
  a: &a {mtu: 9000, up: true, stp: true}
  b: &b
    mtu: 1400
    stp: false
    addresses: ["10.0.0.1/24"]
  one:
    <<: *a
    up: false
  list:
    up: false
    <<: [*a, *b]
  inline:
    <<: {mtu: 1280}
  quoted: {"<<": 1}
)",
                     "m.yaml");
  ASSERT_TRUE(r.errors.empty()) << dump(r);
  const Resource& res = r.resources.at(0);
  // Keys written in the mapping win, wherever they are written.
  EXPECT_EQ(res.spec["one"], Json::parse(R"({"mtu": 9000, "up": false, "stp": true})"));
  // In a list, an earlier mapping wins over a later one.
  EXPECT_EQ(
      res.spec["list"],
      Json::parse(R"({"mtu": 9000, "up": false, "stp": true, "addresses": ["10.0.0.1/24"]})"));
  EXPECT_EQ(res.spec["inline"], Json::parse(R"({"mtu": 1280})"));
  EXPECT_EQ(res.spec["quoted"], Json::parse(R"({"<<": 1})"));
  // A merged field is located where it was written.
  EXPECT_EQ(res.locate("spec.one.mtu").str(), "m.yaml:5:10");
  EXPECT_EQ(res.locate("spec.one.up").str(), "m.yaml:12:5");
  EXPECT_EQ(res.locate("spec.list.stp").str(), "m.yaml:5:31");
  EXPECT_EQ(res.locate("spec.list.addresses[0]").str(), "m.yaml:9:17");
  EXPECT_EQ(res.locate("spec.inline.mtu").str(), "m.yaml:17:10");
}

TEST(ParseYaml, MergeKeyErrors) {
  auto r = parseYaml(std::string(kBridge) + "  x: {<<: 5}\n  y:\n    <<: {a: 1}\n    <<: {b: 2}\n",
                     "m.yaml");
  ASSERT_EQ(r.errors.size(), 2u) << dump(r);
  EXPECT_EQ(r.errors[0].str(),
            "m.yaml:9:7: Bridge/br0 spec.x.<<: the merge key << takes a mapping or a list of "
            "mappings, got a scalar");
  EXPECT_EQ(r.errors[1].str(),
            "m.yaml:12:5: Bridge/br0 spec.y.<<: duplicate merge key \"<<\" (first at line 11); "
            "merge several mappings with <<: [*a, *b]");
  EXPECT_EQ(r.resources.at(0).spec["y"], Json::parse(R"({"a": 1})"));
}

TEST(ParseYaml, DeepNestingHitsTheDepthLimit) {
  std::string text =
      std::string(kBridge) + "  deep: " + std::string(10000, '[') + std::string(10000, ']') + "\n";
  Error e = onlyError(parseYaml(text, "deep.yaml"));
  EXPECT_THAT(e.message, HasSubstr("nesting deeper than 64 levels"));
  EXPECT_EQ(e.where.line, 9);

  // Block style, 100 levels.
  text = std::string(kBridge) + "  deep:\n";
  for (int i = 0; i < 100; ++i) text += std::string(4 + 2 * i, ' ') + "k:\n";
  e = onlyError(parseYaml(text, "deep.yaml"));
  EXPECT_THAT(e.message, HasSubstr("nesting depth limit"));

  // 60 levels is fine.
  text = std::string(kBridge) + "  deep: " + std::string(58, '[') + std::string(58, ']') + "\n";
  auto r = parseYaml(text, "ok.yaml");
  EXPECT_TRUE(r.errors.empty()) << dump(r);
}

TEST(ParseYaml, OversizedTextIsRefused) {
  std::string text(16 * 1024 * 1024 + 1, ' ');
  Error e = onlyError(parseYaml(text, "big.yaml"));
  EXPECT_THAT(e.message, HasSubstr("limit of 16777216"));
}

TEST(ParseYaml, MultiDocWithOneBadDocument) {
  auto r = parseYaml(fixture("multi_doc.yaml"), "multi.yaml");
  Error e = onlyError(r);
  EXPECT_THAT(e.message, HasSubstr("expected \"nodeplane.io/v1\""));
  EXPECT_EQ(e.where.str(), "multi.yaml:12:1");
  EXPECT_EQ(e.resource, "Bridge/br1");
  ASSERT_EQ(r.resources.size(), 2u);  // the trailing empty document is skipped
  EXPECT_EQ(r.resources[0].id.name, "br0");
  EXPECT_EQ(r.resources[0].locations.at("spec.addresses[1]").str(), "multi.yaml:10:7");
  const Resource& vm = r.resources[1];
  EXPECT_EQ(vm.id, (ResourceId{"VirtualMachine", "vm1"}));
  EXPECT_EQ(vm.where.str(), "multi.yaml:18:1");
  EXPECT_EQ(vm.locations.at("spec.cloudInit.hostname").str(), "multi.yaml:26:5");
  EXPECT_EQ(vm.locations.at("spec.cloudInit.sshAuthorizedKeys[0]").str(), "multi.yaml:28:9");
  EXPECT_EQ(vm.locations.at("metadata.nodes[0]").str(), "multi.yaml:21:11");
  EXPECT_EQ(vm.nodes, std::vector<std::string>{"gpu-*"});
  EXPECT_EQ(vm.nodeSelector.at("zone"), "a");
  EXPECT_EQ(vm.locate("spec.cloudInit.userData").str(), "multi.yaml:25:3");
}

TEST(ParseYaml, ResumesAfterASyntaxErrorAtTheNextDocument) {
  std::string text = std::string(kBridge) +                                // lines 1-8
                     "---\napiVersion: nodeplane.io/v1\nkind: Bridge\n" +  // 9-11
                     "  bad: indent\n" +                                   // 12
                     "---\n" + std::string(kBridge) +                      // 13-21
                     "---\nkind: \"unterminated\n" +                       // 22-23
                     "---\n" + std::string(kBridge);                       // 24-32
  auto r = parseYaml(text, "r.yaml");
  ASSERT_EQ(r.errors.size(), 2u) << dump(r);
  EXPECT_EQ(r.errors[0].message, "YAML syntax error: illegal map value");
  EXPECT_EQ(r.errors[0].where.str(), "r.yaml:12:6");
  EXPECT_EQ(r.errors[1].message, "YAML syntax error: illegal document indicator in scalar");
  EXPECT_EQ(r.errors[1].where.str(), "r.yaml:24:1");
  ASSERT_EQ(r.resources.size(), 3u);
  EXPECT_EQ(r.resources[1].where.str(), "r.yaml:15:1");
  EXPECT_EQ(r.resources[2].where.str(), "r.yaml:26:1");
}

TEST(ParseYaml, LargeFileKeepsLinesAndOrder) {
  // Large enough to be parsed in parts on several threads (where there are several cores).
  std::string text;
  const int kDocs = 6000;
  for (int i = 0; i < kDocs; ++i) {
    text += "---\napiVersion: nodeplane.io/v1\nkind: Bridge\nmetadata:\n  name: br" +
            std::to_string(i) + "\nspec:\n  mtu: 1500\n  addresses: [10.0.0.1/24]\n";
    if (i == 4321) text += "  mtu: 9000\n";  // line 9 * 4321 + 9
  }
  ASSERT_GT(text.size(), 512u * 1024);
  auto r = parseYaml(text, "big.yaml");
  ASSERT_EQ(r.errors.size(), 1u) << dump(r);
  EXPECT_EQ(r.errors[0].where.str(), "big.yaml:" + std::to_string(8 * 4321 + 9) + ":3");
  EXPECT_EQ(r.errors[0].resource, "Bridge/br4321");
  ASSERT_EQ(r.resources.size(), static_cast<std::size_t>(kDocs));
  for (int i = 0; i < kDocs; i += 997) {
    EXPECT_EQ(r.resources[i].id.name, "br" + std::to_string(i));
    int kindLine = 8 * i + (i > 4321 ? 1 : 0) + 3;
    EXPECT_EQ(r.resources[i].where.line, kindLine) << i;
  }
}

TEST(ParseYaml, EmptyDocumentsAreSkipped) {
  auto r = parseYaml("---\n---\n# only a comment\n---\n" + std::string(kBridge) + "---\n---\n",
                     "e.yaml");
  ASSERT_TRUE(r.errors.empty()) << dump(r);
  EXPECT_EQ(r.resources.size(), 1u);
  EXPECT_TRUE(parseYaml("", "e.yaml").errors.empty());
  EXPECT_TRUE(parseYaml("# nothing\n", "e.yaml").errors.empty());
}

TEST(ParseYaml, NonStringKeysAndUnknownTags) {
  auto r = parseYaml(std::string(kBridge) + "  ? [a, b]\n  : 1\n  x: !custom 5\n", "k.yaml");
  ASSERT_EQ(r.errors.size(), 2u) << dump(r);
  EXPECT_THAT(r.errors[0].message, HasSubstr("a mapping key must be a string, got a list"));
  EXPECT_EQ(r.errors[0].where.line, 9);
  EXPECT_EQ(r.errors[1].message, "unsupported tag \"!custom\"");
  EXPECT_EQ(r.errors[1].field, "spec.x");
}

TEST(ParseYaml, ErrorStringReadsWell) {
  auto r = parseYaml(fixture("duplicate_keys.yaml"), "dup.yaml");
  ASSERT_FALSE(r.errors.empty());
  EXPECT_EQ(r.errors[0].str(),
            "dup.yaml:8:3: Bridge/br0 spec.mtu: duplicate key \"mtu\" (first at line 6)");
}

}  // namespace
}  // namespace nodeplane
