#!/usr/bin/env bash
# vfio_guest.sh [BUILD_DIR]: nodeplane against a real kernel's VFIO, inside a QEMU guest.
#
# Boots Debian's own kernel (linux-image-6.1.0-*-amd64, fetched with apt-get download, unpacked
# with dpkg-deb -x, never installed) under QEMU TCG with an emulated Intel IOMMU and
# multifunction slots that stand in for GPUs with their HDMI audio, from an initramfs holding
# static busybox, the modules it needs and nodeplane itself (binary, plugins, shared libraries).
# guest/vfio_test.sh runs nodeplane's real CLI against the guest's real sysfs and asserts what
# the kernel answers; guest/sriov_test.sh then does the same for SR-IOV on an emulated NVMe
# controller that offers virtual functions. No device of this machine is bound, unbound or reset.
#
# Exit: 0 every guest check passed, 1 a check failed (the guest log is printed), 77 this machine
# cannot boot the guest (the reason is printed: see skip()).
# Environment: NODEPLANE_E2E_TIMEOUT (seconds QEMU may run, default 240),
# NODEPLANE_E2E_KERNEL (a kernel version to use, e.g. 6.1.0-57-amd64; default: the newest one
# cached, else the one Debian's linux-image-amd64 depends on), NODEPLANE_E2E_KEEP=1 (keep the
# private work directory). Cache: BUILD_DIR/e2e-cache/kernel/<version>/ (see README.md).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$(cd "${1:-${NODEPLANE_BUILD:-$root/build}}" && pwd)
cache="$build/e2e-cache"
timeout_s=${NODEPLANE_E2E_TIMEOUT:-240}

# The line a skip prints; tests/check_no_skips.sh accepts a skip only with this line, and only
# for the reasons below (each one a thing this machine lacks, not a fault of the test).
skip() {
  echo "E2E-SKIP: the machine cannot boot the guest: $*"
  exit 77
}
fail() {
  echo "error: $*" >&2
  exit 1
}
log() { echo "== e2e: $*"; }

[ "$(id -u)" -eq 0 ] || skip "not root (the initramfs must hold root-owned files: nodeplane refuses plugins not owned by root)"
command -v qemu-system-x86_64 >/dev/null || skip "no qemu-system-x86_64 (Debian package qemu-system-x86)"
busybox=/bin/busybox
if [ ! -x "$busybox" ] || ldd "$busybox" >/dev/null 2>&1; then
  skip "no static busybox at /bin/busybox (Debian package busybox-static)"
fi
for tool in dpkg-deb apt-get apt-cache flock gzip cc; do
  command -v "$tool" >/dev/null || skip "no $tool"
done
[ -x "$build/nodeplane" ] || fail "no nodeplane binary in $build (build it first)"
[ -f "$build/plugins/libnodeplane-qemu.so" ] || fail "no qemu plugin in $build/plugins (build it first)"

mkdir -p "$cache/kernel"
work=$(mktemp -d "${TMPDIR:-/tmp}/nodeplane-e2e.XXXXXX")
qemu_pid=
cleanup() {
  if [ -n "$qemu_pid" ]; then
    kill "$qemu_pid" 2>/dev/null || true
    wait "$qemu_pid" 2>/dev/null || true
  fi
  if [ "${NODEPLANE_E2E_KEEP:-0}" = 1 ]; then echo "kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- the kernel: cached under BUILD_DIR/e2e-cache/kernel/<version>/, fetched once -----------
# A cached version is complete only when its `ready` file exists (written last).
newest_cached() {
  local d
  for d in "$cache"/kernel/*/ready; do
    # `|| continue`, not `&&`: with no cache the loop's status would be the failed test, and
    # under pipefail and set -e the caller's assignment would end the script without a word.
    [ -e "$d" ] || continue
    basename "$(dirname "$d")"
  done | sort -V | tail -1
}

fetch_kernel() {  # fetch_kernel VERSION: download, unpack, depmod into the cache
  local version=$1 pkg="linux-image-$1" dest="$cache/kernel/$1" tmp
  tmp=$(mktemp -d "$cache/kernel/.fetch.XXXXXX")
  log "fetching $pkg (apt-get download; nothing is installed)"
  if ! (cd "$tmp" && timeout 300 apt-get download -q "$pkg" >"$tmp/apt.log" 2>&1); then
    cat "$tmp/apt.log" >&2
    rm -rf "$tmp"
    # A version asked for by name that apt cannot fetch is a mistake, not the machine's limit.
    [ -z "${NODEPLANE_E2E_KERNEL:-}" ] || fail "cannot fetch $pkg (NODEPLANE_E2E_KERNEL)"
    skip "cannot fetch $pkg (offline?) and no kernel is cached under $cache/kernel"
  fi
  mkdir "$tmp/x"
  dpkg-deb -x "$tmp"/linux-image-*.deb "$tmp/x"
  [ -f "$tmp/x/boot/vmlinuz-$version" ] || fail "$pkg holds no boot/vmlinuz-$version"
  # The package ships no modules.dep: make it (busybox's depmod; kmod is not needed).
  "$busybox" depmod -b "$tmp/x" "$version"
  mkdir "$tmp/k"
  mv "$tmp/x/boot/vmlinuz-$version" "$tmp/k/vmlinuz"
  mv "$tmp/x/lib/modules/$version" "$tmp/k/modules"
  touch "$tmp/k/ready"
  rm -rf "$dest"
  mv "$tmp/k" "$dest"
  rm -rf "$tmp"
}

version=${NODEPLANE_E2E_KERNEL:-}
exec 9>"$cache/kernel/.lock"
flock 9  # two runs at once: one fetches, the other waits and uses its result
rm -rf "$cache"/kernel/.fetch.*  # left by a run killed while fetching (the lock is ours now)
[ -n "$version" ] || version=$(newest_cached)
if [ -z "$version" ]; then
  version=$(apt-cache depends linux-image-amd64 2>/dev/null |
    sed -n 's/^ *Depends: linux-image-\(6\.1\.0-[0-9]*-amd64\)$/\1/p' | head -1)
  [ -n "$version" ] || skip "apt knows no linux-image-amd64 6.1 package (no Debian 12 sources?) and no kernel is cached under $cache/kernel"
fi
[ -e "$cache/kernel/$version/ready" ] || fetch_kernel "$version"
flock -u 9
exec 9>&-
kdir="$cache/kernel/$version"
log "kernel $version (cached in $kdir)"

# ---- the initramfs: busybox, modules, nodeplane with its libraries, the guest scripts -------
stage="$work/root"
mkdir -p "$stage"/{bin,sbin,dev,proc,sys,run,tmp,etc,e2e,usr/bin,usr/lib/nodeplane/plugins}
cp "$busybox" "$stage/bin/busybox"

modules=(vfio vfio_iommu_type1 vfio-pci vfio-pci-core irqbypass bochs snd-hda-intel
  snd-hda-codec-generic nvme)
mdir="$stage/lib/modules/$version"
mkdir -p "$mdir"
declare -A copied=()
add_module() {  # add_module NAME: the .ko and everything modules.dep says it needs
  local pattern line file dep
  pattern=$(printf '%s' "$1" | sed 's/[-_]/[-_]/g')
  line=$(grep -E "(^|/)${pattern}\.ko(\.[a-z]+)?:" "$kdir/modules/modules.dep" | head -1) ||
    fail "module $1 is not in $version's modules.dep"
  file=${line%%:*}
  for dep in $file ${line#*:}; do
    [ -n "${copied[$dep]:-}" ] && continue
    copied[$dep]=1
    mkdir -p "$mdir/$(dirname "$dep")"
    cp "$kdir/modules/$dep" "$mdir/$dep"
  done
}
for m in "${modules[@]}"; do add_module "$m"; done
cp "$kdir/modules/modules.builtin" "$kdir/modules/modules.order" "$mdir/"
"$busybox" depmod -b "$stage" "$version"

# nodeplane, its plugins, GNU date (busybox's has no %N: the guest measures in nanoseconds) and
# every shared library they load, with the dynamic loader, at the paths ldd names.
cp "$build/nodeplane" "$stage/usr/bin/nodeplane"
cp "$build"/plugins/*.so "$stage/usr/lib/nodeplane/plugins/"
# A plugin's heavy half, loaded when first needed (HostServices::loadRuntime), where the build
# has any.
runtimes=()
if compgen -G "$build/plugins/runtime/*.so" >/dev/null; then
  mkdir -p "$stage/usr/lib/nodeplane/plugins/runtime"
  cp "$build"/plugins/runtime/*.so "$stage/usr/lib/nodeplane/plugins/runtime/"
  runtimes=("$build"/plugins/runtime/*.so)
fi
cp /bin/date "$stage/usr/bin/gnudate"
find "$stage/usr/lib/nodeplane/plugins" -name '*.so' -exec strip --strip-debug {} + 2>/dev/null || true
strip --strip-debug "$stage/usr/bin/nodeplane" 2>/dev/null || true
chmod 0755 "$stage/usr/bin/nodeplane"
find "$stage/usr/lib/nodeplane/plugins" -name '*.so' -exec chmod 0755 {} +
for bin in "$build/nodeplane" "$build"/plugins/*.so "${runtimes[@]}" /bin/date; do
  ldd "$bin" | awk '/=> \// { print $3 } /^\t\/[^ ]+ \(/ { print $1 }'
done | sort -u | while read -r lib; do
  [ -e "$stage$lib" ] && continue
  mkdir -p "$stage$(dirname "$lib")"
  cp -L "$lib" "$stage$lib"
done
if ldd "$build"/plugins/*.so "${runtimes[@]}" "$build/nodeplane" | grep -q 'not found'; then
  fail "a library of nodeplane or a plugin is not found: $(ldd "$build"/plugins/*.so "${runtimes[@]}" | grep 'not found' | head -3)"
fi

cp "$here/guest/init" "$stage/init"
cp "$here/guest/vfio_test.sh" "$stage/e2e/vfio_test.sh"
cp "$here/guest/sriov_test.sh" "$stage/e2e/sriov_test.sh"
chmod 0755 "$stage/init" "$stage/e2e/vfio_test.sh" "$stage/e2e/sriov_test.sh"
# The guest's errno helper: one write(), the kernel's answer by name (busybox shows none).
cc -static -Os -o "$stage/usr/bin/write_errno" "$here/guest/write_errno.c" ||
  fail "cannot build the guest's errno helper (cc -static: libc6-dev's libc.a)"
# A token only this run knows: the marker line of another run (or the echo of the kernel command
# line) cannot pass for this run's result.
token=$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')
(cd "$stage" && find . | "$busybox" cpio -o -H newc 2>/dev/null) | gzip -1 >"$work/initramfs.gz"
log "initramfs $(du -h "$work/initramfs.gz" | cut -f1)"

# ---- boot -------------------------------------------------------------------------------------
# Behind root port 00:06.0 (bus 01): bochs-display (1234:1111, bochs-drm) + intel-hda (8086:2668,
# snd_hda_intel): the "GPU" with its HDMI audio that vfio.allow admits. Slot 00:05 on the root
# bus: VGA (the boot display, fbcon on it) + intel-hda, a second "GPU" outside the allowlist.
# Each pair is one IOMMU group of exactly its two functions. Behind root port 00:08.0 (bus 02):
# an NVMe controller (1b36:0010) offering 4 SR-IOV VFs (it needs an nvme-subsys,
# sriov_vq_flexible >= 2 * sriov_max_vfs, sriov_max_vfs <= 127): guest/sriov_test.sh.
serial="$work/serial.log"
args=(-accel tcg -machine q35,kernel-irqchip=split -m 1024 -smp 1 -nodefaults
  -vga none -display none -no-reboot -monitor none -serial "file:$serial"
  -device intel-iommu,intremap=on,caching-mode=on -audiodev none,id=snd0
  -device VGA,addr=0x5.0,multifunction=on
  -device intel-hda,id=hdaA,addr=0x5.1 -device hda-duplex,bus=hdaA.0,audiodev=snd0
  -device pcie-root-port,id=rpB,chassis=1,slot=1,addr=0x6
  -device bochs-display,bus=rpB,addr=0x0.0,multifunction=on
  -device intel-hda,id=hdaB,bus=rpB,addr=0x0.1 -device hda-duplex,bus=hdaB.0,audiodev=snd0
  -device pcie-root-port,id=rpN,chassis=3,slot=3,addr=0x8
  -device nvme-subsys,id=nvmesubsys0,nqn=e2e
  -device nvme,id=nvme0,serial=e2e0,bus=rpN,subsys=nvmesubsys0,sriov_max_vfs=4,sriov_vq_flexible=8,sriov_vi_flexible=4,max_ioqpairs=10,msix_qsize=8
  -kernel "$kdir/vmlinuz" -initrd "$work/initramfs.gz"
  -append "console=ttyS0 intel_iommu=on no_timer_check quiet panic=-1 e2e.token=$token")
log "booting under TCG (up to ${timeout_s}s)"
start=$(date +%s)
# QEMU exits when the guest powers off (or panics: panic=-1 with -no-reboot); timeout(1) bounds
# it (TERM, then KILL 5 s later) and cleanup() ends it by PID on a signal.
timeout -k 5 "$timeout_s" qemu-system-x86_64 "${args[@]}" </dev/null >"$work/qemu.log" 2>&1 &
qemu_pid=$!
qemu_rc=0
wait "$qemu_pid" || qemu_rc=$?
qemu_pid=
elapsed=$(($(date +%s) - start))

marker=$(grep -a "^NODEPLANE-E2E $token rc=" "$serial" | tail -1 | tr -d '\r' || true)
if [ -z "$marker" ]; then
  echo "---- guest serial log ($serial) ----"
  cat -v "$serial"
  echo "---- qemu ----"
  cat "$work/qemu.log"
  if [ "$qemu_rc" -eq 124 ] || [ "$qemu_rc" -eq 137 ]; then
    fail "the guest did not finish within ${timeout_s}s (QEMU killed)"
  fi
  fail "the guest printed no result (QEMU exit $qemu_rc after ${elapsed}s)"
fi
rc=${marker##*rc=}
if [ "$rc" != 0 ]; then
  echo "---- guest serial log ----"
  cat -v "$serial"
  fail "guest checks failed (rc=$rc) after ${elapsed}s"
fi
grep -a -E '^(ok|bench) ' "$serial" | tr -d '\r'
log "passed in ${elapsed}s (kernel $version)"
