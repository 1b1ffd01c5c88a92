#!/usr/bin/env python3
"""Writes the `onnx` wheel's nine "light" model architectures (onnx/backend/test/data/light) in
f32 and in three int8 forms made with onnxruntime's own quantization tools, each with one fixed
input and onnxruntime's output for it.

  light_quantized.py OUT_DIR  -> OUT_DIR/<arch>/fp32.onnx    the wheel's model, byte for byte
                                            dyn_u8.onnx   quantize_dynamic, u8 weights
                                                          (DynamicQuantizeLinear/ConvInteger/MatMulInteger)
                                            qdq.onnx      quantize_static, QDQ, u8 activations, s8 weights
                                            qop.onnx      quantize_static, QOperator, same types
                                                          (QLinearConv & co., com.microsoft ops)
                                            input.npy     the fixed f32 input
                                            <form>.out.npy  onnxruntime's first output for it, f32
                                                          (for qdq and qop: of the reference twin below)
                                            case.json     {"input", "shape", "forms": {<form>:
                                                          {"model", "output", "ops"} or {"error"}}}

Run in a venv pinned by requirements-light.txt; with those pins a re-run on the same machine
rewrites every file byte for byte. The quantization settings are prepare_model.py's (its
quant_pre_process call, library defaults otherwise: per-tensor, MinMax calibration). The static
forms are calibrated on 8 seeded inputs that are regenerated, not saved. A form that fails gets
{"error": ...} in case.json and no files; the others are still written.

The light models build every weight with ConstantOfShape (all 0.02) from IR-3 initializers that
are also graph inputs. quant_pre_process folds them into initializers, and its optimizer's
constant sharing leaves some of the folded shapes behind as graph inputs nothing reads; those are
dropped before quantizing, else the quantized models would require them as inputs.

The static forms' outputs come from a reference twin of the model, not the model itself: every
int8 initializer (the weights and their zero points; activations are u8) becomes uint8 with 128
added. (x - zx)(w - zw) is unchanged, so the twin computes the same integers, but onnxruntime runs
it with its u8u8 kernels. Its u8s8 kernels sum pairs of products in 16 bits (vpmaddubsw) on x86
CPUs without VNNI and saturate there (onnxruntime's "session.x64quantprecision" option makes the
same conversion, but fails to load densenet121): on an AVX2-only machine densenet121's QDQ and
QOperator outputs came out 0.22 from what a VNNI machine (and the engine) computes. With the twin
the expected outputs are exact on every CPU.
"""
import json
import logging
import os
import shutil
import sys
import tempfile
import warnings
import zlib

import numpy as np
import onnx
import onnx.numpy_helper
import onnxruntime as ort
from onnxruntime import quantization as q

LIGHT = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
CALIBRATION_INPUTS = 8


def seed(*parts):
    return zlib.crc32("/".join(parts).encode())


def smooth_input(seed_value, shape):
    """A smooth random image: an 8x8 normal(0,1) grid per channel, bilinearly upsampled, plus a
    little normal noise, clipped to [-3, 3]. Elementwise float64 arithmetic only (no BLAS), so the
    bytes do not depend on the machine."""
    rng = np.random.default_rng(seed_value)
    if len(shape) != 4:
        return np.clip(rng.standard_normal(shape), -3, 3).astype(np.float32)
    n, c, h, w = shape
    grid = 8
    coarse = rng.standard_normal((n, c, grid, grid))

    def axis(size):
        pos = np.linspace(0.0, grid - 1.0, size)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, grid - 1)
        return lo, hi, pos - lo

    ylo, yhi, ty = axis(h)
    xlo, xhi, tx = axis(w)
    rows = coarse[:, :, ylo, :] * (1.0 - ty)[:, None] + coarse[:, :, yhi, :] * ty[:, None]
    image = rows[:, :, :, xlo] * (1.0 - tx) + rows[:, :, :, xhi] * tx
    image = image + 0.25 * rng.standard_normal(shape)
    return np.clip(image, -3.0, 3.0).astype(np.float32)


def graph_input(model):
    """The one input that is not an initializer: its name, and its shape with symbolic dims pinned to 1."""
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise ValueError(f"expected one non-initializer input, got {[i.name for i in inputs]}")
    dims = inputs[0].type.tensor_type.shape.dim
    return inputs[0].name, [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1 for d in dims]


def graphs(graph):
    yield graph
    for n in graph.node:
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                yield from graphs(a.g)
            elif a.type == onnx.AttributeProto.GRAPHS:
                for g in a.graphs:
                    yield from graphs(g)


def ops(path):
    model = onnx.load(path, load_external_data=False)
    return sorted({f"{n.domain or 'ai.onnx'}::{n.op_type}" for g in graphs(model.graph) for n in g.node})


def prune_unread_inputs(path):
    model = onnx.load(path)
    read = {i for g in graphs(model.graph) for n in g.node for i in n.input}
    read |= {o.name for o in model.graph.output}
    unread = [i for i in model.graph.input if i.name not in read]
    for i in unread:
        model.graph.input.remove(i)
    if unread:
        onnx.save(model, path)


class Calibration(q.CalibrationDataReader):
    def __init__(self, name, arrays):
        self.items = iter([{name: a} for a in arrays])

    def get_next(self):
        return next(self.items, None)


def run(model, name, x):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {name: x})[0], dtype=np.float32)


def u8_weights_twin(path, twin):
    """Writes the model at `path` to `twin` with its int8 initializers as uint8 (+128)."""
    model = onnx.load(path)
    for graph in graphs(model.graph):
        for tensor in graph.initializer:
            if tensor.data_type == onnx.TensorProto.INT8:
                values = onnx.numpy_helper.to_array(tensor).astype(np.int16) + 128
                tensor.CopyFrom(onnx.numpy_helper.from_array(values.astype(np.uint8), tensor.name))
    onnx.save(model, twin)


def arch_case(source, directory, arch):
    os.makedirs(directory)
    fp32 = os.path.join(directory, "fp32.onnx")
    shutil.copyfile(source, fp32)
    name, shape = graph_input(onnx.load(fp32))
    x = smooth_input(seed(arch), shape)
    np.save(os.path.join(directory, "input.npy"), x)
    calibration = [smooth_input(seed(arch, "calibration", str(k)), shape) for k in range(CALIBRATION_INPUTS)]

    forms = {}
    with tempfile.TemporaryDirectory(prefix="light-quantized.") as tmp:
        pre = os.path.join(tmp, "pre.onnx")
        pre_error = None
        try:
            q.quant_pre_process(fp32, pre, skip_symbolic_shape=True)
            prune_unread_inputs(pre)
        except Exception as e:  # recorded in case.json for every quantized form
            pre_error = f"quant_pre_process: {type(e).__name__}: {e}"

        def static(fmt):
            return lambda path: q.quantize_static(
                pre, path, Calibration(name, calibration), quant_format=fmt,
                activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8)

        makers = {
            "fp32": None,
            "dyn_u8": lambda path: q.quantize_dynamic(pre, path, weight_type=q.QuantType.QUInt8),
            "qdq": static(q.QuantFormat.QDQ),
            "qop": static(q.QuantFormat.QOperator),
        }
        for form, make in makers.items():
            model = os.path.join(directory, f"{form}.onnx")
            output = f"{form}.out.npy"
            try:
                if make is not None:
                    if pre_error:
                        raise RuntimeError(pre_error)
                    make(model)
                reference = model
                if form in ("qdq", "qop"):
                    reference = os.path.join(tmp, f"{form}.u8_weights.onnx")
                    u8_weights_twin(model, reference)
                np.save(os.path.join(directory, output), run(reference, name, x))
                forms[form] = {"model": f"{form}.onnx", "output": output, "ops": ops(model)}
            except Exception as e:
                for f in (model, os.path.join(directory, output)):
                    if form != "fp32" and os.path.exists(f):
                        os.remove(f)
                forms[form] = {"error": f"{type(e).__name__}: {e}"}
    with open(os.path.join(directory, "case.json"), "w") as f:
        json.dump({"input": name, "shape": shape, "forms": forms}, f, indent=1)
        f.write("\n")
    return forms


def main(out):
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    ort.set_default_logger_severity(3)
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    sources = sorted(f for f in os.listdir(LIGHT) if f.startswith("light_") and f.endswith(".onnx"))
    for source in sources:
        arch = source[len("light_"):-len(".onnx")]
        forms = arch_case(os.path.join(LIGHT, source), os.path.join(out, arch), arch)
        failed = [f for f, v in forms.items() if "error" in v]
        print(f"{arch}: {len(forms) - len(failed)}/{len(forms)} forms" + (f", failed: {failed}" if failed else ""),
              file=sys.stderr, flush=True)
    print(f"{len(sources)} light models written to {out} (onnx {onnx.__version__}, onnxruntime {ort.__version__})")


if __name__ == "__main__":
    main(sys.argv[1])
