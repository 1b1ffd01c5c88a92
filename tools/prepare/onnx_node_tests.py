#!/usr/bin/env python3
"""Writes the ONNX backend node tests (the `onnx` package's own generators; its wheel ships no
node data) for the engine's conformance test.

  onnx_node_tests.py OUT_DIR    -> OUT_DIR/<test>/model.onnx, test_data_set_<k>/{input,output}_<i>.pb

Run by scripts/onnx-node-tests.sh in a venv pinned by requirements-conformance.txt. A test
whose inputs or outputs are not plain tensors (sequences, maps, optionals) gets a file
`not_tensors` instead of its data: the engine takes tensors only, so it counts as failing.
"""
import os
import shutil
import sys
import warnings

import numpy as np
import onnx
from onnx import numpy_helper
from onnx.backend.test.case import node


def is_tensor(value_info):
    return value_info.type.HasField("tensor_type")


def tensor_proto(value, name):
    if isinstance(value, onnx.TensorProto):
        return value
    return numpy_helper.from_array(np.asarray(value), name)


def main(out):
    warnings.simplefilter("ignore")
    np.seterr(all="ignore")
    if os.path.exists(out):
        shutil.rmtree(out)
    cases = node.collect_testcases(None)
    for case in cases:
        directory = os.path.join(out, case.name)
        os.makedirs(directory)
        with open(os.path.join(directory, "model.onnx"), "wb") as f:
            f.write(case.model.SerializeToString())
        graph = case.model.graph
        if not all(is_tensor(v) for v in list(graph.input) + list(graph.output)):
            open(os.path.join(directory, "not_tensors"), "w").close()
            continue
        try:
            data_sets = [
                [(kind, i, tensor_proto(value, infos[i].name))
                 for kind, values, infos in (("input", inputs, graph.input), ("output", outputs, graph.output))
                 for i, value in enumerate(values)]
                for inputs, outputs in case.data_sets
            ]
        except (NotImplementedError, TypeError, ValueError):
            open(os.path.join(directory, "not_tensors"), "w").close()
            continue
        with open(os.path.join(directory, "tolerance"), "w") as f:
            f.write(f"{case.rtol} {case.atol}\n")
        for k, tensors in enumerate(data_sets):
            data = os.path.join(directory, f"test_data_set_{k}")
            os.makedirs(data)
            for kind, i, tensor in tensors:
                with open(os.path.join(data, f"{kind}_{i}.pb"), "wb") as f:
                    f.write(tensor.SerializeToString())
    print(f"{len(cases)} node tests written to {out} (onnx {onnx.__version__})")


if __name__ == "__main__":
    main(sys.argv[1])
