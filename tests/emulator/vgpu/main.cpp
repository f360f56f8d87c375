// nodeplane-vgpu-emu: a FUSE filesystem that lays out NVIDIA vGPU host sysfs (README.md).
//   nodeplane-vgpu-emu --mount DIR --layout FILE.json [--exit-with-parent]
//   nodeplane-vgpu-emu sriov-manage --mount DIR <-e|-d> <pf|ALL>
//   nodeplane-vgpu-emu nvidia-smi --mount DIR mig -lgi -i <pf>
// The first serves DIR in the foreground on one thread (requests are answered in order, so a
// test sees one deterministic state) and prints "ready" once it does; SIGTERM or SIGINT unmounts
// and exits 0. The second stands in for NVIDIA's /usr/lib/nvidia/sriov-manage, the third for the
// one nvidia-smi command nodeplane runs.
#define FUSE_USE_VERSION 31

#include <fcntl.h>
#include <fuse.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "emulator.hpp"

namespace {

using nodeplane::vgpuemu::Emulator;
using nodeplane::vgpuemu::Node;

Emulator* g_emu = nullptr;

// Per open file: what a read at offset 0 produced (later offsets read on from it, as sysfs's
// buffer does), and which VF / mdev the file belonged to when opened.
struct Handle {
  std::string content;
  bool shown = false;
  std::uint64_t owner = 0;
  std::uint64_t holds = 0;
};

std::string rel(const char* path) { return path[0] == '/' ? path + 1 : path; }

// The node for `path` if it is still the one `h` opened; nullptr when it went (ENODEV).
const Node* current(const char* path, const Handle& h) {
  const Node* n = g_emu->find(rel(path));
  return n && n->type == Node::Type::kFile && n->owner == h.owner ? n : nullptr;
}

void* emuInit(fuse_conn_info*, fuse_config* cfg) {
  // Nothing cached: files and their contents change with every store.
  cfg->entry_timeout = 0;
  cfg->attr_timeout = 0;
  cfg->negative_timeout = 0;
  cfg->direct_io = 1;
  cfg->kernel_cache = 0;
  // The mount answers from here on: the starter may go ahead.
  std::fputs("ready\n", stdout);
  std::fflush(stdout);
  return nullptr;
}

int emuGetattr(const char* path, struct stat* st, fuse_file_info*) {
  const Node* n = g_emu->find(rel(path));
  if (!n) return -ENOENT;
  std::memset(st, 0, sizeof *st);
  st->st_uid = 0;
  st->st_gid = 0;
  st->st_nlink = 1;
  switch (n->type) {
    case Node::Type::kDir:
      st->st_mode = S_IFDIR | n->mode;
      st->st_nlink = 2;
      break;
    case Node::Type::kLink:
      st->st_mode = S_IFLNK | 0777;
      st->st_size = static_cast<off_t>(n->target.size());
      break;
    case Node::Type::kFile:
      st->st_mode = S_IFREG | n->mode;
      st->st_size = n->devNode ? 0 : 4096;  // sysfs attributes say 4096 whatever they hold
      break;
  }
  return 0;
}

int emuReadlink(const char* path, char* buf, size_t size) {
  const Node* n = g_emu->find(rel(path));
  if (!n) return -ENOENT;
  if (n->type != Node::Type::kLink) return -EINVAL;
  if (size == 0) return -EINVAL;
  std::snprintf(buf, size, "%s", n->target.c_str());
  return 0;
}

int emuReaddir(const char* path, void* buf, fuse_fill_dir_t fill, off_t, fuse_file_info*,
               fuse_readdir_flags) {
  const Node* n = g_emu->find(rel(path));
  if (!n) return -ENOENT;
  if (n->type != Node::Type::kDir) return -ENOTDIR;
  fill(buf, ".", nullptr, 0, static_cast<fuse_fill_dir_flags>(0));
  fill(buf, "..", nullptr, 0, static_cast<fuse_fill_dir_flags>(0));
  if (const auto* names = g_emu->children(rel(path)))
    for (const auto& name : *names)
      fill(buf, name.c_str(), nullptr, 0, static_cast<fuse_fill_dir_flags>(0));
  return 0;
}

int emuOpen(const char* path, fuse_file_info* fi) {
  const Node* n = g_emu->find(rel(path));
  if (!n) return -ENOENT;
  if (n->type != Node::Type::kFile) return -EISDIR;
  const int acc = fi->flags & O_ACCMODE;
  // kernfs refuses to open for writing an attribute without a store, and for reading one
  // without a show: EACCES, even for root.
  if (!n->devNode) {
    if (acc != O_RDONLY && !n->store) return -EACCES;
    if (acc != O_WRONLY && !n->show) return -EACCES;
  }
  auto* h = new Handle{.owner = n->owner, .holds = n->holds};
  // A VM opens the VF's VFIO node: held until the last close (the release below).
  if (h->holds) g_emu->hold(h->holds, +1);
  fi->fh = reinterpret_cast<std::uint64_t>(h);
  fi->direct_io = 1;
  return 0;
}

int emuRead(const char* path, char* buf, size_t size, off_t off, fuse_file_info* fi) {
  auto* h = reinterpret_cast<Handle*>(fi->fh);
  if (off == 0 || !h->shown) {
    const Node* n = current(path, *h);
    if (!n) return -ENODEV;
    if (int err = g_emu->show(*n, &h->content)) return -err;
    h->shown = true;
  }
  if (off >= static_cast<off_t>(h->content.size())) return 0;
  const size_t count = std::min(size, h->content.size() - static_cast<size_t>(off));
  std::memcpy(buf, h->content.data() + off, count);
  return static_cast<int>(count);
}

int emuWrite(const char* path, const char* data, size_t size, off_t, fuse_file_info* fi) {
  auto* h = reinterpret_cast<Handle*>(fi->fh);
  const Node* n = current(path, *h);
  if (!n) return -ENODEV;
  // One write() is one store, whatever the offset (sysfs_kf_write ignores it).
  if (int err = g_emu->store(*n, std::string_view(data, size))) return -err;
  return static_cast<int>(size);
}

int emuRelease(const char*, fuse_file_info* fi) {
  auto* h = reinterpret_cast<Handle*>(fi->fh);
  if (h->holds) g_emu->hold(h->holds, -1);  // a VF that went meanwhile: nothing to release
  delete h;
  return 0;
}

// O_TRUNC (a shell's `>`) arrives as a truncate first; sysfs ignores it.
int emuTruncate(const char* path, off_t, fuse_file_info*) {
  const Node* n = g_emu->find(rel(path));
  if (!n) return -ENOENT;
  return n->type == Node::Type::kFile ? 0 : -EISDIR;
}

// sysfs has no files but its own.
int emuCreate(const char*, mode_t, fuse_file_info*) { return -EACCES; }
int emuRefuse(const char*) { return -EPERM; }
int emuRefuse2(const char*, mode_t) { return -EPERM; }

int usage(const char* why) {
  std::fprintf(stderr,
               "nodeplane-vgpu-emu: %s\nusage: nodeplane-vgpu-emu --mount DIR --layout FILE.json "
               "[--exit-with-parent]\n       nodeplane-vgpu-emu sriov-manage --mount DIR <-e|-d> "
               "<pf|ALL>\n       nodeplane-vgpu-emu nvidia-smi --mount DIR mig -lgi -i <pf>\n",
               why);
  return 2;
}

int serve(const std::string& mount, const std::string& layoutFile, bool exitWithParent) {
  if (exitWithParent) {
    // A test that dies must not leave a mount behind: SIGTERM when the parent goes.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  }
  std::string why;
  auto layout = nodeplane::vgpuemu::readLayout(layoutFile, &why);
  if (!layout) {
    nodeplane::vgpuemu::logLine(why);
    return 2;
  }
  Emulator emu(std::move(*layout), mount);
  g_emu = &emu;

  fuse_operations ops{};
  ops.init = emuInit;
  ops.getattr = emuGetattr;
  ops.readlink = emuReadlink;
  ops.readdir = emuReaddir;
  ops.open = emuOpen;
  ops.read = emuRead;
  ops.write = emuWrite;
  ops.release = emuRelease;
  ops.truncate = emuTruncate;
  ops.create = emuCreate;
  ops.unlink = emuRefuse;
  ops.rmdir = emuRefuse;
  ops.mkdir = emuRefuse2;

  std::vector<std::string> argv = {"nodeplane-vgpu-emu", "-o",
                                   "fsname=nodeplane-vgpu-emu,subtype=nodeplane-vgpu-emu"};
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(cargv.size()), cargv.data());
  fuse* f = fuse_new(&args, &ops, sizeof ops, nullptr);
  if (!f) {
    nodeplane::vgpuemu::logLine("fuse_new failed");
    return 1;
  }
  if (fuse_mount(f, mount.c_str()) != 0) {
    nodeplane::vgpuemu::logLine("cannot mount " + mount +
                                " (needs /dev/fuse and root, or fusermount3)");
    fuse_destroy(f);
    return 1;
  }
  fuse_session* se = fuse_get_session(f);
  if (fuse_set_signal_handlers(se) != 0) {
    fuse_unmount(f);
    fuse_destroy(f);
    return 1;
  }
  const int rc = fuse_loop(f);  // single-threaded
  fuse_remove_signal_handlers(se);
  fuse_unmount(f);
  fuse_destroy(f);
  // A signal ends the loop with its number; only a negative value is a failure.
  return rc < 0 ? 1 : 0;
}

// The stand-in for NVIDIA's sriov-manage: the control command, what it says, and its exit code
// (0 even on failure when the layout says sriovManageLies, like vGPU 17.2 [C S12], note §1.7).
// One control command: its reply on stdout (stderr when it failed, unless `failOnStdout`);
// false when it failed.
bool command(const std::string& mount, const std::string& tool, const std::string& command,
             bool failOnStdout = false) {
  const std::string control = mount + "/.emu/control";
  const int fd = ::open(control.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    std::fprintf(stderr, "%s: %s: %s\n", tool.c_str(), control.c_str(), std::strerror(errno));
    return false;
  }
  const bool ok =
      ::write(fd, command.data(), command.size()) == static_cast<ssize_t>(command.size());
  std::string reply;
  char buf[4096];
  for (ssize_t n; (n = ::pread(fd, buf, sizeof buf, static_cast<off_t>(reply.size()))) > 0;)
    reply.append(buf, static_cast<size_t>(n));
  ::close(fd);
  std::fputs(reply.c_str(), ok || failOnStdout ? stdout : stderr);
  return ok;
}

int sriovManage(const std::string& mount, const std::string& flag, const std::string& target) {
  if (command(mount, "sriov-manage", "sriov-manage " + flag + " " + target)) return 0;
  std::ifstream in(mount + "/.emu/layout");
  auto layout = nlohmann::json::parse(in, nullptr, false);
  const bool lies = layout.is_object() && layout.value("sriovManageLies", false);
  return lies ? 0 : 1;
}

// nvidia-smi mig -lgi: the table, or its one-line answer and exit 6 (NVML's NOT_FOUND) [I].
int nvidiaSmi(const std::string& mount, const std::string& pf) {
  return command(mount, "nvidia-smi", "nvidia-smi-lgi " + pf, true) ? 0 : 6;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  const std::string tool = !args.empty() && (args[0] == "sriov-manage" || args[0] == "nvidia-smi")
                               ? args[0]
                               : std::string();
  const bool manage = !tool.empty();
  if (manage) args.erase(args.begin());
  std::string mount, layout;
  bool exitWithParent = false;
  std::vector<std::string> rest;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--mount" && i + 1 < args.size()) {
      mount = args[++i];
    } else if (args[i] == "--layout" && i + 1 < args.size() && !manage) {
      layout = args[++i];
    } else if (args[i] == "--exit-with-parent" && !manage) {
      exitWithParent = true;
    } else {
      rest.push_back(args[i]);
    }
  }
  if (mount.empty()) return usage("--mount DIR is required");
  if (tool == "nvidia-smi") {
    if (rest.size() != 4 || rest[0] != "mig" || rest[1] != "-lgi" || rest[2] != "-i")
      return usage("nvidia-smi takes mig -lgi -i <pf> (the one command nodeplane runs)");
    return nvidiaSmi(mount, rest[3]);
  }
  if (manage) {
    if (rest.size() != 2 || (rest[0] != "-e" && rest[0] != "-d"))
      return usage("sriov-manage takes -e or -d and a PF address or ALL");
    return sriovManage(mount, rest[0], rest[1]);
  }
  if (layout.empty()) return usage("--layout FILE.json is required");
  if (!rest.empty()) return usage(("unexpected argument " + rest[0]).c_str());
  return serve(mount, layout, exitWithParent);
}
