#!/usr/bin/env bash
# Builds rvirt-vmm and the bundled demo guest, then boots it: the guest
# prints a greeting on the serial console and powers itself off through ACPI,
# and rvirt-vmm exits with status 0.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p rvirt-vmm -p rvirt-test-guests
guest=$(cargo run --release --quiet -p rvirt-test-guests -- hello)
set -x
exec target/release/rvirt-vmm -name guest=demo -machine pc,accel=kvm -m 128 -smp 2 \
  -no-user-config -nodefaults -display none -serial stdio -kernel "$guest"
