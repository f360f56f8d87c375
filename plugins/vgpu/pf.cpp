#include "pf.hpp"

#include <algorithm>
#include <fstream>

namespace nodeplane::vgpu {

namespace fs = std::filesystem;

namespace {

std::string firstLine(const fs::path& file) {
  std::ifstream in(file);
  std::string line;
  std::getline(in, line);
  return line;
}

// "nodeplane-vm-vm1.service" anywhere in /proc/<pid>/cgroup -> "vm1".
std::string vmOfCgroup(const fs::path& cgroupFile) {
  std::ifstream in(cgroupFile);
  std::string line;
  static constexpr std::string_view kPrefix = "nodeplane-vm-", kSuffix = ".service";
  while (std::getline(in, line)) {
    auto at = line.rfind(kPrefix);
    if (at == std::string::npos) continue;
    auto end = line.find(kSuffix, at);
    if (end == std::string::npos || end == at + kPrefix.size()) continue;
    return line.substr(at + kPrefix.size(), end - at - kPrefix.size());
  }
  return "";
}

}  // namespace

Result<Pf> readPf(const fs::path& sysfsRoot, const std::string& address) {
  auto f = host::readPciFunction(sysfsRoot, address);
  if (!f) return std::unexpected(f.error());
  if (f->isVirtualFunction())
    return fail(ErrorKind::kInvalidInput,
                address + " is a virtual function (of " + f->physfn + "), not a physical function");
  const fs::path dir = sysfsRoot / "bus/pci/devices" / address;
  std::error_code ec;
  if (!fs::exists(dir / "sriov_totalvfs", ec) || f->totalVfs <= 0)
    return fail(ErrorKind::kInvalidInput,
                address + " is not an SR-IOV physical function (no sriov_totalvfs)");
  Pf pf;
  pf.function = *f;
  for (fs::directory_iterator it(dir, ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!name.starts_with("virtfn")) continue;
    int k = -1;
    try {
      k = std::stoi(name.substr(6));
    } catch (...) {
      continue;
    }
    if (k < 0 || k > 4096) continue;
    std::error_code lec;
    auto target = fs::read_symlink(it->path(), lec);
    if (lec) continue;
    if (pf.vfs.size() <= static_cast<std::size_t>(k)) pf.vfs.resize(k + 1);
    pf.vfs[k] = target.filename().string();
  }
  return pf;
}

Result<std::vector<Pf>> readPfs(const fs::path& sysfsRoot) {
  auto all = host::readPciFunctions(sysfsRoot);
  if (!all) return std::unexpected(all.error());
  std::vector<Pf> out;
  for (const auto& f : *all) {
    if (f.totalVfs <= 0 || f.isVirtualFunction()) continue;
    auto pf = readPf(sysfsRoot, f.address);
    if (pf) out.push_back(std::move(*pf));
  }
  return out;
}

std::string Opener::str() const {
  if (!vm.empty()) return "VirtualMachine/" + vm;
  return "pid " + std::to_string(pid) + " (" + command + ")";
}

std::vector<fs::path> vfioNodesOf(const HostContext& host, const fs::path& deviceDir) {
  std::vector<fs::path> out;
  std::error_code ec;
  auto group = fs::read_symlink(deviceDir / "iommu_group", ec);
  if (!ec) out.push_back(host.devRoot / "vfio" / group.filename());
  for (fs::directory_iterator it(deviceDir / "vfio-dev", ec); !ec && it != fs::directory_iterator();
       it.increment(ec))
    out.push_back(host.devRoot / "vfio/devices" / it->path().filename());
  return out;
}

std::map<fs::path, std::vector<Opener>> openersOf(const fs::path& procRoot,
                                                  const std::set<fs::path>& nodes) {
  std::map<fs::path, std::vector<Opener>> out;
  if (nodes.empty()) return out;
  // A process in another mount namespace (a container, a bind mount) names the node by another
  // path: "/dev/vfio/12" there, "/srv/x/vfio/12" here. Its tail (vfio/<group>,
  // vfio/devices/<name>) is matched too; a false match only makes nodeplane wait.
  std::map<std::string, fs::path> byTail;
  for (const auto& n : nodes) {
    const fs::path parent = n.parent_path();
    const std::string tail = parent.filename() == "devices"
                                 ? (parent.parent_path().filename() / "devices" / n.filename())
                                 : (parent.filename() / n.filename());
    byTail.emplace("/" + tail, n);
  }
  auto nodeOf = [&](const fs::path& target) -> std::optional<fs::path> {
    if (nodes.count(target)) return target;
    const std::string t = target.string();
    for (const auto& [tail, n] : byTail)
      if (t.size() > tail.size() && t.ends_with(tail)) return n;
    return std::nullopt;
  };
  std::error_code ec;
  for (fs::directory_iterator p(procRoot, ec); !ec && p != fs::directory_iterator();
       p.increment(ec)) {
    const std::string pid = p->path().filename().string();
    if (pid.empty() || !std::all_of(pid.begin(), pid.end(), ::isdigit)) continue;
    std::set<fs::path> seen;  // one entry per process and node, however many fds
    std::error_code fec;
    for (fs::directory_iterator fd(p->path() / "fd", fec); !fec && fd != fs::directory_iterator();
         fd.increment(fec)) {
      std::error_code lec;
      auto link = fs::read_symlink(fd->path(), lec);
      if (lec) continue;
      const auto target = nodeOf(link);
      if (!target || !seen.insert(*target).second) continue;
      Opener o;
      o.pid = static_cast<pid_t>(std::stol(pid));
      o.command = firstLine(p->path() / "comm");
      o.vm = vmOfCgroup(p->path() / "cgroup");
      out[*target].push_back(std::move(o));
    }
  }
  return out;
}

std::string inUseBy(const std::vector<Opener>& openers) {
  if (openers.empty()) return "";
  std::vector<std::string> names;
  for (const auto& o : openers)
    if (!o.vm.empty()) names.push_back(o.str());
  for (const auto& o : openers)
    if (o.vm.empty()) names.push_back(o.str());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  std::string s = "in use by ";
  for (std::size_t i = 0; i < names.size(); ++i) s += (i ? ", " : "") + names[i];
  return s;
}

std::string inUseNow(const HostContext& host, const std::filesystem::path& deviceDir) {
  std::set<std::filesystem::path> nodes;
  for (auto& n : vfioNodesOf(host, deviceDir)) nodes.insert(n);
  std::vector<Opener> users;
  for (auto& [node, list] : openersOf(host.procRoot, nodes))
    users.insert(users.end(), list.begin(), list.end());
  return inUseBy(users);
}

}  // namespace nodeplane::vgpu
