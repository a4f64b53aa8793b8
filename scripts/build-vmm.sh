#!/bin/bash
# Builds the release rvirt-vmm as a static PIE (glibc linked in) at
# target/release/rvirt-vmm: what the benchmarks measure and what a host
# should run (issue 21).
#
# Static, because one VMM runs per VM: the dynamic loader's work (mapping
# libc, libgcc_s and ld.so, resolving ~10,000 relocations) was a third of
# its page faults, and the file pages of those libraries a third of its peak
# RSS. Still a PIE, so the kernel places it at a random address (ASLR
# matters for a process a guest talks to). glibc's NSS is linked in for the
# `files` and `dns` sources (-runas users, -vnc host names); other NSS
# modules (LDAP, systemd-userdb) are not reachable from a static binary.
#
# Only the binary's own compilation gets the flag: `-C target-feature=
# +crt-static` in RUSTFLAGS would also reach the proc-macro crates, which
# cannot be built static ("cannot produce proc-macro ... as the target does
# not support these crate types"); `cargo rustc` passes it to the last
# crate only. A plain `cargo build --release` still gives a dynamic binary.
#
# Usage: scripts/build-vmm.sh [cargo options, e.g. --quiet --offline]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
exec cargo rustc "$@" --release -p rvirt-vmm --bin rvirt-vmm \
  --manifest-path "$ROOT/Cargo.toml" -- -C target-feature=+crt-static
