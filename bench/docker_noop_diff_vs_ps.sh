#!/usr/bin/env bash
# No-op diff: after nodeplane applied N Containers on a private dockerd, `nodeplane diff` (exit 0)
# vs `docker ps -a --format '{{json .}}'` (the list alone).
# Goal: diff under 2x docker ps.
# Usage: bench/docker_noop_diff_vs_ps.sh [N=200]   (RUNS=5 -> 4x that many runs)
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/docker_lib.sh"
N=${1:-200}
start_dockerd
CFG=$(agent_config)
gen_containers "$BENCH_TMP/desired" "$N"
"$NODEPLANE" --config "$CFG" --state-dir "$BENCH_TMP/state" apply -f "$BENCH_TMP/desired" >/dev/null
"$NODEPLANE" --config "$CFG" --state-dir "$BENCH_TMP/state" diff -f "$BENCH_TMP/desired" >/dev/null ||
  { echo "diff after apply is not clean (exit $?)" >&2; exit 1; }
hyperfine --warmup 2 --runs $((RUNS * 4)) --style basic --export-json "$BENCH_TMP/diff.json" \
  -n "nodeplane diff (no-op, $N containers)" \
  "$NODEPLANE --config $CFG --state-dir $BENCH_TMP/state diff -f $BENCH_TMP/desired" \
  -n "docker ps -a --format '{{json .}}'" \
  "docker -H unix://$DOCKER_SOCK ps -a --format '{{json .}}'"
d_med=$(jq -r '.results[0].median' "$BENCH_TMP/diff.json")
p_med=$(jq -r '.results[1].median' "$BENCH_TMP/diff.json")
echo
echo "load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg); containers listed: $(d_api GET '/containers/json?all=1' | jq length)"
echo "median seconds: nodeplane diff $(fmt_s "$d_med"), docker ps $(fmt_s "$p_med")"
result "no-op diff $N containers / docker ps (median)" "$(ratio "$d_med" "$p_med")" x "<" 2
