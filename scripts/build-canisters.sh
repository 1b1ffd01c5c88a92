#!/usr/bin/env bash
# Builds the canister wasm modules the IC would accept, into target/canisters/ of this checkout
# (where dfx.json, icp.yaml and the tests look, whether or not CARGO_TARGET_DIR moves cargo's
# own output elsewhere):
#   cargo (wasm32-unknown-unknown, +simd128, profile "canister": opt-level z, LTO, one codegen
#   unit, panic=abort, tract-linalg and sha2 at opt-level 3) -> wasm-opt -Oz -> IC module-limit check.
# Installs what it needs (the wasm32 target, binaryen's wasm-opt) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/ensure-tools.sh
# Lints are the host build's business (scripts/test.sh): the wasm build keeps plain rustc, so its
# fingerprints, and its cached build, do not depend on who called this.
unset RUSTC_WORKSPACE_WRAPPER CLIPPY_ARGS
ensure_wasm_target
ensure_wasm_opt

out=target/canisters
mkdir -p "$out"
# A target directory of its own: nothing of a wasm32 build is shared with the host's, and apart
# cargo need not wait for a host build's lock (a host build may run while this does).
wasm_target=${CARGO_TARGET_DIR:-target}/canister-build
# wasm-opt -Oz of one module and the IC's module-limit check, run beside the next module's cargo
# build: cargo's last step, the LTO link, keeps one core busy; wasm-opt (about a minute on the
# tract modules) takes what is left.
optimise_and_check() {
  local raw=$1 opt=$2
  # Only re-optimise when cargo produced a new module.
  if [ ! -f "$opt" ] || [ "$raw" -nt "$opt" ]; then
    wasm-opt -Oz --enable-simd --enable-bulk-memory --enable-sign-ext \
      --enable-nontrapping-float-to-int --enable-mutable-globals --enable-reference-types \
      --enable-multivalue "$raw" -o "$opt.tmp"
    mv "$opt.tmp" "$opt"
  fi
  if [ -f ../shared/tools/wasm-check.py ]; then
    python3 ../shared/tools/wasm-check.py "$opt"
  else
    echo "note: ../shared/tools/wasm-check.py not found; the local replica validates the module at install" >&2
  fi
}
pids=()
trap 'for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done' EXIT
# The two tract modules first, so that the small ones' builds overlap their wasm-opt runs.
for pkg in inference-canister plain-tract-canister text-canister agency-canister; do
  CARGO_TARGET_DIR=$wasm_target cargo build --quiet -p "$pkg" --target wasm32-unknown-unknown --profile canister
  name=${pkg//-/_}
  optimise_and_check "$wasm_target/wasm32-unknown-unknown/canister/$name.wasm" "$out/$name.wasm" &
  pids+=($!)
done
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
pids=()
exit $failed
