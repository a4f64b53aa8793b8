#!/usr/bin/env bash
# The main job on a fresh machine: builds rvirt, starts the management
# daemon rvirtd in a scratch tree, and runs the bundled demo VM through it
# with rvirsh, as an administrator would with libvirtd and virsh. The guest
# greets on its serial console and powers itself off through ACPI; rvirtd
# sees it shut off and the domain is undefined again.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p rvirt-vmm -p rvirtd -p rvirsh -p rvirt-test-guests
guest=$(cargo run --release --quiet -p rvirt-test-guests -- hello)
bin=$PWD/target/release
root=$(mktemp -d /tmp/rvirt-demo.XXXXXX)
RVIRT_LOG=warn "$bin/rvirtd" --root "$root" 2>"$root/rvirtd.log" &
daemon=$!
cleanup() {
  local rc=$?
  # SIGTERM, then SIGKILL if rvirtd has not gone within 10 s.
  kill "$daemon" 2>/dev/null || true
  kill -CONT "$daemon" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$daemon" 2>/dev/null || true
  wait "$daemon" 2>/dev/null || true
  rm -rf "$root"
  exit "$rc"
}
trap cleanup EXIT
# Every wait below has a deadline: a daemon that never answers ends the
# demo with its log instead of hanging it.
fail() { echo "demo: $*" >&2; cat "$root/rvirtd.log" >&2; exit 1; }
sock=$root/run/rvirt/rvirt-sock
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
[ -S "$sock" ] || fail "rvirtd did not open $sock within 5 s"
export LIBVIRT_DEFAULT_URI="qemu+unix:///system?socket=$sock"
cat > "$root/demo.xml" <<XML
<domain type='kvm'>
  <name>demo</name>
  <memory unit='MiB'>128</memory>
  <vcpu placement='static'>2</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$guest</kernel>
    <cmdline>console=ttyS0</cmdline>
  </os>
  <features><acpi/><apic/></features>
  <cpu mode='custom' match='exact'><model fallback='forbid'>qemu64</model></cpu>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <serial type='file'><source path='$root/console.log'/><target port='0'/></serial>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
XML
rvirsh() { echo "\$ rvirsh $*"; timeout 60 "$bin/rvirsh" "$@" || fail "rvirsh $* failed"; }
rvirsh define "$root/demo.xml"
rvirsh start demo
state=
for _ in $(seq 100); do
  state=$(timeout 60 "$bin/rvirsh" domstate demo) || fail "rvirsh domstate failed"
  [ "$state" = "shut off" ] && break
  sleep 0.1
done
[ "$state" = "shut off" ] || fail "the demo VM is still '$state' after 10 s"
rvirsh domstate --reason demo
rvirsh list --all
echo "\$ cat console.log"
cat "$root/console.log"
rvirsh undefine demo
