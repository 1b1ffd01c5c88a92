#!/usr/bin/env bash
# Writes the ONNX backend node tests for the engine's conformance test
# (inference/engine/tests/engine/onnx_conformance.rs) into $CARGO_TARGET_DIR/onnx-node-tests (or
# target/onnx-node-tests), from the pinned `onnx` package's own generators, in a venv of its
# own. Does nothing when they are already there for these pins.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/pinned-venv.sh
target="${CARGO_TARGET_DIR:-$PWD/target}"
out="$target/onnx-node-tests"
venv="$target/onnx-venv"
pins=tools/prepare/requirements-conformance.txt
stamp=$(sha256sum "$pins" tools/prepare/onnx_node_tests.py | sha256sum | cut -c1-16)
if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$stamp" ]; then
  exit 0
fi
pinned_venv "$venv" "$pins"
"$venv/bin/python" tools/prepare/onnx_node_tests.py "$out" >&2
echo "$stamp" > "$out/.stamp"
