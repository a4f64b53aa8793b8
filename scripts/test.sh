#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs its dependencies
# (scripts/setup.sh), checks the code (scripts/check.sh: fmt, clippy, doc,
# fuzz targets), then runs every crate's tests. Guests boot on /dev/kvm, so
# run it on a KVM host as root (or a member of the kvm group).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/check.sh
# Tests that compare against the reference QEMU or drive a real client fail
# instead of skipping when it is missing.
export RVIRT_REQUIRE_REFERENCE=1
# nextest runs each test in its own process and kills one that outlives
# .config/nextest.toml's limit: every wait in a test has its own deadline,
# and this is the backstop that keeps a hang from costing the whole run.
cargo nextest run --workspace --locked
# nextest does not run doctests.
cargo test --workspace --locked --doc
