// Every integration test process runs in its own anonymous network namespace (made in main()),
// so tests never touch the host's links, never collide with a parallel run, and leave nothing
// behind: the namespace dies with the process.
#pragma once

#include <gtest/gtest.h>

namespace nodeplane::testing {
// True when main() managed to enter a fresh network namespace (needs root).
bool inPrivateNetns();
}  // namespace nodeplane::testing

#define NODEPLANE_REQUIRE_NETNS()                                                           \
  do {                                                                                      \
    if (!::nodeplane::testing::inPrivateNetns())                                            \
      GTEST_SKIP() << "needs root to create a private network namespace (CI runs as root)"; \
  } while (0)
