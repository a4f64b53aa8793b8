#!/bin/bash
# rvirt-vmm vs QEMU 7.2: e1000 (or e1000e) frames per second from the guest
# to the host (the e1000 or e1000e test guest with MODEL.bench=N, over
# -netdev stream to bench.py, which times the frames as they arrive). Both
# VMMs get the same command line, alternately.
#
# Needs: /dev/kvm, qemu-system-x86_64 (Debian qemu-system-x86), python3.
#   MODEL=e1000|e1000e (e1000e: on q35, behind a root port, as libvirt)
#   N=20000 ROUNDS=5 WARMUP=1
#   RVIRT_VMM=PATH   benchmark this binary instead of building one (release)
#   QEMU=qemu-system-x86_64
# Results also go to bench/results/e1000-<UTC timestamp>.json (git-ignored).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/bench/lib/common.sh"
QEMU=$(command -v "${QEMU:-qemu-system-x86_64}") || {
  echo "bench/e1000: qemu-system-x86_64 not found (apt-get install -y qemu-system-x86)" >&2; exit 1; }
need_kvm
cd "$ROOT"
build_vmm
RVIRT_VMM=$RVIRT
export MODEL=${MODEL:-e1000}
case $MODEL in e1000|e1000e) ;; *) echo "bench/e1000: MODEL is e1000 or e1000e" >&2; exit 1;; esac
GUEST=$(cargo run -q -p rvirt-test-guests -- "$MODEL")
exec python3 "$ROOT/bench/e1000/bench.py" "$RVIRT_VMM" "$QEMU" "$GUEST"
