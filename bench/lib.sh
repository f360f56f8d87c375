# shellcheck shell=bash disable=SC2016
# Shared helpers for the end-to-end benchmark scripts. Source it; do not run it.
# Everything a script creates (network namespaces, temp dirs, processes) is registered here and
# removed by the EXIT trap, by name or by PID.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)
BUILD_DIR=${NODEPLANE_BUILD_DIR:-$REPO_DIR/build-bench}
NODEPLANE=${NODEPLANE:-$BUILD_DIR/nodeplane}
RUNS=${RUNS:-5}

[[ $(id -u) -eq 0 ]] || { echo "needs root (network namespaces)" >&2; exit 1; }
[[ -x $NODEPLANE ]] || { echo "no nodeplane binary at $NODEPLANE (build first)" >&2; exit 1; }

_NAMESPACES=()
_PIDS=()
BENCH_TMP=$(mktemp -d /tmp/nodeplane-bench.XXXXXX)

_cleanup() {
  local rc=$?
  local pid ns
  for pid in "${_PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  for ns in "${_NAMESPACES[@]}"; do ns_destroy "$ns"; done
  rm -rf "$BENCH_TMP"
  exit "$rc"
}
trap _cleanup EXIT
trap 'exit 130' INT TERM

track_pid() { _PIDS+=("$1"); }

# A network namespace name unique to this script run; ns_fresh (re)creates it empty.
ns_name() { echo "nodeplane-bench-$$-$1"; }

# Deletes every link but lo, then the namespace, before returning, so the kernel's teardown work
# does not spill into the next timed run. One request per link would cost ~27 ms each here (an RCU
# grace period per unregister), so the links are moved to group 99 and deleted in one bulk request
# (`ip link del group 0` is refused with EPERM). Still ~18 s for 2000 links on this machine.
ns_clear_cmd() {  # the shell commands doing that for namespace $1
  cat <<CMD
ip -n $1 -o link show | awk -F': ' '\$2 != "lo" { sub(/@.*/, "", \$2); print "link set dev " \$2 " group 99" }' | ip -n $1 -force -batch - >/dev/null 2>&1 || true
ip -n $1 link del group 99 2>/dev/null || true
CMD
}
ns_destroy() {
  local ns=$1
  ip netns list | grep -qw "^$ns" || return 0
  eval "$(ns_clear_cmd "$ns")"
  ip netns del "$ns" 2>/dev/null || true
}

ns_fresh() {
  local ns=$1
  ns_destroy "$ns"
  ip netns add "$ns"
  local known=0 n
  for n in "${_NAMESPACES[@]}"; do [[ $n == "$ns" ]] && known=1; done
  ((known)) || _NAMESPACES+=("$ns")
}

# make_prep FILE NS STATE_DIR [COMMAND...]: writes a hyperfine --prepare script that recreates NS
# empty (old links deleted first, as in ns_destroy), empties STATE_DIR, then runs COMMAND (if any)
# inside NS.
make_prep() {
  local file=$1 ns=$2 state=$3
  shift 3
  {
    echo '#!/usr/bin/env bash'
    echo 'set -e'
    echo "ns=$ns"
    echo 'if ip netns list | grep -qw "^$ns"; then'
    ns_clear_cmd "$ns"
    echo '  ip netns del $ns'
    echo 'fi'
    echo 'ip netns add $ns'
    echo "rm -rf $state"
    if (($#)); then printf 'ip netns exec $ns'; printf ' %q' "$@"; echo; fi
  } >"$file"
  chmod +x "$file"
}

# gen_desired DIR N [FILES]: N Bridges npbrI (mtu 1450, up) and N Vxlans npvxI (vni 1000+I,
# local 10.255.0.1, remote per I, dstPort 4789, mtu 1450, bridge npbrI, up) in FILES files.
# MASQUERADE=1: every Bridge also gets an address 10.X.Y.1/24 and `masquerade: true` (NAT rules).
gen_desired() {
  local dir=$1 n=$2 files=${3:-10}
  mkdir -p "$dir"
  awk -v n="$n" -v files="$files" -v dir="$dir" -v masq="${MASQUERADE:-0}" 'BEGIN {
    per = int((n + files - 1) / files)
    for (i = 0; i < n; i++) {
      f = sprintf("%s/%03d-links.yaml", dir, int(i / per))
      printf "---\napiVersion: nodeplane.io/v1\nkind: Bridge\nmetadata:\n  name: npbr%d\nspec:\n  mtu: 1450\n  up: true\n", i > f
      if (masq) printf "  addresses: [10.%d.%d.1/24]\n  masquerade: true\n", 100 + int(i / 256), i % 256 > f
      printf "---\napiVersion: nodeplane.io/v1\nkind: Vxlan\nmetadata:\n  name: npvx%d\nspec:\n  vni: %d\n  local: 10.255.0.1\n  remote: 10.255.%d.%d\n  dstPort: 4789\n  mtu: 1450\n  bridge: npbr%d\n  up: true\n", i, 1000 + i, 1 + int(i / 250), 1 + i % 250, i > f
    }
  }'
}

# gen_ip_batch FILE N WITH_ADDRGENMODE(0|1): the same links with `ip -batch`.
gen_ip_batch() {
  local file=$1 n=$2 agm=$3
  awk -v n="$n" -v agm="$agm" 'BEGIN {
    for (i = 0; i < n; i++) {
      printf "link add npbr%d mtu 1450 type bridge\n", i
      printf "link set dev npbr%d up\n", i
      printf "link add npvx%d mtu 1450 master npbr%d type vxlan id %d local 10.255.0.1 remote 10.255.%d.%d dstport 4789\n", i, i, 1000 + i, 1 + int(i / 250), 1 + i % 250
      if (agm) printf "link set dev npvx%d addrgenmode none\n", i
      printf "link set dev npvx%d up\n", i
    }
  }' >"$file"
}

# hyperfine_json FILE -> "mean median min max stddev" in seconds of the first result.
hf_stats() {
  jq -r '.results[0] | "\(.mean) \(.median) \(.min) \(.max) \(.stddev // 0)"' "$1"
}

fmt_s() { awk -v v="$1" 'BEGIN { printf "%.3f", v }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# result NAME VALUE UNIT GOAL_OP GOAL: prints a summary line and appends it to $BENCH_RESULTS.
result() {
  local name=$1 value=$2 unit=$3 op=$4 goal=$5 verdict
  [[ -n $value ]] || value="n/a"
  verdict=$(awk -v v="$value" -v g="$goal" -v op="$op" 'BEGIN {
    if (v !~ /^[0-9.]+$/) { print "NO DATA"; exit }
    ok = (op == "<") ? (v < g) : (op == "<=") ? (v <= g) : (v == g); print ok ? "PASS" : "MISS" }')
  local line
  line=$(printf "%-44s %12s %-6s goal %s %s  %s" "$name" "$value" "$unit" "$op" "$goal" "$verdict")
  echo "RESULT $line"
  [[ -n ${BENCH_RESULTS:-} ]] && echo "$line" >>"$BENCH_RESULTS"
  return 0
}

echo "# $(basename "$0"): $(date -u +%FT%TZ) on $(uname -r), $(nproc) cores; nodeplane=$NODEPLANE" >&2
