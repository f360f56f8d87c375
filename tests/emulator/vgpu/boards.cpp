#include "boards.hpp"

#include <algorithm>

namespace nodeplane::vgpuemu {

namespace {

// L40S, SR-IOV vendor-specific VFIO. Ids and names from a real VF's creatable_vgpu_types [C S1]
// (note §1.2, §7.1); the size is the name's number; max instances min(48 / GB, 32) as the
// vgpu-device-manager example config lists them [C S11, note §4]. No C-series: the capture has
// none.
Board l40s() {
  Board b{.name = "L40S", .device = "26b9", .subsystemDevice = "1851", .fbMiB = 48 * 1024};
  const int ladder[] = {1, 2, 3, 4, 6, 8, 12, 16, 24, 48};
  auto add = [&b](int id, int gb, char series) {
    const int max = std::min(48 / gb, 32);
    // Only read when an L40S is laid out in the mdev model; values in the A2's format [C S2], [I].
    b.types.push_back(
        {.id = id,
         .name = "L40S-" + std::to_string(gb) + series,
         .sizeMiB = gb * 1024,
         .maxInstances = max,
         .description = "num_heads=4, frl_config=60, framebuffer=" + std::to_string(gb * 1024) +
                        "M, max_resolution=7680x4320, max_instance=" + std::to_string(max)});
  };
  add(1145, 1, 'B');
  add(1146, 2, 'B');
  for (int i = 0; i < 10; ++i) add(1147 + i, ladder[i], 'Q');  // 1147 1Q ... 1156 48Q
  for (int i = 0; i < 10; ++i) add(1157 + i, ladder[i], 'A');  // 1157 1A ... 1166 48A
  add(2164, 3, 'B');
  return b;
}

// A100 40GB PCIe, mdev on its VFs. Ids from a community list [W]; sizes and max instances from
// the note's §7.2 / §4 [C S11]; description format of a real A2 capture [C S2] with A100 values
// [I]. The PCI ids are [I].
Board a100() {
  Board b{.name = "A100",
          .device = "20f1",
          .subsystemDevice = "145f",
          .fbMiB = 40 * 1024,
          .migSlices = 7};
  // MIG-backed types name their GPU instance profile and its nvidia-smi id: 1g.5gb 19,
  // 1g.5gb+me 20, 2g.10gb 14, 3g.20gb 9, 4g.20gb 5, 7g.40gb 0 [C NVIDIA MIG user guide, A100-40GB
  // profile table; mig-parted#97 shows the same ids on an 80GB board].
  auto add = [&b](int id, const std::string& name, int gb, int max, const std::string& gi = "",
                  int giId = -1) {
    b.types.push_back(
        {.id = id,
         .name = "A100-" + name,
         .sizeMiB = gb * 1024,
         .maxInstances = max,
         .migBacked = !gi.empty(),
         .gi = gi,
         .giProfileId = giId,
         .description = "num_heads=1, frl_config=60, framebuffer=" + std::to_string(gb * 1024) +
                        "M, max_resolution=4096x2400, max_instance=" + std::to_string(max)});
  };
  add(468, "4C", 4, 10);
  add(469, "5C", 5, 8);
  add(470, "8C", 8, 5);
  add(471, "10C", 10, 4);
  add(472, "20C", 20, 2);
  add(473, "40C", 40, 1);
  add(474, "1-5C", 5, 7, "1g.5gb", 19);
  add(475, "2-10C", 10, 3, "2g.10gb", 14);
  add(476, "3-20C", 20, 2, "3g.20gb", 9);
  add(477, "4-20C", 20, 1, "4g.20gb", 5);
  add(478, "7-40C", 40, 1, "7g.40gb", 0);
  add(706, "1-5CME", 5, 1, "1g.5gb+me", 20);
  return b;
}

const std::vector<Board>& boards() {
  static const std::vector<Board> all = {l40s(), a100()};
  return all;
}

}  // namespace

const VgpuType* Board::find(int id) const {
  for (const auto& t : types)
    if (t.id == id) return &t;
  return nullptr;
}

const Board* findBoard(const std::string& name) {
  for (const auto& b : boards())
    if (b.name == name) return &b;
  return nullptr;
}

std::string knownBoards() {
  std::string out;
  for (const auto& b : boards()) out += (out.empty() ? "" : ", ") + b.name;
  return out;
}

}  // namespace nodeplane::vgpuemu
