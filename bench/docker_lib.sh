# shellcheck shell=bash
# Shared by the docker benchmarks (source it after lib.sh): a private Debian dockerd on its own
# socket, data root and exec root under $BENCH_TMP (stopped by PID at exit, with the containerd it
# started), a busybox image imported from busybox-static, and generators of Container files.
# Needs root, docker.io and busybox-static (Debian 12), curl, jq.

DOCKER_DIR=$(mktemp -d /tmp/np-bdk.XXXXXX)  # short: unix socket paths are limited to 108 bytes
DOCKER_SOCK=$DOCKER_DIR/docker.sock
BENCH_IMAGE=nodeplane-bench/busybox:1
DOCKER=(docker -H "unix://$DOCKER_SOCK")

_docker_cleanup() {
  local pid
  if [[ -f $DOCKER_DIR/pid ]]; then
    pid=$(cat "$DOCKER_DIR/pid")
    "${DOCKER[@]}" rm -f $("${DOCKER[@]}" ps -aq 2>/dev/null) >/dev/null 2>&1 || true
    kill -TERM "$pid" 2>/dev/null || true
    # dockerd stops what still runs (sleep as PID 1 ignores SIGTERM: 10 s each, in parallel).
    for _ in $(seq 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  if [[ -f $DOCKER_DIR/exec/containerd/containerd.pid ]]; then
    kill -TERM "$(cat "$DOCKER_DIR/exec/containerd/containerd.pid")" 2>/dev/null || true
  fi
  # Shims (and their containers) left by a dockerd that had to be killed: only those of this
  # script's exec root, by PID.
  local shim
  for shim in $(pgrep -f "containerd-shim-runc-v2 .*-address ${DOCKER_DIR}/" || true); do
    pkill -KILL -P "$shim" 2>/dev/null || true
    kill -KILL "$shim" 2>/dev/null || true
  done
  grep -o " ${DOCKER_DIR}[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$DOCKER_DIR"
}
# lib.sh's EXIT trap runs _cleanup; run ours first.
trap '_rc=$?; _docker_cleanup; (exit $_rc); _cleanup' EXIT

# d_api METHOD PATH [curl args...]: one Engine API call on the private socket.
d_api() {
  local method=$1 path=$2
  shift 2
  curl -sS --unix-socket "$DOCKER_SOCK" -X "$method" "http://docker$path" "$@"
}

start_dockerd() {
  dockerd --iptables=false --bridge=none --ip-masq=false --userland-proxy=false \
    --data-root "$DOCKER_DIR/data" --exec-root "$DOCKER_DIR/exec" -H "unix://$DOCKER_SOCK" \
    --pidfile "$DOCKER_DIR/pid" >"$DOCKER_DIR/dockerd.log" 2>&1 &
  local deadline=$(($(date +%s) + 60))
  until d_api GET /_ping >/dev/null 2>&1; do
    (($(date +%s) < deadline)) || { echo "dockerd did not answer within 60 s" >&2; tail "$DOCKER_DIR/dockerd.log" >&2; exit 1; }
    sleep 0.1
  done
  local root=$DOCKER_DIR/rootfs
  mkdir -p "$root/bin"
  cp /bin/busybox "$root/bin/busybox"
  for a in sh sleep cat env echo ls true; do ln -sf busybox "$root/bin/$a"; done
  tar -C "$root" -c . | d_api POST "/images/create?fromSrc=-&repo=${BENCH_IMAGE%:*}&tag=${BENCH_IMAGE##*:}" \
    -H 'Content-Type: application/x-tar' --data-binary @- >/dev/null
  echo "dockerd $(d_api GET /version | jq -r .Version) on $DOCKER_SOCK" >&2
}

# gen_containers DIR N [PREFIX]: N sleeping busybox Containers PREFIXi (network none), 10 per file.
gen_containers() {
  local dir=$1 n=$2 prefix=${3:-npc}
  mkdir -p "$dir"
  awk -v n="$n" -v dir="$dir" -v img="$BENCH_IMAGE" -v p="$prefix" 'BEGIN {
    for (i = 0; i < n; i++) {
      f = sprintf("%s/%03d-containers.yaml", dir, int(i / 10))
      printf "---\napiVersion: nodeplane.io/v1\nkind: Container\nmetadata:\n  name: %s%d\nspec:\n  image: %s\n  command: [sleep, \"1000000\"]\n  network: none\n  pull: Never\n", p, i, img > f
    }
  }'
}

# agent_config [LINE...]: the agent config pointing the docker plugin at the private socket, plus
# the given top-level lines (e.g. "resyncSeconds: 3600").
agent_config() {
  printf 'docker:\n  socket: %s\n' "$DOCKER_SOCK" >"$BENCH_TMP/agent.yaml"
  if (($#)); then printf '%s\n' "$@" >>"$BENCH_TMP/agent.yaml"; fi
  echo "$BENCH_TMP/agent.yaml"
}

# running_count: how many containers are running on the private dockerd.
running_count() { d_api GET /containers/json | jq length; }
