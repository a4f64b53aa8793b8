#!/bin/bash
# rvirt-vmm vs QEMU microvm on the same PVH guests (issue 2, "Benchmark").
# Builds rvirt-vmm (release) and the test guests, then bench.py runs both
# VMMs alternately and prints medians, rvirt/QEMU ratios and the targets.
#
# Needs: /dev/kvm, qemu-system-x86_64 (Debian qemu-system-x86), GNU time
# (Debian time), python3.
# Usage: bench/vmm/run.sh
#   RUNS=10     runs per VMM and case (cases: oneline -m 128 timed; oneline
#               -m 128 and -m 1024 under GNU time for peak RSS; exits -m 128)
#   WARMUP=1    untimed rounds first (page cache, first-exec costs)
#   QEMU=qemu-system-x86_64
#   RVIRT_VMM=PATH  benchmark this rvirt-vmm binary instead of building one
#   NO_BUILD=1  use the existing target/release/rvirt-vmm and guests as they are
# Results also go to bench/results/vmm-<UTC timestamp>.json (git-ignored).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/bench/lib/common.sh"
RUNS=${RUNS:-10}
WARMUP=${WARMUP:-1}

need_qemu
need_kvm
TIME_BIN=/usr/bin/time   # GNU time, for peak RSS (see bench.py)
if ! "$TIME_BIN" -f %M true >/dev/null 2>&1; then
  echo "bench/vmm: GNU time ($TIME_BIN) not found; install it with:" >&2
  echo "  apt-get install -y --no-install-recommends time" >&2
  exit 1
fi
command -v python3 >/dev/null || { echo "bench/vmm: python3 is needed" >&2; exit 1; }

build_vmm
[ -x "$RVIRT" ] || { echo "bench/vmm: $RVIRT is not an executable" >&2; exit 1; }
ONELINE=$(cargo run --quiet -p rvirt-test-guests --manifest-path "$ROOT/Cargo.toml" -- oneline)
EXITS=$(cargo run --quiet -p rvirt-test-guests --manifest-path "$ROOT/Cargo.toml" -- exits)

bench_commit
if [ -n "${RVIRT_VMM:-}" ]; then COMMIT="binary $RVIRT_VMM (tree at $COMMIT)"; fi
echo "rvirt-vmm $COMMIT vs $("$QEMU_BIN" --version | head -1); $RUNS runs each, alternating" >&2
exec python3 "$ROOT/bench/vmm/bench.py" \
  --rvirt "$RVIRT" --qemu "$QEMU_BIN" --time "$TIME_BIN" \
  --oneline "$ONELINE" --exits "$EXITS" \
  --runs "$RUNS" --warmup "$WARMUP" --commit "$COMMIT" \
  --json "$ROOT/bench/results/vmm-$STAMP.json"
