// validateAgainstSchema: every rule, with the message, field path and file:line of each error.
#include "validate.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>

#include "loader.hpp"
#include "support/memory_limit.hpp"

namespace nodeplane {
namespace {

using ::testing::HasSubstr;

FieldSchema field(std::string name, FieldType type) {
  FieldSchema f;
  f.name = std::move(name);
  f.type = type;
  return f;
}
FieldSchema integer(std::string name, std::optional<std::int64_t> min,
                    std::optional<std::int64_t> max) {
  FieldSchema f = field(std::move(name), FieldType::kInteger);
  f.minimum = min;
  f.maximum = max;
  return f;
}
FieldSchema required(FieldSchema f) {
  f.required = true;
  return f;
}
FieldSchema allowed(FieldSchema f, std::vector<std::string> values) {
  f.allowed = std::move(values);
  return f;
}
FieldSchema members(FieldSchema f, std::vector<FieldSchema> fields) {
  f.fields = std::move(fields);
  return f;
}

KindSchema bridgeLike() {
  KindSchema k;
  k.kind = "Bridge";
  k.spec = {
      field("addresses", FieldType::kStringList), integer("mtu", 68, 65535),
      field("stp", FieldType::kBoolean),          field("up", FieldType::kBoolean),
      field("adopt", FieldType::kBoolean),
  };
  return k;
}

KindSchema vmLike() {
  KindSchema k;
  k.kind = "VirtualMachine";
  k.spec = {
      required(integer("vcpus", 1, std::nullopt)),
      allowed(field("firmware", FieldType::kString), {"uefi", "bios"}),
      field("env", FieldType::kStringMap),
      field("gpus", FieldType::kAny),
      members(field("disk", FieldType::kObject), {required(field("base", FieldType::kString)),
                                                  integer("sizeGiB", std::nullopt, 4096)}),
      members(field("mounts", FieldType::kObjectList),
              {required(field("source", FieldType::kString)), field("target", FieldType::kString),
               field("readOnly", FieldType::kBoolean)}),
      allowed(field("tags", FieldType::kStringList), {"a", "b"}),
  };
  return k;
}

Resource load(const std::string& kind, const std::string& specYaml) {
  std::string text =
      "apiVersion: nodeplane.io/v1\nkind: " + kind + "\nmetadata:\n  name: r1\nspec:\n" + specYaml;
  auto r = parseYaml(text, "v.yaml");
  for (const auto& e : r.errors) ADD_FAILURE() << e.str();
  if (r.resources.empty()) return {};
  return r.resources[0];
}

std::string dump(const std::vector<Error>& errors) {
  std::string s;
  for (const auto& e : errors) s += e.str() + "\n";
  return s;
}

TEST(Validate, ValidSpecHasNoErrors) {
  auto r = load("Bridge", "  mtu: 1500\n  addresses: [10.0.0.1/24]\n  up: true\n  adopt: false\n");
  EXPECT_TRUE(validateAgainstSchema(r, bridgeLike()).empty());
  r = load("Bridge", "  {}\n");
  EXPECT_TRUE(validateAgainstSchema(r, bridgeLike()).empty());
}

TEST(Validate, UnknownFieldListsKnownAndSuggests) {
  auto r = load("Bridge", "  mtux: 1500\n");
  auto errors = validateAgainstSchema(r, bridgeLike());
  ASSERT_EQ(errors.size(), 1u) << dump(errors);
  EXPECT_EQ(errors[0].message, "unknown field \"mtux\" (known: addresses, mtu, stp, up, adopt)");
  EXPECT_EQ(errors[0].hint, "did you mean \"mtu\"?");
  EXPECT_EQ(errors[0].field, "spec.mtux");
  EXPECT_EQ(errors[0].resource, "Bridge/r1");
  EXPECT_EQ(errors[0].kind, ErrorKind::kInvalidInput);
  EXPECT_EQ(errors[0].where.str(), "v.yaml:6:3");
  EXPECT_EQ(errors[0].str(),
            "v.yaml:6:3: Bridge/r1 spec.mtux: unknown field \"mtux\" (known: addresses, mtu, stp, "
            "up, adopt) (did you mean \"mtu\"?)");

  errors = validateAgainstSchema(load("Bridge", "  zzzzzz: 1\n"), bridgeLike());
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].hint, "");  // nothing close
}

TEST(Validate, WrongTypes) {
  auto r = load("Bridge",
                "  mtu: abc\n  up: \"true\"\n  stp: 1\n  addresses: 10.0.0.1/24\n  adopt: yes\n");
  auto errors = validateAgainstSchema(r, bridgeLike());
  ASSERT_EQ(errors.size(), 5u) << dump(errors);
  // In the order written, not JSON's key order.
  EXPECT_EQ(errors[0].message, "expected an integer, got string \"abc\"");
  EXPECT_EQ(errors[0].field, "spec.mtu");
  EXPECT_EQ(errors[0].where.str(), "v.yaml:6:3");
  EXPECT_EQ(errors[0].hint, "");
  EXPECT_EQ(errors[1].message, "expected a boolean (true or false), got string \"true\"");
  EXPECT_EQ(errors[1].hint, "write it without quotes");
  EXPECT_EQ(errors[2].message, "expected a boolean (true or false), got integer 1");
  EXPECT_EQ(errors[3].message, "expected a list of strings, got string \"10.0.0.1/24\"");
  EXPECT_EQ(errors[3].field, "spec.addresses");
  EXPECT_EQ(errors[3].where.line, 9);
  EXPECT_EQ(errors[4].message, "expected a boolean (true or false), got string \"yes\"");
}

TEST(Validate, IntegersMustBeJsonIntegers) {
  auto errors = validateAgainstSchema(load("Bridge", "  mtu: 1500.0\n"), bridgeLike());
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].message, "expected an integer, got float 1500.0");
  errors = validateAgainstSchema(load("Bridge", "  mtu: \"1500\"\n"), bridgeLike());
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].message, "expected an integer, got string \"1500\"");
  EXPECT_EQ(errors[0].hint, "write it without quotes");
  errors = validateAgainstSchema(load("Bridge", "  mtu:\n"), bridgeLike());
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].message, "expected an integer, got null");
}

TEST(Validate, OutOfRange) {
  auto errors = validateAgainstSchema(load("Bridge", "  mtu: 1400000\n"), bridgeLike());
  ASSERT_EQ(errors.size(), 1u) << dump(errors);
  EXPECT_EQ(errors[0].message, "1400000 is out of range 68..65535");
  EXPECT_EQ(errors[0].field, "spec.mtu");
  EXPECT_EQ(errors[0].where.line, 6);
  errors = validateAgainstSchema(load("Bridge", "  mtu: -5\n"), bridgeLike());
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].message, "-5 is out of range 68..65535");
  errors = validateAgainstSchema(load("Bridge", "  mtu: 18446744073709551615\n"), bridgeLike());
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].message, "18446744073709551615 is out of range 68..65535");

  errors = validateAgainstSchema(
      load("VirtualMachine", "  vcpus: 0\n  disk: {base: u, sizeGiB: 5000}\n"), vmLike());
  ASSERT_EQ(errors.size(), 2u) << dump(errors);
  EXPECT_EQ(errors[0].message, "0 is out of range: the minimum is 1");
  EXPECT_EQ(errors[0].field, "spec.vcpus");
  EXPECT_EQ(errors[1].message, "5000 is out of range: the maximum is 4096");
  EXPECT_EQ(errors[1].field, "spec.disk.sizeGiB");
  EXPECT_EQ(errors[1].where.str(), "v.yaml:7:19");
}

TEST(Validate, AllowedValues) {
  auto errors = validateAgainstSchema(
      load("VirtualMachine", "  vcpus: 2\n  firmware: uefii\n  tags: [a, c]\n"), vmLike());
  ASSERT_EQ(errors.size(), 2u) << dump(errors);
  EXPECT_EQ(errors[0].message, "string \"uefii\" is not one of: uefi, bios");
  EXPECT_EQ(errors[0].hint, "did you mean \"uefi\"?");
  EXPECT_EQ(errors[0].field, "spec.firmware");
  EXPECT_EQ(errors[1].message, "string \"c\" is not one of: a, b");
  EXPECT_EQ(errors[1].field, "spec.tags[1]");
  EXPECT_EQ(errors[1].where.str(), "v.yaml:8:13");
}

TEST(Validate, MissingRequired) {
  auto errors = validateAgainstSchema(load("VirtualMachine", "  disk: {sizeGiB: 5}\n"), vmLike());
  ASSERT_EQ(errors.size(), 2u) << dump(errors);
  EXPECT_EQ(errors[0].message, "missing required field \"vcpus\"");
  EXPECT_EQ(errors[0].field, "spec.vcpus");
  EXPECT_EQ(errors[0].where.str(), "v.yaml:5:1");  // where spec: is
  EXPECT_EQ(errors[1].message, "missing required field \"base\"");
  EXPECT_EQ(errors[1].field, "spec.disk.base");
  EXPECT_EQ(errors[1].where.str(), "v.yaml:6:3");  // where disk: is
}

TEST(Validate, RecursesIntoObjectsListsAndMaps) {
  auto r = load("VirtualMachine", R"(  vcpus: 2
  env: {A: "1", B: 2}
  gpus: all
  disk:
    base: ubuntu
    sizeGB: 10
  mounts:
    - source: /a
      target: /b
    - target: /c
      readOnly: "no"
    - just-a-string
  tags: [a, 3]
)");
  auto errors = validateAgainstSchema(r, vmLike());
  ASSERT_EQ(errors.size(), 6u) << dump(errors);
  EXPECT_EQ(errors[0].field, "spec.env.B");
  EXPECT_EQ(errors[0].message, "expected a string, got integer 2");
  EXPECT_EQ(errors[0].where.str(), "v.yaml:7:17");
  EXPECT_EQ(errors[1].field, "spec.disk.sizeGB");
  EXPECT_EQ(errors[1].message, "unknown field \"sizeGB\" (known: base, sizeGiB)");
  EXPECT_EQ(errors[1].hint, "did you mean \"sizeGiB\"?");
  EXPECT_EQ(errors[1].where.str(), "v.yaml:11:5");
  EXPECT_EQ(errors[2].field, "spec.mounts[1].source");
  EXPECT_EQ(errors[2].message, "missing required field \"source\"");
  EXPECT_EQ(errors[2].where.str(), "v.yaml:15:7");  // the list element
  EXPECT_EQ(errors[3].field, "spec.mounts[1].readOnly");
  EXPECT_EQ(errors[3].message, "expected a boolean (true or false), got string \"no\"");
  EXPECT_EQ(errors[3].where.str(), "v.yaml:16:7");
  EXPECT_EQ(errors[4].field, "spec.mounts[2]");
  EXPECT_EQ(errors[4].message, "expected a mapping, got string \"just-a-string\"");
  EXPECT_EQ(errors[4].where.str(), "v.yaml:17:7");
  EXPECT_EQ(errors[5].field, "spec.tags[1]");
  EXPECT_EQ(errors[5].message, "expected a string, got integer 3");
}

TEST(Validate, AnyIsNotChecked) {
  for (const char* gpus : {"all", "[0, 1]", "[\"0000:3b:00.0\"]", "{x: 1}"}) {
    auto r = load("VirtualMachine", std::string("  vcpus: 1\n  gpus: ") + gpus + "\n");
    EXPECT_TRUE(validateAgainstSchema(r, vmLike()).empty()) << gpus;
  }
}

TEST(Validate, ErrorsWithoutSourceLocations) {
  // A resource made by expand() has no locations: errors still carry the path.
  Resource r;
  r.id = {"Bridge", "child"};
  r.spec = {{"mtu", "x"}};
  auto errors = validateAgainstSchema(r, bridgeLike());
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].str(), "Bridge/child spec.mtu: expected an integer, got string \"x\"");
}

TEST(ClosestName, Typos) {
  std::vector<std::string> known = {"addresses", "mtu", "stp", "up", "adopt"};
  EXPECT_EQ(closestName("mtux", known), "mtu");
  EXPECT_EQ(closestName("adress", known), "addresses");
  EXPECT_EQ(closestName("Adopt", known), "adopt");
  EXPECT_EQ(closestName("vlan", known), "");
}

TEST(ClosestName, ALongNameCostsLittle) {
  // An 8 MiB name against short known ones: the distance table would be 8M x 10 entries.
  const std::vector<std::string> known = {"mtu", "addresses", "adopt"};
  auto start = std::chrono::steady_clock::now();
  std::string out = testing::withMemoryLimit(
      64u << 20, [&] { return "[" + closestName(std::string(8 << 20, 'm'), known) + "]"; });
  EXPECT_EQ(out, "[]");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  EXPECT_EQ(closestName("addressesx", known), "addresses");
}

}  // namespace
}  // namespace nodeplane
