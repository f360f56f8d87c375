#include "vfio_guard.hpp"

#include <fstream>
#include <set>
#include <sstream>
#include <system_error>

namespace nodeplane::qemu {
namespace fs = std::filesystem;
namespace {

std::string readTrimmed(const fs::path& p) {
  std::ifstream in(p);
  if (!in) return {};
  std::stringstream text;
  text << in.rdbuf();
  std::string s = text.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\t')) s.pop_back();
  return s;
}

bool isUnder(const fs::path& p, const fs::path& dir) {
  auto rel = p.lexically_relative(dir);
  return !rel.empty() && *rel.begin() != "..";
}

std::vector<std::string> fields(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> out;
  std::string f;
  while (in >> f) out.push_back(f);
  return out;
}

// A block device: its name ("nvme0n1p1") and number ("259:1").
struct BlockDev {
  std::string name;
  std::string dev;
};

// `dir` (a block device directory) and its holders (device mapper, md), transitively.
void addWithHolders(const fs::path& dir, std::vector<BlockDev>& out, std::set<fs::path>& seen,
                    int depth) {
  std::error_code ec;
  const fs::path real = fs::weakly_canonical(dir, ec);
  if (ec || depth > 8 || !seen.insert(real).second) return;
  if (auto dev = readTrimmed(real / "dev"); !dev.empty())
    out.push_back({real.filename().string(), dev});
  for (fs::directory_iterator h(real / "holders", ec); !ec && h != fs::directory_iterator();
       h.increment(ec))
    addWithHolders(h->path(), out, seen, depth + 1);
}

// Every block device below the function's sysfs directory: disks, their partitions, and what
// holds either.
std::vector<BlockDev> blockDevicesBelow(const fs::path& sysfsRoot, const fs::path& funcDir) {
  std::vector<BlockDev> out;
  std::set<fs::path> seen;
  std::error_code ec;
  for (fs::directory_iterator it(sysfsRoot / "block", ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    std::error_code ec2;
    const fs::path disk = fs::weakly_canonical(it->path(), ec2);
    if (ec2 || !isUnder(disk, funcDir)) continue;
    addWithHolders(disk, out, seen, 0);
    for (fs::directory_iterator p(disk, ec2); !ec2 && p != fs::directory_iterator();
         p.increment(ec2))
      if (fs::exists(p->path() / "partition")) addWithHolders(p->path(), out, seen, 0);
  }
  return out;
}

void mountedBlockDevices(const HostRoots& roots, const fs::path& funcDir,
                         std::vector<std::string>& uses) {
  auto devs = blockDevicesBelow(roots.sysfsRoot, funcDir);
  if (devs.empty()) return;
  std::ifstream in(roots.procRoot / "self/mountinfo");
  if (!in) in.open(roots.procRoot / "1/mountinfo");
  std::set<std::string> said;
  std::string line;
  while (std::getline(in, line)) {
    // "36 35 259:1 / /boot rw,relatime shared:1 - ext4 /dev/nvme0n1p1 rw"
    auto f = fields(line);
    if (f.size() < 5) continue;
    std::string source;
    for (std::size_t i = 5; i + 2 < f.size(); ++i)
      if (f[i] == "-") source = f[i + 2];
    for (const auto& d : devs) {
      if (f[2] != d.dev && source != "/dev/" + d.name) continue;
      std::string use = d.name + " (" + d.dev + ") is mounted on " + f[4];
      if (said.insert(d.name).second) uses.push_back(use);
    }
  }
}

std::set<std::string> defaultRouteInterfaces(const fs::path& procRoot) {
  std::set<std::string> out;
  std::ifstream v4(procRoot / "net/route");
  std::string line;
  while (std::getline(v4, line)) {
    // Iface Destination Gateway Flags RefCnt Use Metric Mask MTU Window IRTT
    auto f = fields(line);
    if (f.size() >= 8 && f[1] == "00000000" && f[7] == "00000000") out.insert(f[0]);
  }
  std::ifstream v6(procRoot / "net/ipv6_route");
  while (std::getline(v6, line)) {
    // dest prefixlen src srcprefixlen nexthop metric refcnt use flags iface
    auto f = fields(line);
    if (f.size() >= 10 && f[0] == std::string(32, '0') && f[1] == "00" && f[9] != "lo")
      out.insert(f[9]);
  }
  return out;
}

void defaultRouteNic(const HostRoots& roots, const fs::path& funcDir,
                     std::vector<std::string>& uses) {
  std::error_code ec;
  std::set<std::string> routes;
  bool read = false;
  for (fs::directory_iterator it(funcDir / "net", ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    if (!read) routes = defaultRouteInterfaces(roots.procRoot), read = true;
    const std::string name = it->path().filename().string();
    if (routes.count(name)) uses.push_back(name + " carries the default route");
  }
}

void openNvidiaDevice(const HostRoots& roots, int minor, std::vector<std::string>& uses) {
  const std::string node = "/dev/nvidia" + std::to_string(minor);
  std::error_code ec;
  for (fs::directory_iterator p(roots.procRoot, ec); !ec && p != fs::directory_iterator();
       p.increment(ec)) {
    const std::string pid = p->path().filename().string();
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::error_code ec2;
    for (fs::directory_iterator fd(p->path() / "fd", ec2); !ec2 && fd != fs::directory_iterator();
         fd.increment(ec2)) {
      std::error_code ec3;
      if (fs::read_symlink(fd->path(), ec3) != node || ec3) continue;
      std::string comm = readTrimmed(p->path() / "comm");
      uses.push_back("pid " + pid + " (" + (comm.empty() ? "?" : comm) + ") has " + node + " open");
      break;
    }
  }
}

void consoleDisplay(const host::PciFunction& f, const fs::path& funcDir,
                    std::vector<std::string>& uses) {
  if (readTrimmed(funcDir / "boot_vga") != "1" || f.driver.empty()) return;
  std::error_code ec;
  for (fs::directory_iterator it(funcDir / "graphics", ec); !ec && it != fs::directory_iterator();
       it.increment(ec)) {
    const std::string fb = it->path().filename().string();
    if (fb.rfind("fb", 0) != 0) continue;
    uses.push_back("it is the boot display and " + f.driver + " has the console on it (" + fb +
                   ")");
    return;
  }
}

}  // namespace

std::vector<std::string> hostUses(const HostRoots& roots, const host::PciFunction& f,
                                  std::optional<int> nvidiaMinor) {
  std::vector<std::string> uses;
  if (f.driver == "vfio-pci") return uses;
  std::error_code ec;
  const fs::path funcDir =
      fs::weakly_canonical(roots.sysfsRoot / "bus/pci/devices" / f.address, ec);
  if (ec) return uses;
  mountedBlockDevices(roots, funcDir, uses);
  defaultRouteNic(roots, funcDir, uses);
  if (nvidiaMinor) openNvidiaDevice(roots, *nvidiaMinor, uses);
  consoleDisplay(f, funcDir, uses);
  return uses;
}

std::string describePciClass(const std::string& c) {
  struct Known {
    const char* prefix;
    const char* what;
  };
  static const Known known[] = {
      {"0c03", "a USB controller"},
      {"0200", "an Ethernet controller"},
      {"0207", "an InfiniBand controller"},
      {"02", "a network controller"},
      {"0403", "an audio device"},
      {"04", "a multimedia device"},
      {"0108", "an NVMe controller"},
      {"0106", "a SATA controller"},
      {"01", "a storage controller"},
      {"0300", "a VGA controller"},
      {"0302", "a 3D controller"},
      {"03", "a display controller"},
      {"0c05", "an SMBus controller"},
      {"0c", "a serial bus controller"},
      {"0600", "a host bridge"},
      {"0604", "a PCI bridge"},
      {"06", "a bridge"},
      {"05", "a memory controller"},
      {"08", "a system peripheral"},
      {"12", "a processing accelerator"},
  };
  for (const auto& k : known)
    if (c.rfind(k.prefix, 0) == 0) return k.what;
  return "a device of class 0x" + c;
}

}  // namespace nodeplane::qemu
