// Vgpu's moves: create, update, replace, delete, release. Each touches one VF or one mdev.
// SR-IOV model (§1.3, §1.4): current_vgpu_type is read first and written only when it differs; a
// change is `0`, then the new id; every write is judged by reading the file back, never by its
// errno (the driver's errnos are not settled: §1.4, §8). A VF a VM has open is not touched (a
// conflict naming the holder); a refusal right after a VM let go (Proxmox's "not always
// immediately ready", §1.4) is retryable and logged once. mdev model (§2): available_instances
// first, the UUID written to create, the mdev directory waited for; removed through
// bus/mdev/devices/<uuid>/remove and waited gone. The record goes first (ready false) and is
// settled last; a delete removes it last.
#include <algorithm>
#include <chrono>
#include <thread>

#include "nodeplane/host/tool.hpp"
#include "vgpu_kind.hpp"

namespace nodeplane::vgpu {

namespace fs = std::filesystem;

namespace {

Error withContext(Error e, const std::string& what) {
  e.message = what + ": " + e.message;
  return e;
}

// Polls `done` until it holds, the timeout passes or a stop is requested.
template <class F>
bool waitUntil(F done, std::chrono::milliseconds timeout, const std::stop_token& stop) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (done()) return true;
    if (stop.stop_requested() || std::chrono::steady_clock::now() >= deadline) return done();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

// The type id of an mdev (its mdev_type link: "<driver>-<id>"); 0 when it is not there.
long mdevTypeOf(const fs::path& sysfs, const std::string& uuid) {
  std::error_code ec;
  auto link = fs::read_symlink(sysfs / "bus/mdev/devices" / uuid / "mdev_type", ec);
  if (ec || uuid.empty()) return 0;
  const std::string d = link.filename().string();
  auto dash = d.find_last_of('-');
  try {
    return std::stol(dash == std::string::npos ? d : d.substr(dash + 1));
  } catch (...) {
    return -1;
  }
}

std::string typeNames(const std::vector<VgpuType>& types) {
  std::string s;
  for (const auto& t : types) s += (s.empty() ? "" : ", ") + t.name;
  return s.empty() ? "none" : s;
}

}  // namespace

Result<void> VgpuKind::migInstanceFor(const VgpuTarget& t, const VgpuType& type,
                                      const std::string& what) const {
  if (!type.migBacked) return {};
  // Made by the operator once MIG mode is on and, on an SR-IOV GPU, after sriov-manage -e (which
  // removes them): host state that a reboot loses, so counted here, for this Vgpu alone, and not
  // at validate time, where a shortfall would stop every kind of the host.
  const std::string gi = giProfileOf(type.name);
  const std::string& gpu = t.gpu;
  auto mig = readMig(config_.nvidiaSmi, gpu, config_.writeTimeout);
  if (!mig)
    return fail(ErrorKind::kRetryable,
                what + ": " + type.name + " is MIG-backed, and the GPU instances of " + gpu +
                    " cannot be counted: " + mig.error().message,
                "spec.profile",
                host::findProgram(config_.nvidiaSmi.string())
                    ? std::string()
                    : "set vgpu.nvidiaSmi in the agent config to NVIDIA's nvidia-smi");
  if (!mig->on)
    return fail(ErrorKind::kRetryable,
                what + ": " + type.name + " is MIG-backed, and " + gpu + " has MIG mode off",
                "spec.profile",
                "with the GPU's VFs disabled (sriov-manage -d " + gpu + "), nvidia-smi -i " + gpu +
                    " -mig 1; enable them again (sriov-manage -e " + gpu +
                    "), then make GPU instances of " + gi + " (nvidia-smi mig -i " + gpu +
                    " -cgi " + gi + ")");
  // One vGPU per instance: those holding vGPUs of other VFs are not free.
  const TypeTable table = typeTableOf(t.state, typesDir(), false);
  std::string by;
  int used = 0;
  for (const auto& s : t.state.slots) {
    if (!s.present || s.currentType == 0 || s.address == t.slot) continue;
    const VgpuType* o = table.byId(s.currentType);
    if (!o || !o->migBacked || giProfileOf(o->name) != gi) continue;
    ++used;
    by += (by.empty() ? "" : ", ") + o->name + " on " + s.address;
  }
  const int have = mig->count(gi);
  if (have > used) return {};
  return fail(
      ErrorKind::kRetryable,
      what + ": " + type.name + " needs a free MIG GPU instance of " + gi + ", and " + gpu +
          " has " + std::to_string(have) +
          (used > 0 ? " (" + std::to_string(used) + " in use by " + by + ")" : std::string()),
      "spec.profile",
      "make one: nvidia-smi mig -i " + gpu + " -cgi " + gi +
          " (on an SR-IOV GPU after its VFs are enabled: sriov-manage -e removes them)");
}

Result<void> VgpuKind::owned(const std::optional<VgpuRecord>& record, const Change& change) const {
  if (!record) return {};
  const std::string what = std::string(toString(change.action)) + " " + change.id.str();
  const std::string agent = services_.agentId();
  if (record->agent != agent)
    return fail(ErrorKind::kConflict,
                what + " refused: the vGPU on " + record->slot +
                    " was made by another nodeplane agent (" +
                    (record->agent.empty() ? std::string("no agent id") : record->agent) +
                    "), not this one (" + agent + "); not touched");
  if (!change.uid.empty() && record->uid != change.uid)
    return fail(ErrorKind::kConflict,
                what + " refused: the vGPU is not the one the plan was made against (uid " +
                    change.uid + " then, " + record->uid + " now); not touched",
                {}, "run the apply again to see the host as it is now");
  return {};
}

Outcome VgpuKind::apply(const Change& change, ApplyContext& context) {
  forgetGpus();  // the step acts on the GPU as it is now
  auto r = applyNow(change, context);
  forgetGpus();
  if (r) {
    settled(change.id.str());
    return Outcome::done();
  }
  return Outcome::failed(r.error());
}

Result<void> VgpuKind::applyNow(const Change& change, ApplyContext& context) {
  const std::string& name = change.id.name;
  const std::string what = std::string(toString(change.action)) + " " + change.id.str();
  if (services_.agentId().empty())
    return fail(ErrorKind::kTerminal, what +
                                          " refused: no agent id (the state store was not "
                                          "opened), so the record could not name its owner");
  auto record = readVgpuRecord(hostState(), name);
  if (!record) return std::unexpected(withContext(record.error(), what));
  switch (change.action) {
    case Action::kCreate:
      if (*record && (*record)->agent != services_.agentId()) return owned(*record, change);
      return make(change, *record, context);
    case Action::kUpdate:
      if (!*record)
        return fail(ErrorKind::kRetryable,
                    what + ": no record of " + change.id.str() + " (deleted since the plan)");
      if (auto ok = owned(*record, change); !ok) return ok;
      return make(change, *record, context);
    case Action::kReplace:
    case Action::kDelete:
      if (*record) {
        if (auto ok = owned(*record, change); !ok) return ok;
        if (auto ok = unmake(**record, context, what); !ok) return ok;
        if (auto rm = removeVgpuRecord(hostState(), name); !rm) return rm;
      }
      if (change.action == Action::kDelete) return {};
      return make(change, std::nullopt, context);
    case Action::kRelease:
      if (!*record) return {};
      if (auto ok = owned(*record, change); !ok) return ok;
      return removeVgpuRecord(hostState(), name);
  }
  return fail(ErrorKind::kTerminal, what + ": unknown action");
}

Result<void> VgpuKind::make(const Change& change, const std::optional<VgpuRecord>& existing,
                            ApplyContext& context) {
  const std::string& name = change.id.name;
  const std::string what = std::string(toString(change.action)) + " " + change.id.str();
  const HostContext& host = services_.context();
  const fs::path& sysfs = host.sysfsRoot;
  const auto timeout = config_.writeTimeout;
  const auto stop = context.stopToken();
  const std::string agent = services_.agentId();
  const Json desired = normalize(change.desired);

  auto t = target(desired);
  if (!t) return std::unexpected(withContext(t.error(), what));
  const Slot& slot = t->vf >= 0 ? t->state.slots[t->vf] : t->state.slots.front();
  if (!slot.present)
    return fail(ErrorKind::kRetryable, what + ": " + t->slot + " (vf " + std::to_string(t->vf) +
                                           " of " + t->gpu +
                                           ") is not there: the GPU's virtual functions are not "
                                           "enabled (a SriovPf of the GPU enables them)");
  auto p = profileOn(*t, desired, true);
  if (!p) return std::unexpected(withContext(p.error(), what));
  if (!*p)
    return fail(ErrorKind::kRetryable,
                what + ": the vGPU types of " + t->gpu + " are not known yet");
  const VgpuType type = **p;
  const std::string key = change.id.str();

  // A leftover of ours for another VF (the spec moved): cleared first.
  if (existing && existing->slot != t->slot) {
    if (auto ok = unmake(*existing, context, what); !ok) return ok;
  }
  // Another Vgpu's VF: not ours to change. A record of ours whose vGPU is gone is stale.
  auto all = listVgpuRecords(hostState());
  if (!all) return std::unexpected(withContext(all.error(), what));
  for (const auto& other : *all) {
    if (other.name == name || other.slot != t->slot) continue;
    const long now = other.model == "mdev" ? mdevTypeOf(sysfs, other.mdevUuid)
                                           : readCurrentType(sysfs, other.slot).value_or(0);
    if (now == 0 && other.agent == agent) {
      (void)removeVgpuRecord(hostState(), other.name);
      continue;
    }
    if (now != 0 && t->state.mdevOnPf && other.model == "mdev") continue;  // a PF holds many
    return fail(ErrorKind::kConflict, what + " refused: " + t->slot + " holds Vgpu/" + other.name +
                                          " (agent " + other.agent + "); not touched");
  }

  VgpuRecord rec;
  if (existing && existing->slot == t->slot) rec = *existing;
  rec.name = name;
  rec.agent = agent;
  if (rec.uid.empty()) rec.uid = newVgpuUid();
  rec.model = toString(t->state.model);
  rec.gpu = t->gpu;
  rec.slot = t->slot;
  rec.spec = desired;
  auto settle = [&](long id) -> Result<void> {
    rec.typeId = id;
    rec.previousTypeId = 0;
    rec.profile = type.name;
    rec.ready = true;
    return writeVgpuRecord(hostState(), rec);
  };

  if (t->state.model == Model::kSriov) {
    const fs::path dir = slotDir(sysfs, t->slot);
    const std::string file = "bus/pci/devices/" + t->slot + "/nvidia/current_vgpu_type";
    rec.device = dir.string();
    auto cur = readCurrentType(sysfs, t->slot);
    if (!cur)
      return fail(ErrorKind::kRetryable,
                  what + ": cannot read " + (dir / "nvidia/current_vgpu_type").string());
    const bool ours = existing && existing->slot == t->slot;
    if (*cur != 0 && !ours && !change.adopt) {
      const TypeTable table = typeTableOf(t->state, typesDir(), false);
      const VgpuType* now = table.byId(*cur);
      return fail(ErrorKind::kConflict,
                  what + " refused: " + t->slot + " already has " +
                      (now ? now->name : std::string("a vGPU")) + " (type " + std::to_string(*cur) +
                      "), set outside nodeplane; not touched",
                  {}, "clear it by hand (echo 0 > current_vgpu_type), or set metadata.adopt");
    }
    // Ours, but the type on it now is not one nodeplane set (its vGPU was cleared and another
    // made by hand): not changed, as a delete would not clear it.
    if (*cur != 0 && ours && *cur != type.id && !change.adopt && !madeUnder(*existing, *cur)) {
      const TypeTable table = typeTableOf(t->state, typesDir(), false);
      const VgpuType* now = table.byId(*cur);
      return fail(ErrorKind::kConflict,
                  what + " refused: " + t->slot + " has " +
                      (now ? now->name : std::string("a vGPU")) + " (type " + std::to_string(*cur) +
                      "), not the type " + std::to_string(existing->typeId) +
                      " nodeplane set: changed outside nodeplane; not touched",
                  {}, "clear it by hand (echo 0 > current_vgpu_type), or set metadata.adopt");
    }
    if (*cur == type.id) return settle(type.id);  // nothing to write
    if (auto ok = migInstanceFor(*t, type, what); !ok) return ok;
    if (*cur != 0) {
      if (auto user = inUseNow(host, dir); !user.empty())
        return inUse(what + ": " + t->slot + " is " + user +
                     ": its vGPU is not changed until it is free");
    }
    rec.ready = false;
    rec.typeId = type.id;
    rec.previousTypeId = *cur;  // what a cut-short change may leave on the VF: still ours
    if (auto ok = writeVgpuRecord(hostState(), rec); !ok) return ok;
    if (*cur != 0) {
      context.progress("clearing the vGPU type of " + t->slot + " (" + std::to_string(*cur) +
                       ") before setting " + type.name);
      auto w = services_.writeSysfs(file, "0", timeout);
      if (readCurrentType(sysfs, t->slot).value_or(-1) != 0) {
        if (auto user = inUseNow(host, dir); !user.empty())
          return inUse(what + ": " + t->slot + " is " + user +
                       ": its vGPU is not changed until it is free");
        const std::string msg = t->slot + " still has type " +
                                std::to_string(readCurrentType(sysfs, t->slot).value_or(-1)) +
                                " after writing 0" +
                                (w ? std::string() : " (" + w.error().message + ")") +
                                ": the driver refuses for a moment after a VM let go; retried";
        progressOnce(context, key, msg);
        return fail(ErrorKind::kRetryable, what + ": " + msg);
      }
    }
    context.progress("setting the vGPU type of " + t->slot + " to " + type.name + " (" +
                     std::to_string(type.id) + ")");
    auto w = services_.writeSysfs(file, std::to_string(type.id), timeout);
    const long back = readCurrentType(sysfs, t->slot).value_or(-1);
    if (back == type.id) return settle(type.id);
    // Why not: what the VF can take now, and what else holds the GPU.
    auto again = readGpu(sysfs, t->gpu);
    const Slot* s = again ? again->slotOf(t->slot) : nullptr;
    const auto creatable = again && s ? creatableOn(sysfs, *again, *s) : std::vector<VgpuType>{};
    const bool offered = std::any_of(creatable.begin(), creatable.end(),
                                     [&](const VgpuType& c) { return c.id == type.id; });
    const std::string why = w ? std::string() : " (" + w.error().message + ")";
    if (offered || back != 0) {
      const std::string msg = t->slot + " reads type " + std::to_string(back) + " after writing " +
                              std::to_string(type.id) + why + "; retried";
      progressOnce(context, key, msg);
      return fail(ErrorKind::kRetryable, what + ": " + msg);
    }
    std::string holders, mine;
    bool allOurs = true, otherSize = false;
    if (again)
      for (const auto& o : again->slots)
        if (o.currentType != 0 && o.address != t->slot) {
          const TypeTable table = typeTableOf(*again, typesDir(), false);
          const VgpuType* ot = table.byId(o.currentType);
          holders += (holders.empty() ? "" : ", ") +
                     (ot ? ot->name : std::to_string(o.currentType)) + " on " + o.address;
          otherSize |= ot && ot->framebufferMiB != type.framebufferMiB;
          auto rec = std::find_if(all->begin(), all->end(), [&](const VgpuRecord& x) {
            return x.slot == o.address && x.agent == agent && x.name != name;
          });
          if (rec == all->end())
            allOurs = false;
          else
            mine += (mine.empty() ? "Vgpu/" : ", Vgpu/") + rec->name;
        }
    // Only vGPUs of this agent hold the GPU, and the desired set is one size (validateSet): they
    // change in this pass too (a whole GPU moved to another size), or wait for their VM. This VF
    // is clear now, so their steps can proceed; this one is set by the next pass.
    if (!holders.empty() && allOurs && otherSize && !type.migBacked && !mixedSize(t->gpu))
      return fail(ErrorKind::kRetryable,
                  what + ": " + type.name + " waits for " + mine + " (" + holders +
                      ") to leave their size" + why +
                      ": the GPU takes one framebuffer size at a time; " + t->slot +
                      " is clear meanwhile, and the next pass or apply sets it");
    return fail(ErrorKind::kTerminal,
                what + ": " + type.name + " is not creatable on " + t->slot + " now" + why +
                    " (creatable now: " + typeNames(creatable) + ")" +
                    (holders.empty() ? std::string() : "; the GPU holds " + holders),
                "spec.profile",
                "the GPU takes one framebuffer size at a time unless it is in mixed-size mode, "
                "and a limited number of each profile");
  }

  // mdev model.
  const std::string uuid = !rec.mdevUuid.empty() ? rec.mdevUuid : mdevUuidFor(agent, name);
  rec.mdevUuid = uuid;
  const fs::path mdevDir = sysfs / "bus/mdev/devices" / uuid;
  rec.device = mdevDir.string();
  const long cur = mdevTypeOf(sysfs, uuid);
  if (cur == type.id) return settle(type.id);
  if (auto ok = migInstanceFor(*t, type, what); !ok) return ok;
  if (cur != 0) {
    if (auto user = inUseNow(host, mdevDir); !user.empty())
      return inUse(what + ": mdev " + uuid + " is " + user +
                   ": it is not changed until it is free");
    VgpuRecord old = rec;
    old.typeId = cur;
    if (auto ok = unmake(old, context, what); !ok) return ok;
  }
  const fs::path typeDir = slotDir(sysfs, t->slot) / "mdev_supported_types" / type.typeDir;
  auto fresh = readGpu(sysfs, t->gpu);
  const Slot* fslot = fresh ? fresh->slotOf(t->slot) : nullptr;
  const auto creatable =
      fresh && fslot ? creatableOn(sysfs, *fresh, *fslot) : std::vector<VgpuType>{};
  if (std::none_of(creatable.begin(), creatable.end(),
                   [&](const VgpuType& c) { return c.id == type.id; }))
    return fail(ErrorKind::kTerminal,
                what + ": " + type.name + " cannot be made on " + t->slot +
                    " now (available_instances of " + type.typeDir +
                    " is 0; available: " + typeNames(creatable) + ")",
                "spec.profile",
                "a VF holds one mdev; the GPU takes one framebuffer size at a time and a limited "
                "number of each profile");
  rec.ready = false;
  rec.typeId = type.id;
  if (auto ok = writeVgpuRecord(hostState(), rec); !ok) return ok;
  context.progress("creating mdev " + uuid + " (" + type.name + ") on " + t->slot);
  auto w = services_.writeSysfs(
      "bus/pci/devices/" + t->slot + "/mdev_supported_types/" + type.typeDir + "/create", uuid,
      timeout);
  if (!waitUntil([&] { return mdevTypeOf(sysfs, uuid) == type.id; },
                 w ? timeout : std::chrono::milliseconds(0), stop))
    return fail(ErrorKind::kRetryable, what + ": mdev " + uuid + " did not appear on " + t->slot +
                                           (w ? " within " + std::to_string(timeout.count()) + " ms"
                                              : " (" + w.error().message + ")"));
  return settle(type.id);
}

Result<void> VgpuKind::unmake(const VgpuRecord& rec, ApplyContext& context,
                              const std::string& what) {
  const HostContext& host = services_.context();
  const fs::path& sysfs = host.sysfsRoot;
  const auto timeout = config_.writeTimeout;
  if (rec.model == "mdev") {
    const fs::path dir = sysfs / "bus/mdev/devices" / rec.mdevUuid;
    if (rec.mdevUuid.empty() || mdevTypeOf(sysfs, rec.mdevUuid) == 0) return {};  // gone
    if (auto user = inUseNow(host, dir); !user.empty())
      return inUse(what + ": mdev " + rec.mdevUuid + " is " + user +
                   ": not removed until it is free");
    context.progress("removing mdev " + rec.mdevUuid + " from " + rec.slot);
    auto w = services_.writeSysfs("bus/mdev/devices/" + rec.mdevUuid + "/remove", "1", timeout);
    std::error_code ec;
    if (!waitUntil([&] { return !fs::exists(dir, ec); }, w ? timeout : std::chrono::milliseconds(0),
                   context.stopToken())) {
      const std::string msg = "mdev " + rec.mdevUuid + " is still there after remove" +
                              (w ? std::string() : " (" + w.error().message + ")") + "; retried";
      progressOnce(context, std::string(kVgpuKind) + "/" + rec.name, msg);
      return fail(ErrorKind::kRetryable, what + ": " + msg);
    }
    return {};
  }
  auto cur = readCurrentType(sysfs, rec.slot);
  if (!cur || *cur == 0) return {};  // the VF or its type is gone already
  if (!madeUnder(rec, *cur)) {
    // Changed by hand since: not the vGPU nodeplane made, so not cleared. (A record not ready is
    // a change of ours cut short: the VF may hold the type it set or the one it replaced.)
    context.progress(rec.slot + " has type " + std::to_string(*cur) + ", not the " +
                     std::to_string(rec.typeId) + " nodeplane set: left alone");
    return {};
  }
  const fs::path dir = slotDir(sysfs, rec.slot);
  if (auto user = inUseNow(host, dir); !user.empty())
    return inUse(what + ": " + rec.slot + " is " + user +
                 ": its vGPU is not removed until it is free");
  context.progress("clearing the vGPU type of " + rec.slot);
  auto w = services_.writeSysfs("bus/pci/devices/" + rec.slot + "/nvidia/current_vgpu_type", "0",
                                timeout);
  if (readCurrentType(sysfs, rec.slot).value_or(0) != 0) {
    const std::string msg = rec.slot + " still has type " + std::to_string(*cur) +
                            " after writing 0" +
                            (w ? std::string() : " (" + w.error().message + ")") +
                            ": the driver refuses for a moment after a VM let go; retried";
    progressOnce(context, std::string(kVgpuKind) + "/" + rec.name, msg);
    return fail(ErrorKind::kRetryable, what + ": " + msg);
  }
  return {};
}

}  // namespace nodeplane::vgpu
