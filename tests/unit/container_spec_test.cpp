// The Container kind's spec side (plugins/docker/container_spec.hpp) over hand-built GPU
// inventories: schema, validation messages, normal form, claims, spec hash, create body and the
// observed form of a listed container. No dockerd.
#include "container_spec.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>

#include "claims.hpp"
#include "diff.hpp"
#include "nodeplane/text.hpp"
#include "support/files.hpp"
#include "validate.hpp"

namespace nodeplane::docker {
namespace {

using ::testing::HasSubstr;

const char* kUuid0 = "GPU-9a1e3c5f-2b7d-4e8a-b6c1-0f2d3e4a5b60";
const char* kUuid1 = "GPU-9a1e3c5f-2b7d-4e8a-b6c1-0f2d3e4a5b61";
const char* kUuid2 = "GPU-9a1e3c5f-2b7d-4e8a-b6c1-0f2d3e4a5b62";

host::Gpu gpu(std::string address, int index, std::string uuid, int numa,
              std::string driver = "nvidia", std::string vendor = "10de") {
  host::Gpu g;
  g.function.address = std::move(address);
  g.function.vendor = std::move(vendor);
  g.function.device = "2330";
  g.function.classCode = "030200";
  g.function.driver = std::move(driver);
  g.function.numaNode = numa;
  g.index = index;
  g.uuid = std::move(uuid);
  return g;
}

// An H100 host: GPUs 0,1 on NUMA node 0, 2 on node 1, 3 without its driver (no UUID), 4 passed
// through to a VM, and the BMC's ASPEED display controller (not NVIDIA).
std::vector<host::Gpu> inventory() {
  return {gpu("0000:03:00.0", -1, "", -1, "ast", "1a03"),
          gpu("0000:1b:00.0", 0, kUuid0, 0),
          gpu("0000:3b:00.0", 1, kUuid1, 0),
          gpu("0000:9b:00.0", 2, kUuid2, 1),
          gpu("0000:bb:00.0", 3, "", -1, ""),
          gpu("0000:db:00.0", 4, "", 1, "vfio-pci")};
}

Resource container(Json spec, std::string name = "train") {
  Resource r;
  r.id = ResourceId{kKind, std::move(name)};
  r.spec = std::move(spec);
  r.where = SourceLocation{"c.yaml", 1, 1};
  r.locations["metadata.name"] = SourceLocation{"c.yaml", 3, 9};
  r.locations["spec.image"] = SourceLocation{"c.yaml", 5, 10};
  r.locations["spec.gpus"] = SourceLocation{"c.yaml", 6, 9};
  r.locations["spec.gpus[1]"] = SourceLocation{"c.yaml", 6, 14};
  return r;
}

std::vector<Error> check(Json spec, std::string name = "train") {
  return validateContainer(container(std::move(spec), std::move(name)), inventory());
}

const FieldSchema* fieldOf(const std::vector<FieldSchema>& fields, const std::string& name) {
  for (const auto& f : fields)
    if (f.name == name) return &f;
  return nullptr;
}

Json goodSpec() {
  return {{"image", "nvcr.io/nvidia/pytorch:24.05-py3"},
          {"command", {"python", "train.py"}},
          {"env", {{"NCCL_DEBUG", "INFO"}, {"HF_TOKEN", "s3cr3t"}}},
          {"gpus", {0, 1}},
          {"numaAffinity", true},
          {"mounts",
           {{{"source", "/srv/data"}, {"target", "/data"}, {"readOnly", true}},
            {{"source", "/srv/ckpt"}, {"target", "/ckpt"}}}},
          {"network", "host"},
          {"restart", "unless-stopped"},
          {"labels", {{"team", "ml"}}}};
}

TEST(ContainerSchema, DeclaresFieldsTypesAndReplaceRules) {
  KindSchema k = containerKind();
  EXPECT_EQ(k.kind, "Container");
  const std::vector<std::string> names = {
      "image",  "command", "entrypoint", "env",   "gpus", "exclusive", "numaAffinity",
      "mounts", "network", "restart",    "state", "pull", "labels"};
  ASSERT_EQ(k.spec.size(), names.size());
  for (const auto& n : names) {
    const FieldSchema* f = fieldOf(k.spec, n);
    ASSERT_TRUE(f) << n;
    EXPECT_EQ(f->forcesReplace, n != "state" && n != "pull") << n;
    EXPECT_EQ(f->compared, n != "pull") << n;
    EXPECT_EQ(f->sensitive, n == "env") << n;
    EXPECT_EQ(f->required, n == "image") << n;
  }
  EXPECT_EQ(fieldOf(k.spec, "gpus")->type, FieldType::kAny);
  EXPECT_EQ(fieldOf(k.spec, "env")->type, FieldType::kStringMap);
  EXPECT_EQ(fieldOf(k.spec, "command")->type, FieldType::kStringList);
  EXPECT_EQ(fieldOf(k.spec, "mounts")->type, FieldType::kObjectList);
  EXPECT_EQ(fieldOf(k.spec, "restart")->allowed,
            (std::vector<std::string>{"no", "on-failure", "always", "unless-stopped"}));
  EXPECT_EQ(fieldOf(k.spec, "state")->allowed, (std::vector<std::string>{"running", "stopped"}));
  EXPECT_EQ(fieldOf(k.spec, "pull")->allowed,
            (std::vector<std::string>{"IfNotPresent", "Always", "Never"}));
  const auto& mounts = fieldOf(k.spec, "mounts")->fields;
  EXPECT_TRUE(fieldOf(mounts, "source")->required);
  EXPECT_TRUE(fieldOf(mounts, "target")->required);
  EXPECT_EQ(fieldOf(mounts, "readOnly")->type, FieldType::kBoolean);

  auto cfg = dockerConfigSchema();
  ASSERT_EQ(cfg.size(), 1u);
  EXPECT_EQ(cfg[0].name, "socket");
  EXPECT_EQ(cfg[0].type, FieldType::kString);
  EXPECT_THAT(cfg[0].description, HasSubstr("/run/docker.sock"));
}

// The agent config's docker: section is checked against the plugin's schema.
TEST(ContainerSchema, TheDockerConfigSectionIsChecked) {
  EXPECT_TRUE(validateSection({{"socket", "/run/docker.sock"}}, dockerConfigSchema(), "docker", {},
                              SourceLocation{"agent.yaml", 3, 1})
                  .empty());
  auto errors = validateSection({{"sock", "/x"}}, dockerConfigSchema(), "docker", {},
                                SourceLocation{"agent.yaml", 3, 1});
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].field, "docker.sock");
  EXPECT_EQ(errors[0].message, "unknown field \"sock\" (known: socket)");
  EXPECT_EQ(errors[0].hint, "did you mean \"socket\"?");
  auto type = validateSection({{"socket", 5}}, dockerConfigSchema(), "docker", {},
                              SourceLocation{"agent.yaml", 3, 1});
  ASSERT_EQ(type.size(), 1u);
  EXPECT_EQ(type[0].message, "expected a string, got integer 5");
}

TEST(ContainerValidate, AcceptsGoodSpecs) {
  EXPECT_TRUE(check(goodSpec()).empty());
  for (const std::string& image : std::vector<std::string>{
           "busybox", "ubuntu:22.04", "library/ubuntu", "docker.io/library/ubuntu:22.04",
           "localhost:5000/team/app:v1.2-rc_3", "registry.example.com/a/b/c",
           "Registry.Example.com/ns/app", "[fd00::1]:5000/app:1", "my_app__x.y-z",
           "busybox@sha256:" + std::string(64, 'a'),
           "nvcr.io/nvidia/pytorch:24.05-py3@sha256:" + std::string(64, '0')})
    EXPECT_TRUE(check({{"image", image}}).empty()) << image;
  for (const char* name : {"ab", "train-0", "a.b_c", "0x"})
    EXPECT_TRUE(check({{"image", "busybox"}}, name).empty()) << name;
  EXPECT_TRUE(check({{"image", "busybox"}, {"gpus", "all"}}).empty());
  EXPECT_TRUE(check({{"image", "busybox"}, {"gpus", {"0000:9b:00.0", kUuid0, "1"}}}).empty());
  EXPECT_TRUE(check({{"image", "busybox"}, {"gpus", {3}}}).empty());  // no driver, no UUID
}

struct BadCase {
  const char* what;
  Json spec;
  std::string name;
  const char* field;
  const char* message;
};

// Issue 7 section 4: each bad input, its field path and what the message says was expected.
TEST(ContainerValidate, BadInputNamesFieldAndWhatWasExpected) {
  const std::vector<BadCase> cases = {
      {"image upper case",
       {{"image", "Ubuntu:22.04"}},
       "train",
       "spec.image",
       "invalid image reference \"Ubuntu:22.04\": repository name \"Ubuntu\" must be lower-case"},
      {"image bad tag",
       {{"image", "ubuntu:-x"}},
       "train",
       "spec.image",
       "invalid image reference \"ubuntu:-x\": tag \"-x\" is not valid"},
      {"image bad digest",
       {{"image", "ubuntu@sha256:abc"}},
       "train",
       "spec.image",
       "digest \"sha256:abc\" is not sha256: followed by 64 lower-case hex digits"},
      {"image empty component",
       {{"image", "team//app"}},
       "train",
       "spec.image",
       "the repository path has an empty component"},
      {"image spaces",
       {{"image", "my image"}},
       "train",
       "spec.image",
       "repository path component \"my image\" is not valid"},
      {"image bad port",
       {{"image", "reg.io:http/app"}},
       "train",
       "spec.image",
       "registry port in \"reg.io:http\" is not a number"},
      {"image empty", {{"image", ""}}, "train", "spec.image", "the image reference is empty"},
      {"container name",
       {{"image", "busybox"}},
       "-train",
       "metadata.name",
       "invalid container name \"-train\": expected Docker's [a-zA-Z0-9][a-zA-Z0-9_.-]+"},
      {"container name short",
       {{"image", "busybox"}},
       "a",
       "metadata.name",
       "at least 2 characters"},
      {"container name slash",
       {{"image", "busybox"}},
       "a/b",
       "metadata.name",
       "invalid container name \"a/b\""},
      {"relative source",
       {{"image", "busybox"}, {"mounts", {{{"source", "data"}, {"target", "/data"}}}}},
       "train",
       "spec.mounts[0].source",
       "expected an absolute path (starting with /), got \"data\""},
      {"relative target",
       {{"image", "busybox"}, {"mounts", {{{"source", "/data"}, {"target", "data"}}}}},
       "train",
       "spec.mounts[0].target",
       "expected an absolute path (starting with /), got \"data\""},
      {"duplicate target",
       {{"image", "busybox"},
        {"mounts",
         {{{"source", "/a"}, {"target", "/data"}}, {{"source", "/b"}, {"target", "/data/"}}}}},
       "train",
       "spec.mounts[1].target",
       "duplicate mount target \"/data\" (also spec.mounts[0].target): each target can be "
       "mounted once"},
      {"unknown index",
       {{"image", "busybox"}, {"gpus", {0, 7}}},
       "train",
       "spec.gpus[1]",
       "no NVIDIA GPU with index 7 on this host (NVIDIA GPUs here: 0000:1b:00.0 (index 0), "
       "0000:3b:00.0 (index 1), 0000:9b:00.0 (index 2), 0000:bb:00.0 (index 3), 0000:db:00.0 "
       "(index 4))"},
      {"unknown address",
       {{"image", "busybox"}, {"gpus", {0, "0000:5e:00.0"}}},
       "train",
       "spec.gpus[1]",
       "no GPU at PCI address 0000:5e:00.0 on this host (NVIDIA GPUs here:"},
      {"unknown uuid",
       {{"image", "busybox"}, {"gpus", {0, "GPU-00000000-0000-0000-0000-000000000000"}}},
       "train",
       "spec.gpus[1]",
       "no NVIDIA GPU with UUID \"GPU-00000000-0000-0000-0000-000000000000\" on this host"},
      {"not nvidia",
       {{"image", "busybox"}, {"gpus", {0, "0000:03:00.0"}}},
       "train",
       "spec.gpus[1]",
       "the device at 0000:03:00.0 is not an NVIDIA GPU (vendor 1a03): only NVIDIA GPUs can be "
       "given to a container"},
      {"vfio",
       {{"image", "busybox"}, {"gpus", {0, 4}}},
       "train",
       "spec.gpus[1]",
       "GPU 0000:db:00.0 (index 4) is bound to vfio-pci (passed through to a VM): it cannot be "
       "shared with a container"},
      {"all in list",
       {{"image", "busybox"}, {"gpus", {0, "all"}}},
       "train",
       "spec.gpus[1]",
       "\"all\" cannot be mixed with a list of GPUs: write `gpus: all`, or list the GPUs"},
      {"same gpu twice",
       {{"image", "busybox"}, {"gpus", {0, kUuid0}}},
       "train",
       "spec.gpus[1]",
       "GPU 0000:1b:00.0 (index 0) is already named by spec.gpus[0]"},
      {"gpus not a list",
       {{"image", "busybox"}, {"gpus", "0,1"}},
       "train",
       "spec.gpus",
       "expected \"all\" or a list of GPU indices, PCI addresses and GPU-… UUIDs, got string "
       "\"0,1\""},
      {"gpus entry type",
       {{"image", "busybox"}, {"gpus", {0, true}}},
       "train",
       "spec.gpus[1]",
       "expected a GPU index, a PCI address or a GPU-… UUID, got boolean true"},
      {"gpus entry word",
       {{"image", "busybox"}, {"gpus", {0, "first"}}},
       "train",
       "spec.gpus[1]",
       "expected a GPU index (0, 1, …), a PCI address (0000:3b:00.0) or a GPU-… UUID, got string "
       "\"first\""},
      {"env name",
       {{"image", "busybox"}, {"env", {{"1BAD", "x"}}}},
       "train",
       "spec.env.1BAD",
       "invalid environment variable name \"1BAD\": expected [A-Za-z_][A-Za-z0-9_]*"},
      {"env name dash",
       {{"image", "busybox"}, {"env", {{"MY-VAR", "x"}}}},
       "train",
       "spec.env.MY-VAR",
       "invalid environment variable name \"MY-VAR\""},
      {"numa without gpus",
       {{"image", "busybox"}, {"numaAffinity", true}},
       "train",
       "spec.numaAffinity",
       "numaAffinity pins the container to the NUMA nodes of its GPUs, but it has none: expected "
       "gpus to be set"},
      {"reserved label",
       {{"image", "busybox"}, {"labels", {{"io.nodeplane.agent", "x"}}}},
       "train",
       "spec.labels.io.nodeplane.agent",
       "label \"io.nodeplane.agent\" is under io.nodeplane., which is reserved for nodeplane's "
       "ownership labels"},
  };
  for (const auto& c : cases) {
    auto errors = check(c.spec, c.name);
    ASSERT_EQ(errors.size(), 1u) << c.what << ": " << (errors.empty() ? "" : errors[0].str());
    EXPECT_EQ(errors[0].kind, ErrorKind::kInvalidInput) << c.what;
    EXPECT_EQ(errors[0].field, c.field) << c.what;
    EXPECT_EQ(errors[0].resource, "Container/" + c.name) << c.what;
    EXPECT_THAT(errors[0].message, HasSubstr(c.message)) << c.what;
  }
}

TEST(ContainerValidate, ErrorsCarryTheFileAndLine) {
  auto errors = check({{"image", "Ubuntu"}, {"gpus", {0, 9}}}, "-x");
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_THAT(errors[0].str(), HasSubstr("c.yaml:3:9: Container/-x metadata.name: invalid"));
  EXPECT_THAT(errors[1].str(), HasSubstr("c.yaml:5:10: Container/-x spec.image: invalid image"));
  EXPECT_THAT(errors[1].hint, HasSubstr("expected [registry[:port]/]path[:tag]"));
  EXPECT_THAT(errors[2].str(), HasSubstr("c.yaml:6:14: Container/-x spec.gpus[1]: no NVIDIA GPU"));
}

// restart / state / pull values are checked by the core's schema check, with the allowed values.
TEST(ContainerValidate, EnumsAreCheckedByTheSchemaWithTheAllowedValues) {
  struct Case {
    const char* key;
    const char* value;
    const char* message;
  };
  for (const Case& c :
       {Case{"restart", "sometimes",
             "string \"sometimes\" is not one of: no, on-failure, always, unless-stopped"},
        Case{"state", "paused", "string \"paused\" is not one of: running, stopped"},
        Case{"pull", "always", "string \"always\" is not one of: IfNotPresent, Always, Never"}}) {
    auto errors =
        validateAgainstSchema(container({{"image", "busybox"}, {c.key, c.value}}), containerKind());
    ASSERT_EQ(errors.size(), 1u) << c.key;
    EXPECT_EQ(errors[0].field, std::string("spec.") + c.key);
    EXPECT_EQ(errors[0].message, c.message);
  }
  auto missing = validateAgainstSchema(container({{"command", {"sh"}}}), containerKind());
  ASSERT_EQ(missing.size(), 1u);
  EXPECT_EQ(missing[0].message, "missing required field \"image\"");
  // An env value of the wrong type is reported without quoting it (sensitive).
  auto env = validateAgainstSchema(container({{"image", "busybox"}, {"env", {{"A", 1234567}}}}),
                                   containerKind());
  ASSERT_EQ(env.size(), 1u);
  EXPECT_THAT(env[0].message, ::testing::Not(HasSubstr("1234567")));
}

TEST(ContainerNormalize, FillsDefaultsResolvesGpusSortsMountsAndIsIdempotent) {
  Json n = normalizeContainer(goodSpec(), inventory());
  EXPECT_EQ(n["state"], "running");
  EXPECT_EQ(n["pull"], "IfNotPresent");
  EXPECT_EQ(n["exclusive"], false);
  EXPECT_EQ(n["restart"], "unless-stopped");  // as written
  EXPECT_EQ(n["gpus"], Json({"0000:1b:00.0", "0000:3b:00.0"}));
  ASSERT_EQ(n["mounts"].size(), 2u);
  EXPECT_EQ(n["mounts"][0]["target"], "/ckpt");
  EXPECT_EQ(n["mounts"][0]["readOnly"], false);
  EXPECT_EQ(n["mounts"][1]["target"], "/data");
  EXPECT_EQ(n["mounts"][1]["readOnly"], true);
  EXPECT_EQ(normalizeContainer(n, inventory()), n);

  Json minimal = normalizeContainer({{"image", "busybox"}}, inventory());
  EXPECT_EQ(minimal, Json({{"image", "busybox"},
                           {"state", "running"},
                           {"restart", "no"},
                           {"pull", "IfNotPresent"},
                           {"exclusive", false},
                           {"numaAffinity", false},
                           {"command", Json::array()},
                           {"entrypoint", Json::array()},
                           {"env", Json::object()},
                           {"labels", Json::object()},
                           {"mounts", Json::array()},
                           {"gpus", Json::array()},
                           {"network", "default"}}));
  EXPECT_EQ(normalizeContainer(minimal, inventory()), minimal);

  // Index, UUID and address of the same GPUs: one normal form, sorted by address.
  Json a = normalizeContainer({{"gpus", {2, kUuid0}}}, inventory());
  Json b = normalizeContainer({{"gpus", {"0000:1b:00.0", "0000:9B:00.0"}}}, inventory());
  EXPECT_EQ(a["gpus"], Json({"0000:1b:00.0", "0000:9b:00.0"}));
  EXPECT_EQ(a["gpus"], b["gpus"]);
  EXPECT_EQ(normalizeContainer({{"gpus", "all"}}, inventory())["gpus"], "all");
  // What the inventory cannot resolve stays as written (validate reports it).
  EXPECT_EQ(normalizeContainer({{"gpus", {1, 9}}}, inventory())["gpus"], Json({1, 9}));
  // An index names another GPU on another host: a change.
  auto other = inventory();
  other.erase(other.begin() + 1);  // index 0 gone
  for (auto& g : other)
    if (g.index > 0) --g.index;
  EXPECT_EQ(normalizeContainer({{"gpus", {0}}}, other)["gpus"], Json({"0000:3b:00.0"}));
}

// Removing a field from a file is a change back to Docker's default, not "don't care": the core's
// diff skips only fields the desired spec leaves unset, and the normal form sets them all.
TEST(ContainerNormalize, AFieldRemovedFromTheFileIsAChange) {
  Json before = normalizeContainer(
      {{"image", "busybox"}, {"gpus", {0}}, {"env", {{"A", "1"}}}, {"command", {"sleep", "1"}}},
      inventory());
  Json after = normalizeContainer({{"image", "busybox"}}, inventory());
  auto changes = diffSpec(after, before, containerKind().spec);
  std::vector<std::string> paths;
  for (const auto& c : changes) paths.push_back(c.path);
  EXPECT_EQ(paths, (std::vector<std::string>{"command", "env", "gpus"}));
  for (const auto& c : changes) EXPECT_TRUE(c.forcesReplace) << c.path;
  // The image's own CMD and ENTRYPOINT: nothing sent.
  auto body = createBody("c", after, inventory(), "/nonexistent", "agent");
  ASSERT_TRUE(body) << body.error().str();
  EXPECT_FALSE(body->contains("Cmd"));
  EXPECT_FALSE(body->contains("Entrypoint"));
  EXPECT_FALSE((*body)["HostConfig"].contains("DeviceRequests"));
}

TEST(ContainerClaims, OneGpuClaimPerGpuSharedUnlessExclusive) {
  auto claims = containerClaims(container({{"gpus", {1, kUuid0}}}), inventory());
  ASSERT_EQ(claims.size(), 2u);
  EXPECT_EQ(claims[0], (Claim{.type = "gpu", .id = "0000:1b:00.0", .exclusive = false}));
  EXPECT_EQ(claims[1], (Claim{.type = "gpu", .id = "0000:3b:00.0", .exclusive = false}));
  auto exclusive = containerClaims(container({{"gpus", {2}}, {"exclusive", true}}), inventory());
  ASSERT_EQ(exclusive.size(), 1u);
  EXPECT_EQ(exclusive[0], (Claim{.type = "gpu", .id = "0000:9b:00.0", .exclusive = true}));
  // "all": every NVIDIA GPU the nvidia driver can give (not the one on vfio-pci, not the BMC's).
  auto all = containerClaims(container({{"gpus", "all"}}), inventory());
  std::vector<std::string> ids;
  for (const auto& c : all) ids.push_back(c.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"0000:1b:00.0", "0000:3b:00.0", "0000:9b:00.0",
                                           "0000:bb:00.0"}));
  EXPECT_TRUE(containerClaims(container({{"image", "busybox"}}), inventory()).empty());
}

// Two exclusive claims of one GPU (named by index in one file and by UUID in the other) are a
// validation error of the core's claims check, naming the first with its file:line; shared
// claims are fine.
TEST(ContainerClaims, TwoExclusiveClaimsOfOneGpuConflictInTheCoresCheck) {
  auto claimsCheck = [](Json a, Json b) {
    std::vector<Resource> rs = {container(std::move(a), "train"), container(std::move(b), "infer")};
    rs[1].where = SourceLocation{"d.yaml", 1, 1};
    std::vector<std::vector<DesiredClaim>> claims;
    for (const auto& r : rs) {
      claims.emplace_back();
      for (const auto& c : containerClaims(r, inventory())) claims.back().push_back({c, ""});
    }
    std::vector<Error> errors;
    checkDesiredClaims(rs, claims, errors);
    return errors;
  };
  auto errors = claimsCheck({{"gpus", {0, 1}}, {"exclusive", true}},
                            {{"gpus", {kUuid0}}, {"exclusive", true}});
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].str(),
            "d.yaml:1:1: Container/infer: claims gpu 0000:1b:00.0, already claimed by "
            "Container/train at c.yaml:1:1");
  EXPECT_EQ(claimsCheck({{"gpus", {2}}, {"exclusive", true}}, {{"gpus", {2}}}).size(), 1u);
  EXPECT_TRUE(claimsCheck({{"gpus", {2}}}, {{"gpus", {"0000:9b:00.0"}}}).empty());
}

TEST(ContainerSpecHash, CoversWhatTheContainerIsMadeFromNotStateOrPull) {
  Json n = normalizeContainer(goodSpec(), inventory());
  const std::string h = specHash(n);
  EXPECT_EQ(h.size(), 64u);
  EXPECT_EQ(h.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_EQ(specHash(n), h);
  Json stopped = n;
  stopped["state"] = "stopped";
  stopped["pull"] = "Always";
  EXPECT_EQ(specHash(stopped), h);
  for (const char* key : {"image", "network", "restart"}) {
    Json changed = n;
    changed[key] = "x";
    EXPECT_NE(specHash(changed), h) << key;
  }
  Json env = n;
  env["env"]["HF_TOKEN"] = "other";
  EXPECT_NE(specHash(env), h);
}

std::filesystem::path numaSysfs(const testing::TempDir& dir) {
  dir.write("devices/system/node/node0/cpulist", "0-15,32-47\n");
  dir.write("devices/system/node/node1/cpulist", "16-31,48-63\n");
  return dir.path();
}

TEST(ContainerCreateBody, CarriesImageGpusMountsLabelsAndNumaPinning) {
  testing::TempDir dir;
  Json n = normalizeContainer(goodSpec(), inventory());
  auto body = createBody("train", n, inventory(), numaSysfs(dir), "agent-1");
  ASSERT_TRUE(body) << body.error().str();
  Json& b = *body;
  EXPECT_EQ(b["Image"], "nvcr.io/nvidia/pytorch:24.05-py3");
  EXPECT_EQ(b["Cmd"], Json({"python", "train.py"}));
  EXPECT_FALSE(b.contains("Entrypoint"));
  EXPECT_EQ(b["Env"], Json({"HF_TOKEN=s3cr3t", "NCCL_DEBUG=INFO"}));
  const Json& hc = b["HostConfig"];
  EXPECT_EQ(hc["DeviceRequests"],
            Json::parse(R"([{"Driver":"nvidia","DeviceIDs":[")" + std::string(kUuid0) + R"(",")" +
                        kUuid1 + R"("],"Capabilities":[["gpu"]]}])"));
  EXPECT_EQ(hc["Mounts"], Json::parse(R"([
    {"Type":"bind","Source":"/srv/ckpt","Target":"/ckpt","ReadOnly":false},
    {"Type":"bind","Source":"/srv/data","Target":"/data","ReadOnly":true}])"));
  EXPECT_EQ(hc["NetworkMode"], "host");
  EXPECT_EQ(hc["RestartPolicy"], Json({{"Name", "unless-stopped"}}));
  EXPECT_EQ(hc["CpusetCpus"], "0-15,32-47");  // GPUs 0 and 1: NUMA node 0
  EXPECT_EQ(hc["CpusetMems"], "0");

  const Json& labels = b["Labels"];
  EXPECT_EQ(labels["team"], "ml");
  EXPECT_EQ(labels[kManagedLabel], "true");
  EXPECT_EQ(labels[kResourceLabel], "Container/train");
  EXPECT_EQ(labels[kAgentLabel], "agent-1");
  EXPECT_EQ(labels[kSpecHashLabel], specHash(n));
  Json spec = Json::parse(labels[kSpecLabel].get<std::string>());
  EXPECT_FALSE(spec.contains("state"));
  EXPECT_EQ(spec["gpus"], n["gpus"]);
  EXPECT_EQ(spec["env"], Json({{"sha256", spec["env"]["sha256"]}}));
  EXPECT_EQ(labels[kSpecLabel].get<std::string>().find("s3cr3t"), std::string::npos);
}

TEST(ContainerCreateBody, GpuVariantsAndNumaEdgeCases) {
  testing::TempDir dir;
  const auto sysfs = numaSysfs(dir);
  auto body = [&](Json spec) {
    auto b = createBody("c1", normalizeContainer(spec, inventory()), inventory(), sysfs, "a");
    EXPECT_TRUE(b) << b.error().str();
    return b ? (*b)["HostConfig"] : Json();
  };
  EXPECT_EQ(body({{"image", "busybox"}, {"gpus", "all"}})["DeviceRequests"],
            Json::parse(R"([{"Driver":"nvidia","Count":-1,"Capabilities":[["gpu"]]}])"));
  // A GPU without a UUID (driver not loaded) is named by its index.
  EXPECT_EQ(body({{"image", "busybox"}, {"gpus", {3, 2}}})["DeviceRequests"][0]["DeviceIDs"],
            Json({kUuid2, "3"}));
  Json plain = body({{"image", "busybox"}});
  EXPECT_FALSE(plain.contains("DeviceRequests"));
  EXPECT_EQ(plain["NetworkMode"], "default");  // Docker's default network
  EXPECT_FALSE(plain.contains("CpusetCpus"));
  EXPECT_EQ(plain["RestartPolicy"], Json({{"Name", "no"}}));
  // GPUs on two nodes: both nodes' CPUs, merged.
  Json two = body({{"image", "busybox"}, {"gpus", {1, 2}}, {"numaAffinity", true}});
  EXPECT_EQ(two["CpusetCpus"], "0-63");
  EXPECT_EQ(two["CpusetMems"], "0,1");
  // A GPU whose NUMA node is unknown: nothing to pin to.
  Json unknown = body({{"image", "busybox"}, {"gpus", {3}}, {"numaAffinity", true}});
  EXPECT_FALSE(unknown.contains("CpusetCpus"));
  EXPECT_FALSE(unknown.contains("CpusetMems"));

  testing::TempDir empty;
  auto missing =
      createBody("c1",
                 normalizeContainer({{"image", "busybox"}, {"gpus", {2}}, {"numaAffinity", true}},
                                    inventory()),
                 inventory(), empty.path(), "a");
  ASSERT_FALSE(missing);
  EXPECT_THAT(missing.error().message, HasSubstr("node1/cpulist (the CPUs of NUMA node 1"));
  auto noAgent = createBody("c1", normalizeContainer({{"image", "busybox"}}, inventory()),
                            inventory(), sysfs, "");
  ASSERT_FALSE(noAgent);
  EXPECT_THAT(noAgent.error().message, HasSubstr("without an agent id"));
  auto gone = createBody("c1", Json({{"image", "busybox"}, {"gpus", {"0000:5e:00.0"}}}),
                         inventory(), sysfs, "a");
  ASSERT_FALSE(gone);
  EXPECT_THAT(gone.error().message, HasSubstr("no GPU at PCI address 0000:5e:00.0"));
}

// What Docker's GET /containers/json lists for a container made from createBody().
Json listEntry(const Json& body, const std::string& name, const std::string& state) {
  return {{"Id", "c0ffee"},
          {"Names", {"/" + name}},
          {"Image", body["Image"]},
          {"State", state},
          {"Labels", body["Labels"]},
          {"HostConfig", {{"NetworkMode", body["HostConfig"].value("NetworkMode", "default")}}}};
}

TEST(ContainerObserve, SpecFromTheLabelEqualsTheDesiredSpecInTheCoresDiff) {
  testing::TempDir dir;
  const KindSchema k = containerKind();
  Json desired = normalizeContainer(goodSpec(), inventory());
  auto body = createBody("train", desired, inventory(), numaSysfs(dir), "agent-1");
  ASSERT_TRUE(body);
  ObservedObject o = observedFromListEntry(listEntry(*body, "train", "running"), "agent-1");
  EXPECT_EQ(o.id, (ResourceId{"Container", "train"}));
  EXPECT_EQ(o.uid, "c0ffee");
  EXPECT_TRUE(o.marked);
  EXPECT_EQ(o.spec["state"], "running");
  EXPECT_EQ(o.holds,
            (std::vector<Claim>{{.type = "gpu", .id = "0000:1b:00.0", .exclusive = false},
                                {.type = "gpu", .id = "0000:3b:00.0", .exclusive = false}}));
  Json observed = normalizeContainer(o.spec, inventory());
  EXPECT_TRUE(diffSpec(desired, observed, k.spec).empty());

  // Another env value: a sensitive change that replaces, with no values shown.
  Json otherEnv = desired;
  otherEnv["env"]["HF_TOKEN"] = "rotated";
  auto changes = diffSpec(otherEnv, observed, k.spec);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].path, "env");
  EXPECT_TRUE(changes[0].sensitive);
  EXPECT_TRUE(changes[0].forcesReplace);
  EXPECT_TRUE(changes[0].from.is_null());
  EXPECT_TRUE(changes[0].to.is_null());

  // Stopped by hand: only state differs, in place.
  ObservedObject exited = observedFromListEntry(listEntry(*body, "train", "exited"), "agent-1");
  auto stateOnly = diffSpec(desired, normalizeContainer(exited.spec, inventory()), k.spec);
  ASSERT_EQ(stateOnly.size(), 1u);
  EXPECT_EQ(stateOnly[0].path, "state");
  EXPECT_FALSE(stateOnly[0].forcesReplace);
}

TEST(ContainerObserve, OwnershipFromTheLabels) {
  testing::TempDir dir;
  auto body = createBody("web", normalizeContainer({{"image", "busybox"}}, inventory()),
                         inventory(), numaSysfs(dir), "agent-1");
  ASSERT_TRUE(body);
  Json entry = listEntry(*body, "web", "created");

  ObservedObject mine = observedFromListEntry(entry, "agent-1");
  EXPECT_TRUE(mine.marked);
  EXPECT_TRUE(mine.markedByOther.empty());
  EXPECT_EQ(mine.spec["state"], "stopped");
  EXPECT_EQ(mine.spec["image"], "busybox");

  EXPECT_TRUE(mine.holds.empty());

  auto exclusive = createBody(
      "web",
      normalizeContainer({{"image", "busybox"}, {"gpus", {2}}, {"exclusive", true}}, inventory()),
      inventory(), numaSysfs(dir), "agent-1");
  ASSERT_TRUE(exclusive);
  EXPECT_EQ(observedFromListEntry(listEntry(*exclusive, "web", "running"), "agent-1").holds,
            (std::vector<Claim>{{.type = "gpu", .id = "0000:9b:00.0", .exclusive = true}}));

  ObservedObject other = observedFromListEntry(entry, "agent-2");
  EXPECT_FALSE(other.marked);
  EXPECT_EQ(other.markedByOther, "agent-1");

  ObservedObject noStore = observedFromListEntry(entry, "");
  EXPECT_FALSE(noStore.marked);
  EXPECT_EQ(noStore.markedByOther, "agent-1");

  Json legacy = entry;
  legacy["Labels"].erase(kAgentLabel);
  ObservedObject l = observedFromListEntry(legacy, "agent-1");
  EXPECT_FALSE(l.marked);
  EXPECT_TRUE(l.legacyMark);
  EXPECT_TRUE(l.markedByOther.empty());

  // Renamed by hand: the labels name another resource; not this one's mark.
  Json renamed = entry;
  renamed["Names"] = {"/web-old"};
  ObservedObject r = observedFromListEntry(renamed, "agent-1");
  EXPECT_EQ(r.id.name, "web-old");
  EXPECT_FALSE(r.marked);
  EXPECT_FALSE(r.legacyMark);
  EXPECT_TRUE(r.markedByOther.empty());
}

TEST(ContainerObserve, UnlabelledOrBrokenLabelShowsWhatTheListShows) {
  Json entry = {{"Id", "abc"},
                {"Names", {"/hand-made"}},
                {"Image", "nginx:1.25"},
                {"State", "paused"},
                {"Labels", {{"maintainer", "ops"}}},
                {"HostConfig", {{"NetworkMode", "bridge"}}}};
  ObservedObject o = observedFromListEntry(entry, "agent-1");
  EXPECT_FALSE(o.marked);
  EXPECT_FALSE(o.legacyMark);
  EXPECT_TRUE(o.markedByOther.empty());
  EXPECT_EQ(o.spec, Json({{"image", "nginx:1.25"},
                          {"state", "running"},
                          {"network", "bridge"},
                          {"labels", {{"maintainer", "ops"}}}}));
  EXPECT_THAT(o.incomplete, HasSubstr("not its command, env, mounts or GPUs"));

  Json broken = entry;
  broken["Labels"] = {{kManagedLabel, "true"},
                      {kAgentLabel, "agent-1"},
                      {kResourceLabel, "Container/hand-made"},
                      {kSpecLabel, "{not json"}};
  broken["State"] = "dead";
  ObservedObject b = observedFromListEntry(broken, "agent-1");
  EXPECT_TRUE(b.marked);
  EXPECT_EQ(b.spec, Json({{"image", "nginx:1.25"}, {"state", "stopped"}, {"network", "bridge"}}));
  EXPECT_FALSE(b.incomplete.empty());
}

// An empty env holds no secret: the spec label keeps it as {} (so export can write the
// container), while a set env becomes its digest.
TEST(ContainerObserve, AnEmptyEnvIsKeptAndASetOneBecomesItsDigest) {
  Json empty = withEnvDigest(normalizeContainer({{"image", "busybox"}}, inventory()));
  EXPECT_EQ(empty["env"], Json::object());
  Json set = withEnvDigest(
      normalizeContainer({{"image", "busybox"}, {"env", {{"A", "secret"}}}}, inventory()));
  ASSERT_TRUE(set["env"].is_object());
  EXPECT_TRUE(set["env"].contains("sha256"));
  EXPECT_EQ(set["env"].dump().find("secret"), std::string::npos);
}

}  // namespace
}  // namespace nodeplane::docker
