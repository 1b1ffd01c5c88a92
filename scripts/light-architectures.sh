#!/usr/bin/env bash
# The onnx package's nine light architectures in f32 and onnxruntime's three quantized forms,
# run natively through the engine's loader and compared with onnxruntime
# (inference/engine/examples/light_architectures.rs). Not part of test.sh: the quantized files
# take about 1 GB and several minutes to make. Cases go to $CARGO_TARGET_DIR/light-architectures
# (or target/light-architectures), made in a venv pinned by tools/prepare/requirements-light.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/pinned-venv.sh
target="${CARGO_TARGET_DIR:-$PWD/target}"
out="$target/light-architectures"
venv="$target/light-venv"
pins=tools/prepare/requirements-light.txt
stamp=$(sha256sum "$pins" tools/prepare/light_quantized.py | sha256sum | cut -c1-16)
if [ ! -f "$out/.stamp" ] || [ "$(cat "$out/.stamp")" != "$stamp" ]; then
  pinned_venv "$venv" "$pins"
  "$venv/bin/python" tools/prepare/light_quantized.py "$out" >&2
  echo "$stamp" > "$out/.stamp"
fi
# Release: the engine's own int8 kernels are far too slow in a debug build for resnet50 or vgg19.
cargo run --quiet --release -p inference-engine --example light_architectures -- "$out"
