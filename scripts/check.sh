#!/usr/bin/env bash
# What the brief asks of the code, checked on every submission (CI runs it
# through scripts/test.sh): formatting, clippy with warnings denied (the
# workspace also denies undocumented `unsafe`), documentation without
# warnings, and every fuzz target built and run briefly from its seeds.
# Needs what scripts/setup.sh installs (cargo-fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ_SECONDS=${FUZZ_SECONDS:-8}

step() { printf '\n== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

# cargo-fuzz's AddressSanitizer needs nightly; without it the targets still
# build and run on stable with coverage only (`-s none`).
step "fuzz targets: build, then ${FUZZ_SECONDS}s each from their seeds"
if rustup run nightly rustc --version >/dev/null 2>&1; then
  fuzz=(cargo +nightly fuzz)
  sanitizer=()
else
  echo "no nightly toolchain: fuzzing without AddressSanitizer" >&2
  fuzz=(cargo fuzz)
  sanitizer=(-s none)
fi
cd fuzz
"${fuzz[@]}" build "${sanitizer[@]}"
work=$(mktemp -d /tmp/rvirt-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
for target in $("${fuzz[@]}" list); do
  corpus=("$work/$target")
  mkdir -p "${corpus[0]}"
  [ -d "seeds/$target" ] && corpus+=("seeds/$target")
  printf '%-20s ' "$target"
  # libFuzzer's own deadline, and one around it in case it hangs itself.
  if ! timeout $((FUZZ_SECONDS * 4 + 60)) "${fuzz[@]}" run "${sanitizer[@]}" "$target" "${corpus[@]}" -- \
      -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 >"$work/$target.log" 2>&1; then
    echo "FAILED"
    tail -40 "$work/$target.log" >&2
    exit 1
  fi
  grep -E '^Done [0-9]+ runs' "$work/$target.log" || echo "ok"
done
