// The FUSE emulator of NVIDIA's vGPU host sysfs (tests/emulator/vgpu/README.md) from a test:
// starts nodeplane-vgpu-emu on a fresh temporary mount, drives its control file, reads its write
// counters, and holds a VF or mdev open the way a VM does. Needs root and /dev/fuse.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace nodeplane::test {

class VgpuEmulator {
 public:
  // Starts the emulator on a fresh temp dir (unique per call: two runs at once must not collide),
  // waits for "ready" with a deadline; std::nullopt with *why set when it cannot mount here (no
  // root, no /dev/fuse) or the layout is refused (*why then holds the emulator's message).
  static std::optional<VgpuEmulator> start(const nlohmann::json& layout, std::string* why);
  // The three PFs of the README: an L40S in the SR-IOV model (0000:41:00.0), an A100 in the
  // mdev model (0000:3b:00.0), an Intel E810 NIC (0000:5e:00.0), 4, 4 and 8 VFs.
  static nlohmann::json defaultLayout();

  VgpuEmulator(VgpuEmulator&& other) noexcept;
  VgpuEmulator& operator=(VgpuEmulator&&) = delete;
  VgpuEmulator(const VgpuEmulator&) = delete;
  // SIGTERM its PID, wait, unmount if still mounted (fusermount3 -u), remove the dir.
  ~VgpuEmulator();

  std::filesystem::path sysfsRoot() const;  // DIR
  std::filesystem::path devRoot() const;    // DIR/dev
  // One write() of `command` to DIR/.emu/control: 0 or the errno of the write.
  int control(const std::string& command);
  // What the last control command said ("Enabling VFs on ...", "error: ...").
  std::string lastReply() const;
  // DIR/.emu/writes: {"total": N, "files": {"bus/pci/devices/<addr>/...": n}}.
  nlohmann::json writes() const;
  void resetWrites();
  // DIR/.emu/holds: {"<VF address or mdev uuid>": open count} of what is open now.
  nlohmann::json holds() const;
  // An executable wrapper script in the temp dir that runs
  // `nodeplane-vgpu-emu sriov-manage --mount DIR "$@"`.
  std::filesystem::path sriovManage() const;
  // The same for `nodeplane-vgpu-emu nvidia-smi --mount DIR "$@"` (mig -lgi -i <pf> only).
  std::filesystem::path nvidiaSmi() const;
  // What the emulator wrote on stderr so far (every refused write and control command).
  std::string log() const;
  pid_t pid() const { return pid_; }

  // An open dev node, held while this object lives. Move-only.
  class Hold {
   public:
    Hold() = default;
    Hold(Hold&& other) noexcept;
    Hold& operator=(Hold&& other) noexcept;
    Hold(const Hold&) = delete;
    Hold& operator=(const Hold&) = delete;
    // Closes the node and waits (with a deadline) until the emulator has seen the release: the
    // kernel sends it after close() returns.
    ~Hold();
    explicit operator bool() const { return fd_ >= 0; }
    const std::filesystem::path& node() const { return node_; }  // the dev node held
    const std::string& error() const { return error_; }          // why not held
    void release();                                              // what the destructor does

   private:
    friend class VgpuEmulator;
    int fd_ = -1;
    std::filesystem::path node_, holdsFile_;
    std::string what_;  // VF address or mdev uuid
    std::string error_;
  };
  // Opens DIR/dev/vfio/devices/vfio<N> of that VF (or the mdev's group node) like a VM: held
  // while the returned object lives. A Hold that is false says why in error().
  Hold hold(const std::string& vfAddressOrMdevUuid);

 private:
  VgpuEmulator() = default;
  void stop();

  std::filesystem::path dir_;    // the temp dir: mnt/, layout.json, emu.log, sriov-manage
  std::filesystem::path mount_;  // dir_/mnt
  pid_t pid_ = -1;
  int pidfd_ = -1;
};

}  // namespace nodeplane::test
