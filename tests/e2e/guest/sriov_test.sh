#!/bin/sh
# The SR-IOV e2e checks, run by /init in the guest after vfio_test.sh (busybox sh), against the
# guest kernel's real sysfs: QEMU's emulated NVMe controller offers SR-IOV (4 VFs, behind its own
# root port; see vfio_guest.sh). First the kernel's own answers to sriov_numvfs writes, through
# write_errno (one write(), the errno's name printed); then nodeplane's SriovPf raising the count
# (0 -> 3), changing it (3 -> 2: the kernel refuses N -> M, so through 0), refusing a count above
# the total at validate, and deleting (back to 0, the count it found). Prints "ok - …" /
# "not ok - …" and "bench …" lines; exits with the number of failed checks.
export PATH=/usr/bin:/bin:/sbin
PCI=/sys/bus/pci/devices
np() {
  timeout 60 nodeplane --config /e2e/sriov-agent.yaml --state-dir /var/lib/nodeplane-sriov \
    --plugin-dir /usr/lib/nodeplane/plugins "$@"
}

fails=0
ok() { echo "ok - $*"; }
notok() {
  echo "not ok - $*"
  fails=$((fails + 1))
}
check() {
  desc=$1
  shift
  if "$@"; then ok "$desc"; else notok "$desc"; fi
}
now_ms() { echo $(($(gnudate +%s%N) / 1000000)); }
is() { [ "$1" = "$2" ] || { echo "  got '$1', want '$2'" && false; }; }
wait_until() {
  limit=$(($(now_ms) + $1 * 1000))
  shift
  while ! "$@"; do
    [ "$(now_ms)" -lt "$limit" ] || return 1
    usleep 20000
  done
}
driver_of() {
  if [ -e "$PCI/$1/driver" ]; then basename "$(readlink "$PCI/$1/driver")"; else echo none; fi
}
driver_is() { [ "$(driver_of "$1")" = "$2" ]; }
run_np() {
  name=$1
  shift
  t0=$(now_ms)
  { np "$@" 2>&1; echo $? >"/tmp/$name.rc"; } >"/tmp/$name.out"
  rc=$(cat "/tmp/$name.rc")
  ms=$(($(now_ms) - t0))
  echo "  \$ nodeplane $* -> exit $rc (${ms} ms)"
  sed 's/^/  | /' "/tmp/$name.out"
}
contains() { grep -q -- "$2" "/tmp/$1.out" || { echo "  /tmp/$1.out lacks '$2'" && false; }; }
# The VF links of the PF, "virtfn0 virtfn1 ", and each one's physfn pointing back.
links() { (cd "$PCI/$PF" && ls -d virtfn* 2>/dev/null | tr '\n' ' '); }
numvfs() { cat "$PCI/$PF/sriov_numvfs"; }
has_vfs() {  # has_vfs N: sriov_numvfs reads N and virtfn0..N-1 exist, no more
  want=""
  k=0
  while [ "$k" -lt "$1" ]; do
    want="${want}virtfn$k "
    k=$((k + 1))
  done
  [ "$(numvfs)" = "$1" ] && [ "$(links)" = "$want" ]
}
physfn_back() {
  for l in "$PCI/$PF"/virtfn*; do
    [ "$(basename "$(readlink "$l/physfn")")" = "$PF" ] || return 1
  done
}
wr() { write_errno "$PCI/$PF/sriov_numvfs" "$1"; }

started=$(now_ms)
echo "== sriov setup: the NVMe PF"
modprobe nvme || notok "modprobe nvme"
PF=
for d in "$PCI"/*; do
  if [ "$(cat "$d/vendor")" = 0x1b36 ] && [ "$(cat "$d/device")" = 0x0010 ] &&
    [ -e "$d/sriov_totalvfs" ]; then
    PF=$(basename "$d")
  fi
done
check "an NVMe controller offering SR-IOV exists ($PF)" test -n "$PF"
if [ -z "$PF" ]; then exit "$fails"; fi
check "$PF: nvme drives it" wait_until 20 driver_is "$PF" nvme
check "$PF: sriov_totalvfs is 4" is "$(cat "$PCI/$PF/sriov_totalvfs")" 4
check "$PF: no VFs at boot" has_vfs 0
# New VFs stay without a driver (nvme would probe them and let go ~0.5 s later: noise).
echo 0 >"$PCI/$PF/sriov_drivers_autoprobe"

echo "== the kernel's own answers (write_errno: one write, the errno)"
check "above the total: ERANGE" is "$(wr 5)" ERANGE
check "not a number: EINVAL" is "$(wr abc)" EINVAL
check "0 -> 2: accepted" is "$(wr 2)" 0
check "virtfn0 and virtfn1 appear" wait_until 10 has_vfs 2
check "each VF's physfn points back at $PF" physfn_back
check "2 -> 3 (N -> M): EBUSY" is "$(wr 3)" EBUSY
check "the count is still 2 after EBUSY" has_vfs 2
check "2 -> 2 (the same count): accepted" is "$(wr 2)" 0
check "2 -> 0: accepted" is "$(wr 0)" 0
check "the VF links are gone" wait_until 10 has_vfs 0

mkdir -p /e2e/sriov-want /e2e/sriov-big /e2e/sriov-none
cat >/e2e/sriov-agent.yaml <<EOF2
apiVersion: nodeplane.io/v1
kind: AgentConfig
vgpu:
  writeTimeoutSeconds: 10
EOF2
pf_file() {  # pf_file PATH NUMVFS
  cat >"$1" <<EOF2
apiVersion: nodeplane.io/v1
kind: SriovPf
metadata:
  name: nvme
spec:
  device: "$PF"
  numVfs: $2
EOF2
}

echo "== nodeplane: SriovPf"
run_np sriov-plugins plugins
check "the vgpu plugin serves SriovPf" contains sriov-plugins SriovPf
run_np sriov-check check
check "check lists $PF with its VFs" contains sriov-check "$PF (1b36:0010, nvme): 0 of 4 VFs"

pf_file /e2e/sriov-want/pf.yaml 3
run_np sriov-raise apply -f /e2e/sriov-want
raise_ms=$ms
check "apply numVfs 3: exit 0" is "$rc" 0
check "0 -> 3: sriov_numvfs 3, virtfn0..2" has_vfs 3
check "each VF's physfn points back at $PF" physfn_back
run_np sriov-diff diff -f /e2e/sriov-want
check "diff after apply: in sync (exit 0)" is "$rc" 0
run_np sriov-export export --kind SriovPf
check "export --kind SriovPf: exit 0" is "$rc" 0
check "export shows numVfs 3" contains sriov-export "numVfs: 3"

pf_file /e2e/sriov-want/pf.yaml 2
run_np sriov-change apply -f /e2e/sriov-want
change_ms=$ms
check "apply numVfs 2: exit 0" is "$rc" 0
check "3 -> 2 went through 0 (the kernel refuses N -> M)" contains sriov-change "disabling the 3 VFs of $PF"
check "3 -> 2: sriov_numvfs 2, virtfn0..1" has_vfs 2

pf_file /e2e/sriov-big/pf.yaml 5
run_np sriov-big apply -f /e2e/sriov-big
check "apply numVfs 5: exit 1" is "$rc" 1
check "refused at validate, naming both numbers" contains sriov-big "numVfs 5 is more than $PF offers: its sriov_totalvfs is 4"
check "the error names the file and line" contains sriov-big "/e2e/sriov-big/pf.yaml:"
check "nothing changed: still 2" has_vfs 2

run_np sriov-delete apply --allow-empty -f /e2e/sriov-none
delete_ms=$ms
check "apply with the file gone: exit 0" is "$rc" 0
check "deleted: back to the count it found (0)" has_vfs 0
run_np sriov-diff-none diff -f /e2e/sriov-none
check "diff with no files after the delete: in sync (exit 0)" is "$rc" 0

echo "bench sriov-total: $(($(now_ms) - started)) ms (this whole script: what the SR-IOV checks add to E2E.VfioGuest)"
echo "bench sriov-apply-wall: 0->3 ${raise_ms} ms, 3->0->2 ${change_ms} ms, 2->0 delete ${delete_ms} ms (CLI start, plugins, observe included)"
if [ "$fails" -ne 0 ]; then
  echo "== the kernel's last words"
  dmesg | tail -30
fi
echo "== sriov: $fails check(s) failed"
exit "$fails"
