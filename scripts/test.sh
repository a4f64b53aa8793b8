#!/usr/bin/env bash
# The whole test suite: installs its dependencies (scripts/setup.sh), then
# runs every crate's tests. Guests boot on /dev/kvm, so run it on a KVM host
# as root (or a member of the kvm group).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# Tests that compare against the reference QEMU or drive a real client fail
# instead of skipping when it is missing.
export RVIRT_REQUIRE_REFERENCE=1
cargo test --workspace --locked
