#!/bin/bash
# Guest-to-host throughput over a tap on libvirt's default NAT network:
# rvirt-vmm vs QEMU 7.2 microvm, both on a tap enslaved to virbr0 of the
# `default` network that rvirtd installs and starts (bridge, nftables
# table, dnsmasq), with the `dhcp` test guest: fork -> DHCP lease from
# dnsmasq, and UDP datagrams from a ring-3 loop to a socket on virbr0's
# address. Everything runs in a private network namespace (unshare -n), so
# the host's network is untouched. bench.py runs the VMMs alternately and
# prints medians and rvirt/QEMU.
#
# Needs: root, /dev/kvm, qemu-system-x86_64, dnsmasq and nft
# (scripts/setup.sh), the real virsh, python3.
#   ROUNDS=7 WARMUP=1   rounds per VMM and measure (alternating)
#   N=100000 SIZE=1400  datagrams and payload bytes per throughput run
#   NO_BUILD=1          use target/release as it is
#   QEMU=qemu-system-x86_64
# Results also go to bench/results/nattap-<UTC timestamp>.json (git-ignored).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/bench/lib/common.sh"
QEMU_BIN=$(command -v "${QEMU:-qemu-system-x86_64}" || true)
[ -n "$QEMU_BIN" ] || { echo "bench/nattap: QEMU not found" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "bench/nattap: run as root (namespaces, bridges, taps)" >&2; exit 1; }
for p in virsh dnsmasq nft ip unshare; do
  command -v "$p" >/dev/null || { echo "bench/nattap: missing $p (scripts/setup.sh)" >&2; exit 1; }
done
need_kvm
build_vmm -p rvirtd
GUEST=$(cargo run --quiet -p rvirt-test-guests --manifest-path "$ROOT/Cargo.toml" -- dhcp)
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
echo "rvirt-vmm $COMMIT vs $("$QEMU_BIN" --version | head -1), dnsmasq $(dnsmasq --version | head -1 | awk '{print $3}')" >&2
exec unshare -n python3 "$ROOT/bench/nattap/bench.py" \
  --rvirtd "$ROOT/target/release/rvirtd" --rvirt "$ROOT/target/release/rvirt-vmm" \
  --qemu "$QEMU_BIN" --guest "$GUEST" \
  --rounds "${ROUNDS:-7}" --warmup "${WARMUP:-1}" --n "${N:-100000}" --size "${SIZE:-1400}" \
  --commit "$COMMIT" --json "$ROOT/bench/results/nattap-$STAMP.json"
