#include "tree.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <filesystem>

namespace nodeplane::vgpuemu {

namespace fs = std::filesystem;

// ---------- Tree ----------

void Tree::clear() {
  nodes_.clear();
  children_.clear();
  nodes_[""] = Node{};
  children_[""];
}

Node& Tree::add(const std::string& path, Node node) {
  const auto slash = path.rfind('/');
  const std::string parent = slash == std::string::npos ? "" : path.substr(0, slash);
  if (!nodes_.count(parent)) dir(parent);
  auto [it, fresh] = nodes_.insert_or_assign(path, std::move(node));
  if (fresh) children_[parent].push_back(path.substr(slash == std::string::npos ? 0 : slash + 1));
  if (it->second.type == Node::Type::kDir) children_[path];
  return it->second;
}

void Tree::dir(const std::string& path) {
  if (auto it = nodes_.find(path); it != nodes_.end() && it->second.type == Node::Type::kDir)
    return;
  add(path, Node{});
}

Node& Tree::file(const std::string& path, unsigned mode, std::function<Status(std::string*)> show,
                 std::function<Status(std::string_view)> store) {
  Node n;
  n.type = Node::Type::kFile;
  n.mode = mode;
  n.show = std::move(show);
  n.store = std::move(store);
  return add(path, std::move(n));
}

Node& Tree::text(const std::string& path, unsigned mode, std::string content) {
  return file(path, mode, [content = std::move(content)](std::string* out) {
    *out = content;
    return Status::ok();
  });
}

void Tree::link(const std::string& path, const std::string& to) {
  Node n;
  n.type = Node::Type::kLink;
  n.mode = 0777;
  n.target = fs::path(to).lexically_relative(fs::path(path).parent_path()).string();
  add(path, std::move(n));
}

const Node* Tree::find(const std::string& path) const {
  auto it = nodes_.find(path);
  return it == nodes_.end() ? nullptr : &it->second;
}

const std::vector<std::string>* Tree::children(const std::string& path) const {
  auto it = children_.find(path);
  return it == children_.end() ? nullptr : &it->second;
}

std::optional<std::string> Tree::resolve(const std::string& path) const {
  fs::path done;  // resolved so far, relative to the root
  std::vector<std::string> rest;
  for (const auto& part : fs::path(path)) rest.push_back(part.string());
  std::reverse(rest.begin(), rest.end());
  for (int hops = 0; !rest.empty();) {
    std::string part = rest.back();
    rest.pop_back();
    if (part.empty() || part == "." || part == "/") continue;
    if (part == "..") {
      done = done.parent_path();
      continue;
    }
    fs::path next = done / part;
    const Node* n = find(next.string());
    if (!n) return std::nullopt;
    if (n->type != Node::Type::kLink) {
      done = next;
      continue;
    }
    if (++hops > 40) return std::nullopt;  // ELOOP
    std::vector<std::string> target;
    for (const auto& t : fs::path(n->target)) target.push_back(t.string());
    for (auto it = target.rbegin(); it != target.rend(); ++it) rest.push_back(*it);
  }
  return done.string();
}

// ---------- rendering the host ----------

namespace {

constexpr unsigned kRO = 0444, kRW = 0644, kWO = 0200;
constexpr int kVfioDevMajor = 508;  // dynamic on a real host; any value, as long as it is stable

std::string hex0x(const std::string& h) { return "0x" + h + "\n"; }
std::string upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// The kernel's PCI uevent (drivers/pci/pci-driver.c pci_uevent), format as the A2 capture [C S2].
std::string uevent(const std::string& driver, const std::string& vendor, const std::string& device,
                   const std::string& sv, const std::string& sd, const std::string& cls,
                   const std::string& address) {
  const unsigned c = std::stoul(cls, nullptr, 16);
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "DRIVER=%s\nPCI_CLASS=%X\nPCI_ID=%s:%s\nPCI_SUBSYS_ID=%s:%s\nPCI_SLOT_NAME=%s\n"
                "MODALIAS=pci:v0000%sd0000%ssv0000%ssd0000%sbc%02Xsc%02Xi%02X\n",
                driver.c_str(), c, upper(vendor).c_str(), upper(device).c_str(), upper(sv).c_str(),
                upper(sd).c_str(), address.c_str(), upper(vendor).c_str(), upper(device).c_str(),
                upper(sv).c_str(), upper(sd).c_str(), c >> 16, (c >> 8) & 0xff, c & 0xff);
  return buf;
}

// Writing an action to uevent makes the kernel send that event (kobject_synth_uevent); anything
// else is EINVAL. The emulator has no listeners, so it only checks the word.
Status storeUevent(std::string_view text) {
  std::string word(text.substr(0, text.find_first_of(" \n")));
  for (const char* a : {"add", "remove", "change", "move", "online", "offline", "bind", "unbind"})
    if (word == a) return Status::ok();
  return {EINVAL, "not a uevent action"};
}

struct Found {
  Pf* pf = nullptr;
  Vf* vf = nullptr;
};
Found findVf(Host& host, std::uint64_t serial) {
  for (auto& p : host.pfs())
    for (auto& v : p.vfs)
      if (v.serial == serial || (v.mdev && v.mdev->serial == serial)) return {&p, &v};
  return {};
}
const Status kGone{ENODEV, "the device is gone"};

class Renderer {
 public:
  Renderer(Host& host, Tree& tree) : host_(host), tree_(tree) {}

  void run() {
    tree_.clear();
    for (const char* d :
         {"bus/pci/devices", "bus/pci/drivers", "kernel/iommu_groups", "class", "dev/vfio/devices"})
      tree_.dir(d);
    tree_.text("dev/vfio/vfio", 0666, "").devNode = true;  // the container: opening holds nothing
    bool mdev = false;
    for (std::size_t i = 0; i < host_.pfs().size(); ++i) {
      mdev |= host_.pfs()[i].isMdev();
      renderPf(i);
    }
    // The mdev core is loaded where mdev parents exist; an SR-IOV-only host has no
    // bus/mdev (vgpu-device-manager PR #15: "open /sys/bus/mdev/devices: no such file") [C S11].
    if (mdev) {
      tree_.dir("bus/mdev/devices");
      tree_.dir("class/mdev_bus");
    }
  }

 private:
  // What every PCI function has (note §7.1 formats [C S2]), for PF and VF alike.
  void pciFunction(const std::string& dir, const std::string& address, const std::string& key,
                   const std::string& device, const std::string& subsystemDevice,
                   const std::string& driver, int group, std::uint64_t owner) {
    const PfConfig& c = *config_;
    tree_.link("bus/pci/devices/" + address, dir);
    auto attr = [&](const std::string& name, std::string value) {
      tree_.text(dir + "/" + name, kRO, std::move(value)).owner = owner;
    };
    attr("vendor", hex0x(c.vendor));
    attr("device", hex0x(device));
    attr("class", hex0x(c.classCode));
    attr("subsystem_vendor", hex0x(c.subsystemVendor));
    attr("subsystem_device", hex0x(subsystemDevice));
    attr("revision", hex0x(c.revision));
    attr("numa_node", std::to_string(c.numaNode) + "\n");
    attr("reset_method", "flr\n");
    Node& ue = tree_.text(
        dir + "/uevent", kRW,
        uevent(driver, c.vendor, device, c.subsystemVendor, subsystemDevice, c.classCode, address));
    ue.store = storeUevent;
    ue.key = key + "/uevent";
    ue.owner = owner;
    tree_.link(dir + "/driver", "bus/pci/drivers/" + driver);
    tree_.link("bus/pci/drivers/" + driver + "/" + address, dir);
    const std::string g = "kernel/iommu_groups/" + std::to_string(group);
    tree_.link(dir + "/iommu_group", g);
    tree_.link(g + "/devices/" + address, dir);
  }

  void renderPf(std::size_t index) {
    Pf& pf = host_.pfs()[index];
    config_ = &pf.config;
    const PfConfig& c = pf.config;
    const std::string dir = "devices/" + c.upstream + "/" + c.address;
    const std::string key = "bus/pci/devices/" + c.address;
    pciFunction(dir, c.address, key, c.device, c.subsystemDevice, c.driver, c.iommuGroup, 0);
    Host* host = &host_;
    auto attr = [&](const std::string& name, std::string value) {
      tree_.text(dir + "/" + name, kRO, std::move(value));
    };
    // SR-IOV capability files (Documentation/ABI/testing/sysfs-bus-pci) [C S16, note §7.1].
    attr("sriov_totalvfs", std::to_string(c.totalVfs) + "\n");
    attr("sriov_offset", std::to_string(c.vfOffset) + "\n");
    attr("sriov_stride", std::to_string(c.vfStride) + "\n");
    attr("sriov_vf_device", c.vfDevice + "\n");  // "%x\n": no 0x [C note §7.1]
    tree_
        .file(
            dir + "/sriov_numvfs", kRW,
            [host, index](std::string* out) {
              *out = std::to_string(host->pfs()[index].vfs.size()) + "\n";
              return Status::ok();
            },
            [host, index](std::string_view t) { return host->storeNumVfs(host->pfs()[index], t); })
        .key = key + "/sriov_numvfs";
    tree_
        .file(
            dir + "/sriov_drivers_autoprobe", kRW,
            [host, index](std::string* out) {
              *out = host->pfs()[index].autoprobe ? "1\n" : "0\n";
              return Status::ok();
            },
            [host, index](std::string_view t) {
              return host->storeAutoprobe(host->pfs()[index], t);
            })
        .key = key + "/sriov_drivers_autoprobe";
    // No nvidia/ on the PF [C S6]; no mdev_supported_types on an Ampere PF [C S13].
    for (auto& vf : pf.vfs) {
      const std::string vdir = "devices/" + c.upstream + "/" + vf.address;
      tree_.link(dir + "/virtfn" + std::to_string(vf.index), vdir);  // only while VFs exist
      renderVf(pf, vf, dir, vdir);
    }
  }

  void renderVf(Pf& pf, Vf& vf, const std::string& pfDir, const std::string& dir) {
    const PfConfig& c = pf.config;
    const std::string key = "bus/pci/devices/" + vf.address;
    const std::uint64_t serial = vf.serial;
    pciFunction(dir, vf.address, key, c.vfDevice, c.vfSubsystemDevice, c.vfDriver, vf.iommuGroup,
                serial);
    tree_.link(dir + "/physfn", pfDir);
    // The VF's vfio cdev [C S9 existence] and its dev nodes: opening one is what a VM does.
    const std::string vfio = "vfio" + std::to_string(vf.vfioMinor);
    tree_
        .text(dir + "/vfio-dev/" + vfio + "/dev", kRO,
              std::to_string(kVfioDevMajor) + ":" + std::to_string(vf.vfioMinor) + "\n")
        .owner = serial;
    devNode("dev/vfio/devices/" + vfio, serial);
    devNode("dev/vfio/" + std::to_string(vf.iommuGroup), serial);
    if (c.kind == PfKind::kNvidiaSriov) nvidiaDir(dir + "/nvidia", key + "/nvidia", serial);
    if (c.kind == PfKind::kNvidiaMdev) mdevParent(pf, vf, dir, key);
  }

  void devNode(const std::string& path, std::uint64_t serial) {
    Node& n = tree_.text(path, 0600, "");
    n.devNode = true;
    n.holds = serial;
    n.owner = serial;
    n.store = [](std::string_view) { return Status{EINVAL, "a VFIO node takes ioctls"}; };
  }

  // SR-IOV model, <VF>/nvidia/ (note §1.1, §7.1): six files, only on VFs [C S1, S3, S6].
  void nvidiaDir(const std::string& dir, const std::string& key, std::uint64_t serial) {
    Host* host = &host_;
    auto add = [&](const std::string& name, unsigned mode,
                   std::function<Status(Pf&, Vf&, std::string*)> show,
                   std::function<Status(Pf&, Vf&, std::string_view)> store) {
      Node& n = tree_.file(
          dir + "/" + name, mode,
          [host, serial, show](std::string* out) {
            auto f = findVf(*host, serial);
            return f.vf ? show(*f.pf, *f.vf, out) : kGone;
          },
          store
              ? std::function<Status(std::string_view)>([host, serial, store](std::string_view t) {
                  auto f = findVf(*host, serial);
                  return f.vf ? store(*f.pf, *f.vf, t) : kGone;
                })
              : nullptr);
      n.owner = serial;
      if (store) n.key = key + "/" + name;
    };
    add(
        "creatable_vgpu_types", kRO,
        [host](Pf& p, Vf& v, std::string* out) {
          *out = host->creatableTypes(p, v);
          return Status::ok();
        },
        nullptr);
    add(
        "current_vgpu_type", kRW,
        [](Pf&, Vf& v, std::string* out) {
          *out = std::to_string(v.type) + "\n";  // "%d\n", 0 when unset [C S1, S3, S6]
          return Status::ok();
        },
        [host](Pf& p, Vf& v, std::string_view t) { return host->storeCurrentType(p, v, t); });
    // Outputs: ENXIO until a vGPU exists [C S6]; values for a time-sliced vGPU are unconfirmed
    // (§8): gpu_instance_id 0, placement_id the slot [I]. What a write does is unknown: EINVAL [I].
    auto output = [](bool placement) {
      return [placement](Pf&, Vf& v, std::string* out) {
        if (v.type == 0) return Status{ENXIO, "no vGPU on this VF"};
        *out = std::to_string(placement ? v.placement : std::max(v.gi, 0)) + "\n";
        return Status::ok();
      };
    };
    auto readOnly = [](Pf&, Vf&, std::string_view) {
      return Status{EINVAL, "an output of the driver"};
    };
    add("gpu_instance_id", kRW, output(false), readOnly);
    add("placement_id", kRW, output(true), readOnly);
    add(
        "vgpu_params", kRW,
        [](Pf&, Vf& v, std::string* out) {
          *out = v.vgpuParams + "\n";  // "\n" when empty [C S6]
          return Status::ok();
        },
        [host](Pf&, Vf& v, std::string_view t) {
          return host->storeVgpuParams(v.vgpuParams, v.holds, t);
        });
    add(
        "warm_update", kRW,
        [](Pf&, Vf& v, std::string* out) {
          *out = std::to_string(v.warmUpdate) + "\n";  // "0" [C S6]
          return Status::ok();
        },
        [host](Pf&, Vf& v, std::string_view t) { return host->storeWarmUpdate(v, t); });
  }

  // mdev model on a VF parent (note §2, §7.2).
  void mdevParent(Pf& pf, Vf& vf, const std::string& dir, const std::string& key) {
    Host* host = &host_;
    const std::uint64_t serial = vf.serial;
    tree_.link("class/mdev_bus/" + vf.address, dir);  // [C S14]
    for (const auto& t : pf.config.board->types) {
      // The directory's prefix is the driver's name [C S4, S7]: nvidia-<id>.
      const std::string tname = "nvidia-" + std::to_string(t.id);
      const std::string tdir = dir + "/mdev_supported_types/" + tname;
      const VgpuType* type = &t;
      tree_.text(tdir + "/name", kRO, "NVIDIA " + t.name + "\n").owner = serial;
      tree_.text(tdir + "/description", kRO, t.description + "\n").owner = serial;
      tree_.text(tdir + "/device_api", kRO, "vfio-pci\n").owner = serial;
      tree_
          .file(tdir + "/available_instances", kRO,
                [host, serial, type](std::string* out) {
                  auto f = findVf(*host, serial);
                  if (!f.vf) return kGone;
                  *out = std::to_string(host->availableInstances(*f.pf, *f.vf, *type)) + "\n";
                  return Status::ok();
                })
          .owner = serial;
      Node& create =
          tree_.file(tdir + "/create", kWO, nullptr, [host, serial, type](std::string_view text) {
            auto f = findVf(*host, serial);
            return f.vf ? host->createMdev(*f.pf, *f.vf, *type, text) : kGone;
          });
      create.owner = serial;
      create.key = key + "/mdev_supported_types/" + tname + "/create";
      tree_.dir(tdir + "/devices");
      if (vf.mdev && vf.mdev->typeId == t.id)
        tree_.link(tdir + "/devices/" + vf.mdev->uuid, dir + "/" + vf.mdev->uuid);
    }
    if (vf.mdev) renderMdev(vf, dir);
  }

  void renderMdev(Vf& vf, const std::string& parentDir) {
    Host* host = &host_;
    const Mdev& m = *vf.mdev;
    const std::uint64_t serial = m.serial;
    const std::string dir = parentDir + "/" + m.uuid;
    const std::string key = "bus/mdev/devices/" + m.uuid;
    const std::string tname = "nvidia-" + std::to_string(m.typeId);
    // The mdev device (note §2 "Result of a create") [C S4, S14].
    tree_.link("bus/mdev/devices/" + m.uuid, dir);
    tree_.link(dir + "/mdev_type", parentDir + "/mdev_supported_types/" + tname);
    const std::string g = "kernel/iommu_groups/" + std::to_string(m.iommuGroup);
    tree_.link(dir + "/iommu_group", g);
    tree_.link(g + "/devices/" + m.uuid, dir);
    tree_.text(dir + "/uevent", kRO, "MDEV_TYPE=" + tname + "\n").owner = serial;  // [I]
    Node& remove = tree_.file(dir + "/remove", kWO, nullptr, [host, serial](std::string_view t) {
      auto f = findVf(*host, serial);
      return f.vf && f.vf->mdev ? host->removeMdev(*f.pf, *f.vf, t) : kGone;
    });
    remove.owner = serial;
    remove.key = key + "/remove";
    Node& params = tree_.file(
        dir + "/nvidia/vgpu_params", kRW,
        [host, serial](std::string* out) {
          auto f = findVf(*host, serial);
          if (!f.vf || !f.vf->mdev) return kGone;
          *out = f.vf->mdev->vgpuParams + "\n";
          return Status::ok();
        },
        [host, serial](std::string_view t) {
          auto f = findVf(*host, serial);
          if (!f.vf || !f.vf->mdev) return kGone;
          return host->storeVgpuParams(f.vf->mdev->vgpuParams, f.vf->mdev->holds, t);
        });
    params.owner = serial;
    params.key = key + "/nvidia/vgpu_params";
    tree_.text(dir + "/nvidia/vm_name", kRO, "\n").owner = serial;  // "\n" unused [C S4]
    devNode("dev/vfio/" + std::to_string(m.iommuGroup), serial);
  }

  Host& host_;
  Tree& tree_;
  const PfConfig* config_ = nullptr;
};

}  // namespace

void render(Host& host, Tree& tree) { Renderer(host, tree).run(); }

}  // namespace nodeplane::vgpuemu
