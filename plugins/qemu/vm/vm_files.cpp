// A VM's files: the qcow2 overlay on its base image (qemu-img), the UEFI firmware and the per-VM
// copy of its variables, and the cloud-init NoCloud seed ISO (genisoimage). Tools run with argv,
// never a shell; every file appears whole (written beside, then renamed).
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "nodeplane/digest.hpp"
#include "nodeplane/host/tool.hpp"
#include "nodeplane/plugin_util.hpp"
#include "nodeplane/text.hpp"
#include "vm_spec.hpp"

namespace nodeplane::qemu {
namespace {

constexpr std::chrono::seconds kToolTimeout{60};
constexpr std::int64_t kGiB = 1024LL * 1024 * 1024;

// A string as YAML reads it back exactly: JSON's double-quoted form is valid YAML.
std::string yamlString(const std::string& s) {
  return Json(s).dump(-1, ' ', false, Json::error_handler_t::replace);
}

// qemu-img info --output=json: the image's virtual size and backing file ("" when none).
struct ImageInfo {
  std::int64_t virtualSize = 0;
  std::string backing;
};

Result<ImageInfo> imageInfo(const QemuConfig& config, const std::filesystem::path& image) {
  // -U: read the header even while a running QEMU holds the image's lock.
  auto r = host::runToolOk({config.imgBinary, "info", "-U", "--output=json", image.string()},
                           kToolTimeout);
  if (!r) return std::unexpected(r.error());
  Json j = Json::parse(r->out, nullptr, false);
  if (!j.is_object() || !j.contains("virtual-size") || !j["virtual-size"].is_number_integer())
    return fail(ErrorKind::kTerminal,
                "qemu-img info " + image.string() + " did not report a virtual size");
  ImageInfo info;
  info.virtualSize = j["virtual-size"].get<std::int64_t>();
  if (j.contains("backing-filename") && j["backing-filename"].is_string())
    info.backing = j["backing-filename"].get<std::string>();
  return info;
}

void removeQuietly(const std::filesystem::path& p) {
  std::error_code ec;
  std::filesystem::remove_all(p, ec);
}

struct Firmware {
  std::filesystem::path code, vars;
};

Result<Firmware> firmware(const QemuConfig& config) {
  const std::pair<const char*, const char*> pairs[] = {{"OVMF_CODE_4M.fd", "OVMF_VARS_4M.fd"},
                                                       {"OVMF_CODE.fd", "OVMF_VARS.fd"}};
  for (const auto& [code, vars] : pairs) {
    std::error_code ec;
    Firmware f{config.firmwareDir / code, config.firmwareDir / vars};
    if (std::filesystem::is_regular_file(f.code, ec) &&
        std::filesystem::is_regular_file(f.vars, ec))
      return f;
  }
  return fail(ErrorKind::kTerminal,
              "no OVMF firmware in " + config.firmwareDir.string() +
                  " (looked for OVMF_CODE_4M.fd with OVMF_VARS_4M.fd, and OVMF_CODE.fd with "
                  "OVMF_VARS.fd)",
              "",
              "install the ovmf package, or point qemu.firmwareDir at the folder that has them");
}

}  // namespace

std::string vmUuid(const std::string& name) {
  std::string h = sha256Hex("nodeplane-vm-uuid:" + name).substr(0, 32);
  h[12] = '4';                                                        // version 4
  h[16] = "89ab"[std::stoi(std::string(1, h[16]), nullptr, 16) & 3];  // variant 1
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20, 12);
}

SeedFiles seedFiles(const VmSpec& spec, const std::string& instanceId) {
  SeedFiles f;
  const std::string hostname = spec.hostname.empty() ? spec.name : spec.hostname;
  // user-data: the spec's, verbatim; else a #cloud-config with the host name and the keys.
  if (!spec.userData.empty()) {
    f.userData = spec.userData;
    if (f.userData.back() != '\n') f.userData += '\n';
  } else {
    f.userData = "#cloud-config\nhostname: " + yamlString(hostname) + "\n";
    if (!spec.sshAuthorizedKeys.empty()) {
      f.userData += "ssh_authorized_keys:\n";
      for (const auto& k : spec.sshAuthorizedKeys) f.userData += "  - " + yamlString(k) + "\n";
    }
  }
  // meta-data: the keys go here as well (public-keys), so they reach the guest's default user
  // when the spec's own user-data does not list them.
  f.metaData =
      "instance-id: " + yamlString(instanceId) + "\nlocal-hostname: " + yamlString(hostname) + "\n";
  if (!spec.sshAuthorizedKeys.empty()) {
    f.metaData += "public-keys:\n";
    for (const auto& k : spec.sshAuthorizedKeys) f.metaData += "  - " + yamlString(k) + "\n";
  }
  if (!spec.address.empty() && !spec.mac.empty()) {
    f.networkConfig =
        "version: 2\nethernets:\n  nic0:\n    match:\n      macaddress: " + yamlString(spec.mac) +
        "\n    set-name: eth0\n    addresses:\n      - " + yamlString(spec.address) + "\n";
    if (!spec.gateway.empty())
      f.networkConfig +=
          "    routes:\n      - to: default\n        via: " + yamlString(spec.gateway) + "\n";
  }
  return f;
}

Result<void> writeSeedIso(const SeedFiles& files, const std::filesystem::path& iso,
                          const QemuConfig& config) {
  return catchAll("writing the seed " + iso.string(), [&]() -> Result<void> {
    // The files in a private folder beside the ISO (user-data may hold secrets), the ISO beside
    // it under a temporary name, then renamed over the old one.
    const std::filesystem::path dir = iso.string() + ".d";
    const std::filesystem::path tmp = iso.string() + ".tmp";
    removeQuietly(dir);
    removeQuietly(tmp);
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec)
      return fail(ErrorKind::kTerminal, "cannot create " + dir.string() + ": " + ec.message());
    std::filesystem::permissions(dir, std::filesystem::perms::owner_all, ec);
    std::vector<std::string> argv = {config.isoBinary, "-output", tmp.string(),
                                     "-volid",         "cidata",  "-joliet",
                                     "-rock",          "-quiet",  "-graft-points"};
    const std::pair<const char*, const std::string*> entries[] = {
        {"user-data", &files.userData},
        {"meta-data", &files.metaData},
        {"network-config", &files.networkConfig}};
    for (const auto& [name, text] : entries) {
      if (std::string(name) == "network-config" && text->empty()) continue;
      if (auto w = writeFileAtomically(dir / name, *text); !w) {
        removeQuietly(dir);
        return w;
      }
      argv.push_back(std::string(name) + "=" + (dir / name).string());
    }
    auto r = host::runToolOk(argv, kToolTimeout);
    removeQuietly(dir);
    if (!r) {
      removeQuietly(tmp);
      return std::unexpected(r.error());
    }
    std::filesystem::rename(tmp, iso, ec);
    if (ec) {
      removeQuietly(tmp);
      return fail(ErrorKind::kTerminal,
                  "cannot rename " + tmp.string() + " to " + iso.string() + ": " + ec.message());
    }
    return {};
  });
}

Result<void> ensureOverlay(const VmSpec& spec, const VmLayout& layout, const QemuConfig& config) {
  return catchAll("preparing the disk of VirtualMachine/" + spec.name, [&]() -> Result<void> {
    const auto base = config.imagesDir / (spec.diskBase + ".qcow2");
    std::error_code ec;
    const std::int64_t want = spec.diskSizeGiB * kGiB;
    if (std::filesystem::exists(layout.overlay, ec)) {
      auto info = imageInfo(config, layout.overlay);
      if (!info) return std::unexpected(info.error());
      if (!info->backing.empty() && info->backing != base.string())
        return fail(ErrorKind::kTerminal,
                    "the disk " + layout.overlay.string() + " is an overlay on " + info->backing +
                        ", not on " + base.string() + " (spec.disk.base changed)",
                    "spec.disk.base",
                    "an overlay cannot move to another base: set disk.base back, or delete the VM "
                    "(its disk goes with it) and create it again");
      if (want > info->virtualSize) {  // grow; never shrink
        auto r = host::runToolOk({config.imgBinary, "resize", "-f", "qcow2",
                                  layout.overlay.string(), std::to_string(want)},
                                 kToolTimeout);
        if (!r) return std::unexpected(r.error());
      }
      return {};
    }
    if (!std::filesystem::is_regular_file(base, ec))
      return fail(ErrorKind::kTerminal, "base image " + base.string() + " not found",
                  "spec.disk.base",
                  "put the qcow2 image there, or point qemu.imagesDir at the folder that has it");
    auto baseInfo = imageInfo(config, base);
    if (!baseInfo) return std::unexpected(baseInfo.error());
    std::filesystem::create_directories(layout.dir, ec);
    if (ec)
      return fail(ErrorKind::kTerminal,
                  "cannot create " + layout.dir.string() + ": " + ec.message());
    const std::filesystem::path tmp = layout.overlay.string() + ".tmp";
    removeQuietly(tmp);
    std::vector<std::string> argv = {config.imgBinary, "create",    "-q",    "-f",
                                     "qcow2",          "-F",        "qcow2", "-b",
                                     base.string(),    tmp.string()};
    // A size below the base's would cut the disk: the base's size is the least.
    if (want > baseInfo->virtualSize) argv.push_back(std::to_string(want));
    auto r = host::runToolOk(argv, kToolTimeout);
    if (!r) {
      removeQuietly(tmp);
      return std::unexpected(r.error());
    }
    std::filesystem::rename(tmp, layout.overlay, ec);
    if (ec) {
      removeQuietly(tmp);
      return fail(ErrorKind::kTerminal, "cannot rename " + tmp.string() + ": " + ec.message());
    }
    return {};
  });
}

Result<std::filesystem::path> ovmfCode(const QemuConfig& config) {
  auto f = firmware(config);
  if (!f) return std::unexpected(f.error());
  return f->code;
}

Result<void> ensureVars(const VmLayout& layout, const QemuConfig& config) {
  return catchAll("copying the UEFI variables", [&]() -> Result<void> {
    std::error_code ec;
    if (std::filesystem::exists(layout.vars, ec)) return {};  // made once: the guest's own now
    auto f = firmware(config);
    if (!f) return std::unexpected(f.error());
    std::ifstream in(f->vars, std::ios::binary);
    if (!in.is_open()) return fail(ErrorKind::kTerminal, "cannot read " + f->vars.string());
    std::stringstream text;
    text << in.rdbuf();
    return writeFileAtomically(layout.vars, text.str());
  });
}

}  // namespace nodeplane::qemu
