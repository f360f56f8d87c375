#!/usr/bin/env bash
# Idle daemon with VMs (issue 8): `nodeplane run` keeping V VirtualMachines (the tiny TCG VM of
# vm_apply_vs_qemu.sh, cloudInit included; STATE=running|stopped, default running) on a private
# `systemd --user` manager, in a fresh network namespace, every plugin of the build installed
# (net, docker's light front, qemu). Once converged (a diff exits 0) and settled (no pass for 5 s),
# reports VmRSS (goal < 15 MB), its anonymous/file split, VmHWM, and over a WINDOW_S idle window
# the CPU ticks, context switches of every thread and passes; then SIGTERM (by PID, exit code 0).
# Then, for comparison, daemons with an empty desired directory (each in its own namespace, each
# with a plugin directory holding copies of only the plugins named): every plugin (net, docker
# front + its runtime/, qemu), net + qemu, net only. The VMs outlive the daemon (by design); the
# user manager is stopped by PID at the end, which stops them.
# Usage: bench/vm_idle_daemon.sh [V=20] [WINDOW_S=10]   (STATE=stopped: no QEMU runs)
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/vm_lib.sh"
trap '_vm_rc=$?; set +e; stop_user_manager; (exit $_vm_rc); _cleanup' EXIT  # set +e: (exit 1) must not end the trap
V=${1:-20}
WINDOW=${2:-10}
STATE=${STATE:-running}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
rss_split() { awk '/^Rss(Anon|File|Shmem):/ { printf "%s %s kB  ", $1, $2 }' "/proc/$1/status"; }
ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
switches() { cat /proc/"$1"/task/*/status | awk '/ctxt_switches:/ { s += $2 } END { print s }'; }
passes() { grep -c -E 'in sync:|reconciled:' "$1" || true; }
top_maps() {  # the 8 mappings with the most resident pages: "file kB, ..." (from smaps)
  awk '/^[0-9a-f]+-[0-9a-f]+ / { f = ($6 == "" ? "[anon]" : $6); sub(/.*\//, "", f) }
       /^Rss:/ { r[f] += $2 } END { for (f in r) print r[f], f }' "/proc/$1/smaps" |
    sort -rn | head -8 | awk '{ printf "%s%s %s kB", (NR > 1 ? ", " : ""), $2, $1 }'
}
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# wait_quiet PID LOG: until no pass was logged for 5 s (deadline 120 s).
wait_quiet() {
  local deadline=$(($(date +%s) + 120)) quiet_since last now
  until grep -q -E 'in sync:|reconciled:' "$2"; do
    kill -0 "$1" 2>/dev/null || { echo "daemon exited early:" >&2; tail "$2" >&2; exit 1; }
    (($(date +%s) < deadline)) || { echo "daemon did no pass" >&2; tail "$2" >&2; exit 1; }
    sleep 0.2
  done
  quiet_since=$(date +%s); last=$(passes "$2")
  while (($(date +%s) - quiet_since < 5)); do
    (($(date +%s) < deadline)) || { echo "daemon never went quiet for 5 s" >&2; break; }
    sleep 0.5
    now=$(passes "$2")
    if [[ $now != "$last" ]]; then last=$now; quiet_since=$(date +%s); fi
  done
}

vm_setup
start_user_manager
for ((i = 0; i < V; i++)); do write_vm "$VM_ROOT/desired" "vm$i" "$STATE"; done
NS=$(ns_name vmidle)
ns_fresh "$NS"

LOG=$BENCH_TMP/daemon.log
ip netns exec "$NS" "$NODEPLANE" --config "$VM_ROOT/agent.yaml" --state-dir "$VM_ROOT/state" \
  --plugin-dir "$PLUGIN_DIR" --log-level debug run -f "$VM_ROOT/desired" >"$LOG" 2>&1 &
PID=$!
track_pid "$PID"
t_start=$(date +%s.%N)
deadline=$(($(date +%s) + 300))
until [[ -f $VM_ROOT/state/state.json ]] &&
  ip netns exec "$NS" "$NODEPLANE" --config "$VM_ROOT/agent.yaml" --state-dir "$VM_ROOT/state" \
    --plugin-dir "$PLUGIN_DIR" diff -f "$VM_ROOT/desired" >/dev/null 2>&1; do
  kill -0 "$PID" 2>/dev/null || { echo "daemon exited early:" >&2; tail "$LOG" >&2; exit 1; }
  (($(date +%s) < deadline)) || { echo "no convergence within 300 s" >&2; tail "$LOG" >&2; exit 1; }
  sleep 0.5
done
t_conv=$(date +%s.%N)
units=$(usercmd systemctl --user list-units --no-legend --state=active 'nodeplane-vm-*' | wc -l)
echo "converged after $(fmt_s "$(awk -v a="$t_start" -v b="$t_conv" 'BEGIN { print b - a }')") s: $V VMs ($STATE), $units active VM units, daemon pid $PID; load $(cut -d' ' -f1-3 /proc/loadavg)"
[[ $STATE != running || $units == "$V" ]] || { echo "expected $V active units, found $units" >&2; exit 1; }
rss_conv=$(rss_kb "$PID")
wait_quiet "$PID" "$LOG"
p0=$(passes "$LOG"); c0=$(ticks "$PID"); s0=$(switches "$PID")
sleep "$WINDOW"
c1=$(ticks "$PID"); s1=$(switches "$PID"); p1=$(passes "$LOG")
rss_idle=$(rss_kb "$PID"); split_idle=$(rss_split "$PID")
hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$PID/status")
threads=$(ls "/proc/$PID/task" | wc -l)
maps_idle=$(top_maps "$PID")
kill -TERM "$PID"
rc=0; wait "$PID" || rc=$?
_PIDS=()
[[ -n ${KEEP_LOG:-} ]] && cp "$LOG" "$KEEP_LOG"
echo "$V VMs: VmRSS converged ${rss_conv} kB, after the idle window ${rss_idle} kB ($split_idle), VmHWM ${hwm} kB, $threads threads"
echo "$V VMs: resident by mapping: $maps_idle"
echo "$V VMs: ${WINDOW}s idle window: $((c1 - c0)) ticks, $((s1 - s0)) context switches, $((p1 - p0)) passes; exit code after SIGTERM: $rc"

# Empty desired directory, plugin sets side by side.
mkdir -p "$BENCH_TMP/empty"
sed '/^qemu:/,$d' "$VM_ROOT/agent.yaml" >"$VM_ROOT/agent-noqemu.yaml"
empty_daemon() {  # LABEL CONFIG PLUGIN_FILES... -> prints "LABEL: VmRSS ..."
  local label=$1 cfg=$2 dir=$BENCH_TMP/plugins-$1 ns epid log f
  shift 2
  mkdir -p "$dir"
  for f in "$@"; do cp -r "$PLUGIN_DIR/$f" "$dir/$f"; done
  chmod -R go-w "$dir"
  ns=$(ns_name "vmidle-$label")
  ns_fresh "$ns"
  log=$BENCH_TMP/empty-$label.log
  ip netns exec "$ns" "$NODEPLANE" --config "$cfg" --state-dir "$BENCH_TMP/state-$label" \
    --plugin-dir "$dir" --log-level debug run -f "$BENCH_TMP/empty" >"$log" 2>&1 &
  epid=$!
  track_pid "$epid"
  wait_quiet "$epid" "$log"
  local c0 s0
  c0=$(ticks "$epid"); s0=$(switches "$epid")
  sleep "$WINDOW"
  echo "empty, $label: VmRSS $(rss_kb "$epid") kB ($(rss_split "$epid")), $(($(ticks "$epid") - c0)) ticks, $(($(switches "$epid") - s0)) switches in ${WINDOW}s; libraries mapped: $(awk '$6 ~ /\.so/ { print $6 }' "/proc/$epid/maps" | sort -u | wc -l)"
  echo "empty, $label: resident by mapping: $(top_maps "$epid")"
  RSS_EMPTY[$label]=$(rss_kb "$epid")
  kill -TERM "$epid"
  wait "$epid" || true
  _PIDS=()
}
declare -A RSS_EMPTY
empty_daemon all "$VM_ROOT/agent.yaml" libnodeplane-net.so libnodeplane-docker.so runtime libnodeplane-qemu.so
empty_daemon netqemu "$VM_ROOT/agent.yaml" libnodeplane-net.so libnodeplane-qemu.so
empty_daemon netonly "$VM_ROOT/agent-noqemu.yaml" libnodeplane-net.so

result "idle daemon, $V VMs ($STATE): VmRSS after idle" "$(mb "$rss_idle")" MB "<" 15
result "idle daemon, $V VMs: CPU ticks in ${WINDOW}s settled" "$((c1 - c0))" ticks "==" 0
result "idle daemon, $V VMs: exit code after SIGTERM" "$rc" "" "==" 0
echo "INFO empty daemon VmRSS: every plugin $(mb "${RSS_EMPTY[all]}") MB, net+qemu $(mb "${RSS_EMPTY[netqemu]}") MB, net only $(mb "${RSS_EMPTY[netonly]}") MB"
