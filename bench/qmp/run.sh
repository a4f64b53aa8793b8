#!/bin/bash
# rvirt-vmm vs QEMU microvm: QMP monitor latency (issue 4, "Benchmark").
# Builds rvirt-vmm (release) and the `counter` test guest, then bench.py runs
# both VMMs on that guest, alternating, and prints medians, rvirt/QEMU ratios
# and the target (query-status round trip <= 0.5 x QEMU's).
#
# Needs: /dev/kvm, qemu-system-x86_64 (Debian qemu-system-x86), python3
# (standard library only), gcc (the test guests need it too).
# Usage: bench/qmp/run.sh
#   ROUNDS=10000        query-status round trips per VMM (VMs paused, scored)
#   BLOCK=500           round trips per block; blocks alternate between VMMs
#   WARMUP_RT=1000      untimed round trips per VMM first
#   RUNNING_ROUNDS=2000 round trips per VMM with the guest running (unscored; 0: skip)
#   RUNS=10             cont -> first serial byte runs per VMM
#   WARMUP=1            untimed cont rounds first
#   QEMU=qemu-system-x86_64
#   RVIRT_VMM=PATH      benchmark this rvirt-vmm binary instead of building one
#   NO_BUILD=1          use the existing target/release/rvirt-vmm as it is
#   FLOOR=0             skip the floor (floor.c, built with gcc into target/bench-qmp/)
# Results also go to bench/results/qmp-<UTC timestamp>.json (git-ignored).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/bench/lib/common.sh"

need_qemu
need_kvm
command -v python3 >/dev/null || { echo "bench/qmp: python3 is needed" >&2; exit 1; }

build_vmm
[ -x "$RVIRT" ] || { echo "bench/qmp: $RVIRT is not an executable" >&2; exit 1; }
GUEST=$(cargo run --quiet --release -p rvirt-test-guests --manifest-path "$ROOT/Cargo.toml" -- counter)

FLOOR_ARGS=()
if [ "${FLOOR:-1}" != 0 ]; then
  mkdir -p "$ROOT/target/bench-qmp"
  gcc -O2 -Wall -o "$ROOT/target/bench-qmp/floor" "$ROOT/bench/qmp/floor.c"
  FLOOR_ARGS=(--floor "$ROOT/target/bench-qmp/floor")
fi

bench_commit
if [ -n "${RVIRT_VMM:-}" ]; then COMMIT="binary $RVIRT_VMM (tree at $COMMIT)"; fi
echo "rvirt-vmm $COMMIT vs $("$QEMU_BIN" --version | head -1)" >&2
exec python3 "$ROOT/bench/qmp/bench.py" \
  --rvirt "$RVIRT" --qemu "$QEMU_BIN" --guest "$GUEST" "${FLOOR_ARGS[@]}" \
  --rounds "${ROUNDS:-10000}" --block "${BLOCK:-500}" --warmup-rt "${WARMUP_RT:-1000}" \
  --running-rounds "${RUNNING_ROUNDS:-2000}" \
  --runs "${RUNS:-10}" --warmup "${WARMUP:-1}" --commit "$COMMIT" \
  --json "$ROOT/bench/results/qmp-$STAMP.json"
