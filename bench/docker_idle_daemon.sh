#!/usr/bin/env bash
# Idle daemon with both plugins: `nodeplane run` keeping N net resources (N/2 Bridges + N/2
# Vxlans, in a fresh namespace) and C sleeping Containers (on a private dockerd). Once converged
# (a diff exits 0), reports VmRSS and, over a WINDOW_S idle window, the CPU ticks and the context
# switches of all the daemon's threads (each one is a wakeup), and the passes logged.
# Goals: VmRSS under 15 MB; no wakeups in the window but the resync's and what dockerd sends (it
# sends nothing here: nothing changes). Converging takes longer than the default 60 s resync on a
# loaded machine, so the agent config sets resyncSeconds: 3600 to keep the resync out of the window.
# Usage: bench/docker_idle_daemon.sh [N=1000] [C=100] [WINDOW_S=10]
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/docker_lib.sh"
N=${1:-1000}
C=${2:-100}
WINDOW=${3:-10}
NS=$(ns_name dkidle)
start_dockerd
CFG=$(agent_config "resyncSeconds: 3600")
gen_desired "$BENCH_TMP/desired" $((N / 2))
gen_containers "$BENCH_TMP/desired" "$C"
ns_fresh "$NS"

ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
rss_split() { awk '/^Rss(Anon|File|Shmem):/ { printf "%s %s kB  ", $1, $2 }' "/proc/$1/status"; }
switches() { cat /proc/"$1"/task/*/status | awk '/ctxt_switches:/ { s += $2 } END { print s }'; }
per_thread() {  # "TID:COMM:SWITCHES ..." for every thread of $1
  local t
  for t in /proc/"$1"/task/*; do
    printf '%s:%s:%s ' "${t##*/}" "$(cat "$t/comm")" \
      "$(awk '/ctxt_switches:/ { s += $2 } END { print s }' "$t/status")"
  done
}
passes() { grep -c -E 'in sync:|reconciled:' "$LOG" || true; }

LOG=$BENCH_TMP/daemon.log
ip netns exec "$NS" "$NODEPLANE" --config "$CFG" --state-dir "$BENCH_TMP/state" --log-level debug \
  run -f "$BENCH_TMP/desired" >"$LOG" 2>&1 &
PID=$!
track_pid "$PID"
t_start=$(date +%s)
deadline=$((t_start + 300))
until [[ -f $BENCH_TMP/state/state.json ]] &&
  ip netns exec "$NS" "$NODEPLANE" --config "$CFG" --state-dir "$BENCH_TMP/state" diff -f "$BENCH_TMP/desired" \
    >/dev/null 2>&1; do
  kill -0 "$PID" 2>/dev/null || { echo "daemon exited early:" >&2; tail "$LOG" >&2; exit 1; }
  (($(date +%s) < deadline)) || { echo "no convergence within 300 s" >&2; tail "$LOG" >&2; exit 1; }
  sleep 0.5
done
echo "converged after $(($(date +%s) - t_start)) s; threads: $(ls /proc/$PID/task | wc -l)"
# Settle: no pass for 5 s (kernel events after links come up each trigger one).
quiet_since=$(date +%s); last=$(passes); settle=$(($(date +%s) + 60))
while (($(date +%s) - quiet_since < 5 && $(date +%s) < settle)); do
  sleep 0.5; now=$(passes); [[ $now != "$last" ]] && { last=$now; quiet_since=$(date +%s); }
done
p0=$(passes); c0=$(ticks "$PID"); s0=$(switches "$PID"); t0=$(per_thread "$PID"); sleep "$WINDOW"
c1=$(ticks "$PID"); s1=$(switches "$PID"); p1=$(passes); t1=$(per_thread "$PID")
echo "per thread (tid:comm:context switches) before the window: $t0"
echo "                                        after the window: $t1"
rss=$(rss_kb "$PID"); split=$(rss_split "$PID"); pss=$(awk '/^Pss:/ { print $2 }' "/proc/$PID/smaps_rollup") threads=$(ls /proc/$PID/task | wc -l)
kill -TERM "$PID"; rc=0; wait "$PID" || rc=$?; _PIDS=()
echo "the daemon's last heap line: $(grep 'heap after the pass' "$LOG" | tail -1 | cut -d' ' -f3-)"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); running containers: $(running_count); threads: $threads"
echo "VmRSS ${rss} kB ($split Pss $pss kB); ${WINDOW}s window: $((c1 - c0)) ticks, $((s1 - s0)) context switches, $((p1 - p0)) passes; exit $rc"
result "idle daemon $N net + $C containers: VmRSS" "$(awk -v k="$rss" 'BEGIN{printf "%.1f", k/1024}')" MB "<" 15
result "idle daemon: wakeups in a ${WINDOW}s idle window" "$((s1 - s0))" "" "==" 0
result "idle daemon: exit code after SIGTERM" "$rc" "" "==" 0
