#!/usr/bin/env bash
# net-start time: rvirtd vs libvirtd 9.0, the same NAT network (bridge,
# addresses, firewall rules, dnsmasq) started and destroyed RUNS times by the
# real virsh, each daemon in a private network namespace (libvirtd also in a
# private mount namespace with empty /run/libvirt, /var/lib/libvirt,
# /etc/libvirt and /var/cache/libvirt, so it is a fresh daemon that touches
# neither the host's network nor its libvirt state). Works on a fresh
# machine after scripts/setup.sh (libvirt-daemon-system, dnsmasq-base,
# nftables; libvirt's network driver uses iptables, which Debian installs
# with it).
#
#   bench/network/run.sh        # RUNS=20; RVIRTD=PATH or NO_BUILD=1 to skip the build
#
# Prints each daemon's median and the rvirtd/libvirtd ratio; samples go to
# bench/results/network-<UTC time>.txt.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-20}
if [ -z "${RVIRTD:-}" ]; then
  [ -n "${NO_BUILD:-}" ] || cargo build --release -q -p rvirtd
  RVIRTD=$PWD/target/release/rvirtd
fi
[ "$(id -u)" = 0 ] || { echo "run as root (namespaces, bridges)" >&2; exit 1; }
for p in virsh libvirtd dnsmasq nft unshare; do
  command -v "$p" >/dev/null || { echo "missing $p (scripts/setup.sh)" >&2; exit 1; }
done
mkdir -p bench/results
out=bench/results/network-$(date -u +%Y%m%dT%H%M%SZ).txt
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/net.xml" <<'XML'
<network>
  <name>bench</name>
  <forward mode='nat'/>
  <bridge name='rvbench0'/>
  <ip address='10.200.0.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='10.200.0.2' end='10.200.0.254'/>
    </dhcp>
  </ip>
</network>
XML

# One daemon's loop, run inside its namespaces: define, then RUNS times
# start (timed) and destroy; prints one start time in ms per line.
cat >"$work/loop.sh" <<'SH'
set -euo pipefail
uri=$1 runs=$2 xml=$3
deadline=$((SECONDS + 30))
until virsh -c "$uri" uri >/dev/null 2>&1; do
  [ $SECONDS -lt $deadline ] || { echo "daemon did not come up" >&2; exit 1; }
  sleep 0.1
done
virsh -q -c "$uri" net-define "$xml" >/dev/null
for _ in $(seq "$runs"); do
  t0=$(date +%s%N)
  timeout 60 virsh -q -c "$uri" net-start bench >/dev/null
  t1=$(date +%s%N)
  echo $(((t1 - t0) / 1000))
  timeout 60 virsh -q -c "$uri" net-destroy bench >/dev/null
done
virsh -q -c "$uri" net-undefine bench >/dev/null
SH

run_rvirtd() {
  unshare -n bash -c '
    ip link set lo up
    "$1" --root "$2/rv" >"$2/rvirtd.log" 2>&1 &
    pid=$!
    trap "kill $pid; wait $pid 2>/dev/null" EXIT
    bash "$2/loop.sh" "qemu+unix:///system?socket=$2/rv/run/rvirt/rvirt-sock" "$3" "$2/net.xml"
  ' _ "$RVIRTD" "$work" "$RUNS"
}

run_libvirtd() {
  # Its own pid file: the host's libvirtd holds /run/libvirtd.pid.
  unshare -m -n --propagation private bash -c '
    ip link set lo up
    for d in /run/libvirt /var/lib/libvirt /etc/libvirt /var/cache/libvirt /var/log/libvirt; do
      mkdir -p "$d" && mount -t tmpfs tmpfs "$d"
    done
    libvirtd --pid-file "$1/libvirtd.pid" >"$1/libvirtd.log" 2>&1 </dev/null &
    pid=$!
    trap "kill $pid; wait $pid 2>/dev/null" EXIT
    bash "$1/loop.sh" "qemu:///system" "$2" "$1/net.xml"
  ' _ "$work" "$RUNS"
}

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

echo "net-start of a NAT network, $RUNS runs each (virsh's own start-up included, the same for both)"
rv=$(run_rvirtd)
lv=$(run_libvirtd)
{ echo "rvirtd_us: $(echo $rv)"; echo "libvirtd_us: $(echo $lv)"; } >"$out"
rm=$(echo "$rv" | median)
lm=$(echo "$lv" | median)
awk -v r="$rm" -v l="$lm" 'BEGIN {
  printf "rvirtd   median %.1f ms\nlibvirtd median %.1f ms\nratio rvirtd/libvirtd %.2f\n", r / 1000, l / 1000, r / l }'
echo "samples: $out"
