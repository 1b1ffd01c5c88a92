#!/usr/bin/env python3
"""Writes the test cases of models/rapidocr_rec: one per input width.

  rapidocr_rec_cases.py [MODEL_DIR]     (default: models/rapidocr_rec next to tools/)

For W in 160, 320 and 480, MODEL_DIR/testdata/w<W>/ gets in_0.npy, a synthetic smooth pattern
(four seeded random sinusoids per channel plus a little noise, seed W) scaled into [-1, 1],
f32 [1, 3, 48, W]; out_0.npy, onnxruntime's output for it, f32 [1, W/8, 6625]; and case.json.

Run in the pinned environment of requirements.txt (onnxruntime 1.32.0).
"""
import json
import os
import sys

import numpy as np
import onnxruntime as ort

MODEL = "ch_PP-OCRv4_rec_infer.onnx"
HEIGHT = 48
WIDTHS = (160, 320, 480)


def pattern(width, seed):
    rng = np.random.default_rng(seed)
    y, x = np.meshgrid(np.linspace(0, 1, HEIGHT), np.linspace(0, 1, width), indexing="ij")
    img = np.zeros((3, HEIGHT, width))
    for c in range(3):
        for _ in range(4):
            fy, fx = rng.uniform(0.5, 3), rng.uniform(0.5, 3) * width / HEIGHT
            img[c] += rng.uniform(0.3, 1) * np.sin(2 * np.pi * (fy * y + fx * x) + rng.uniform(0, 2 * np.pi))
        img[c] += 0.1 * rng.standard_normal((HEIGHT, width))
    img /= np.abs(img).max()
    return img[None].astype(np.float32)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    model_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "..", "models", "rapidocr_rec")
    session = ort.InferenceSession(os.path.join(model_dir, MODEL), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    for width in WIDTHS:
        case_dir = os.path.join(model_dir, "testdata", f"w{width}")
        os.makedirs(case_dir, exist_ok=True)
        x = pattern(width, width)
        outputs = session.run(None, {name: x})
        np.save(os.path.join(case_dir, "in_0.npy"), x)
        for i, o in enumerate(outputs):
            np.save(os.path.join(case_dir, f"out_{i}.npy"), o)
        case = {"model": f"../../{MODEL}", "inputs": ["in_0.npy"],
                "outputs": [f"out_{i}.npy" for i in range(len(outputs))], "input_names": [name],
                "input_shapes": [list(x.shape)], "variant": "fp32",
                "output_names": [o.name for o in session.get_outputs()]}
        with open(os.path.join(case_dir, "case.json"), "w") as f:
            json.dump(case, f, indent=1)
        print(case_dir, x.shape, [o.shape for o in outputs])


if __name__ == "__main__":
    sys.exit(main())
