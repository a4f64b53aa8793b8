# Sourced by the benchmarks' run.sh once ROOT is set: the checks, the build
# and the run's names that each of them would otherwise write again. BENCH
# is "bench/NAME", for messages.
. "$ROOT/bench/lib/need.sh"
BENCH=bench/$(basename "$(dirname "$0")")

# QEMU_BIN: the path of $QEMU (qemu-system-x86_64 unless set), or an exit
# that says how to install it.
need_qemu() {
  QEMU=${QEMU:-qemu-system-x86_64}
  QEMU_BIN=$(command -v "$QEMU" || true)
  if [ -z "$QEMU_BIN" ]; then
    echo "$BENCH: $QEMU not found; install it with:" >&2
    echo "  apt-get install -y --no-install-recommends qemu-system-x86" >&2
    exit 1
  fi
}

# RVIRT: the rvirt-vmm to measure: $RVIRT_VMM, else target/release's,
# built first as a host should run it (scripts/build-vmm.sh: a static PIE),
# then the other packages ARGS name (`-p rvirtd -p rvirt-test-guests`
# say); nothing is built when NO_BUILD is set. Every benchmark builds
# through here, so each measures the same binary.
build_vmm() {
  RVIRT=${RVIRT_VMM:-$ROOT/target/release/rvirt-vmm}
  [ -z "${NO_BUILD:-}" ] || return 0
  if [ -z "${RVIRT_VMM:-}" ]; then
    echo "$BENCH: building rvirt-vmm (release, static PIE)..." >&2
    "$ROOT/scripts/build-vmm.sh" --quiet
  fi
  if [ $# -gt 0 ]; then
    echo "$BENCH: building $* (release)..." >&2
    cargo build --quiet --release "$@" --manifest-path "$ROOT/Cargo.toml"
  fi
}

# COMMIT: the tree's short commit, with +dirty when crates/ has changes;
# STAMP: the run's UTC time, which names its results file.
bench_commit() {
  COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
  if [ -n "$(git -C "$ROOT" status --porcelain -- crates 2>/dev/null)" ]; then COMMIT="$COMMIT+dirty"; fi
  STAMP=$(date -u +%Y%m%dT%H%M%SZ)
}
