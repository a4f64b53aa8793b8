#!/bin/bash
# Density (issue 21): N idle 128 MiB VMs (the `idle` test guest: one line,
# then halted with interrupts off) under rvirtd, then under a private
# libvirtd 9.0 + QEMU 7.2 (microvm, direct kernel boot, QEMU as root in the
# private daemon's own qemu.conf: bench/lib/private_libvirtd.py) for the N
# it reaches. For each N, in ascending order, the domains are started by
# CLIENTS libvirt-python connections at once and then measured:
#   - start rate (domains/s over that batch);
#   - host memory: MemTotal - MemAvailable, less what it was before;
#   - the daemon's RSS, threads and descriptors;
#   - per VMM (median over 50): RSS and PSS (rvirt-vmm's exit helper
#     counted with it), threads;
#   - `list --all` (median of 3): rvirsh and the real virsh on rvirtd,
#     virsh on libvirtd;
# and prints what each host limit allows (pid_max and threads-max against
# threads per VM, rvirtd's descriptors per VM against its nofile limit).
# A side stops at the first failed start or when MemAvailable would fall
# below RESERVE_MIB, and says which. Every domain is destroyed and
# undefined and both daemons stopped on every exit (also Ctrl-C).
#
# Needs root and /dev/kvm; installs what is missing with apt-get.
# Usage: bench/density/run.sh
#   NS=100,500,1000    the Ns for rvirtd (more: NS=100,1000,5000)
#   LIBVIRT_NS=...     the Ns for libvirt (default NS)
#   CLIENTS=4 MEM_MIB=128 RESERVE_MIB=3072 SKIP_LIBVIRT=1 NO_BUILD=1
#   PID_MAX=4194304    raise kernel.pid_max for the run (systemd's default on
#                      64-bit hosts), restored after: NS=5000 needs it
# Results also go to bench/results/density-<UTC timestamp>.json.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/bench/lib/common.sh"
REL=$ROOT/target/release
need_kvm
need unshare util-linux
need tini tini
need virsh libvirt-clients
need libvirtd libvirt-daemon-system libvirt-daemon-driver-qemu
need qemu-system-x86_64 qemu-system-x86
need python3 python3
/usr/bin/python3 -c 'import libvirt' 2>/dev/null || {
  apt-get update -qq && apt-get install -y -qq --no-install-recommends python3-libvirt >&2; }
build_vmm -p rvirtd -p rvirsh -p rvirt-test-guests
GUEST=$(cargo run --quiet --release -p rvirt-test-guests --manifest-path "$ROOT/Cargo.toml" -- idle)
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$ROOT/bench/results"
exec /usr/bin/python3 "$ROOT/bench/density/bench.py" --bin "$REL" --guest "$GUEST" \
  --ns "${NS:-100,500,1000}" ${LIBVIRT_NS:+--libvirt-ns "$LIBVIRT_NS"} \
  --clients "${CLIENTS:-4}" --mem-mib "${MEM_MIB:-128}" --reserve-mib "${RESERVE_MIB:-3072}" \
  ${SKIP_LIBVIRT:+--skip-libvirt} ${PID_MAX:+--pid-max "$PID_MAX"} --json "$ROOT/bench/results/density-$STAMP.json"
