#!/bin/bash
# rvirt-vmm vs QEMU 7.2: AHCI 4 KiB random reads per second from a ring-3
# guest loop (the ahcibench test guest) on q35's built-in AHCI, a disk on
# port 0 (a raw image in /dev/shm), same command line for both,
# alternately; bench.py prints the medians and the ratio.
#
# Needs: /dev/kvm, qemu-system-x86_64 (Debian qemu-system-x86), python3.
#   N=20000 ROUNDS=5 WARMUP=1 SIZE_MIB=64
#   RVIRT_VMM=PATH   benchmark this binary instead of building one (release)
#   QEMU=qemu-system-x86_64
# Results also go to bench/results/ahci-<UTC timestamp>.json (git-ignored).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/bench/lib/common.sh"
need_kvm
need python3 python3
need "${QEMU:-qemu-system-x86_64}" qemu-system-x86
QEMU=$(command -v "${QEMU:-qemu-system-x86_64}")
cd "$ROOT"
build_vmm
RVIRT_VMM=$RVIRT
GUEST=$(cargo run -q -p rvirt-test-guests -- ahcibench)
SIZE_MIB=${SIZE_MIB:-64}
IMAGE=$(mktemp /dev/shm/rvirt-bench-ahci.XXXXXX)
trap 'rm -f "$IMAGE"' EXIT
head -c $((SIZE_MIB << 20)) /dev/urandom > "$IMAGE"
mkdir -p bench/results
python3 "$ROOT/bench/ahci/bench.py" --rvirt "$RVIRT_VMM" --qemu "$QEMU" --guest "$GUEST" \
  --image "$IMAGE" --blocks $((SIZE_MIB << 11)) --n "${N:-20000}" \
  --rounds "${ROUNDS:-5}" --warmup "${WARMUP:-1}" \
  --json "bench/results/ahci-$(date -u +%Y%m%dT%H%M%SZ).json"
