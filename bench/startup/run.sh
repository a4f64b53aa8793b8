#!/bin/bash
# rvirt-vmm start-up against QEMU microvm, Firecracker and Cloud Hypervisor
# (issue 21): fork → the guest's line, fork → exit and the VMM's own peak
# RSS, measured by a small C harness (startup.c) that forks and execs each
# VMM with its own configuration for the same `oneline` PVH guest.
#
# Needs: /dev/kvm, cc, qemu-system-x86_64 (Debian qemu-system-x86).
# Usage: bench/startup/run.sh
#   RUNS=20 WARMUP=2 MEM=128       runs per VMM, untimed rounds first, -m
#   QEMU=qemu-system-x86_64
#   FIRECRACKER=PATH               add Firecracker (its --no-api --config-file)
#   CLOUD_HYPERVISOR=PATH          add Cloud Hypervisor (exit: SIGTERM at the
#                                  line, as it reboots on the guest's reset)
#   RVIRT_VMM=PATH  benchmark this rvirt-vmm binary instead of building one
#   NO_BUILD=1      use the existing target/release/rvirt-vmm and guest
#   VERBOSE=1       print every sample
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RUNS=${RUNS:-20}
WARMUP=${WARMUP:-2}
MEM=${MEM:-128}
QEMU=${QEMU:-qemu-system-x86_64}

[ -w /dev/kvm ] || { echo "bench/startup: /dev/kvm is missing or not writable" >&2; exit 1; }
command -v cc >/dev/null || { echo "bench/startup: cc is needed (apt-get install -y gcc)" >&2; exit 1; }
QEMU_BIN=$(command -v "$QEMU" || true)
if [ -z "$QEMU_BIN" ]; then
  echo "bench/startup: $QEMU not found; install it with:" >&2
  echo "  apt-get install -y --no-install-recommends qemu-system-x86" >&2
  exit 1
fi

RVIRT=${RVIRT_VMM:-$ROOT/target/release/rvirt-vmm}
if [ -z "${RVIRT_VMM:-}" ] && [ -z "${NO_BUILD:-}" ]; then
  echo "building rvirt-vmm (release) and the oneline guest..." >&2
  "$ROOT/scripts/build-vmm.sh" --quiet   # static PIE, see there
fi
[ -x "$RVIRT" ] || { echo "bench/startup: $RVIRT is not an executable" >&2; exit 1; }
ONELINE=$(cargo run --quiet -p rvirt-test-guests --manifest-path "$ROOT/Cargo.toml" -- oneline)

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
# Static, so the floor under every RSS figure (the forked harness's own
# pages, see startup.c) stays a few hundred KiB; dynamic if libc.a is absent.
cc -O2 -static -o "$TMP/startup" "$ROOT/bench/startup/startup.c" 2>/dev/null ||
  cc -O2 -o "$TMP/startup" "$ROOT/bench/startup/startup.c"

ARGS=(rvirt "$RVIRT" -M microvm -m "$MEM" -no-reboot -serial stdio -kernel "$ONELINE" --
      qemu-microvm "$QEMU_BIN" -M microvm -enable-kvm -cpu qemu64,-pni -m "$MEM"
      -nodefaults -no-reboot -serial stdio -display none -device isa-debug-exit
      -kernel "$ONELINE" --)
if [ -n "${FIRECRACKER:-}" ]; then
  # Firecracker boots an ELF (PVH when the ELF has the note, as oneline
  # does); its serial is its stdout; the guest's i8042 reset ends it.
  cat > "$TMP/firecracker.json" <<EOF
{
  "boot-source": { "kernel_image_path": "$ONELINE", "boot_args": "console=ttyS0" },
  "drives": [],
  "machine-config": { "vcpu_count": 1, "mem_size_mib": $MEM }
}
EOF
  ARGS+=(firecracker "$FIRECRACKER" --no-api --config-file "$TMP/firecracker.json" --)
fi
if [ -n "${CLOUD_HYPERVISOR:-}" ]; then
  ARGS+=(cloud-hypervisor,term "$CLOUD_HYPERVISOR" --kernel "$ONELINE"
         --memory "size=${MEM}M" --cpus boot=1 --serial tty --console off --)
fi
missing=""
[ -n "${FIRECRACKER:-}" ] || missing="$missing Firecracker (FIRECRACKER=PATH)"
[ -n "${CLOUD_HYPERVISOR:-}" ] || missing="$missing Cloud Hypervisor (CLOUD_HYPERVISOR=PATH)"
[ -z "$missing" ] || echo "bench/startup: not given:$missing" >&2

COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
echo "rvirt-vmm $COMMIT, -m $MEM, $RUNS runs each, rotating; load: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
"$TMP/startup" -n "$RUNS" -w "$WARMUP" ${VERBOSE:+-v} "${ARGS[@]}"
