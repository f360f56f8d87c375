#!/usr/bin/env bash
# Idle daemon: `nodeplane run -f DIR` with N resources (N/2 Bridges + N/2 Vxlans) in a fresh
# namespace. Waits for convergence by polling the real condition (`nodeplane diff` exits 0 and
# the state store has been written, deadline 120 s + N/10 s), then reports
#   VmRSS once converged and after the idle windows (goal < 12 MB up to 1000 resources, < 40 MB
#   above),
#   CPU ticks (utime+stime from /proc/PID/stat) over a 10 s idle window (goal: 0): the 10 s right
#   after convergence, the next 10 s, and 10 s once no pass ran for 5 s (kernel events after the
#   links came up -- IPv6 DAD, the bridge ports' 15 s forward delay -- each trigger a pass);
#   the same daemon's VmRSS with an empty desired directory, as a baseline;
# then SIGTERM (by PID) and checks the exit code is 0.
# Also reports the size of state.json once converged.
# Usage: bench/idle_daemon.sh [N=1000] [WINDOW_S=10]   (KEEP_LOG=FILE keeps the daemon's debug log)
# PLUGIN_DIR=DIR: the daemon loads the plugins of DIR (default: the build's, every plugin).
# The VmRSS goal is 12 MB up to 1000 resources, 40 MB above (issue 5: 10 000 resources); creating
# 10 000 links takes minutes on a loaded machine, so the convergence deadline grows with N
# (CONVERGE_S overrides it).
source "$(dirname "$0")/lib.sh"
N=${1:-1000}
WINDOW=${2:-10}
CONVERGE_S=${CONVERGE_S:-$((120 + N / 10))}
GOAL_MB=$((N <= 1000 ? 12 : 40))
NS=$(ns_name idle)
gen_desired "$BENCH_TMP/desired" $((N / 2))
ns_fresh "$NS"

ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }  # utime + stime
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
rss_split() { awk '/^Rss(Anon|File|Shmem):/ { printf "%s %s kB  ", $1, $2 }' "/proc/$1/status"; }
passes() { grep -c -E 'in sync:|reconciled:' "$BENCH_TMP/daemon.log" || true; }

LOG="$BENCH_TMP/daemon.log"
ip netns exec "$NS" "$NODEPLANE" ${PLUGIN_DIR:+--plugin-dir "$PLUGIN_DIR"} --state-dir "$BENCH_TMP/state" --log-level debug \
  run -f "$BENCH_TMP/desired" >"$LOG" 2>&1 &
PID=$!
track_pid "$PID"
t_start=$(date +%s.%N)

deadline=$(($(date +%s) + CONVERGE_S))
until [[ -f $BENCH_TMP/state/state.json ]] &&
  ip netns exec "$NS" "$NODEPLANE" ${PLUGIN_DIR:+--plugin-dir "$PLUGIN_DIR"} --state-dir "$BENCH_TMP/state" diff -f "$BENCH_TMP/desired" \
    >/dev/null 2>&1; do
  kill -0 "$PID" 2>/dev/null || { echo "daemon exited early:" >&2; tail "$LOG" >&2; exit 1; }
  (($(date +%s) < deadline)) || { echo "no convergence within $CONVERGE_S s" >&2; tail "$LOG" >&2; exit 1; }
  sleep 0.2
done
t_conv=$(date +%s.%N)
links=$(ip -n "$NS" -o link show | grep -c -E 'npbr|npvx')
echo "converged after $(fmt_s "$(awk -v a="$t_start" -v b="$t_conv" 'BEGIN{print b-a}')") s: $links links, daemon pid $PID"
rss_conv=$(rss_kb "$PID")
split_conv=$(rss_split "$PID")
state_bytes=$(stat -c %s "$BENCH_TMP/state/state.json")

p0=$(passes); c0=$(ticks "$PID"); sleep "$WINDOW"; c1=$(ticks "$PID"); p1=$(passes)
p2=$p1; sleep "$WINDOW"; c2=$(ticks "$PID"); p3=$(passes)
# Settled: no pass for 5 s (deadline 60 s), then a third window, which must end before the first
# periodic resync (60 s after start) to be an idle window at all.
deadline=$(($(date +%s) + 60)); quiet_since=$(date +%s); last=$(passes)
while (($(date +%s) - quiet_since < 5)); do
  (($(date +%s) < deadline)) || { echo "daemon never went quiet for 5 s" >&2; break; }
  sleep 0.5
  now=$(passes); [[ $now != "$last" ]] && { last=$now; quiet_since=$(date +%s); }
done
t_w3=$(date +%s.%N)
p4=$(passes); c3=$(ticks "$PID"); sleep "$WINDOW"; c4=$(ticks "$PID"); p5=$(passes)
w3_start=$(awk -v a="$t_start" -v b="$t_w3" 'BEGIN{printf "%.1f", b-a}')
rss_end=$(rss_kb "$PID")
split_end=$(rss_split "$PID")
hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$PID/status")

kill -TERM "$PID"
rc=0; wait "$PID" || rc=$?
_PIDS=()
[[ -n ${KEEP_LOG:-} ]] && cp "$LOG" "$KEEP_LOG"

# Baseline: the same daemon with an empty desired directory (what the process costs by itself),
# in a namespace of its own (in the first one it would observe the N links left there).
mkdir -p "$BENCH_TMP/empty"
NS_EMPTY=$(ns_name idle-empty)
ns_fresh "$NS_EMPTY"
ip netns exec "$NS_EMPTY" "$NODEPLANE" ${PLUGIN_DIR:+--plugin-dir "$PLUGIN_DIR"} --state-dir "$BENCH_TMP/state-empty" --log-level debug \
  run -f "$BENCH_TMP/empty" >"$BENCH_TMP/empty.log" 2>&1 &
EPID=$!
track_pid "$EPID"
deadline=$(($(date +%s) + 30))
until grep -q -E 'in sync:|reconciled:' "$BENCH_TMP/empty.log"; do
  (($(date +%s) < deadline)) || { echo "empty daemon did no pass" >&2; break; }
  sleep 0.2
done
rss_empty=$(rss_kb "$EPID"); split_empty=$(rss_split "$EPID")
kill -TERM "$EPID"; wait "$EPID" || true
_PIDS=()

echo "VmRSS converged ${rss_conv} kB ($split_conv), after idle ${rss_end} kB ($split_end), VmHWM ${hwm} kB"
echo "VmRSS of the same daemon with an empty desired dir: ${rss_empty} kB ($split_empty)"
echo "state.json once converged: ${state_bytes} bytes"
echo "window 1 (${WINDOW}s right after convergence): $((c1 - c0)) ticks, $((p1 - p0)) passes"
echo "window 2 (next ${WINDOW}s): $((c2 - c1)) ticks, $((p3 - p2)) passes"
echo "window 3 (${WINDOW}s from ${w3_start}s after start, after 5 s without a pass): $((c4 - c3)) ticks, $((p5 - p4)) passes"
echo "passes logged in total: $(passes); exit code after SIGTERM: $rc"
result "idle daemon $N res: VmRSS converged" "$(awk -v k="$rss_conv" 'BEGIN{printf "%.1f", k/1024}')" MB "<" "$GOAL_MB"
result "idle daemon $N res: VmRSS after the idle windows" "$(awk -v k="$rss_end" 'BEGIN{printf "%.1f", k/1024}')" MB "<" "$GOAL_MB"
result "idle daemon: CPU ticks, ${WINDOW}s right after converging" "$((c1 - c0))" ticks "==" 0
result "idle daemon: CPU ticks, ${WINDOW}s once settled" "$((c4 - c3))" ticks "==" 0
result "idle daemon: exit code after SIGTERM" "$rc" "" "==" 0
