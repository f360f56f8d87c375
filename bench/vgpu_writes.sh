#!/usr/bin/env bash
# Issue 9's vGPU numbers, on the FUSE emulator of NVIDIA's vGPU sysfs (tests/emulator/vgpu, which
# counts every write to its sysfs files): 4 emulated L40S GPUs with 8 VFs each.
#  1. `nodeplane apply` of 4 SriovPf + 32 Vgpu (L40S-6Q on every VF), from nothing: writes, time.
#  2. 2 of the 32 changed to L40S-6A (same size): nodeplane apply (writes, time), against a shell
#     loop doing read-before-write over all 32 VFs (the same change from the same state), and a
#     loop re-writing every VF (Cozystack's documented workaround: 0 then the id, every VF).
#  3. The emulated host "reboots" (VFs and types gone); `nodeplane run` starts, as at boot: the
#     time until every one of the 32 types reads back, through the daemon (VFs, then types).
# Usage: bench/vgpu_writes.sh [RUNS=5]
source "$(dirname "$0")/lib.sh"
RUNS=${1:-5}
EMU=${NODEPLANE_VGPU_EMU:-$BUILD_DIR/tests/nodeplane-vgpu-emu}
[[ -x $EMU ]] || { echo "no emulator at $EMU (build the target nodeplane-vgpu-emu)" >&2; exit 1; }
ROOT=$BENCH_TMP
SYS=$ROOT/sys
mkdir -p "$SYS" "$ROOT/desired" "$ROOT/state"
GPUS=(0000:41:00.0 0000:42:00.0 0000:43:00.0 0000:44:00.0)
ID_6Q=1151 ID_6A=1161  # the L40S board's ids (tests/emulator/vgpu/README.md, from a real capture)

{
  echo '{"pfs": ['
  for i in "${!GPUS[@]}"; do
    printf '  {"address": "%s", "kind": "nvidia-sriov", "board": "L40S", "totalVfs": 8}%s\n' \
      "${GPUS[$i]}" "$([[ $i -lt 3 ]] && echo ,)"
  done
  echo ']}'
} >"$ROOT/layout.json"
"$EMU" --mount "$SYS" --layout "$ROOT/layout.json" >"$ROOT/emu.out" 2>"$ROOT/emu.err" &
track_pid $!
for _ in $(seq 200); do grep -qx ready "$ROOT/emu.out" && break; sleep 0.05; done
grep -qx ready "$ROOT/emu.out" || { cat "$ROOT/emu.err" >&2; exit 1; }
printf '#!/bin/sh\nexec %s sriov-manage --mount %s "$@"\n' "$EMU" "$SYS" >"$ROOT/sriov-manage"
chmod 755 "$ROOT/sriov-manage"
cat >"$ROOT/agent.yaml" <<YAML
apiVersion: nodeplane.io/v1
kind: AgentConfig
resyncSeconds: 3600
debounceMilliseconds: 50
vgpu: {sriovManage: $ROOT/sriov-manage}
YAML
np() { "$NODEPLANE" --config "$ROOT/agent.yaml" --state-dir "$ROOT/state" --sysfs-root "$SYS" \
  --dev-root "$SYS/dev" "$@"; }

vf_of() { # GPU index, VF index -> the VF's address (offset 4, stride 1: 41:00.4 … 41:01.3)
  local bus=${GPUS[$1]:5:2} fn=$((4 + $2))
  printf '0000:%s:%02x.%x' "$bus" $((fn / 8)) $((fn % 8))
}
write_desired() { # $1: the profile of g0/vf0 and g0/vf1; every other VF L40S-6Q
  : >"$ROOT/desired/all.yaml"
  for g in "${!GPUS[@]}"; do
    printf 'apiVersion: nodeplane.io/v1\nkind: SriovPf\nmetadata: {name: gpu%d}\nspec: {device: "%s", numVfs: 8}\n---\n' \
      "$g" "${GPUS[$g]}" >>"$ROOT/desired/all.yaml"
    for v in $(seq 0 7); do
      local p=L40S-6Q
      [[ $g -eq 0 && $v -lt 2 ]] && p=$1
      printf 'apiVersion: nodeplane.io/v1\nkind: Vgpu\nmetadata: {name: g%d-vf%d}\nspec: {parent: "%s", vf: %d, profile: %s}\n---\n' \
        "$g" "$v" "${GPUS[$g]}" "$v" "$p" >>"$ROOT/desired/all.yaml"
    done
  done
}
writes() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["total"])' "$SYS/.emu/writes"; }
reset() { echo x >"$SYS/.emu/reset"; }
now() { date +%s.%N; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", (b - a) * 1000 }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
apply() { np --log-level info apply -f "$ROOT/desired" >"$ROOT/apply.log" 2>&1 || { cat "$ROOT/apply.log" >&2; exit 1; }; }
all_types() { # prints the 32 current types, one line
  local g v
  for g in "${!GPUS[@]}"; do for v in $(seq 0 7); do
    cat "$SYS/bus/pci/devices/$(vf_of "$g" "$v")/nvidia/current_vgpu_type" 2>/dev/null || echo -
  done; done | tr '\n' ' '
}
want() { # the 32 ids when g0/vf0-1 have $1
  local g v
  for g in "${!GPUS[@]}"; do for v in $(seq 0 7); do
    if [[ $g -eq 0 && $v -lt 2 ]]; then echo "$1"; else echo $ID_6Q; fi
  done; done | tr '\n' ' '
}
shell_loop() { # read-before-write over every VF, to ids $1 for g0/vf0-1
  local g v f cur id
  for g in "${!GPUS[@]}"; do for v in $(seq 0 7); do
    f=$SYS/bus/pci/devices/$(vf_of "$g" "$v")/nvidia/current_vgpu_type
    id=$ID_6Q; [[ $g -eq 0 && $v -lt 2 ]] && id=$1
    cur=$(cat "$f")
    if [[ $cur != "$id" ]]; then
      [[ $cur != 0 ]] && echo 0 >"$f"
      echo "$id" >"$f"
    fi
  done; done
}
rewrite_all() { # every VF: 0 then the id, whatever it had (errors ignored, as the loop does)
  local g v f id
  for g in "${!GPUS[@]}"; do for v in $(seq 0 7); do
    f=$SYS/bus/pci/devices/$(vf_of "$g" "$v")/nvidia/current_vgpu_type
    id=$ID_6Q; [[ $g -eq 0 && $v -lt 2 ]] && id=$1
    echo 0 >"$f" 2>/dev/null || true
    echo "$id" >"$f" 2>/dev/null || true
  done; done
}

# 1. From nothing.
write_desired L40S-6Q
reset; t0=$(now); apply; t1=$(now)
[[ $(all_types) == "$(want $ID_6Q)" ]] || { echo "not every type set: $(all_types)" >&2; exit 1; }
[[ -n ${KEEP_LOG:-} ]] && cp "$ROOT/apply.log" "$KEEP_LOG"
echo "bench vgpu-assign-32: $(ms "$t0" "$t1") ms, $(writes) sysfs writes (+ 4 sriov-manage -e)"

t0=$(now); np diff -f "$ROOT/desired" >/dev/null; t1=$(now)
echo "bench vgpu-noop-diff-32 (the CLI's fixed cost here): $(ms "$t0" "$t1") ms"
if [[ -n ${PROFILE:-} ]]; then
  strace -f -tt -e trace=openat,write,execve,wait4,nanosleep,clock_nanosleep,poll,ppoll -o "$PROFILE" \
    "$NODEPLANE" --config "$ROOT/agent.yaml" --state-dir "$ROOT/state" --sysfs-root "$SYS" \
    --dev-root "$SYS/dev" diff -f "$ROOT/desired" >/dev/null || true
fi

# 2. Change 2 of 32, RUNS times each way (back to 6Q untimed between runs).
declare -a T_NP T_LOOP T_ALL
for _ in $(seq "$RUNS"); do
  write_desired L40S-6A; reset; t0=$(now)
  if [[ -n ${PROFILE_APPLY:-} ]]; then
    strace -f -tt -o "$PROFILE_APPLY" "$NODEPLANE" --config "$ROOT/agent.yaml" --state-dir "$ROOT/state" \
      --sysfs-root "$SYS" --dev-root "$SYS/dev" apply -f "$ROOT/desired" >/dev/null 2>&1
  else
    apply
  fi
  t1=$(now); W_NP=$(writes)
  [[ $(all_types) == "$(want $ID_6A)" ]] || { echo "change not made: $(all_types)" >&2; exit 1; }
  T_NP+=("$(ms "$t0" "$t1")")
  write_desired L40S-6Q; apply
  reset; t0=$(now); shell_loop $ID_6A; t1=$(now); W_LOOP=$(writes)
  T_LOOP+=("$(ms "$t0" "$t1")")
  shell_loop $ID_6Q
  reset; t0=$(now); rewrite_all $ID_6A; t1=$(now); W_ALL=$(writes)
  T_ALL+=("$(ms "$t0" "$t1")")
  shell_loop $ID_6Q
done
[[ $(np diff -f "$ROOT/desired" >/dev/null 2>&1; echo $?) == 0 ]] || { echo "not in sync after the loops" >&2; exit 1; }
echo "bench vgpu-change-2-of-32 nodeplane: median $(printf '%s\n' "${T_NP[@]}" | median) ms, $W_NP writes"
echo "bench vgpu-change-2-of-32 shell read-before-write: median $(printf '%s\n' "${T_LOOP[@]}" | median) ms, $W_LOOP writes"
echo "bench vgpu-change-2-of-32 shell rewrite-every-VF: median $(printf '%s\n' "${T_ALL[@]}" | median) ms, $W_ALL writes"

# 3. Reboot, then the daemon as at boot.
declare -a T_BOOT
for _ in $(seq "$RUNS"); do
  echo reboot >"$SYS/.emu/control"
  t0=$(now)
  # Not through np(): `np … &` is a subshell, and SIGTERM to it would leave the daemon running.
  "$NODEPLANE" --config "$ROOT/agent.yaml" --state-dir "$ROOT/state" --sysfs-root "$SYS" \
    --dev-root "$SYS/dev" run -f "$ROOT/desired" >"$ROOT/run.log" 2>&1 &
  daemon=$!
  track_pid $daemon
  until [[ $(all_types) == "$(want $ID_6Q)" ]]; do
    kill -0 $daemon 2>/dev/null || { cat "$ROOT/run.log" >&2; exit 1; }
    [[ $(ms "$t0" "$(now)") -lt 60000 ]] || { echo "not restored in 60 s: $(all_types)" >&2; tail -20 "$ROOT/run.log" >&2; exit 1; }
    sleep 0.02
  done
  t1=$(now)
  T_BOOT+=("$(ms "$t0" "$t1")")
  kill -TERM $daemon; wait $daemon || true
done
echo "bench vgpu-reboot-restore-32 (daemon start to every type read back): median $(printf '%s\n' "${T_BOOT[@]}" | median) ms (runs: ${T_BOOT[*]})"
