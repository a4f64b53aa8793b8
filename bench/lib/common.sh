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
# built first as a host should run it (scripts/build-vmm.sh: a static PIE)
# with the packages ARGS name (`-p rvirt-test-guests` say) unless NO_BUILD
# is set.
build_vmm() {
  RVIRT=${RVIRT_VMM:-$ROOT/target/release/rvirt-vmm}
  if [ -z "${RVIRT_VMM:-}" ] && [ -z "${NO_BUILD:-}" ]; then
    echo "building rvirt-vmm (release, static PIE) and the test guests..." >&2
    "$ROOT/scripts/build-vmm.sh" --quiet
    if [ $# -gt 0 ]; then
      cargo build --quiet --release "$@" --manifest-path "$ROOT/Cargo.toml"
    fi
  fi
}

# COMMIT: the tree's short commit, with +dirty when crates/ has changes;
# STAMP: the run's UTC time, which names its results file.
bench_commit() {
  COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
  if [ -n "$(git -C "$ROOT" status --porcelain -- crates 2>/dev/null)" ]; then COMMIT="$COMMIT+dirty"; fi
  STAMP=$(date -u +%Y%m%dT%H%M%SZ)
}
