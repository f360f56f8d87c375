#!/usr/bin/env bash
# Prune: N Bridges + N Vxlans applied by nodeplane, then `nodeplane apply -f EMPTY_DIR` deletes
# every owned link. Reports the total time (hyperfine, fresh namespace per run) and the per-delete
# latency distribution from `strace -T` of one more run: each RTM_DELLINK sendmsg() returns after
# the kernel processed the request, so its duration bounds the RTNL hold of that request from
# above (it also includes netdev_run_todo's waits after rtnl_unlock, and strace's own overhead).
# Goal: no single RTNL hold > 0.5 s.
# Baselines, one run each, links made by ip -batch in a fresh namespace: `ip -batch` deleting the
# same links one request each (the same kernel work as nodeplane's prune), and one bulk request
# (`ip link del group 99`, all links in one RTNL hold) to show what batching would cost in hold time.
# Usage: bench/prune.sh [N=1000]   (PRUNE_RUNS=3 timed prunes)
source "$(dirname "$0")/lib.sh"
N=${1:-1000}
NS=$(ns_name prune)
gen_desired "$BENCH_TMP/desired" "$N"
mkdir -p "$BENCH_TMP/empty"
make_prep "$BENCH_TMP/prep.sh" "$NS" "$BENCH_TMP/state" \
  "$NODEPLANE" --state-dir "$BENCH_TMP/state" apply -f "$BENCH_TMP/desired"
_NAMESPACES+=("$NS")

PRUNE="ip netns exec $NS $NODEPLANE --state-dir $BENCH_TMP/state apply -f $BENCH_TMP/empty"
hyperfine --runs "${PRUNE_RUNS:-3}" --prepare "$BENCH_TMP/prep.sh" --style basic \
  --export-json "$BENCH_TMP/prune.json" -n "nodeplane apply -f EMPTY (prune $N+$N)" "$PRUNE"
left=$(ip -n "$NS" -o link show | grep -c -E 'npbr|npvx' || true)
[[ $left -eq 0 ]] || { echo "prune left $left links" >&2; exit 1; }

# One traced run.
"$BENCH_TMP/prep.sh" >/dev/null
t0=$(date +%s.%N)
ip netns exec "$NS" strace -f -T -e trace=sendmsg -e signal=none -o "$BENCH_TMP/strace.txt" \
  "$NODEPLANE" --state-dir "$BENCH_TMP/state" apply -f "$BENCH_TMP/empty" >/dev/null
t1=$(date +%s.%N)
grep RTM_DELLINK "$BENCH_TMP/strace.txt" | sed -E 's/.*<([0-9.]+)>$/\1/' | sort -g >"$BENCH_TMP/del.txt"
n_del=$(wc -l <"$BENCH_TMP/del.txt")
stats=$(awk '{ v[NR] = $1; s += $1 } END {
  printf "n=%d sum=%.3fs mean=%.2fms p50=%.2fms p90=%.2fms p99=%.2fms max=%.2fms",
    NR, s, 1000 * s / NR, 1000 * v[int(NR * 0.5)], 1000 * v[int(NR * 0.9)],
    1000 * v[int(NR * 0.99)], 1000 * v[NR] }' "$BENCH_TMP/del.txt")
max=$(tail -1 "$BENCH_TMP/del.txt")
# the slowest by kind
for kind in vxlan bridge; do
  pat=$([[ $kind == vxlan ]] && echo npvx || echo npbr)
  grep RTM_DELLINK "$BENCH_TMP/strace.txt" | grep "\"$pat" | sed -E 's/.*<([0-9.]+)>$/\1/' |
    sort -g | awk -v k="$kind" '{ v[NR] = $1; s += $1 } END {
      printf "INFO RTM_DELLINK %s: n=%d mean=%.2fms p50=%.2fms max=%.2fms\n", k, NR, 1000 * s / NR,
        1000 * v[int(NR * 0.5)], 1000 * v[NR] }'
done
# Baselines.
gen_ip_batch "$BENCH_TMP/create.batch" "$N" 1
awk -v n="$N" 'BEGIN { for (i = 0; i < n; i++) print "link del dev npvx" i;
  for (i = 0; i < n; i++) print "link del dev npbr" i }' >"$BENCH_TMP/del.batch"
ns_fresh "$NS"
ip -n "$NS" -batch "$BENCH_TMP/create.batch"
t2=$(date +%s.%N); ip -n "$NS" -batch "$BENCH_TMP/del.batch"; t3=$(date +%s.%N)
ns_fresh "$NS"
ip -n "$NS" -batch "$BENCH_TMP/create.batch"
ip -n "$NS" -o link show | awk -F': ' '$2 != "lo" { sub(/@.*/, "", $2); print "link set dev " $2 " group 99" }' |
  ip -n "$NS" -batch -
t4=$(date +%s.%N); ip -n "$NS" link del group 99; t5=$(date +%s.%N)
ip_single=$(awk -v a="$t2" -v b="$t3" 'BEGIN{print b-a}')
ip_bulk=$(awk -v a="$t4" -v b="$t5" 'BEGIN{print b-a}')

read -r _ med min _ <<<"$(hf_stats "$BENCH_TMP/prune.json")"
echo
echo "prune total: median $(fmt_s "$med") s (min $(fmt_s "$min") s); under strace $(fmt_s "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')") s"
echo "INFO RTM_DELLINK sendmsg durations (strace -T): $stats"
[[ $n_del -eq $((2 * N)) ]] || echo "WARNING: saw $n_del RTM_DELLINK requests, expected $((2 * N))"
echo "INFO prune $N+$N total (median): $(fmt_s "$med") s (no goal set)"
echo "INFO baseline ip -batch, $((2 * N)) single deletes: $(fmt_s "$ip_single") s (nodeplane/ip: $(ratio "$med" "$ip_single")x)"
echo "INFO baseline ip link del group (all $((2 * N)) in ONE request = one RTNL hold): $(fmt_s "$ip_bulk") s"
result "prune: longest single delete request" "$(awk -v m="$max" 'BEGIN{printf "%.4f", m}')" s "<" 0.5
