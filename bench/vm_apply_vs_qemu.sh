#!/usr/bin/env bash
# `nodeplane apply` of one VirtualMachine until QMP says "running", against launching the same
# QEMU argv directly until its QMP says "running" (issue 8: the agent's overhead -- CLI, plan,
# record, qcow2 overlay, cloud-init seed ISO, transient unit over D-Bus, QMP -- under 300 ms).
#
# A private `systemd --user` manager on a private bus (started and stopped by PID, vm_lib.sh), a
# 16 MiB blank qcow2 base, the tiny VM of the integration tests (1 vCPU, 128 MiB, SeaBIOS, TCG)
# with cloudInit. The direct argv is the one the plugin built: /proc/<the unit's MainPID>/cmdline
# of a first (warm-up) apply, with its overlay, seed, console and QMP paths moved to a directory of
# its own (an overlay made once with the same qemu-img command, a copy of the seed): QEMU started
# with files that exist, as a person would after making them once.
# Each run: nodeplane apply from nothing (no record, overlay, seed or unit; the state store and
# agent id kept from the warm-up), timed until the command returns (the plugin returns once QMP
# says running; checked after), then the VM deleted with `nodeplane apply -f EMPTY` (untimed);
# then the direct QEMU, timed by the same clock (bench/vm_timer.py) and stopped by PID.
# Also: the CLI's fixed cost (a no-op diff with the VM running), `qemu-img create` of the overlay
# and genisoimage of the seed alone, and where an apply's time goes (its progress lines, stamped).
# Usage: bench/vm_apply_vs_qemu.sh [RUNS=7]
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/vm_lib.sh"
trap '_vm_rc=$?; set +e; stop_user_manager; (exit $_vm_rc); _cleanup' EXIT  # set +e: (exit 1) must not end the trap
RUNS=${1:-7}
TIMER="python3 $(dirname "$0")/vm_timer.py"
VM=bench
UNIT=nodeplane-vm-$VM.service
QMP=$VM_ROOT/run/qemu/$VM.qmp

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ms() { awk -v s="$1" 'BEGIN { printf "%.0f", s * 1000 }'; }

vm_setup
start_user_manager
write_vm "$VM_ROOT/desired" "$VM" running
mkdir -p "$VM_ROOT/empty" "$VM_ROOT/direct"

unit_main_pid() { usercmd systemctl --user show -p MainPID --value "$UNIT" 2>/dev/null; }
delete_vm() {
  np apply --allow-empty -f "$VM_ROOT/empty" >"$VM_ROOT/delete.log" 2>&1 || { cat "$VM_ROOT/delete.log" >&2; exit 1; }
  [[ $(unit_main_pid) == 0 || -z $(unit_main_pid) ]] || { echo "unit still running after delete" >&2; exit 1; }
  [[ ! -e $VM_ROOT/instances/$VM ]] || { echo "instance dir left after delete" >&2; exit 1; }
}
check_running() {
  local st
  st=$($TIMER status "$QMP")
  [[ $st == running ]] || { echo "after apply QMP says '$st', not running" >&2; exit 1; }
}

# Warm-up apply: creates the state store and the agent id, and gives the argv the plugin builds.
np apply -f "$VM_ROOT/desired" >"$VM_ROOT/warmup.log" 2>&1 || { cat "$VM_ROOT/warmup.log" >&2; exit 1; }
check_running
pid=$(unit_main_pid)
[[ $pid =~ ^[1-9][0-9]*$ ]] || { echo "no MainPID for $UNIT" >&2; exit 1; }
# The argv, NUL-separated, with the instance's paths moved to direct/.
sed -e "s|$VM_ROOT/instances/$VM/|$VM_ROOT/direct/|g" -e "s|$QMP|$VM_ROOT/direct/$VM.qmp|g" \
  "/proc/$pid/cmdline" >"$VM_ROOT/direct.argv"
echo "QEMU argv (from /proc/$pid/cmdline of $UNIT):" >&2
tr '\0' ' ' <"/proc/$pid/cmdline" >&2
echo >&2
"$QEMU_IMG" create -q -f qcow2 -F qcow2 -b "$VM_ROOT/images/blank.qcow2" "$VM_ROOT/direct/disk.qcow2"
cp "$VM_ROOT/instances/$VM/seed.iso" "$VM_ROOT/direct/seed.iso"

# The CLI's fixed cost: a no-op diff with the VM running (start, plugins, observe over D-Bus).
diffs=()
for _ in 1 2 3 4 5; do
  j=$($TIMER apply "$NODEPLANE" --config "$VM_ROOT/agent.yaml" --state-dir "$VM_ROOT/state" \
    --plugin-dir "$PLUGIN_DIR" diff -f "$VM_ROOT/desired")
  [[ $(jq -r .rc <<<"$j") == 0 ]] || { echo "diff not clean after apply: $j" >&2; exit 1; }
  diffs+=("$(jq -r .seconds <<<"$j")")
done
delete_vm

# The tools alone, as the plugin runs them (the seed's files as cloud-init writes them, roughly).
mkdir -p "$VM_ROOT/tools/s"
printf '#cloud-config\nhostname: %s\n' "$VM" >"$VM_ROOT/tools/s/user-data"
printf 'instance-id: %s\nlocal-hostname: %s\n' "0000" "$VM" >"$VM_ROOT/tools/s/meta-data"
imgs=(); isos=()
for _ in 1 2 3 4 5; do
  rm -f "$VM_ROOT/tools/o.qcow2" "$VM_ROOT/tools/seed.iso"
  j=$($TIMER apply "$QEMU_IMG" create -q -f qcow2 -F qcow2 -b "$VM_ROOT/images/blank.qcow2" "$VM_ROOT/tools/o.qcow2")
  imgs+=("$(jq -r .seconds <<<"$j")")
  j=$($TIMER apply genisoimage -output "$VM_ROOT/tools/seed.iso" -volid cidata -joliet -rock -quiet \
    -graft-points "user-data=$VM_ROOT/tools/s/user-data" "meta-data=$VM_ROOT/tools/s/meta-data")
  isos+=("$(jq -r .seconds <<<"$j")")
done

np_s=(); qemu_s=(); steps=()
for ((r = 1; r <= RUNS; r++)); do
  j=$($TIMER apply "$NODEPLANE" --config "$VM_ROOT/agent.yaml" --state-dir "$VM_ROOT/state" \
    --plugin-dir "$PLUGIN_DIR" apply -f "$VM_ROOT/desired")
  [[ $(jq -r .rc <<<"$j") == 0 ]] || { echo "apply failed: $j" >&2; exit 1; }
  check_running
  np_s+=("$(jq -r .seconds <<<"$j")")
  # Progress stamps: the overlay line, the seed line, the unit start line, the end.
  steps+=("$(jq -r '[(.lines[] | select(.[1] | test("disk overlay")) | .[0]) // -1,
    (.lines[] | select(.[1] | test("cloud-init seed")) | .[0]) // -1,
    (.lines[] | select(.[1] | test("starting nodeplane-vm")) | .[0]) // -1,
    (.lines[] | select(.[1] | test("VirtualMachine/.* created")) | .[0]) // -1, .seconds] | @tsv' <<<"$j")")
  [[ $r == 1 ]] && { echo "apply output, stamped (s since start):" >&2; jq -r '.lines[] | "  \(.[0]) \(.[1])"' <<<"$j" >&2; }
  delete_vm
  j=$($TIMER direct "$VM_ROOT/direct.argv" "$VM_ROOT/direct/$VM.qmp") || { echo "direct QEMU failed" >&2; exit 1; }
  qemu_s+=("$(jq -r .seconds <<<"$j")")
  kill -0 "$(jq -r .pid <<<"$j")" 2>/dev/null && { echo "direct QEMU still running" >&2; exit 1; }
  echo "run $r (load $(cut -d' ' -f1 /proc/loadavg)): nodeplane apply $(ms "${np_s[-1]}") ms, direct QEMU $(ms "${qemu_s[-1]}") ms" >&2
done

np_med=$(printf '%s\n' "${np_s[@]}" | median)
qemu_med=$(printf '%s\n' "${qemu_s[@]}" | median)
over=$(printf '%s\n' "${np_s[@]}" | paste - <(printf '%s\n' "${qemu_s[@]}") | awk '{ print $1 - $2 }' | median)
col() { printf '%s\n' "${steps[@]}" | awk -v c="$1" -F'\t' '{ print $c }' | median; }
gap() { printf '%s\n' "${steps[@]}" | awk -v a="$1" -v b="$2" -F'\t' '$a >= 0 && $b >= 0 { print $b - $a }' | median; }
echo "nodeplane apply, $RUNS runs: median $(ms "$np_med") ms (all: $(for s in "${np_s[@]}"; do printf '%s ' "$(ms "$s")"; done)ms)"
echo "direct QEMU,     $RUNS runs: median $(ms "$qemu_med") ms (all: $(for s in "${qemu_s[@]}"; do printf '%s ' "$(ms "$s")"; done)ms)"
echo "overhead (apply - direct, paired runs): median $(ms "$over") ms; difference of medians $(ms "$(awk -v a="$np_med" -v b="$qemu_med" 'BEGIN { print a - b }')") ms"
echo "apply's progress stamps, medians: overlay line at $(ms "$(col 1)") ms, seed line +$(ms "$(gap 1 2)") ms, unit start line +$(ms "$(gap 2 3)") ms, created line +$(ms "$(gap 3 4)") ms, exit +$(ms "$(gap 4 5)") ms"
echo "no-op diff with the VM running (CLI start, plugins, observe), median of 5: $(ms "$(printf '%s\n' "${diffs[@]}" | median)") ms"
echo "qemu-img create of the overlay alone, median of 5: $(ms "$(printf '%s\n' "${imgs[@]}" | median)") ms; genisoimage of a seed alone: $(ms "$(printf '%s\n' "${isos[@]}" | median)") ms"
result "VM apply overhead vs direct QEMU (median)" "$(ms "$over")" ms "<" 300
