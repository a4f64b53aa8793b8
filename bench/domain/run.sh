#!/bin/bash
# Parse + validate + derive 1,000 domain definitions with rvirt-domain, and
# have libvirt derive the QEMU command line for the same files with
# `virsh domxml-to-native qemu-argv`, in one run; print per-definition times
# and the ratio.
#
# libvirt side: the running libvirtd's QEMU driver (qemu:///system; the
# test:///default driver does not implement domxml-to-native). All 1,000
# commands go through ONE virsh process (commands on stdin), so process
# start-up is paid once and the figure is libvirt's own conversion plus its
# RPC round trip. rvirt side: in-process, files read into memory first,
# fastest of 21 passes (the machine is shared); fill-in (UUID/MAC generation) is included.
#
# Usage: bench/domain/run.sh [COUNT]   (needs libvirtd running; see
# /work/shared/REFERENCE-STACK.md)
set -euo pipefail
COUNT=${1:-1000}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
FIX=$ROOT/crates/domain/tests/fixtures
WORK=$(mktemp -d /tmp/rvirt-bench-domain.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# Definitions libvirt can convert on this host (skip the fixtures it refuses
# for host reasons: hugepages, hostdev), cycled and renamed to COUNT files.
mapfile -t SRC < <(for f in "$FIX"/*.xml; do
  grep -q '^error' "${f%.xml}.argv" || echo "$f"; done)
for ((i = 0; i < COUNT; i++)); do
  src=${SRC[$((i % ${#SRC[@]}))]}
  sed -e "s|<name>[^<]*</name>|<name>bench-$i</name>|" "$src" >"$WORK/d$(printf %04d $i).xml"
done
echo "definitions: $COUNT (cycled from ${#SRC[@]} fixtures)"

cargo build --quiet --release -p rvirt-domain --example bench_domains --manifest-path "$ROOT/Cargo.toml"
RVIRT_OUT=$("$ROOT/target/release/examples/bench_domains" "$WORK" 21)
echo "$RVIRT_OUT" | head -3
RVIRT_US=$(echo "$RVIRT_OUT" | sed -n 's/^rvirt_us_per_def=//p')

for f in "$WORK"/*.xml; do echo "domxml-to-native qemu-argv $f"; done >"$WORK/cmds"
START=$(date +%s%N)
virsh -q -c qemu:///system <"$WORK/cmds" >"$WORK/virsh.out" 2>"$WORK/virsh.err" || true
END=$(date +%s%N)
OK=$(grep -c -- '-name guest=' "$WORK/virsh.out" || true)
LIBVIRT_US=$(awk -v s="$START" -v e="$END" -v n="$COUNT" 'BEGIN { printf "%.1f", (e - s) / 1000 / n }')
echo "libvirt: $COUNT definitions through one virsh session ($OK converted): $(( (END - START) / 1000000 )) ms total, $LIBVIRT_US us per definition"
awk -v r="$RVIRT_US" -v l="$LIBVIRT_US" 'BEGIN { printf "ratio: libvirt/rvirt = %.0fx (rvirt %.1f us, target < 50 us per definition: %s)\n", l / r, r, (r < 50 ? "met" : "MISSED") }'
