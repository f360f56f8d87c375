#!/usr/bin/env bash
# No-op diff: after nodeplane applied N Bridges + N Vxlans in a namespace, `nodeplane diff` (exit
# 0, nothing to do) vs `ip -d -j link show` (the kernel dump alone) in the same namespace.
# Goal: diff < 3x ip -d -j link show.
# Usage: bench/noop_diff_vs_ip_show.sh [N=1000]   (RUNS=5 -> 4x that many runs, they are short)
source "$(dirname "$0")/lib.sh"
N=${1:-1000}
NS=$(ns_name diff)
gen_desired "$BENCH_TMP/desired" "$N"
ns_fresh "$NS"
ip netns exec "$NS" "$NODEPLANE" --state-dir "$BENCH_TMP/state" apply -f "$BENCH_TMP/desired" >/dev/null
ip netns exec "$NS" "$NODEPLANE" --state-dir "$BENCH_TMP/state" diff -f "$BENCH_TMP/desired" >/dev/null ||
  { echo "diff after apply is not clean (exit $?)" >&2; exit 1; }

DIFF="ip netns exec $NS $NODEPLANE --state-dir $BENCH_TMP/state diff -f $BENCH_TMP/desired"
SHOW="ip netns exec $NS ip -d -j link show"
hyperfine --warmup 2 --runs $((RUNS * 4)) --style basic --export-json "$BENCH_TMP/diff.json" \
  -n "nodeplane diff (no-op, $N+$N)" "$DIFF" -n "ip -d -j link show" "$SHOW"
# a baseline of the namespace switch itself, to read the numbers net of it
hyperfine --warmup 2 --runs $((RUNS * 4)) --style basic --export-json "$BENCH_TMP/exec.json" \
  -n "ip netns exec true" "ip netns exec $NS true"

d_med=$(jq -r '.results[0].median' "$BENCH_TMP/diff.json")
s_med=$(jq -r '.results[1].median' "$BENCH_TMP/diff.json")
e_med=$(jq -r '.results[0].median' "$BENCH_TMP/exec.json")
echo
echo "median seconds: nodeplane diff $(fmt_s "$d_med"), ip -d -j link show $(fmt_s "$s_med")," \
  "ip netns exec true $(fmt_s "$e_med")"
result "no-op diff $N+$N / ip -d -j link show (median)" "$(ratio "$d_med" "$s_med")" x "<" 3
echo "INFO net of ip netns exec: $(ratio "$(awk -v a="$d_med" -v e="$e_med" 'BEGIN{print a-e}')" \
  "$(awk -v a="$s_med" -v e="$e_med" 'BEGIN{print a-e}')")x"
