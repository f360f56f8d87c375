// Plain sysfs trees of vGPU hosts for the Vgpu unit tests, written into a temp dir (each test
// changes its own copy), and a HostServices whose writeSysfs does what NVIDIA's driver does with
// current_vgpu_type and mdev create/remove on those files (the equal-size collapse of the
// creatable lists, EPERM on a busy VF), counting every write. The FUSE emulator
// (tests/emulator/vgpu) is the integration tests' driver; this is small enough to read.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "support/files.hpp"
#include "support/plugin_rig.hpp"
#include "vgpu_config.hpp"
#include "vgpu_kind.hpp"

namespace nodeplane::vgpu::fixture {

namespace fs = std::filesystem;
using ::nodeplane::testing::slurp;
using ::nodeplane::testing::TempDir;
using ::nodeplane::testing::writeFile;

struct Type {
  long id;
  std::string name;  // short
  int gib;
};

// The L40S table of the research note §1.2 (ids 1145-1166, 2164).
inline std::vector<Type> l40s() {
  std::vector<Type> t;
  const int sizes[] = {1, 2, 3, 4, 6, 8, 12, 16, 24, 48};
  t.push_back({1145, "L40S-1B", 1});
  t.push_back({1146, "L40S-2B", 2});
  long id = 1147;
  for (int s : sizes) t.push_back({id++, "L40S-" + std::to_string(s) + "Q", s});
  for (int s : sizes) t.push_back({id++, "L40S-" + std::to_string(s) + "A", s});
  t.push_back({2164, "L40S-3B", 3});
  return t;
}

// A100 mdev types of §7.2 (time-sliced part and one MIG-backed).
inline std::vector<Type> a100() {
  return {{468, "A100-4C", 4},   {469, "A100-5C", 5},   {470, "A100-8C", 8},
          {471, "A100-10C", 10}, {472, "A100-20C", 20}, {473, "A100-40C", 40}};
}

inline std::string hex4(const std::string& v) { return "0x" + v + "\n"; }

class Host {
 public:
  Host() {
    sys = tmp / "sys";
    dev = tmp / "dev";
    proc = tmp / "proc";
    state = tmp / "state";
    fs::create_directories(sys / "bus/pci/devices");
    fs::create_directories(sys / "bus/pci/drivers/nvidia");
    fs::create_directories(sys / "bus/mdev/devices");
    fs::create_directories(dev / "vfio/devices");
    fs::create_directories(proc);
    fs::create_directories(state);
  }
  HostContext context() const {
    HostContext h;
    h.sysfsRoot = sys;
    h.devRoot = dev;
    h.procRoot = proc;
    h.stateDir = state;
    return h;
  }
  fs::path dir(const std::string& a) const { return sys / "bus/pci/devices" / a; }

  // One function: vendor/device/class, driver and IOMMU group links.
  void function(const std::string& a, const std::string& vendor, const std::string& device,
                const std::string& cls, const std::string& driver, int group) {
    const fs::path d = dir(a);
    fs::create_directories(d);
    writeFile(d / "vendor", hex4(vendor));
    writeFile(d / "device", hex4(device));
    writeFile(d / "class", "0x" + cls + "\n");
    writeFile(d / "numa_node", "0\n");
    if (!driver.empty()) {
      fs::create_directories(sys / "bus/pci/drivers" / driver);
      fs::create_symlink(sys / "bus/pci/drivers" / driver, d / "driver");
    }
    if (group >= 0) {
      fs::create_directories(sys / "kernel/iommu_groups" / std::to_string(group) / "devices");
      fs::create_symlink(sys / "kernel/iommu_groups" / std::to_string(group), d / "iommu_group");
    }
  }

  // An SR-IOV PF (offset 4, stride 1) with `present` of its `total` VFs enabled; each VF of the
  // SR-IOV model (nvidia/) or the mdev model (mdev_supported_types/) with `types`.
  void gpu(const std::string& pf, const std::string& model, std::vector<Type> types, int total,
           int present, int group, const std::string& vendor = "10de") {
    function(pf, vendor, "26b9", "030200", vendor == "10de" ? "nvidia" : "ice", group);
    writeFile(dir(pf) / "sriov_totalvfs", std::to_string(total) + "\n");
    writeFile(dir(pf) / "sriov_numvfs", std::to_string(present) + "\n");
    writeFile(dir(pf) / "sriov_offset", "4\n");
    writeFile(dir(pf) / "sriov_stride", "1\n");
    Gpu& g = gpus[pf];
    g.model = model;
    g.types = std::move(types);
    g.total = total;
    for (int k = 0; k < present; ++k) {
      const std::string vf = offsetAddress(pf, 4 + k);
      g.vfs.push_back(vf);
      function(vf, vendor, "26b9", "030200", vendor == "10de" ? "nvidia" : "iavf", group + 1 + k);
      fs::create_symlink("../" + pf, dir(vf) / "physfn");
      fs::create_symlink("../" + vf, dir(pf) / ("virtfn" + std::to_string(k)));
      fs::create_directories(dir(vf) / "vfio-dev" / ("vfio" + std::to_string(vfioN)));
      writeFile(dev / "vfio/devices" / ("vfio" + std::to_string(vfioN)), "");
      writeFile(dev / "vfio" / std::to_string(group + 1 + k), "");
      ++vfioN;
      if (model == "sriov") {
        writeFile(dir(vf) / "nvidia/current_vgpu_type", "0\n");
      } else if (model == "mdev") {
        for (const auto& t : g.types) {
          const fs::path td = dir(vf) / "mdev_supported_types" / ("nvidia-" + std::to_string(t.id));
          writeFile(td / "name", "NVIDIA " + t.name + "\n");
          writeFile(td / "description",
                    "num_heads=1, frl_config=60, framebuffer=" + std::to_string(t.gib * 1024) +
                        "M, max_resolution=4096x2400, max_instance=" +
                        std::to_string(std::min(40 / t.gib, total)) + "\n");
          writeFile(td / "device_api", "vfio-pci\n");
          fs::create_directories(td / "devices");
        }
      }
    }
    refresh(pf);
  }

  // What the driver lists now (§1.5 equal-size collapse; a VF with a type lists the header
  // only; mdev: available_instances 0/1 per VF parent, §2).
  void refresh(const std::string& pf) {
    Gpu& g = gpus[pf];
    std::vector<long> active;
    for (const auto& vf : g.vfs)
      if (long t = typeOf(pf, vf)) active.push_back(t);
    auto gibOf = [&](long id) {
      for (const auto& t : g.types)
        if (t.id == id) return t.gib;
      return 0;
    };
    const int fb = g.model == "mdev" ? 40 : 48;
    auto creatable = [&](const Type& t) {
      if (active.empty()) return true;
      if (t.gib != gibOf(active.front())) return false;
      int cap = std::min(fb / t.gib, g.total);
      return static_cast<int>(active.size()) < cap;
    };
    for (const auto& vf : g.vfs) {
      const bool has = typeOf(pf, vf) != 0;
      if (g.model == "sriov") {
        std::string text = "ID    : vGPU Name\n";
        if (!has)
          for (const auto& t : g.types)
            if (creatable(t)) {
              char row[64];
              std::snprintf(row, sizeof row, "%-5ld : NVIDIA %s\n", t.id, t.name.c_str());
              text += row;
            }
        writeFile(dir(vf) / "nvidia/creatable_vgpu_types", text);
      } else {
        for (const auto& t : g.types)
          writeFile(dir(vf) / "mdev_supported_types" / ("nvidia-" + std::to_string(t.id)) /
                        "available_instances",
                    !has && creatable(t) ? "1\n" : "0\n");
      }
    }
  }

  long typeOf(const std::string& pf, const std::string& vf) const {
    if (gpus.at(pf).model == "sriov") {
      try {
        return std::stol(slurp(dir(vf) / "nvidia/current_vgpu_type"));
      } catch (...) {
        return 0;
      }
    }
    std::error_code ec;
    for (fs::directory_iterator it(dir(vf), ec); !ec && it != fs::directory_iterator(); ++it)
      if (fs::is_symlink(it->path() / "mdev_type")) {
        const std::string t = fs::read_symlink(it->path() / "mdev_type").filename().string();
        return std::stol(t.substr(t.find('-') + 1));
      }
    return 0;
  }

  // A process that has `node` open (a fd link in the fake /proc), in the unit of VM `vm`.
  void opener(int pid, const fs::path& node, const std::string& vm) {
    const fs::path p = proc / std::to_string(pid);
    fs::create_directories(p / "fd");
    writeFile(p / "comm", "qemu-system-x86\n");
    writeFile(p / "cgroup", "0::/system.slice/nodeplane-vm-" + vm + ".service\n");
    fs::create_symlink(node, p / "fd/7");
  }

  struct Gpu {
    std::string model;
    std::vector<Type> types;
    int total = 0;
    std::vector<std::string> vfs;
  };
  std::map<std::string, Gpu> gpus;
  TempDir tmp;
  fs::path sys, dev, proc, state;
  int vfioN = 0;
};

// HostServices over a Host whose writeSysfs plays the driver (§1.4, §2), counting writes.
class FakeDriver final : public HostServices {
 public:
  explicit FakeDriver(Host& host, Json config = Json::object()) : host_(host) {
    context_ = host.context();
    context_.config = std::move(config);
    if (context_.config.contains("vgpu")) section_ = context_.config["vgpu"];
  }
  const HostContext& context() const override { return context_; }
  const Json& config() const override { return section_; }
  std::string agentId() const override { return test::PluginRig::kAgentId; }
  Result<std::vector<host::PciFunction>> pciFunctions() override {
    return host::readPciFunctions(context_.sysfsRoot);
  }
  Result<std::vector<host::Gpu>> gpus() override {
    return host::readGpuInventory(context_.sysfsRoot, context_.procRoot);
  }
  Result<sdbus::IConnection*> systemdBus() override {
    return fail(ErrorKind::kTerminal, "no bus in this test");
  }

  Result<void> writeSysfs(const fs::path& file, std::string_view value,
                          std::chrono::milliseconds) override {
    const std::string rel = file.string();
    const std::string v(value);
    ++writes[rel];
    log.push_back(rel + "=" + v);
    auto err = [&](const char* what) {
      return fail(ErrorKind::kTerminal, "writing \"" + v + "\" to " + rel + ": " + what);
    };
    std::vector<std::string> part;
    for (const auto& p : file) part.push_back(p.string());
    // bus/pci/devices/<vf>/nvidia/current_vgpu_type
    if (part.size() == 6 && part[5] == "current_vgpu_type") {
      const std::string vf = part[3];
      const std::string pf = fs::read_symlink(host_.dir(vf) / "physfn").filename().string();
      const long cur = host_.typeOf(pf, vf);
      long n = 0;
      try {
        std::size_t used = 0;
        n = std::stol(v, &used);
        if (used != v.size()) return err("Invalid argument");
      } catch (...) {
        return err("Invalid argument");
      }
      if (n == 0) {
        if (cur == 0) return err("Operation not permitted");
        if (refuseZero > 0) {
          --refuseZero;
          return err("Operation not permitted");
        }
      } else {
        if (cur != 0) return err("Operation not permitted");
        const std::string list = slurp(host_.dir(vf) / "nvidia/creatable_vgpu_types");
        if (list.find("\n" + std::to_string(n) + " ") == std::string::npos)
          return err("Input/output error");
      }
      writeFile(host_.dir(vf) / "nvidia/current_vgpu_type", std::to_string(n) + "\n");
      host_.refresh(pf);
      return {};
    }
    // bus/pci/devices/<vf>/mdev_supported_types/<type>/create
    if (part.size() == 7 && part[6] == "create") {
      const std::string vf = part[3];
      const std::string pf = fs::read_symlink(host_.dir(vf) / "physfn").filename().string();
      if (v.size() != 36) return err("Invalid argument");
      if (fs::exists(host_.sys / "bus/mdev/devices" / v)) return err("File exists");
      if (slurp(host_.dir(vf) / "mdev_supported_types" / part[5] / "available_instances") != "1\n")
        return err("Input/output error");
      const fs::path m = host_.dir(vf) / v;
      fs::create_directories(m);
      fs::create_symlink(host_.dir(vf) / "mdev_supported_types" / part[5], m / "mdev_type");
      fs::create_symlink(fs::read_symlink(host_.dir(vf) / "iommu_group"), m / "iommu_group");
      writeFile(m / "remove", "");
      fs::create_symlink(m, host_.sys / "bus/mdev/devices" / v);
      host_.refresh(pf);
      return {};
    }
    // bus/mdev/devices/<uuid>/remove
    if (part.size() == 5 && part[4] == "remove") {
      const fs::path link = host_.sys / "bus/mdev/devices" / part[3];
      if (!fs::is_symlink(link)) return err("No such file or directory");
      const fs::path m = fs::read_symlink(link);
      const std::string vf = m.parent_path().filename().string();
      const std::string pf = fs::read_symlink(host_.dir(vf) / "physfn").filename().string();
      fs::remove_all(m);
      fs::remove(link);
      host_.refresh(pf);
      return {};
    }
    return err("no such file in the fake driver");
  }

  int total() const {
    int n = 0;
    for (const auto& [f, c] : writes) n += c;
    return n;
  }

  std::map<std::string, int> writes;
  std::vector<std::string> log;
  int refuseZero = 0;  // the next n writes of 0 fail EPERM (a VF just let go of, §1.4)

 private:
  Host& host_;
  HostContext context_;
  Json section_ = Json::object();
};

}  // namespace nodeplane::vgpu::fixture
