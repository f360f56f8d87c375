// Running the real nodeplane binary from integration tests (run/sh from the test-support
// library), and reading links back.
#pragma once

#include <net/if.h>

#include <nlohmann/json.hpp>
#include <string>

#include "support/files.hpp"
#include "support/process.hpp"

namespace nodeplane::testing {

inline bool linkExists(const std::string& name) { return ::if_nametoindex(name.c_str()) != 0; }

// `ip -d -j link show dev NAME` as JSON (null when absent).
inline nlohmann::json linkInfo(const std::string& name) {
  auto r = run({"/usr/sbin/ip", "-d", "-j", "link", "show", "dev", name});
  if (r.code != 0) return nullptr;
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  return j.is_array() && !j.empty() ? j[0] : nlohmann::json();
}

// Tests in one process share its network namespace: each starts from nothing but `lo`.
inline void deleteAllLinksButLo() {
  for (const auto& l : nlohmann::json::parse(run({"/usr/sbin/ip", "-j", "link", "show"}).out))
    if (l.value("ifname", "") != "lo") sh("ip link del " + l.value("ifname", "") + " 2>/dev/null");
}

}  // namespace nodeplane::testing
