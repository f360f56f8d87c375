#!/usr/bin/env bash
# Whole-command comparison on a private dockerd, every run from no containers at all:
#   nodeplane apply of N sleeping busybox Containers (network none),
#   a shell loop of `docker create` + `docker start` doing the same (one process pair each).
# Goal: nodeplane at most 0.5x the loop (parallel API calls, no process per container).
# Usage: bench/docker_converge_vs_cli.sh [N=100]   (RUNS=5 repetitions each)
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/docker_lib.sh"
N=${1:-100}
start_dockerd
CFG=$(agent_config)
gen_containers "$BENCH_TMP/desired" "$N"
{
  echo 'set -e'
  for ((i = 0; i < N; i++)); do
    printf 'docker -H unix://%s create --name npc%d --network none %s sleep 1000000 >/dev/null\n' \
      "$DOCKER_SOCK" "$i" "$BENCH_IMAGE"
    printf 'docker -H unix://%s start npc%d >/dev/null\n' "$DOCKER_SOCK" "$i"
  done
} >"$BENCH_TMP/loop.sh"
cat >"$BENCH_TMP/prep.sh" <<PREP
#!/usr/bin/env bash
ids=\$(docker -H unix://$DOCKER_SOCK ps -aq)
[ -z "\$ids" ] || docker -H unix://$DOCKER_SOCK rm -f \$ids >/dev/null
rm -rf $BENCH_TMP/state
PREP
chmod +x "$BENCH_TMP/prep.sh"

# Sanity: one apply converges (N running), the next diff is clean.
"$BENCH_TMP/prep.sh"
"$NODEPLANE" --config "$CFG" --state-dir "$BENCH_TMP/state" apply -f "$BENCH_TMP/desired" >/dev/null
check_running() {  # $1: what ran last
  local running
  running=$(running_count)
  [[ $running -eq $N ]] || { echo "$1 left $running running, expected $N" >&2; exit 1; }
}
check_running "apply"
"$NODEPLANE" --config "$CFG" --state-dir "$BENCH_TMP/state" diff -f "$BENCH_TMP/desired" >/dev/null ||
  { echo "diff after apply is not clean" >&2; exit 1; }

hyperfine --runs "$RUNS" --prepare "$BENCH_TMP/prep.sh" --style basic \
  --export-json "$BENCH_TMP/np.json" -n "nodeplane apply ($N containers)" \
  "$NODEPLANE --config $CFG --state-dir $BENCH_TMP/state apply -f $BENCH_TMP/desired"
check_running "the last timed apply"
hyperfine --runs "$RUNS" --prepare "$BENCH_TMP/prep.sh" --style basic \
  --export-json "$BENCH_TMP/cli.json" -n "docker create + start loop ($N)" "bash $BENCH_TMP/loop.sh"
check_running "the last docker CLI loop"

read -r _ np_med np_min _ <<<"$(hf_stats "$BENCH_TMP/np.json")"
read -r _ cli_med cli_min _ <<<"$(hf_stats "$BENCH_TMP/cli.json")"
echo
echo "load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "median seconds (min): nodeplane apply $(fmt_s "$np_med") ($(fmt_s "$np_min")), docker CLI loop $(fmt_s "$cli_med") ($(fmt_s "$cli_min"))"
result "converge $N containers: nodeplane / docker CLI loop" "$(ratio "$np_med" "$cli_med")" x "<=" 0.5
