#!/bin/bash
# rvirtd + rvirt-vmm vs libvirtd 9.0 + QEMU 7.2 on the same tiny guest, in one
# run (issue 6, "Benchmark"). Builds the release binaries and the `oneline`
# test guest (prints ONELINE, then leaves), then bench.py measures both
# stacks side by side and prints medians, rvirt/libvirt ratios and the
# issue's targets with PASS/MISS:
#   1. start -> guest line in the serial file (median of RUNS)
#   2. domains started per second over 50, one after another and 10 at once
#   3. daemon RSS idle and with 1,000 defined domains
#   4. `list --all` over 1,000 defined domains (rvirsh/rvirtd vs virsh/libvirtd)
#
# Needs: root, /dev/kvm; installs what is missing (libvirtd 9.0 + QEMU,
# virsh, tini, unshare, python3) with apt-get.
# libvirt side: by default a fresh libvirtd + virtlogd of the run's own, under
# tini in a private mount namespace (empty /run, /var/lib/libvirt,
# /var/log/libvirt; copies of /etc/libvirt, whose qemu.conf runs QEMU as
# root, and of the QEMU capabilities cache; bench/lib/private_libvirtd.py),
# reached through its socket in the temporary directory and stopped at the
# end: its RSS is a fresh daemon's, and other users of the shared libvirtd
# neither see nor disturb the run. LIBVIRTD=shared uses the running
# /run/libvirt/libvirt-sock instead (or starts one and stops it at the end);
# its RSS then carries the daemon's history. rvirtd runs on a temporary
# --root tree and is stopped at the end.
# Every domain the run defines (names rvb<pid>-*) is destroyed and
# undefined, on both sides, also on Ctrl-C.
#
# Usage: bench/rvirtd/run.sh
#   RUNS=10        samples for the start-to-line median (and list --all: LIST_RUNS=5)
#   MANY=1000      defined domains for the RSS and list --all cases
#   THROUGHPUT=50  domains for the domains-per-second case; PARALLEL=10
#   NO_BUILD=1     use target/release as it is
#   LIBVIRTD=private|shared  (default private, see above)
# Results also go to bench/results/rvirtd-<UTC timestamp>.json (git-ignored).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/bench/lib/common.sh"
REL=$ROOT/target/release

need_kvm
need python3 python3
need unshare util-linux
need tini tini
need virsh libvirt-clients
need libvirtd libvirt-daemon-system libvirt-daemon-driver-qemu
need qemu-system-x86_64 qemu-system-x86

build_vmm -p rvirtd -p rvirsh -p rvirt-test-guests
for b in rvirt-vmm rvirtd rvirsh; do
  [ -x "$REL/$b" ] || { echo "bench/rvirtd: $REL/$b is missing (cargo build --release -p $b)" >&2; exit 1; }
done
GUEST=$(cargo run --quiet --release -p rvirt-test-guests --manifest-path "$ROOT/Cargo.toml" -- oneline)

bench_commit
mkdir -p "$ROOT/bench/results"
exec python3 "$ROOT/bench/rvirtd/bench.py" \
  --bin "$REL" --guest "$GUEST" --commit "$COMMIT" \
  --runs "${RUNS:-10}" --list-runs "${LIST_RUNS:-5}" --many "${MANY:-1000}" \
  --throughput "${THROUGHPUT:-50}" --parallel "${PARALLEL:-10}" \
  --libvirtd "${LIBVIRTD:-private}" --json "$ROOT/bench/results/rvirtd-$STAMP.json"
