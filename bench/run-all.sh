#!/usr/bin/env bash
# Runs every nodeplane benchmark and prints a summary (one line per goal: PASS / MISS).
#   bench/run-all.sh            uses build-bench/ (set NODEPLANE_BUILD_DIR to use another)
#   BUILD=1 bench/run-all.sh    configures and builds build-bench/ first (Release)
#   RUNS=5                      hyperfine repetitions of the whole-command comparisons
#   N=1000                      Bridges (and as many Vxlans) in the end-to-end scripts
#   GBENCH_ARGS="..."           extra Google Benchmark flags (e.g. --benchmark_filter=Cold)
# Takes ~20 min at the defaults on 2 cores: deleting 2000 links costs ~55 s each time (see README).
# Needs root (network namespaces), hyperfine, jq, strace; the docker steps also docker.io,
# busybox-static and curl.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)
BUILD_DIR=${NODEPLANE_BUILD_DIR:-$REPO_DIR/build-bench}
export NODEPLANE_BUILD_DIR=$BUILD_DIR

if [[ ${BUILD:-0} == 1 ]]; then
  cmake -S "$REPO_DIR" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release
  cmake --build "$BUILD_DIR" -j2 --target nodeplane nodeplane-net nodeplane-docker \
    nodeplane-docker-runtime nodeplane-qemu nodeplane_bench
fi

RESULTS=$(mktemp /tmp/nodeplane-bench-results.XXXXXX)
JSON=$(mktemp /tmp/nodeplane-bench-gbench.XXXXXX.json)
trap 'rm -f "$RESULTS" "$JSON"' EXIT
export BENCH_RESULTS=$RESULTS

echo "== machine: $(uname -r), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"

echo "== 1. Google Benchmark: load + validate + diff + plan of 10 000 resources"
# shellcheck disable=SC2086
"$BUILD_DIR/bench/nodeplane_bench" --benchmark_repetitions="${GBENCH_REPS:-3}" \
  --benchmark_report_aggregates_only=true --benchmark_out="$JSON" --benchmark_out_format=json \
  ${GBENCH_ARGS:-}
median_ms() {  # median real_time of a benchmark in ms (the run itself when not repeated)
  jq -r --arg n "$1" '[.benchmarks[] | select(.name == $n + "_median" or
    (.name == $n and .run_type == "iteration"))] | first | .real_time // empty' "$JSON"
}
# shellcheck source=/dev/null
source <(sed -n '/^result()/,/^}/p' "$BENCH_DIR/lib.sh")
result "cold load+prepare+plan 10k (median)" "$(median_ms BM_ColdLoadPlan/min_time:3.000)" ms "<" 600
result "daemon no-op pass 10k (median)" "$(median_ms BM_DaemonNoopPass/min_time:3.000)" ms "<" 50
mbps=$(jq -r '[.benchmarks[] | select(.name == "BM_ParseYamlThroughput/5000_median" or
  .name == "BM_ParseYamlThroughput/5000")] | first | .bytes_per_second / 1048576' "$JSON")
echo "INFO parseYaml throughput (10k docs, median): $(printf '%.1f' "$mbps") MiB/s"

N=${N:-1000}
step() {  # a failing script is reported and the others still run
  local title=$1
  shift
  echo "== $title"
  "$@" || echo "FAILED (exit $?): $*" | tee -a "$RESULTS"
}
step "2. nodeplane apply vs ip -batch" "$BENCH_DIR/apply_vs_ip_batch.sh" "$N"
step "3. no-op diff vs ip -d -j link show" "$BENCH_DIR/noop_diff_vs_ip_show.sh" "$N"
step "4. prune" "$BENCH_DIR/prune.sh" "$N"
step "5. idle daemon" "$BENCH_DIR/idle_daemon.sh" "$N" 10
# Docker containers (issue 7): a private dockerd each (docker.io, busybox-static, curl).
step "9. docker: apply vs docker create+start loop" "$BENCH_DIR/docker_converge_vs_cli.sh" 100
step "9. docker: no-op diff vs docker ps" "$BENCH_DIR/docker_noop_diff_vs_ps.sh" 200
step "9. docker: drift repair through the daemon" "$BENCH_DIR/docker_drift.sh" 10 20
step "9. docker: idle daemon, net + containers" "$BENCH_DIR/docker_idle_daemon.sh" "$N" 100 10
# VMs (issue 8): a private systemd --user manager each, QEMU under TCG (qemu-system-x86,
# qemu-utils, genisoimage, python3).
step "11. VM: apply vs the same QEMU argv" "$BENCH_DIR/vm_apply_vs_qemu.sh" 7
step "11. VM: idle daemon, 20 VMs" "$BENCH_DIR/vm_idle_daemon.sh" 20 10

echo
echo "== summary ($(uname -r), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
cat "$RESULTS"
