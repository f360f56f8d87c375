# shellcheck shell=bash
# VM bench helpers (sourced after lib.sh): a private `systemd --user` manager on a private bus,
# started and stopped by PID (the shell version of tests/support/systemd_user.cpp), a tiny blank
# qcow2 base image, and an agent config that points the qemu plugin at both (QEMU under TCG).
# Needs root, systemd, dbus-user-session, qemu-system-x86, qemu-utils, genisoimage, python3.

QEMU_BINARY=${QEMU_BINARY:-/usr/bin/qemu-system-x86_64}
QEMU_IMG=${QEMU_IMG:-/usr/bin/qemu-img}
PLUGIN_DIR=${PLUGIN_DIR:-$BUILD_DIR/plugins}
for _t in "$QEMU_BINARY" "$QEMU_IMG" /usr/bin/genisoimage /usr/lib/systemd/systemd python3; do
  command -v "$_t" >/dev/null || { echo "needs $_t" >&2; exit 1; }
done
[[ -f $PLUGIN_DIR/libnodeplane-qemu.so ]] || { echo "no qemu plugin in $PLUGIN_DIR (build nodeplane-qemu)" >&2; exit 1; }

VM_ROOT=$BENCH_TMP/vm
VM_RT=$VM_ROOT/runtime
VM_BUS="unix:path=$VM_RT/bus"
_VM_CGROUPS=()
_SYSTEMD_PID=

# The manager's own cgroup beside ours in the hierarchies systemd tracks processes in (named
# "systemd" and the unified one): it takes the cgroup it starts in as its root.
_vm_make_cgroups() {
  local line mount path dir
  while IFS= read -r line; do
    case $line in
      0::*) mount=/sys/fs/cgroup/unified; [[ -f $mount/cgroup.procs ]] || mount=/sys/fs/cgroup ;;
      *:name=systemd:*) mount=/sys/fs/cgroup/systemd ;;
      *) continue ;;
    esac
    path=${line#*:*:}
    dir=$mount${path%/}/nodeplane-bench-$$
    [[ -f $mount/cgroup.procs ]] && mkdir "$dir" 2>/dev/null && _VM_CGROUPS+=("$dir")
  done </proc/self/cgroup
}

_vm_rmdir_tree() {  # a cgroup tree, bottom-up
  local d
  for d in "$1"/*/; do [[ -d $d ]] && _vm_rmdir_tree "${d%/}"; done
  rmdir "$1" 2>/dev/null || true
}

_vm_descendants() {  # every PID below $1, from /proc
  local c
  for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
    echo "$c"
    _vm_descendants "$c"
  done
}

usercmd() {  # systemctl/busctl against the private manager
  XDG_RUNTIME_DIR=$VM_RT DBUS_SESSION_BUS_ADDRESS=$VM_BUS "$@"
}

# Starts `systemd --user` in a private /run (the host was not booted with systemd) and waits up to
# 60 s until org.freedesktop.systemd1 answers on its bus.
start_user_manager() {
  mkdir -p "$VM_RT"
  chmod 700 "$VM_RT"
  _vm_make_cgroups
  (
    for cg in "${_VM_CGROUPS[@]}"; do echo "$BASHPID" >"$cg/cgroup.procs"; done
    export XDG_RUNTIME_DIR=$VM_RT DBUS_SESSION_BUS_ADDRESS=$VM_BUS SYSTEMD_LOG_TARGET=console
    unset NOTIFY_SOCKET WATCHDOG_PID WATCHDOG_USEC
    if [[ -e /run/systemd/system ]]; then
      exec /usr/lib/systemd/systemd --user
    fi
    exec unshare --mount --propagation private -- /bin/sh -c \
      'mount -t tmpfs -o mode=0755 tmpfs /run && mkdir -p /run/systemd/system &&
       exec /usr/lib/systemd/systemd --user'
  ) </dev/null >"$VM_ROOT/systemd.log" 2>&1 &
  _SYSTEMD_PID=$!
  local deadline=$(($(date +%s) + 60))
  until usercmd busctl --user call org.freedesktop.systemd1 /org/freedesktop/systemd1 \
    org.freedesktop.DBus.Properties Get ss org.freedesktop.systemd1.Manager Version >/dev/null 2>&1; do
    kill -0 "$_SYSTEMD_PID" 2>/dev/null || { echo "systemd --user exited:" >&2; tail "$VM_ROOT/systemd.log" >&2; exit 1; }
    (($(date +%s) < deadline)) || { echo "systemd --user did not answer in 60 s" >&2; exit 1; }
    sleep 0.1
  done
  echo "systemd --user pid $_SYSTEMD_PID on $VM_BUS ($(usercmd systemctl --user --version | head -1))" >&2
}

# Stops the manager by PID (it stops its units), then whatever it left behind, by PID.
stop_user_manager() {
  [[ -n $_SYSTEMD_PID ]] || return 0
  local below p i
  below=$(_vm_descendants "$_SYSTEMD_PID")
  kill -TERM "$_SYSTEMD_PID" 2>/dev/null || true
  for ((i = 0; i < 300; i++)); do kill -0 "$_SYSTEMD_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$_SYSTEMD_PID" 2>/dev/null || true
  wait "$_SYSTEMD_PID" 2>/dev/null || true
  for p in $below; do kill -KILL "$p" 2>/dev/null || true; done
  for p in "${_VM_CGROUPS[@]}"; do _vm_rmdir_tree "$p"; done
  _SYSTEMD_PID=
}

# The agent config and the 16 MiB blank base image `blank`; $1: extra top-level config lines.
vm_setup() {
  mkdir -p "$VM_ROOT"/{images,instances,run,state,desired}
  "$QEMU_IMG" create -q -f qcow2 "$VM_ROOT/images/blank.qcow2" 16M
  cat >"$VM_ROOT/agent.yaml" <<EOF
apiVersion: nodeplane.io/v1
kind: AgentConfig
resyncSeconds: 3600
debounceMilliseconds: 100
lockTimeoutSeconds: 10
runDir: $VM_ROOT/run
systemd: {bus: "$VM_BUS"}
qemu:
  binary: $QEMU_BINARY
  imgBinary: $QEMU_IMG
  imagesDir: $VM_ROOT/images
  instancesDir: $VM_ROOT/instances
  accel: tcg
${1:-}
EOF
}

# write_vm DIR NAME STATE: the tiny VM of the integration tests (1 vCPU, 128 MiB, the blank base,
# SeaBIOS, TCG) with cloud-init (so the seed ISO is part of it), shutdownTimeoutSec 1.
write_vm() {
  cat >"$1/$2.yaml" <<EOF
apiVersion: nodeplane.io/v1
kind: VirtualMachine
metadata: {name: $2}
spec:
  vcpus: 1
  memoryMiB: 128
  disk: {base: blank}
  firmware: bios
  accel: tcg
  state: $3
  shutdownTimeoutSec: 1
  cloudInit: {hostname: $2, sshAuthorizedKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBench bench@nodeplane"]}
EOF
}

np() {  # the CLI with the bench's agent config, state dir and plugin dir
  "$NODEPLANE" --config "$VM_ROOT/agent.yaml" --state-dir "$VM_ROOT/state" --plugin-dir "$PLUGIN_DIR" "$@"
}
