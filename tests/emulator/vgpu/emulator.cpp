#include "emulator.hpp"

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

namespace nodeplane::vgpuemu {

namespace {

std::string printable(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\n') {
      out += "\\n";
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(c));
      out += buf;
    } else {
      out += c;
    }
  }
  return out.size() > 200 ? out.substr(0, 200) + "..." : out;
}

std::vector<std::string> words(std::string_view s) {
  std::vector<std::string> out;
  std::istringstream in{std::string(s)};
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

}  // namespace

void logLine(const std::string& line) {
  std::fprintf(stderr, "nodeplane-vgpu-emu: %s\n", line.c_str());
  std::fflush(stderr);
}

Emulator::Emulator(Layout layout, std::string mount)
    : host_(std::move(layout)), mount_(std::filesystem::absolute(mount).lexically_normal()) {
  if (mount_.size() > 1 && mount_.back() == '/') mount_.pop_back();
  refresh();
}

void Emulator::refresh() {
  if (rendered_ == host_.generation()) return;
  render(host_, tree_);
  addControlFiles();
  rendered_ = host_.generation();
}

const Node* Emulator::find(const std::string& path) {
  refresh();
  return tree_.find(path);
}

const std::vector<std::string>* Emulator::children(const std::string& path) {
  refresh();
  return tree_.children(path);
}

int Emulator::show(const Node& node, std::string* out) {
  out->clear();
  if (!node.show) return EACCES;
  return node.show(out).err;
}

int Emulator::store(const Node& node, std::string_view data) {
  if (!node.store) return EACCES;
  if (!node.key.empty()) {
    ++total_;
    ++writes_[node.key];
    if (auto it = failNext_.find(node.key); it != failNext_.end()) {
      const int err = it->second;
      failNext_.erase(it);
      logLine("write \"" + printable(data) + "\" to " + node.key + ": " + errnoName(err) +
              " (fail-next)");
      return err;
    }
  }
  Status s = node.store(data);
  if (!s && !node.key.empty())
    logLine("write \"" + printable(data) + "\" to " + node.key + ": " + errnoName(s.err) + " (" +
            s.why + ")");
  return s.err;
}

void Emulator::addControlFiles() {
  // .emu/ is the emulator's own: not counted, not part of the emulated sysfs.
  tree_.file(
      ".emu/control", 0600,
      [this](std::string* out) {
        *out = reply_;
        return Status::ok();
      },
      [this](std::string_view command) { return control(command); });
  tree_.file(".emu/writes", 0444, [this](std::string* out) {
    *out = writesJson();
    return Status::ok();
  });
  tree_.file(".emu/reset", 0200, nullptr, [this](std::string_view) {
    writes_.clear();
    total_ = 0;
    return Status::ok();
  });
  tree_.file(".emu/holds", 0444, [this](std::string* out) {
    *out = holdsJson();
    return Status::ok();
  });
  tree_.text(".emu/layout", 0444, host_.layout().source.dump(2) + "\n");
}

std::string Emulator::writesJson() const {
  nlohmann::json files = nlohmann::json::object();
  for (const auto& [k, n] : writes_) files[k] = n;
  return nlohmann::json{{"total", total_}, {"files", files}}.dump() + "\n";
}

std::string Emulator::holdsJson() const {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, n] : host_.holds()) j[k] = n;
  return j.dump() + "\n";
}

Status Emulator::control(std::string_view command) {
  const auto w = words(command);
  Status s;
  std::string reply;
  auto usage = [&](const std::string& form) { s = {EINVAL, "usage: " + form}; };
  auto onOff = [&](const std::string& word, bool* on) {
    if (word != "on" && word != "off") return false;
    *on = word == "on";
    return true;
  };
  const std::string cmd = w.empty() ? "" : w[0];
  bool on = false;
  if (cmd == "sriov-manage") {
    if (w.size() != 3 || (w[1] != "-e" && w[1] != "-d"))
      usage("sriov-manage <-e|-d> <pf|ALL>");
    else
      s = host_.sriovManage(w[1] == "-e", w[2], &reply);
  } else if (cmd == "reboot") {
    if (w.size() != 1)
      usage("reboot");
    else
      s = host_.reboot();
  } else if (cmd == "driver-reload") {
    if (w.size() != 2)
      usage("driver-reload <pf>");
    else
      s = host_.driverReload(w[1]);
  } else if (cmd == "fail-next") {
    int err = w.size() == 3 ? errnoFromName(w[2]) : 0;
    if (w.size() != 3) {
      usage("fail-next <path relative to the mount> <ERRNO name, e.g. EIO>");
    } else if (err == 0) {
      s = {EINVAL, "unknown errno name \"" + w[2] + "\" (e.g. EIO, EBUSY, EPERM)"};
    } else {
      // Through links to the file, then the name its writes are counted under; a file of a VF
      // or mdev that does not exist yet is named the way its writes will be.
      std::string path = w[1], key;
      if (path.starts_with(mount_ + "/")) path = path.substr(mount_.size() + 1);
      if (auto real = tree_.resolve(path))
        if (const Node* n = tree_.find(*real); n && !n->key.empty()) key = n->key;
      if (key.empty() &&
          (path.starts_with("bus/pci/devices/") || path.starts_with("bus/mdev/devices/")))
        key = path;
      if (key.empty())
        s = {EINVAL, "no writable sysfs file " + w[1]};
      else
        failNext_[key] = err;
    }
  } else if (cmd == "busy-after-close") {
    long long n = -1;
    if (w.size() != 2 || kstrtoll(w[1], 10, false, &n) != 0 || n > 1000000)
      usage("busy-after-close <n>");
    else
      host_.setBusyAfterClose(static_cast<int>(n));
  } else if (cmd == "nvml-client") {
    if (w.size() != 3 || !onOff(w[2], &on))
      usage("nvml-client <pf> on|off");
    else
      s = host_.setNvmlClient(w[1], on);
  } else if (cmd == "mixed-size") {
    if (w.size() != 3 || !onOff(w[2], &on))
      usage("mixed-size <pf> on|off");
    else
      s = host_.setMixedSize(w[1], on);
  } else if (cmd == "mig") {
    if (w.size() != 3 || !onOff(w[2], &on))
      usage("mig <pf> on|off");
    else
      s = host_.setMig(w[1], on, &reply);
  } else if (cmd == "create-gi") {
    if (w.size() != 3)
      usage("create-gi <pf> <profile, e.g. 1g.5gb>");
    else
      s = host_.createGi(w[1], w[2], &reply);
  } else if (cmd == "destroy-gi") {
    long long id = -1;
    if (w.size() != 3 || kstrtoll(w[2], 10, false, &id) != 0 || id > 1000)
      usage("destroy-gi <pf> <id>");
    else
      s = host_.destroyGi(w[1], static_cast<int>(id), &reply);
  } else if (cmd == "nvidia-smi-lgi") {
    if (w.size() != 2)
      usage("nvidia-smi-lgi <pf>");
    else
      s = host_.listGis(w[1], &reply);
  } else if (cmd == "held-errno") {
    if (w.size() != 2 || (w[1] != "EPERM" && w[1] != "EBUSY"))
      usage("held-errno EPERM|EBUSY");
    else
      host_.setHeldErrno(errnoFromName(w[1]));
  } else {
    s = {EINVAL,
         "unknown command \"" + printable(command) +
             "\" (sriov-manage, reboot, driver-reload, fail-next, busy-after-close, "
             "nvml-client, mixed-size, mig, create-gi, destroy-gi, nvidia-smi-lgi, held-errno)"};
  }
  if (!s) {
    if (reply.empty()) reply = "error: " + s.why + "\n";
    logLine("control \"" + printable(command) + "\": " + errnoName(s.err) + ": " + s.why);
  } else {
    if (reply.empty()) reply = "ok\n";
    logLine("control \"" + printable(command) + "\": " + printable(reply));
  }
  reply_ = reply;
  return s;
}

}  // namespace nodeplane::vgpuemu
