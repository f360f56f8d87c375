// The emulator as the FUSE layer sees it: the host's files plus the .emu/ control files, write
// counting and fault injection. One instance per mount, used from one thread.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "host.hpp"
#include "tree.hpp"

namespace nodeplane::vgpuemu {

class Emulator {
 public:
  // `mount`: where it is mounted, so that control commands may name files by absolute path.
  Emulator(Layout layout, std::string mount);

  // The node at `path` (relative, no leading '/'), rendering the tree again first if the host
  // changed since. The pointer is valid until the next find()/children().
  const Node* find(const std::string& path);
  const std::vector<std::string>* children(const std::string& path);

  // A read of `node`: its content now, or the errno the read fails with.
  int show(const Node& node, std::string* out);
  // One write() to `node`: counted, failed when a fail-next matches, else stored. 0 or errno.
  int store(const Node& node, std::string_view data);
  // A dev node opened (+1) or closed (-1).
  void hold(std::uint64_t serial, int delta) { host_.hold(serial, delta); }

 private:
  void refresh();
  void addControlFiles();
  Status control(std::string_view command);
  std::string writesJson() const;
  std::string holdsJson() const;

  Host host_;
  std::string mount_;
  Tree tree_;
  std::uint64_t rendered_ = 0;  // host generation the tree shows
  std::map<std::string, long> writes_;
  long total_ = 0;
  std::map<std::string, int> failNext_;  // key -> errno of its next write
  std::string reply_ = "\n";             // what the last control command said
};

// Prints one line on stderr, prefixed with the program's name.
void logLine(const std::string& line);

}  // namespace nodeplane::vgpuemu
