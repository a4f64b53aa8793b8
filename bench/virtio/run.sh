#!/bin/bash
# rvirt-vmm vs QEMU: guest-driven virtio-blk requests per second (4 KiB
# sequential and random reads and writes on a raw image in tmpfs), on
# microvm's virtio-mmio, or with PCI=1 on pc's virtio-blk-pci.
# Builds rvirt-vmm (release) and the test guests, creates the image, then
# bench.py runs both VMMs alternately and prints medians and rvirt/QEMU.
#
# Needs: /dev/kvm, qemu-system-x86_64 (Debian qemu-system-x86), python3.
# Usage: bench/virtio/run.sh [--blk-request]
#   --blk-request  also run the criterion bench of the per-request device
#                  cost (cargo bench -p rvirt-virtio --bench blk_request),
#                  if that bench exists; BLK_REQUEST_ARGS are passed to it
#                  (a criterion filter, e.g. "null-batch32 --quick")
#   ROUNDS=7 WARMUP=1   rounds per VMM and case (alternating), untimed first
#   N=20000             4 KiB requests per phase
#   QD=16,1             queue depths (guest requests in flight), one case each
#   CACHE=writeback     cache= modes, comma-separated (e.g. writeback,none)
#   AIO=threads         aio= for both VMMs
#   SIZE_MIB=256        image size; IMAGE=/dev/shm/... to choose its path
#   FORMAT=raw          or qcow2: a new image (64 KiB clusters) made with
#                       qemu-img before every run, PREALLOC=off|metadata
#   APPEND=             more guest command line (blkbench.event_idx=1,
#                       blkbench.irq=1, blkbench.flush=0, blkbench.ring3=0)
#   NICE=-10            nice value for both VMMs (as root; 0 = off): on this
#                       2-core host other work otherwise decides the figures
#   ALSO="NAME=PATH ..."  more rvirt-vmm binaries run in the same rounds, each
#                       compared with QEMU too (e.g. an older build)
#   PCI=1               pc and virtio-blk-pci (modern) for both VMMs
#   QEMU=qemu-system-x86_64
#   RVIRT_VMM=PATH      benchmark this rvirt-vmm binary instead of building one
#   NO_BUILD=1          use the existing target/release/rvirt-vmm as it is
# Results also go to bench/results/virtio-<UTC timestamp>.json (git-ignored).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/bench/lib/common.sh"
ROUNDS=${ROUNDS:-7}
WARMUP=${WARMUP:-1}
N=${N:-20000}
QD=${QD:-16,1}
CACHE=${CACHE:-writeback}
AIO=${AIO:-threads}
SIZE_MIB=${SIZE_MIB:-256}
NICE=${NICE:--10}
[ "$(id -u)" = 0 ] || NICE=0
BLK_REQUEST=
for arg in "$@"; do
  case "$arg" in
    --blk-request) BLK_REQUEST=1 ;;
    *) echo "bench/virtio: unknown argument '$arg'" >&2; exit 2 ;;
  esac
done

need_qemu
need_kvm
command -v python3 >/dev/null || { echo "bench/virtio: python3 is needed" >&2; exit 1; }

build_vmm
[ -x "$RVIRT" ] || { echo "bench/virtio: $RVIRT is not an executable" >&2; exit 1; }
# The guest sits next to `virtio` in the crate's OUT_DIR (it has no entry in
# the crate's Guest enum).
VIRTIO_GUEST=$(cargo run --quiet -p rvirt-test-guests --manifest-path "$ROOT/Cargo.toml" -- virtio)
GUEST=$(dirname "$VIRTIO_GUEST")/blkbench.elf
[ -f "$GUEST" ] || { echo "bench/virtio: $GUEST was not built" >&2; exit 1; }

# The image: in tmpfs, every page allocated (reads do not hit holes).
IMAGE=${IMAGE:-/dev/shm/rvirt-bench-virtio-$$.img}
cleanup() { rm -f "$IMAGE"; }
trap cleanup EXIT
rm -f "$IMAGE"
dd if=/dev/urandom of="$IMAGE" bs=1M count="$SIZE_MIB" status=none

bench_commit
if [ -n "${RVIRT_VMM:-}" ]; then COMMIT="binary $RVIRT_VMM (tree at $COMMIT)"; fi
echo "rvirt-vmm $COMMIT vs $("$QEMU_BIN" --version | head -1); $ROUNDS rounds, N=$N, QD=$QD, cache=$CACHE, aio=$AIO, format=${FORMAT:-raw} (prealloc ${PREALLOC:-off}), nice $NICE" >&2
ALSO_ARGS=()
for x in ${ALSO:-}; do ALSO_ARGS+=(--also "$x"); done
status=0
python3 "$ROOT/bench/virtio/bench.py" \
  --rvirt "$RVIRT" --qemu "$QEMU_BIN" --guest "$GUEST" --image "$IMAGE" \
  --rounds "$ROUNDS" --warmup "$WARMUP" --n "$N" --qd "$QD" --cache "$CACHE" \
  --aio "$AIO" --format "${FORMAT:-raw}" --prealloc "${PREALLOC:-off}" --size-mib "$SIZE_MIB" --nice "$NICE" --extra-append "${APPEND:-}" --commit "$COMMIT" ${ALSO_ARGS[@]+"${ALSO_ARGS[@]}"} \
  ${PCI:+--pci} \
  --json "$ROOT/bench/results/virtio-$STAMP.json" || status=$?

if [ -n "$BLK_REQUEST" ]; then
  if [ -f "$ROOT/crates/virtio/benches/blk_request.rs" ]; then
    echo; echo "cargo bench -p rvirt-virtio --bench blk_request:"
    # shellcheck disable=SC2086 # BLK_REQUEST_ARGS is a list of words
    cargo bench --quiet -p rvirt-virtio --bench blk_request --manifest-path "$ROOT/Cargo.toml" \
      -- ${BLK_REQUEST_ARGS:-} || status=$?
  else
    echo "bench/virtio: no crates/virtio/benches/blk_request.rs; skipped" >&2
  fi
fi
exit $status
