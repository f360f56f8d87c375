// emitYamlDocuments: key order, quoting of strings that look like other types, and the round trip
// through parseYaml.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <limits>

#include "loader.hpp"

namespace nodeplane {
namespace {

using ::testing::HasSubstr;

Json document(const Resource& r) {
  Json meta = {{"name", r.id.name}};
  if (!r.nodes.empty()) meta["nodes"] = r.nodes;
  if (!r.nodeSelector.empty()) meta["nodeSelector"] = r.nodeSelector;
  return {{"apiVersion", kApiVersion}, {"kind", r.id.kind}, {"metadata", meta}, {"spec", r.spec}};
}

std::vector<Json> roundTrip(const std::vector<Json>& docs, std::string* text = nullptr) {
  std::string yaml = emitYamlDocuments(docs);
  if (text) *text = yaml;
  auto r = parseYaml(yaml, "export.yaml");
  for (const auto& e : r.errors) ADD_FAILURE() << e.str() << "\n" << yaml;
  std::vector<Json> out;
  for (const auto& res : r.resources) out.push_back(document(res));
  return out;
}

TEST(EmitYaml, KeyOrderAndShape) {
  Json doc = {{"spec", {{"mtu", 1500}, {"up", true}}},
              {"metadata", {{"nodes", {"gpu-*"}}, {"name", "br0"}}},
              {"kind", "Bridge"},
              {"apiVersion", "nodeplane.io/v1"}};
  std::string text = emitYamlDocuments({doc, doc});
  EXPECT_EQ(text,
            "---\napiVersion: nodeplane.io/v1\nkind: Bridge\nmetadata:\n  name: br0\n  nodes:\n"
            "    - gpu-*\nspec:\n  mtu: 1500\n  up: true\n"
            "---\napiVersion: nodeplane.io/v1\nkind: Bridge\nmetadata:\n  name: br0\n  nodes:\n"
            "    - gpu-*\nspec:\n  mtu: 1500\n  up: true\n");
}

TEST(EmitYaml, QuotesStringsThatWouldReadAsAnotherType) {
  Json spec = {{"a", "true"}, {"b", "1500"}, {"c", "null"}, {"d", ""},      {"e", "0x10"},
               {"f", "~"},    {"g", "1.5"},  {"h", "yes"},  {"i", "-.inf"}, {"j", "plain"}};
  std::string text = emitYamlDocuments({{{"apiVersion", "nodeplane.io/v1"},
                                         {"kind", "T"},
                                         {"metadata", {{"name", "t"}}},
                                         {"spec", spec}}});
  EXPECT_THAT(text, HasSubstr("a: \"true\"\n"));
  EXPECT_THAT(text, HasSubstr("b: \"1500\"\n"));
  EXPECT_THAT(text, HasSubstr("c: \"null\"\n"));
  EXPECT_THAT(text, HasSubstr("d: \"\"\n"));
  EXPECT_THAT(text, HasSubstr("e: \"0x10\"\n"));
  EXPECT_THAT(text, HasSubstr("j: plain\n"));
}

TEST(EmitYaml, RoundTrip) {
  Json spec = {
      {"strings", {"true",          "false",     "1500",        "null",  "",     "0x10",   "0o7",
                   "1e3",           ".nan",      "~",           "yes",   "a: b", "- x",    "#c",
                   "multi\nline\n", "  padded ", "caf\xC3\xA9", "[x]",   "{y}",  "*star",  "&amp",
                   "!bang",         "%pct",      "@at",         "`tick", "'q'",  "\"dq\"", "x #y"}},
      {"ints",
       {0, -1, 1500, std::numeric_limits<std::int64_t>::min(),
        std::numeric_limits<std::int64_t>::max()}},
      {"big", std::numeric_limits<std::uint64_t>::max()},
      {"floats", {1.5, -0.25, 3.0, 1e300, 1e-300, 0.1}},
      {"bools", {true, false}},
      {"nothing", nullptr},
      {"emptyList", Json::array()},
      {"emptyMap", Json::object()},
      {"nested", {{"true", {{"1500", "x"}}}, {"list", {{{"a", 1}}, {{"b", {1, 2}}}}}}},
      {"env", {{"PATH", "/usr/bin"}, {"EMPTY", ""}}}};
  std::vector<Json> docs = {
      {{"apiVersion", "nodeplane.io/v1"},
       {"kind", "Container"},
       {"metadata", {{"name", "c1"}, {"nodes", {"a", "b*"}}, {"nodeSelector", {{"gpu", "true"}}}}},
       {"spec", spec}},
      {{"apiVersion", "nodeplane.io/v1"},
       {"kind", "Bridge"},
       {"metadata", {{"name", "br0"}}},
       {"spec", Json::object()}}};
  std::string text;
  auto back = roundTrip(docs, &text);
  ASSERT_EQ(back.size(), 2u) << text;
  EXPECT_EQ(back[0], docs[0]) << text;
  EXPECT_EQ(back[1], docs[1]) << text;
  EXPECT_TRUE(back[0]["spec"]["floats"][2].is_number_float()) << text;  // 3.0 stays a float
}

// export asks exportProblem() about every object: what the loader would refuse or read back as
// something else is refused by name instead of written.
TEST(EmitYaml, ExportProblemFindsWhatWouldNotReadBack) {
  auto doc = [](const std::string& name, Json spec) {
    return Json{{"apiVersion", kApiVersion},
                {"kind", "Bridge"},
                {"metadata", {{"name", name}}},
                {"spec", std::move(spec)}};
  };
  EXPECT_EQ(exportProblem(doc("br0", {{"mtu", 1500}, {"adopt", true}})), std::nullopt);
  // Strings that look like other types, and control characters: quoted and escaped, read back.
  EXPECT_EQ(exportProblem(doc("yes", {{"x", "1e3"}, {"y", "~"}, {"z", " a\tb\x1b\x7f"}})),
            std::nullopt);
  EXPECT_EQ(exportProblem(doc("br\xff", Json::object())),
            "it holds text that is not UTF-8, which a desired-state file cannot carry");
  EXPECT_EQ(exportProblem(doc("br0", {{"bridge", "a\xc3"}})),
            "it holds text that is not UTF-8, which a desired-state file cannot carry");
}

}  // namespace
}  // namespace nodeplane
