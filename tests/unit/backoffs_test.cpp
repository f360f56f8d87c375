// The daemon's holds (daemon/backoffs.hpp): a terminal failure is held until its desired spec or
// its object on the host changes; one refused because the object is in use (Error::inUse) is
// held until nobody uses it, whoever uses it meanwhile, and is what the daemon re-checks on a
// timer; a retryable one waits out its backoff.
#include "backoffs.hpp"

#include <gtest/gtest.h>

namespace nodeplane::daemon {
namespace {

const ResourceId kVf{"Vgpu", "tenant-a"};

struct Rig {
  Desired desired;
  Backoffs backoffs{std::chrono::seconds(60)};
  Clock::time_point now = Clock::now();

  Rig() {
    Resource r;
    r.id = kVf;
    r.spec = {{"profile", "L40S-24Q"}};
    desired.resources.push_back(r);
  }
  // The host: the Vgpu with this user ("" for none), or absent.
  static Observation host(const std::optional<std::string>& user) {
    Observation o;
    o.kinds = {"Vgpu"};
    if (user) {
      ObservedObject obj;
      obj.id = kVf;
      obj.spec = {{"profile", "L40S-12Q"}};
      obj.marked = true;
      obj.busy = *user;
      o.objects[kVf] = obj;
    }
    return o;
  }
  void failTerminally(bool inUse, const Observation& after) {
    const std::set<ResourceId> ids{kVf};
    backoffs.update(ids, ids, inUse ? ids : std::set<ResourceId>{}, {}, desired, after, now);
  }
  bool held(const Observation& host) { return backoffs.held(desired, now, host).count(kVf) != 0; }
};

TEST(Backoffs, AHoldBecauseInUseEndsOnceNobodyUsesTheObjectNotWhenItsUserChanges) {
  Rig rig;
  rig.failTerminally(true, Rig::host("in use by VirtualMachine/vm1"));
  EXPECT_EQ(rig.backoffs.inUse(), std::set<ResourceId>{kVf}) << "re-checked on a timer";
  EXPECT_TRUE(rig.held(Rig::host("in use by VirtualMachine/vm1")));
  EXPECT_TRUE(rig.held(Rig::host("in use by pid 42 (qemu-system-x86)")))
      << "another user took its place: still in use, no new attempt to be refused";
  EXPECT_FALSE(rig.held(Rig::host(""))) << "free: the hold ends";
  EXPECT_TRUE(rig.backoffs.inUse().empty());
}

// The user went between the refusal and the observation after the pass: the hold was recorded
// with the object already free, and nothing on the host changes after that.
TEST(Backoffs, AHoldBecauseInUseEndsWhenTheUserWentBeforeTheObservationAfterThePass) {
  Rig rig;
  rig.failTerminally(true, Rig::host(""));
  EXPECT_FALSE(rig.held(Rig::host("")));
}

TEST(Backoffs, AnotherTerminalHoldIsNotReCheckedAndEndsWhenTheObjectChanges) {
  Rig rig;
  rig.failTerminally(false, Rig::host("in use by VirtualMachine/vm1"));
  EXPECT_TRUE(rig.backoffs.inUse().empty()) << "not refused for its user: no timer";
  EXPECT_TRUE(rig.held(Rig::host("in use by VirtualMachine/vm1")));
  EXPECT_FALSE(rig.held(Rig::host(std::nullopt))) << "gone from the host: a change";
}

TEST(Backoffs, ARetryableFailureWaitsOutItsBackoffAndIsNotAHold) {
  Rig rig;
  const std::set<ResourceId> ids{kVf};
  rig.backoffs.update(ids, {}, ids, {}, rig.desired, Rig::host("in use by pid 7 (x)"), rig.now);
  EXPECT_TRUE(rig.backoffs.inUse().empty()) << "only a terminal refusal is held as in use";
  ASSERT_TRUE(rig.backoffs.next());
  EXPECT_EQ(*rig.backoffs.next(), rig.now + std::chrono::seconds(1));
  EXPECT_TRUE(rig.held(Rig::host("")));
  rig.now += std::chrono::seconds(1);
  EXPECT_FALSE(rig.held(Rig::host("")));
}

TEST(Backoffs, AChangedDesiredSpecEndsAHoldBecauseInUse) {
  Rig rig;
  rig.failTerminally(true, Rig::host("in use by VirtualMachine/vm1"));
  rig.desired.resources[0].spec["profile"] = "L40S-48Q";
  EXPECT_FALSE(rig.held(Rig::host("in use by VirtualMachine/vm1")));
}

}  // namespace
}  // namespace nodeplane::daemon
