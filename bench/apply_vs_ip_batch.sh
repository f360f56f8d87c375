#!/usr/bin/env bash
# Whole-command comparison, each run in a fresh network namespace:
#   nodeplane apply of N Bridges + N Vxlans (each vxlan on its bridge, mtu 1450, up)
#   ip -batch doing the same (bridges: add with mtu, up; vxlans: add with id/local/remote/dstport,
#     mtu, master, addrgenmode none, up), and the same without addrgenmode none (kernel effect).
# Goal: nodeplane within 1.5x of ip -batch (with addrgenmode none: the same work).
# Usage: bench/apply_vs_ip_batch.sh [N=1000]   (RUNS=5 repetitions each)
source "$(dirname "$0")/lib.sh"
N=${1:-1000}
NS=$(ns_name apply)

gen_desired "$BENCH_TMP/desired" "$N"
gen_ip_batch "$BENCH_TMP/ip-agm.batch" "$N" 1
gen_ip_batch "$BENCH_TMP/ip-noagm.batch" "$N" 0

# Sanity: one nodeplane apply converges, a following diff is clean, and the link count matches.
ns_fresh "$NS"
ip netns exec "$NS" "$NODEPLANE" --state-dir "$BENCH_TMP/state" apply -f "$BENCH_TMP/desired" >/dev/null
links=$(ip -n "$NS" -o link show | grep -c -E 'npbr|npvx')
[[ $links -eq $((2 * N)) ]] || { echo "apply made $links links, expected $((2 * N))" >&2; exit 1; }
ip netns exec "$NS" "$NODEPLANE" --state-dir "$BENCH_TMP/state" diff -f "$BENCH_TMP/desired" >/dev/null ||
  { echo "diff after apply is not clean" >&2; exit 1; }

# Each timed run gets a fresh namespace (prepare: the previous one's links deleted synchronously,
# namespace deleted, a new one added; state dir emptied). ip netns exec is in both commands.
make_prep "$BENCH_TMP/prep.sh" "$NS" "$BENCH_TMP/state"

hyperfine --runs "$RUNS" --prepare "$BENCH_TMP/prep.sh" --style basic \
  --export-json "$BENCH_TMP/np.json" -n "nodeplane apply ($N+$N)" \
  "ip netns exec $NS $NODEPLANE --state-dir $BENCH_TMP/state apply -f $BENCH_TMP/desired"
hyperfine --runs "$RUNS" --prepare "$BENCH_TMP/prep.sh" --style basic \
  --export-json "$BENCH_TMP/agm.json" -n "ip -batch, addrgenmode none on vxlans" \
  "ip netns exec $NS ip -batch $BENCH_TMP/ip-agm.batch"
hyperfine --runs "$RUNS" --prepare "$BENCH_TMP/prep.sh" --style basic \
  --export-json "$BENCH_TMP/noagm.json" -n "ip -batch, no addrgenmode" \
  "ip netns exec $NS ip -batch $BENCH_TMP/ip-noagm.batch"

read -r _ np_med np_min _ <<<"$(hf_stats "$BENCH_TMP/np.json")"
read -r _ agm_med agm_min _ <<<"$(hf_stats "$BENCH_TMP/agm.json")"
read -r _ no_med no_min _ <<<"$(hf_stats "$BENCH_TMP/noagm.json")"
echo
echo "median seconds (min): nodeplane apply $(fmt_s "$np_med") ($(fmt_s "$np_min")), " \
  "ip -batch+addrgenmode none $(fmt_s "$agm_med") ($(fmt_s "$agm_min")), " \
  "ip -batch plain $(fmt_s "$no_med") ($(fmt_s "$no_min"))"
result "apply $N+$N: nodeplane / ip-batch (median)" "$(ratio "$np_med" "$agm_med")" x "<" 1.5
echo "INFO ip -batch without/with addrgenmode none (median): $(ratio "$no_med" "$agm_med")x"
