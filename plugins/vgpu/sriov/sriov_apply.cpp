// SriovPf's moves: create (take the PF, record its count, set ours), update (another count),
// replace (another PF), delete (the recorded count back), release (forget the record). Every
// write goes through HostServices::writeSysfs or sriov-manage with a limit, and every step is
// judged by reading sriov_numvfs and the virtfn links back.
#include <algorithm>
#include <chrono>
#include <thread>

#include "nodeplane/host/tool.hpp"
#include "sriov_kind.hpp"

namespace nodeplane::vgpu {
namespace fs = std::filesystem;
namespace {

Error withContext(Error e, const std::string& what) {
  e.message = what + ": " + e.message;
  return e;
}

// sriov-manage unbinds the PF, enables its VFs and rebinds it: it may take longer than one sysfs
// write, so it gets at least a minute.
std::chrono::milliseconds manageTimeout(std::chrono::milliseconds writeTimeout) {
  return std::max<std::chrono::milliseconds>(writeTimeout, std::chrono::seconds(60));
}

// The count as sysfs says it: "sriov_numvfs 3, virtfn links 0-2".
std::string countNow(const Pf& pf) {
  return "sriov_numvfs " + std::to_string(pf.function.numVfs) + ", " + std::to_string(pf.linked()) +
         " virtfn link" + (pf.linked() == 1 ? "" : "s");
}

std::string lastLines(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  if (s.size() > 600) s = "…" + s.substr(s.size() - 600);
  return s;
}

}  // namespace

Result<void> SriovKind::owned(const SriovRecord& record, const Change& change) const {
  const std::string what = std::string(toString(change.action)) + " " + change.id.str();
  const std::string agent = services_.agentId();
  if (record.agent != agent)
    return fail(ErrorKind::kConflict,
                what + " refused: " + record.device + " was taken by another nodeplane agent (" +
                    (record.agent.empty() ? std::string("no agent id") : record.agent) +
                    "), not this one (" + agent + "); not touched");
  if (!change.uid.empty() && record.uid != change.uid)
    return fail(ErrorKind::kConflict,
                what + " refused: the record is not the one the plan was made against (uid " +
                    change.uid + " then, " + record.uid + " now); not touched",
                {}, "run the apply again to see the host as it is now");
  return {};
}

Outcome SriovKind::apply(const Change& change, ApplyContext& context) {
  return Outcome::from(applyNow(change, context));
}

Result<void> SriovKind::applyNow(const Change& change, ApplyContext& context) {
  const std::string& name = change.id.name;
  const std::string what = std::string(toString(change.action)) + " " + change.id.str();
  if (services_.agentId().empty())
    return fail(ErrorKind::kTerminal, what +
                                          " refused: no agent id (the state store was not "
                                          "opened), so the record could not name its owner");
  auto record = readSriovRecord(config_.stateDir, name);
  if (!record) return std::unexpected(withContext(record.error(), what));
  const Json desired = normalize(change.desired);
  const std::string device = desired.contains("device") && desired["device"].is_string()
                                 ? desired["device"].get<std::string>()
                                 : std::string();
  const int numVfs = desired.contains("numVfs") && desired["numVfs"].is_number_integer()
                         ? desired["numVfs"].get<int>()
                         : 0;
  auto wrap = [&](Result<void> r) -> Result<void> {
    if (!r) return std::unexpected(withContext(r.error(), what));
    return r;
  };

  switch (change.action) {
    case Action::kCreate: {
      if (*record) {
        if ((*record)->agent != services_.agentId()) return owned(**record, change);
        if ((*record)->device != device) {  // a leftover of ours for another PF: give it back
          if (auto r = setCount((*record)->device, (*record)->originalNumVfs, context); !r)
            return wrap(r);
          if (auto rm = removeSriovRecord(config_.stateDir, name); !rm) return rm;
        } else {  // ours already (a create cut short): carry on with that record
          return wrap(setCount(device, numVfs, context));
        }
      }
      return wrap(create(name, device, numVfs, context));
    }
    case Action::kUpdate: {
      if (!*record)
        return fail(ErrorKind::kRetryable,
                    what + ": no record of " + change.id.str() + " (deleted since the plan)");
      if (auto ok = owned(**record, change); !ok) return ok;
      if ((*record)->device != device)  // device forces a replace: not an update
        return fail(ErrorKind::kTerminal, what + ": the record is of " + (*record)->device +
                                              ", the spec names " + device + "; not touched");
      return wrap(setCount((*record)->device, numVfs, context));
    }
    case Action::kReplace:
    case Action::kDelete: {
      if (*record) {
        if (auto ok = owned(**record, change); !ok) return ok;
        context.progress("putting " + (*record)->device + " back to " +
                         std::to_string((*record)->originalNumVfs) + " VFs (its count before)");
        if (auto r = setCount((*record)->device, (*record)->originalNumVfs, context); !r)
          return wrap(r);
        if (auto rm = removeSriovRecord(config_.stateDir, name); !rm) return rm;
      }
      if (change.action == Action::kDelete) return {};
      return wrap(create(name, device, numVfs, context));
    }
    case Action::kRelease: {
      if (!*record) return {};
      if (auto ok = owned(**record, change); !ok) return ok;
      return removeSriovRecord(config_.stateDir, name);  // the VFs stay as they are
    }
  }
  return fail(ErrorKind::kTerminal, what + ": unknown action");
}

Result<void> SriovKind::create(const std::string& name, const std::string& device, int numVfs,
                               ApplyContext& context) {
  const fs::path& sysfs = services_.context().sysfsRoot;
  auto pf = readPf(sysfs, device);
  if (!pf) return std::unexpected(pf.error());
  // Another SriovPf's record of this PF: never two owners of one count.
  auto all = listSriovRecords(config_.stateDir);
  if (!all) return std::unexpected(all.error());
  for (const auto& other : *all)
    if (other.device == device && other.name != name)
      return fail(ErrorKind::kConflict,
                  device + " is already SriovPf/" + other.name + "'s" +
                      (other.agent == services_.agentId()
                           ? std::string()
                           : " (of another nodeplane agent, " + other.agent + ")") +
                      "; not touched",
                  {}, "one SriovPf per physical function");
  // In use: refused before anything is recorded (a record and an undo record of a create that
  // never began would read as an interrupted apply).
  if (auto free = freeFor(*pf, numVfs); !free) return free;
  // Before the first write: the record (ownership, the count to put back) and the undo record.
  SriovRecord rec{name, device, services_.agentId(), pf->function.numVfs, newSriovUid()};
  if (auto ok = writeSriovRecord(config_.stateDir, rec); !ok) return ok;
  if (auto ok = context.recordUndo(Json{{"device", device}, {"numVfs", rec.originalNumVfs}}); !ok)
    return ok;
  auto set = setCount(device, numVfs, context);
  if (set) return {};
  // Nothing changed (refused before any write): a failed create leaves no record behind.
  if (auto now = readPf(sysfs, device); now && now->function.numVfs == rec.originalNumVfs)
    (void)removeSriovRecord(config_.stateDir, name);
  return set;
}

Result<void> SriovKind::freeFor(const Pf& pf, int want) const {
  // Time of check: the plan saw the VFs free, but a VM may have opened one since.
  if (pf.has(want) || (pf.function.numVfs == 0 && pf.linked() == 0)) return {};
  if (const std::string users = usersOf(pf); !users.empty())
    return inUse(pf.function.address + " from " + std::to_string(pf.function.numVfs) + " to " +
                     std::to_string(want) + " VFs refused: " + users + "; not changed",
                 "it proceeds once nothing uses its virtual functions");
  return {};
}

Result<void> SriovKind::setCount(const std::string& device, int want, ApplyContext& context) {
  auto pf = readPf(services_.context().sysfsRoot, device);
  if (!pf) return std::unexpected(pf.error());
  if (pf->has(want)) return {};
  if (want > pf->function.totalVfs)
    return fail(ErrorKind::kInvalidInput, "numVfs " + std::to_string(want) + " is more than " +
                                              device + " offers: its sriov_totalvfs is " +
                                              std::to_string(pf->function.totalVfs));
  if (auto free = freeFor(*pf, want); !free) return free;
  return pf->isNvidia() ? setNvidia(*pf, want, context) : setGeneric(*pf, want, context);
}

Result<void> SriovKind::setGeneric(const Pf& pf, int want, ApplyContext& context) {
  const std::string& device = pf.function.address;
  const std::string file = "bus/pci/devices/" + device + "/sriov_numvfs";
  const auto timeout = config_.writeTimeout;
  // The kernel enables VFs through the PF's driver (sriov_configure): without one every write,
  // 0 included, fails with ENOENT.
  if (pf.function.driver.empty())
    return fail(ErrorKind::kTerminal,
                device +
                    " has no driver: the kernel changes its VFs only through the PF's driver "
                    "(writing sriov_numvfs would fail with ENOENT); not changed",
                {}, "bind the PF to its driver first");
  // The kernel refuses N -> M (EBUSY): any other count goes through 0.
  if (pf.function.numVfs != 0 || pf.linked() != 0) {
    context.progress("disabling the " + std::to_string(pf.function.numVfs) + " VFs of " + device);
    if (auto ok = services_.writeSysfs(file, "0", timeout); !ok) return ok;
    if (auto now = waitForCount(device, 0, timeout, context); !now)
      return std::unexpected(now.error());
  }
  if (want == 0) return {};
  context.progress("enabling " + std::to_string(want) + " VFs of " + device);
  if (auto ok = services_.writeSysfs(file, std::to_string(want), timeout); !ok) return ok;
  auto now = waitForCount(device, want, timeout, context);
  if (!now) return std::unexpected(now.error());
  return {};
}

Result<void> SriovKind::setNvidia(const Pf& pf, int want, ApplyContext& context) {
  const std::string& device = pf.function.address;
  if (want != 0 && want != pf.function.totalVfs)
    return fail(ErrorKind::kInvalidInput, device + " is an NVIDIA GPU: sriov-manage enables all " +
                                              std::to_string(pf.function.totalVfs) +
                                              " of its VFs at once, not " + std::to_string(want));
  const std::string flag = want == 0 ? "-d" : "-e";
  const std::vector<std::string> argv{config_.sriovManage.string(), flag, device};
  const std::string command = argv[0] + " " + flag + " " + device;
  context.progress("running " + command);
  auto run = host::runTool(argv, manageTimeout(config_.writeTimeout));
  if (!run)
    return fail(run.error().kind, "cannot run " + command + ": " + run.error().message, {},
                "install NVIDIA's vGPU host driver, or set vgpu.sriovManage in the agent config");
  const std::string said = lastLines(run->out + (run->err.empty() ? "" : "\n" + run->err));
  if (run->exitCode != 0)
    return fail(ErrorKind::kRetryable,
                command + " failed (exit code " + std::to_string(run->exitCode) + "): " + said);
  // It can exit 0 and fail (vGPU 17.2, research note §1.7): the links say whether it worked.
  auto now = waitForCount(device, want, config_.writeTimeout, context);
  if (!now)
    return fail(ErrorKind::kRetryable,
                command + " exited 0, but " + now.error().message +
                    (said.empty() ? std::string() : " (it said: " + said + ")"));
  return {};
}

Result<Pf> SriovKind::waitForCount(const std::string& device, int want,
                                   std::chrono::milliseconds timeout, ApplyContext& context) const {
  const fs::path& sysfs = services_.context().sysfsRoot;
  const auto stop = context.stopToken();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto settled = [&](const Pf& pf) {
    if (!pf.has(want)) return false;
    for (int k = 0; k < want; ++k)
      if (static_cast<std::size_t>(k) >= pf.vfs.size() || pf.vfs[k].empty()) return false;
    return true;
  };
  // Polled: sysfs offers no event for new virtfn links; each look is a few reads.
  while (true) {
    auto pf = readPf(sysfs, device);
    if (!pf) return std::unexpected(pf.error());
    if (settled(*pf)) return pf;
    if (stop.stop_requested() || std::chrono::steady_clock::now() >= deadline)
      return fail(ErrorKind::kRetryable, device + " reads " + countNow(*pf) + " after " +
                                             std::to_string(timeout.count()) + " ms, not " +
                                             std::to_string(want) + " VFs");
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace nodeplane::vgpu
