#!/bin/bash
# Confined vs unconfined, in one run (issue 18, "Benchmarks"): what the
# jail, the ownership changes and the seccomp filters cost.
#   1. start -> the guest's first line, through rvirtd and virsh: a daemon
#      confining its VMMs (the default) and one started --unconfined, the
#      same domain (oneline guest, serial in a file), alternating;
#   2. per exit: rvirt-vmm by hand with libvirt's -sandbox and without,
#      (time of the `exits` guest - time of `oneline`) / 100,000 exits.
# Prints medians, confined/unconfined ratios and the target (<= 1.1) with
# PASS/MISS; samples go to bench/results/confinement-<UTC time>.json.
#
# Needs: root, /dev/kvm, virsh, python3, the rvirt-qemu user
# (scripts/setup.sh).
# Usage: bench/confinement/run.sh   RUNS=10 EXIT_RUNS=10 NO_BUILD=1
#   ALSO="before=/path/to/rvirtd"  more rvirtd builds, confined, in the same rounds
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/bench/lib/common.sh"
REL=$ROOT/target/release
for tool in virsh python3; do
  command -v $tool >/dev/null || { echo "bench/confinement: $tool is needed" >&2; exit 1; }
done
getent passwd rvirt-qemu >/dev/null || { echo "bench/confinement: the rvirt-qemu user is needed (scripts/setup.sh)" >&2; exit 1; }
build_vmm -p rvirtd -p rvirt-test-guests
ONELINE=$(cargo run --quiet --release -p rvirt-test-guests --manifest-path "$ROOT/Cargo.toml" -- oneline)
EXITS=$(cargo run --quiet --release -p rvirt-test-guests --manifest-path "$ROOT/Cargo.toml" -- exits)
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$ROOT/bench/results"
exec python3 "$ROOT/bench/confinement/bench.py" --bin "$REL" --oneline "$ONELINE" --exits "$EXITS" \
  --runs "${RUNS:-10}" --exit-runs "${EXIT_RUNS:-10}" \
  $(for x in ${ALSO:-}; do printf -- '--also %s ' "$x"; done) --json "$ROOT/bench/results/confinement-$STAMP.json"
