#!/bin/bash
# rvirt-vmm vs QEMU 7.2 booting the MBR test disk through the same SeaBIOS
# (issue 14, "Benchmark"): fork -> SeaBIOS's banner, -> the MBR's first
# serial byte, -> exit after the guest powers off; on microvm
# (bios-microvm.bin, virtio-mmio), pc and q35 (bios-256k.bin,
# virtio-blk-pci), and from an IDE disk (pc) and an AHCI disk (q35), the
# IDE/AHCI ratio printed for both VMMs. Target: the MBR's first byte in
# <= 0.5x QEMU's time.
#
# Needs: /dev/kvm, qemu-system-x86_64 (Debian qemu-system-x86), seabios,
# python3.
# Usage: bench/firmware/run.sh
#   RUNS=7 WARMUP=1   runs per VMM and machine (alternating), untimed first
#   QEMU=qemu-system-x86_64
#   RVIRT_VMM=PATH    benchmark this rvirt-vmm binary instead of building one
#   NO_BUILD=1        use the existing target/release/rvirt-vmm as it is
#   CASES=pc-ide,q35-ahci  only these (microvm, pc, q35, pc-ide, q35-ahci)
# Results also go to bench/results/firmware-<UTC timestamp>.json (git-ignored).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/bench/lib/common.sh"
need_qemu
SEABIOS=/usr/share/seabios
[ -e $SEABIOS/bios-256k.bin ] || { echo "bench/firmware: Debian's seabios is needed" >&2; exit 1; }
need_kvm
build_vmm -p rvirt-test-guests
DISK=$(ls "$ROOT"/target/*/build/rvirt-test-guests-*/out/guests/boot-disk.img 2>/dev/null | head -1)
[ -n "$DISK" ] || { echo "bench/firmware: build rvirt-test-guests first" >&2; exit 1; }
bench_commit
exec python3 "$ROOT/bench/firmware/bench.py" --rvirt "$RVIRT" --qemu "$QEMU_BIN" \
  --disk "$DISK" --seabios-dir $SEABIOS --runs "${RUNS:-7}" --warmup "${WARMUP:-1}" \
  --cases "${CASES:-}" --commit "$COMMIT" --json "$ROOT/bench/results/firmware-$STAMP.json"
