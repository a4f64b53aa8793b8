#!/bin/bash
# rvirt-vmm vs QEMU 7.2 in one run (issue 17, "Benchmarks"): time and bytes
# for a VNC client to receive the whole 1024x768 screen of a bochs-display
# and a small changed rectangle (64x64), per encoding (raw, zlib, ZRLE);
# the VMM's memory with the display and a client. See bench.py.
#
# Needs: /dev/kvm, qemu-system-x86_64 (Debian qemu-system-x86), python3.
# Usage: bench/display/run.sh
#   RUNS=3 BOXES=10    VMM runs each (alternating), boxes per encoding
#   QEMU=qemu-system-x86_64
#   RVIRT_VMM=PATH     benchmark this rvirt-vmm binary instead of building one
#   NO_BUILD=1         use the existing target/release/rvirt-vmm as it is
# Results also go to bench/results/display-<UTC timestamp>.json (git-ignored).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/bench/lib/common.sh"
need_qemu
need_kvm
build_vmm -p rvirt-test-guests
GUEST=$(ls -t "$ROOT"/target/*/build/rvirt-test-guests-*/out/guests/displaybench.elf 2>/dev/null | head -1)
[ -n "$GUEST" ] || { echo "bench/display: build rvirt-test-guests first" >&2; exit 1; }
bench_commit
exec python3 "$ROOT/bench/display/bench.py" --rvirt "$RVIRT" --qemu "$QEMU_BIN" \
  --guest "$GUEST" --runs "${RUNS:-3}" --boxes "${BOXES:-10}" \
  --commit "$COMMIT" --json "$ROOT/bench/results/display-$STAMP.json"
