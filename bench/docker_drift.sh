#!/usr/bin/env bash
# Drift repair through the daemon: `nodeplane run` keeps N Containers; one is removed by hand
# (DELETE /containers/<id>?force=1 on the Engine API) and the time until a container of that name
# is running again is measured (polled every 5 ms on the API), REPS times.
# Goal: median under 1 s.
# The time includes dockerd's own DELETE (printed apart). KEEP_LOG=FILE keeps the daemon's debug log.
# Usage: bench/docker_drift.sh [N=10] [REPS=20]
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/docker_lib.sh"
N=${1:-10}
REPS=${2:-20}
start_dockerd
CFG=$(agent_config)
gen_containers "$BENCH_TMP/desired" "$N"
LOG=$BENCH_TMP/daemon.log
"$NODEPLANE" --config "$CFG" --state-dir "$BENCH_TMP/state" --log-level debug run -f "$BENCH_TMP/desired" >"$LOG" 2>&1 &
PID=$!
track_pid "$PID"

running_id() {  # the id of the running container named $1, or nothing
  d_api GET "/containers/json?filters=$(jq -rn --arg n "^/$1\$" '{name: [$n], status: ["running"]} | tojson | @uri')" |
    jq -r '.[0].Id // empty'
}
deadline=$(($(date +%s) + 120))
until [[ $(d_api GET '/containers/json' | jq length) -eq $N ]]; do
  kill -0 "$PID" 2>/dev/null || { echo "daemon exited:" >&2; tail "$LOG" >&2; exit 1; }
  (($(date +%s) < deadline)) || { echo "no convergence within 120 s" >&2; tail "$LOG" >&2; exit 1; }
  sleep 0.1
done

: >"$BENCH_TMP/times"
for ((r = 0; r < REPS; r++)); do
  name=npc$((r % N))
  old=$(running_id "$name")
  [[ -n $old ]] || { echo "$name is not running before rep $r" >&2; exit 1; }
  t0=$(date +%s.%N)
  d_api DELETE "/containers/$old?force=1" >/dev/null
  td=$(date +%s.%N)
  deadline=$(($(date +%s) + 30))
  while :; do
    now=$(running_id "$name")
    [[ -n $now && $now != "$old" ]] && break
    (($(date +%s) < deadline)) || { echo "$name not back within 30 s" >&2; tail "$LOG" >&2; exit 1; }
    sleep 0.005
  done
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }' >>"$BENCH_TMP/times"
  awk -v a="$t0" -v b="$td" 'BEGIN { printf "%.3f\n", b - a }' >>"$BENCH_TMP/deletes"
done
[[ -z ${KEEP_LOG:-} ]] || cp "$LOG" "$KEEP_LOG"
sort -n "$BENCH_TMP/times" >"$BENCH_TMP/sorted"
median=$(awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }' "$BENCH_TMP/sorted")
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "removed by hand -> running again, $REPS reps (s): $(tr '\n' ' ' <"$BENCH_TMP/sorted")"
echo "of which the DELETE ?force=1 call itself (dockerd killing and removing), sorted (s): $(sort -n "$BENCH_TMP/deletes" | tr '\n' ' ')"
result "drift: removed container running again (median)" "$median" s "<" 1
