#!/bin/bash
# Storage pools beside libvirt in one run (issue 15, "Benchmarks"):
#   1. vol-create-as: N qcow2 volumes (1 GiB each) then N raw volumes
#      (1 GiB, sparse: --allocation 0), one STORAGE_VOL_CREATE_XML each
#   2. pool-refresh of the pool holding those 2N volumes (median of RUNS)
# rvirtd (release) on a temporary --root tree and a private libvirtd 9.0 of
# the run's own, both driven through libvirt-python over one connection
# each, so the figures are the daemons' and not a CLI's start-up. bench.py
# prints each median and the libvirt/rvirt ratio.
#
# The private libvirtd runs in its own mount namespace (empty /run,
# /var/lib/libvirt, /var/log/libvirt; a copy of /etc/libvirt whose
# qemu.conf runs QEMU as root, so the same setup also serves benches that
# start guests on a fresh machine, where the libvirt-qemu user cannot open
# /dev/kvm), reached through its socket in the temporary directory and
# stopped at the end.
#
# Needs: root, libvirtd 9.0 (libvirt-daemon-system), python3-libvirt,
# unshare, tini; scripts/setup.sh installs them.
# Usage: bench/storage/run.sh   (N=1000 RUNS=5 NO_BUILD=1)
# Results also go to bench/results/storage-<UTC timestamp>.json.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
REL=$ROOT/target/release
for tool in python3 tini unshare libvirtd virtlogd; do
  command -v $tool >/dev/null || { echo "bench/storage: $tool is needed (scripts/setup.sh)" >&2; exit 1; }
done
/usr/bin/python3 -c 'import libvirt' 2>/dev/null || { echo "bench/storage: python3-libvirt is needed" >&2; exit 1; }
if [ -z "${NO_BUILD:-}" ]; then
  echo "building rvirtd (release)..." >&2
  cargo build --quiet --release -p rvirtd --manifest-path "$ROOT/Cargo.toml"
fi
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$ROOT/bench/results"
exec /usr/bin/python3 "$ROOT/bench/storage/bench.py" --rvirtd "$REL/rvirtd" \
  --n "${N:-1000}" --runs "${RUNS:-5}" --commit "$COMMIT" \
  --json "$ROOT/bench/results/storage-$STAMP.json"
