#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "netns.hpp"

namespace nodeplane::testing {
namespace {
bool g_netns = false;
}
bool inPrivateNetns() { return g_netns; }
}  // namespace nodeplane::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (geteuid() == 0) {
    if (unshare(CLONE_NEWNET) == 0) {
      nodeplane::testing::g_netns = true;
    } else {
      std::fprintf(stderr, "unshare(CLONE_NEWNET): %s\n", std::strerror(errno));
    }
  }
  return RUN_ALL_TESTS();
}
