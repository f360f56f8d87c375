# Shared by scripts/demo, scripts/test and bench/: install what is missing, build.
# Debian 12 packages only; installs nothing that is already there.

NODEPLANE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
NODEPLANE_BUILD=${NODEPLANE_BUILD:-$NODEPLANE_ROOT/build}

nodeplane_packages=(
  g++ cmake ninja-build pkg-config
  libyaml-cpp-dev libboost-dev libnl-3-dev libnl-route-3-dev nlohmann-json3-dev
  libsdbus-c++-dev libsystemd-dev libcli11-dev libspdlog-dev libfmt-dev libssl-dev
  libgtest-dev libgmock-dev libbenchmark-dev libcurl4-openssl-dev
  iproute2 dbus systemd docker.io busybox-static
  qemu-system-x86 qemu-utils ovmf genisoimage nftables libnftables-dev
  libfuse3-dev fuse3
)

install_deps() {
  local missing=()
  for p in "${nodeplane_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing: ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then
      echo "error: missing packages and not root; run as root or: apt-get install ${missing[*]}" >&2
      return 1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
}

# build [TARGET...]: configures once, builds the given targets (default: everything).
# -O2 without debug info unless NODEPLANE_BUILD_TYPE says otherwise (RelWithDebInfo for a tree to
# debug): debug info is a third of the compile time (38 s against 25 s for engine.cpp), and CI
# builds from scratch on every run.
build() {
  if [ ! -f "$NODEPLANE_BUILD/CMakeCache.txt" ]; then
    local type=(-DCMAKE_BUILD_TYPE=Release "-DCMAKE_CXX_FLAGS_RELEASE=-O2 -DNDEBUG")
    [ -n "${NODEPLANE_BUILD_TYPE:-}" ] && type=(-DCMAKE_BUILD_TYPE="$NODEPLANE_BUILD_TYPE")
    cmake -S "$NODEPLANE_ROOT" -B "$NODEPLANE_BUILD" -G Ninja "${type[@]}" >/dev/null
  elif [ -n "${NODEPLANE_BUILD_TYPE:-}" ] &&
    ! grep -qx "CMAKE_BUILD_TYPE:STRING=$NODEPLANE_BUILD_TYPE" "$NODEPLANE_BUILD/CMakeCache.txt"; then
    echo "warning: $NODEPLANE_BUILD is configured already; NODEPLANE_BUILD_TYPE=$NODEPLANE_BUILD_TYPE" \
      "applies to a new build directory (remove it, or set NODEPLANE_BUILD)" >&2
  fi
  local targets=()
  for t in "$@"; do targets+=(--target "$t"); done
  cmake --build "$NODEPLANE_BUILD" -j"$(nproc)" "${targets[@]}"
}
