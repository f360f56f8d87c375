#!/bin/sh
# The e2e checks, run by /init in the guest (busybox sh) against the guest kernel's real sysfs,
# with nodeplane's real CLI. Prints "ok - …" / "not ok - …" per check and "bench …" lines;
# exits with the number of failed checks (0: all passed).
#
# Devices (see vfio_guest.sh): A = 01:00.0 bochs-display + 01:00.1 HDA audio behind a root port,
# one IOMMU group, admitted by vfio.allow; B = 00:05.0 VGA (the boot display) + 00:05.1 HDA audio
# on the root bus, outside it.
export PATH=/usr/bin:/bin:/sbin
A0=0000:01:00.0
A1=0000:01:00.1
B0=0000:00:05.0
B1=0000:00:05.1
PCI=/sys/bus/pci/devices
np() { timeout 120 nodeplane --config /e2e/agent.yaml --plugin-dir /usr/lib/nodeplane/plugins "$@"; }

fails=0
ok() { echo "ok - $*"; }
notok() {
  echo "not ok - $*"
  fails=$((fails + 1))
}
check() {  # check DESCRIPTION COMMAND...: one assertion
  desc=$1
  shift
  if "$@"; then ok "$desc"; else notok "$desc"; fi
}
driver_of() {
  if [ -e "$PCI/$1/driver" ]; then basename "$(readlink "$PCI/$1/driver")"; else echo none; fi
}
override_of() { cat "$PCI/$1/driver_override"; }
group_of() { basename "$(readlink "$PCI/$1/iommu_group")"; }
now_ms() { echo $(($(gnudate +%s%N) / 1000000)); }
is() { [ "$1" = "$2" ] || { echo "  got '$1', want '$2'" && false; }; }
# wait_until SECONDS COMMAND...: polls the condition (every 20 ms) until it holds or the deadline
# passes; the status says which.
wait_until() {
  limit=$(($(now_ms) + $1 * 1000))
  shift
  while ! "$@"; do
    [ "$(now_ms)" -lt "$limit" ] || return 1
    usleep 20000
  done
}
driver_is() { [ "$(driver_of "$1")" = "$2" ]; }
# run_np NAME ARGS...: nodeplane with its output in /tmp/NAME.out (printed), status in $rc and
# wall time in $ms. Each output line is stamped with the seconds since the command started
# (busybox ts), so a step's time is read off nodeplane's own progress lines.
run_np() {
  name=$1
  shift
  t0=$(now_ms)
  { np "$@" 2>&1; echo $? >"/tmp/$name.rc"; } | ts -s '%.s' >"/tmp/$name.out"
  rc=$(cat "/tmp/$name.rc")
  ms=$(($(now_ms) - t0))
  echo "  \$ nodeplane $* -> exit $rc (${ms} ms)"
  sed 's/^/  | /' "/tmp/$name.out"
}
# step_ms NAME RESOURCE VERB: milliseconds from RESOURCE's first progress line in /tmp/NAME.out
# to its "RESOURCE VERB" line (created, deleted): the plugin's own work on that one function.
step_ms() {
  awk -v id="$2" -v verb="$3" '
    index($2, id ":") == 1 && start == "" { start = $1 }
    $2 == id && $3 == verb { end = $1 }
    END { if (start != "" && end != "") printf "%d", (end - start) * 1000; else printf "?" }
  ' "/tmp/$1.out"
}
contains() { grep -q -- "$2" "/tmp/$1.out" || { echo "  /tmp/$1.out lacks '$2'" && false; }; }
has_vfio_support() { [ -e /usr/lib/nodeplane/plugins/libnodeplane-qemu.so ]; }

echo "== setup: host drivers of the stand-in functions"
for m in bochs snd-hda-intel vfio-pci vfio_iommu_type1; do
  modprobe "$m" || notok "modprobe $m"
done
for a in $A0 $B0; do
  check "$a exists and bochs-drm drives it" wait_until 20 driver_is $a bochs-drm
done
for a in $A1 $B1; do
  check "$a exists and snd_hda_intel drives it" wait_until 20 driver_is $a snd_hda_intel
done
check "vfio-pci is registered" test -d /sys/bus/pci/drivers/vfio-pci
check "the IOMMU is on: $A0 has an iommu_group" test -e "$PCI/$A0/iommu_group"
gA=$(group_of $A0)
gB=$(group_of $B0)
check "$A0 and $A1 share group $gA" is "$(group_of $A1)" "$gA"
check "group $gA holds exactly A's two functions" \
  is "$(ls "/sys/kernel/iommu_groups/$gA/devices" | tr '\n' ' ')" "$A0 $A1 "
check "B ($B0, $B1) is group $gB of its own" \
  is "$(ls "/sys/kernel/iommu_groups/$gB/devices" | tr '\n' ' ')" "$B0 $B1 "
if [ "$fails" -ne 0 ]; then
  echo "the guest is not what the checks need: stopping"
  exit "$fails"
fi

mkdir -p /e2e/want /e2e/refused /e2e/none
cat >/e2e/agent.yaml <<EOF
apiVersion: nodeplane.io/v1
kind: AgentConfig
vfio:
  allow: ["$A0", "$A1"]
  bindTimeoutSeconds: 10
EOF
vfio_file() {  # vfio_file PATH NAME ADDRESS
  cat >"$1" <<EOF
apiVersion: nodeplane.io/v1
kind: VfioDevice
metadata:
  name: $2
spec:
  device: "$3"
EOF
}
vfio_file /e2e/want/a0.yaml gpu-a-0 $A0
vfio_file /e2e/want/a1.yaml gpu-a-1 $A1
vfio_file /e2e/refused/b0.yaml gpu-b-0 $B0

echo "== nodeplane in the guest"
run_np plugins plugins
check "nodeplane plugins: exit 0" is $rc 0
check "the qemu plugin serves VfioDevice" contains plugins VfioDevice
run_np check check
check "nodeplane check runs to the end (exit 0 or 1)" test $rc -le 1
check "check: A is ready for passthrough" contains check "$A0: passthrough ready"
check "check: B is the boot display the host uses" contains check "$B0: host is using it"

# The crash hook kills the process between unbind and the next step of whichever function got
# there first: that one has no driver.
one_unbound() {
  echo "  drivers: $A0 $(driver_of $A0), $A1 $(driver_of $A1)"
  [ "$(driver_of $A0)" = none ] || [ "$(driver_of $A1)" = none ]
}
b_untouched() {
  check "B0 untouched: bochs-drm, no override" is "$(driver_of $B0)/$(override_of $B0)" "bochs-drm/(null)"
  check "B1 untouched: snd_hda_intel, no override" is "$(driver_of $B1)/$(override_of $B1)" "snd_hda_intel/(null)"
}
a_on_vfio() {  # a_on_vfio WHEN
  check "$1: $A0 on vfio-pci" is "$(driver_of $A0)" vfio-pci
  check "$1: $A1 on vfio-pci" is "$(driver_of $A1)" vfio-pci
  check "$1: /dev/vfio/$gA exists" test -c "/dev/vfio/$gA"
}
a_back() {  # a_back WHEN
  check "$1: $A0 back on bochs-drm, driver_override cleared" \
    is "$(driver_of $A0)/$(override_of $A0)" "bochs-drm/(null)"
  check "$1: $A1 back on snd_hda_intel, driver_override cleared" \
    is "$(driver_of $A1)/$(override_of $A1)" "snd_hda_intel/(null)"
  check "$1: /dev/vfio/$gA is gone" wait_until 5 test ! -e "/dev/vfio/$gA"
}

echo "== apply: the whole group to vfio-pci"
run_np apply-bind apply -f /e2e/want
bind_ms=$ms
check "apply of A's VfioDevices: exit 0" is $rc 0
a_on_vfio "after apply"
check "$A0 driver_override is vfio-pci" is "$(override_of $A0)" vfio-pci
b_untouched
run_np diff-synced diff -f /e2e/want
diff_ms=$ms
check "diff after apply: in sync (exit 0)" is $rc 0

echo "== a device outside vfio.allow is refused"
run_np apply-refused apply --no-prune -f /e2e/refused
check "apply of B's VfioDevice: exit 1" is $rc 1
check "the error names the device" contains apply-refused "$B0"
check "the error names the file and line" contains apply-refused "/e2e/refused/b0.yaml:"
check "the error names vfio.allow" contains apply-refused "vfio.allow"
b_untouched
run_np diff-after-refused diff -f /e2e/want
check "A is still in sync after the refusal (diff exit 0)" is $rc 0

echo "== delete: back to the original drivers"
run_np apply-delete apply --allow-empty -f /e2e/none
unbind_ms=$ms
check "apply with the files gone: exit 0" is $rc 0
a_back "after delete"
run_np diff-empty diff -f /e2e/none
check "diff with no files after the delete: in sync (exit 0)" is $rc 0

echo "== killed between unbind and bind: finished at the next start"
export NODEPLANE_TEST_VFIO_CRASH_AT=after-unbind
run_np apply-crash apply -f /e2e/want
unset NODEPLANE_TEST_VFIO_CRASH_AT
check "apply with the crash hook did not succeed" test $rc -ne 0
check "the kill left a function of A with no driver" one_unbound
run_np apply-recover apply -f /e2e/want
check "the next apply: exit 0" is $rc 0
a_on_vfio "after recovery"
run_np diff-recovered diff -f /e2e/want
check "diff after recovery: in sync (exit 0)" is $rc 0

echo "== killed between unbind and bind on the way back: finished at the next start"
export NODEPLANE_TEST_VFIO_CRASH_AT=restore-after-unbind
run_np delete-crash apply --allow-empty -f /e2e/none
unset NODEPLANE_TEST_VFIO_CRASH_AT
check "delete with the crash hook did not succeed" test $rc -ne 0
check "the kill left a function of A with no driver" one_unbound
run_np delete-recover apply --allow-empty -f /e2e/none
check "the next apply with the files gone: exit 0" is $rc 0
a_back "after recovery of the delete"
b_untouched

echo "== bench: the same sysfs sequence by hand on A (no nodeplane), for comparison"
# What the kernel itself takes per function (override, unbind, probe; then back), timed the
# same way; nodeplane's per-function time less this is its own cost, and a fixed sleep in a
# step would show as a floor here.
raw_bind() {
  echo vfio-pci >"$PCI/$1/driver_override"
  echo "$1" >"$PCI/$1/driver/unbind"
  echo "$1" >/sys/bus/pci/drivers_probe
  driver_is "$1" vfio-pci
}
raw_back() {
  echo >"$PCI/$1/driver_override"
  echo "$1" >/sys/bus/pci/drivers/vfio-pci/unbind
  echo "$1" >/sys/bus/pci/drivers_probe
}
raw_bind_ms=
raw_back_ms=
for a in $A0 $A1; do
  t0=$(now_ms)
  raw_bind $a || notok "raw bind of $a"
  raw_bind_ms="$raw_bind_ms $a $(($(now_ms) - t0)) ms"
done
for a in $A0 $A1; do
  t0=$(now_ms)
  raw_back $a
  raw_back_ms="$raw_back_ms $a $(($(now_ms) - t0)) ms"
done
check "A back on its drivers after the raw sequence" wait_until 10 driver_is $A1 snd_hda_intel

# Per function: from its first progress line to its created/deleted line (nodeplane's own work:
# sysfs writes, waits on the driver link and /dev/vfio, records), next to the wall time of the
# whole command (process start, plugin load, observe included) and the raw writes.
for r in gpu-a-0 gpu-a-1; do
  echo "bench vfio-bind $r: $(step_ms apply-bind VfioDevice/$r created) ms (first progress line to created)"
  echo "bench vfio-unbind $r: $(step_ms apply-delete VfioDevice/$r deleted) ms (first progress line to deleted)"
done
echo "bench vfio-apply-wall: bind apply ${bind_ms} ms, delete apply ${unbind_ms} ms, no-op diff ${diff_ms} ms (2 functions; CLI start, plugins, observe included)"
echo "bench vfio-raw-bind (shell writes, no nodeplane):$raw_bind_ms"
echo "bench vfio-raw-back (shell writes, no nodeplane):$raw_back_ms"
if [ "$fails" -ne 0 ]; then
  echo "== the kernel's last words"
  dmesg | tail -40
fi
echo "== $fails check(s) failed"
exit "$fails"
