#!/usr/bin/env bash
# Idle daemon: `nodeplane run -f DIR` with N resources (N/2 Bridges + N/2 Vxlans) in a fresh
# namespace. Waits for convergence by polling the real condition (`nodeplane diff` exits 0 and
# the state store has been written, deadline 120 s), then reports
#   VmRSS once converged (goal < 15 MB),
#   CPU ticks (utime+stime from /proc/PID/stat) over a 10 s idle window (goal: 0),
#   and a second 10 s window, to tell settling from a steady cost;
# then SIGTERM (by PID) and checks the exit code is 0.
# Usage: bench/idle_daemon.sh [N=1000] [WINDOW_S=10]
source "$(dirname "$0")/lib.sh"
N=${1:-1000}
WINDOW=${2:-10}
NS=$(ns_name idle)
gen_desired "$BENCH_TMP/desired" $((N / 2))
ns_fresh "$NS"

ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }  # utime + stime
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
passes() { grep -c -E 'in sync:|reconciled:' "$BENCH_TMP/daemon.log" || true; }

LOG="$BENCH_TMP/daemon.log"
ip netns exec "$NS" "$NODEPLANE" --state-dir "$BENCH_TMP/state" --log-level debug \
  run -f "$BENCH_TMP/desired" >"$LOG" 2>&1 &
PID=$!
track_pid "$PID"
t_start=$(date +%s.%N)

deadline=$(($(date +%s) + 120))
until [[ -f $BENCH_TMP/state/state.json ]] &&
  ip netns exec "$NS" "$NODEPLANE" --state-dir "$BENCH_TMP/state" diff -f "$BENCH_TMP/desired" \
    >/dev/null 2>&1; do
  kill -0 "$PID" 2>/dev/null || { echo "daemon exited early:" >&2; tail "$LOG" >&2; exit 1; }
  (($(date +%s) < deadline)) || { echo "no convergence within 120 s" >&2; tail "$LOG" >&2; exit 1; }
  sleep 0.2
done
t_conv=$(date +%s.%N)
links=$(ip -n "$NS" -o link show | grep -c -E 'npbr|npvx')
echo "converged after $(fmt_s "$(awk -v a="$t_start" -v b="$t_conv" 'BEGIN{print b-a}')") s: $links links, daemon pid $PID"
rss_conv=$(rss_kb "$PID")

p0=$(passes); c0=$(ticks "$PID"); sleep "$WINDOW"; c1=$(ticks "$PID"); p1=$(passes)
p2=$p1; sleep "$WINDOW"; c2=$(ticks "$PID"); p3=$(passes)
rss_end=$(rss_kb "$PID")
hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$PID/status")

kill -TERM "$PID"
rc=0; wait "$PID" || rc=$?
_PIDS=()

echo "VmRSS converged ${rss_conv} kB, after idle ${rss_end} kB, VmHWM ${hwm} kB"
echo "window 1 (${WINDOW}s right after convergence): $((c1 - c0)) ticks, $((p1 - p0)) passes"
echo "window 2 (next ${WINDOW}s): $((c2 - c1)) ticks, $((p3 - p2)) passes"
echo "passes logged in total: $(passes); exit code after SIGTERM: $rc"
result "idle daemon $N res: VmRSS converged" "$(awk -v k="$rss_conv" 'BEGIN{printf "%.1f", k/1024}')" MB "<" 15
result "idle daemon: CPU ticks, ${WINDOW}s window 1" "$((c1 - c0))" ticks "==" 0
result "idle daemon: CPU ticks, ${WINDOW}s window 2" "$((c2 - c1))" ticks "==" 0
result "idle daemon: exit code after SIGTERM" "$rc" "" "==" 0
