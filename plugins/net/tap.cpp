// Taps are made through the tun driver's character device: rtnetlink cannot create them.
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "link_apply.hpp"

namespace nodeplane::net {
namespace {

// Opens the tun device and attaches it to tap `name`. With `exclusive` (IFF_TUN_EXCL) the kernel
// creates the tap or fails with EBUSY when any interface of that name exists, so nodeplane never
// attaches to a tap someone else made (even one that appears between a check and the ioctl);
// without it, it attaches to the existing tap (to clear TUNSETPERSIST on one nodeplane owns).
Result<int> attach(const HostContext& host, const std::string& name, bool exclusive,
                   const std::string& what) {
  const auto path = host.devRoot / "net" / "tun";
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    return fail(err == ENOENT ? ErrorKind::kTerminal : ErrorKind::kRetryable,
                what + ": opening " + path.string() + ": " + std::strerror(err), {},
                err == ENOENT ? "load the tun module (modprobe tun)" : "");
  }
  ifreq ifr{};
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (exclusive ? IFF_TUN_EXCL : 0);
  std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  if (::ioctl(fd, TUNSETIFF, &ifr) < 0) {
    const int err = errno;
    ::close(fd);
    if (exclusive && err == EBUSY)
      return fail(ErrorKind::kConflict,
                  what + ": an interface named " + name +
                      " already exists (TUNSETIFF with IFF_TUN_EXCL: " + std::strerror(err) + ")",
                  {}, "nodeplane does not take over a tap it did not create; pick another name");
    return fail(ErrorKind::kTerminal, what + ": TUNSETIFF: " + std::strerror(err), {},
                err == EINVAL ? "a tun (not tap) device of this name may exist" : "");
  }
  return fd;
}

Result<void> setPersist(const HostContext& host, const std::string& name, bool persist,
                        const std::string& what) {
  auto fd = attach(host, name, /*exclusive=*/persist, what);
  if (!fd) return std::unexpected(fd.error());
  const int rc = ::ioctl(*fd, TUNSETPERSIST, persist ? 1 : 0);
  const int err = errno;
  ::close(*fd);
  if (rc < 0) return fail(ErrorKind::kTerminal, what + ": TUNSETPERSIST: " + std::strerror(err));
  return {};
}

}  // namespace

Result<void> createTap(const HostContext& host, const std::string& name) {
  return setPersist(host, name, true, "creating tap " + name);
}

Result<void> unpersistTap(const HostContext& host, const std::string& name) {
  return setPersist(host, name, false, "deleting tap " + name);
}

}  // namespace nodeplane::net
