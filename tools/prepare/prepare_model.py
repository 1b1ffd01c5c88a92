#!/usr/bin/env python3
"""Prepares an f32 ONNX model for the inference canister, with onnxruntime's own tools.

  prepare_model.py MODEL.onnx --f16       -> MODEL.f16.onnx      weights stored as f16 (half the bytes),
                                                                  inputs/outputs kept f32; the canister
                                                                  computes in f32
  prepare_model.py MODEL.onnx --dynamic   -> MODEL.dyn_u8.onnx   dynamic int8 (MatMulInteger/ConvInteger)
  prepare_model.py MODEL.onnx --qdq INPUT.npy [INPUT.npy ...]
                                          -> MODEL.qdq.onnx      static QDQ int8, calibrated on the inputs
  prepare_model.py MODEL.onnx --golden INPUT.npy OUT_DIR
                                          -> OUT_DIR/out_*.npy   onnxruntime's outputs, for tests

Run in the pinned environment: python3 -m venv .venv && .venv/bin/pip install -r requirements.txt
"""
import argparse
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime import quantization as q


def out_path(model, suffix):
    base = model[:-5] if model.endswith(".onnx") else model
    return f"{base}.{suffix}.onnx"


def f16(model):
    from onnxconverter_common import float16
    m = float16.convert_float_to_float16(onnx.load(model), keep_io_types=True)
    path = out_path(model, "f16")
    onnx.save(m, path)
    return path


def preprocessed(model):
    path = out_path(model, "pre")
    # Symbolic shape inference fails on some exporters' graphs (PaddleOCR Concat); the ONNX
    # shape inference it falls back to is enough for quantization.
    q.quant_pre_process(model, path, skip_symbolic_shape=True)
    return path


def dynamic(model):
    path = out_path(model, "dyn_u8")
    q.quantize_dynamic(preprocessed(model), path, weight_type=q.QuantType.QUInt8)
    return path


class NpyReader(q.CalibrationDataReader):
    def __init__(self, model, inputs):
        name = ort.InferenceSession(model).get_inputs()[0].name
        self.items = iter([{name: np.load(f).astype(np.float32)} for f in inputs])

    def get_next(self):
        return next(self.items, None)


def qdq(model, inputs):
    path = out_path(model, "qdq")
    q.quantize_static(preprocessed(model), path, NpyReader(model, inputs), quant_format=q.QuantFormat.QDQ,
                      activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8)
    return path


def golden(model, input_file, out_dir):
    session = ort.InferenceSession(model)
    name = session.get_inputs()[0].name
    outputs = session.run(None, {name: np.load(input_file).astype(np.float32)})
    os.makedirs(out_dir, exist_ok=True)
    for i, o in enumerate(outputs):
        np.save(os.path.join(out_dir, f"out_{i}.npy"), o)
    return out_dir


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--f16", action="store_true")
    g.add_argument("--dynamic", action="store_true")
    g.add_argument("--qdq", nargs="+", metavar="INPUT.npy")
    g.add_argument("--golden", nargs=2, metavar=("INPUT.npy", "OUT_DIR"))
    a = p.parse_args()
    if a.f16:
        print(f16(a.model))
    elif a.dynamic:
        print(dynamic(a.model))
    elif a.qdq:
        print(qdq(a.model, a.qdq))
    else:
        print(golden(a.model, *a.golden))


if __name__ == "__main__":
    sys.exit(main())
