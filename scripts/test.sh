#!/usr/bin/env bash
# Runs every test: formatting and lints first, then builds the canister modules the tests
# execute, then the whole workspace's tests (unit, property, replica rules, real-canister
# scenarios, candid interface), then the benchmark check.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/ensure-tools.sh
ensure_rust_components
cargo fmt --all --check
cargo clippy --quiet --workspace --all-targets -- -D warnings
./scripts/build-canisters.sh
if command -v cargo-nextest >/dev/null; then
  cargo nextest run --workspace --no-fail-fast
  # nextest does not run doctests
  cargo test --workspace --doc --quiet
else
  cargo test --workspace --no-fail-fast
fi
# Instruction counts on the local replica are deterministic: a change that moves them must
# commit the new numbers (scripts/bench.sh --persist), as with canbench.
./scripts/bench.sh --check
