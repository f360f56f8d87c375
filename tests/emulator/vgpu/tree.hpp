// The files the emulator serves, rendered from the Host: a map from path (relative to the mount,
// no leading '/') to node. Rendered again whenever VFs or mdevs appear or go; a file's content is
// computed when it is read, so counters and types need no re-render.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "host.hpp"

namespace nodeplane::vgpuemu {

struct Node {
  enum class Type { kDir, kFile, kLink };
  Type type = Type::kDir;
  unsigned mode = 0755;
  std::string target;  // kLink: relative, as sysfs links are
  std::function<Status(std::string*)> show;
  std::function<Status(std::string_view)> store;  // empty: not writable
  // The name a write is counted under in .emu/writes and fail-next matches ("" = not counted:
  // .emu/ and dev/): bus/pci/devices/<addr>/... or bus/mdev/devices/<uuid>/...
  std::string key;
  // The VF or mdev (serial) the file belongs to: a file opened before that object went answers
  // ENODEV even when a new one of the same name exists, as a removed kernfs node does.
  std::uint64_t owner = 0;
  std::uint64_t holds = 0;  // dev node: opening it holds this VF / mdev
  bool devNode = false;
};

class Tree {
 public:
  void clear();
  void dir(const std::string& path);
  Node& file(const std::string& path, unsigned mode, std::function<Status(std::string*)> show,
             std::function<Status(std::string_view)> store = {});
  Node& text(const std::string& path, unsigned mode, std::string content);
  // A link at `path` to `to` (both relative to the root), stored relative to the link's folder.
  void link(const std::string& path, const std::string& to);

  const Node* find(const std::string& path) const;
  const std::vector<std::string>* children(const std::string& path) const;
  // `path` with every link followed; nullopt when some part of it does not exist.
  std::optional<std::string> resolve(const std::string& path) const;

 private:
  Node& add(const std::string& path, Node node);
  std::map<std::string, Node> nodes_;
  std::map<std::string, std::vector<std::string>> children_;
};

// Renders the host's sysfs (bus/, class/, devices/, kernel/) and dev/ into `tree`.
void render(Host& host, Tree& tree);

}  // namespace nodeplane::vgpuemu
