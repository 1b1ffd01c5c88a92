#!/usr/bin/env python3
"""Trains the small tabular models of `models/tabular/` and writes their test cases.

  tabular.py [OUT_DIR]          (default: models/tabular next to this repository's tools/)

Every model is trained with fixed seeds on a dataset that ships inside scikit-learn (no
download: breast_cancer, wine, iris, digits, diabetes; BSD-3-Clause), on all of its rows, and
exported to ONNX (ai.onnx 17, ai.onnx.ml 3 at most) with skl2onnx (with onnxmltools'
converters registered for XGBoost and LightGBM). One input `input` f32 [N, F] (N a named
symbolic dimension). Classifiers are exported without ZipMap, so their outputs are plain
tensors: `label` int64 [N] and `probabilities` f32 [N, C]; regressors have one output
`variable` f32 [N, 1].

For each model, OUT_DIR/testdata/<name>/ gets
  in_0.npy         256 rows of the dataset, f32 [256, F] (rows of a seeded permutation,
                   repeated from the start when the dataset has fewer than 256 rows)
  out_0.npy, ...   onnxruntime's outputs on them (one thread, so the sums are in one order)
  labels.npy       scikit-learn's predict() on the same rows: int64 [256] for classifiers,
                   f32 [256, 1] for regressors (predictions.npy)
  case.json        as the other models' cases, plus output_names, classlabels and
                   sklearn_labels (sklearn_predictions for regressors)
and a summary of every model (size, operators, trees, nodes, agreement with scikit-learn) is
printed as JSON.

Run in the pinned environment: python3 -m venv .venv && .venv/bin/pip install -r requirements-tabular.txt
The output is byte-for-byte reproducible with those versions.
"""
import collections
import json
import os
import sys
import warnings

import numpy as np
import onnx
import onnxruntime as ort
from sklearn import datasets
from sklearn.ensemble import (ExtraTreesClassifier, GradientBoostingClassifier, GradientBoostingRegressor,
                              RandomForestClassifier, RandomForestRegressor)
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType

# SVC(probability=True) is deprecated from scikit-learn 1.9 (removed in 1.11) but still what
# skl2onnx exports as one SVMClassifier with Platt scaling; the pinned version has it.
warnings.filterwarnings("ignore", category=FutureWarning, module="sklearn")

SEED = 0
ROWS = 256
OPSET = {"": 17, "ai.onnx.ml": 3}

DATASETS = {
    "breast_cancer": datasets.load_breast_cancer,  # 569 x 30, 2 classes
    "wine": datasets.load_wine,  # 178 x 13, 3 classes
    "iris": datasets.load_iris,  # 150 x 4, 3 classes
    "digits": datasets.load_digits,  # 1797 x 64, 10 classes
    "diabetes": datasets.load_diabetes,  # 442 x 10, regression
}


def xgboost_classifier():
    from xgboost import XGBClassifier
    return XGBClassifier(n_estimators=10, max_depth=3, learning_rate=0.3, random_state=SEED, n_jobs=1,
                         tree_method="hist")


def lightgbm_classifier():
    from lightgbm import LGBMClassifier
    return LGBMClassifier(n_estimators=30, num_leaves=8, max_depth=3, learning_rate=0.1, random_state=SEED,
                          n_jobs=1, deterministic=True, force_row_wise=True, verbose=-1)


# name -> (dataset, estimator factory, converter). Factories, so optional libraries are only
# imported when their model is made.
MODELS = {
    "random_forest": ("breast_cancer",
                      lambda: RandomForestClassifier(n_estimators=50, max_depth=8, random_state=SEED), "skl2onnx"),
    "gradient_boosting": ("wine",
                          lambda: GradientBoostingClassifier(n_estimators=50, max_depth=3, random_state=SEED),
                          "skl2onnx"),
    "gradient_boosting_binary": ("breast_cancer",
                                 lambda: GradientBoostingClassifier(n_estimators=50, max_depth=3,
                                                                    random_state=SEED), "skl2onnx"),
    "svm_pipeline": ("wine", lambda: Pipeline([("scaler", StandardScaler()),
                                               ("svc", SVC(probability=True, random_state=SEED))]), "skl2onnx"),
    "extra_trees": ("digits", lambda: ExtraTreesClassifier(n_estimators=30, max_depth=8, random_state=SEED),
                    "skl2onnx"),
    "logistic_regression": ("iris", lambda: Pipeline([("scaler", StandardScaler()),
                                                      ("logreg", LogisticRegression(max_iter=1000))]), "skl2onnx"),
    "xgboost": ("wine", xgboost_classifier, "xgboost"),
    "lightgbm": ("breast_cancer", lightgbm_classifier, "lightgbm"),
    "random_forest_regressor": ("diabetes",
                                lambda: RandomForestRegressor(n_estimators=20, max_depth=6, random_state=SEED),
                                "skl2onnx"),
    "gradient_boosting_regressor": ("diabetes",
                                    lambda: GradientBoostingRegressor(n_estimators=50, max_depth=3,
                                                                      random_state=SEED), "skl2onnx"),
}


def load(dataset):
    x, y = DATASETS[dataset](return_X_y=True)
    return x.astype(np.float32), y


def test_rows(x):
    """ROWS rows of x: a seeded permutation, repeated when x has fewer rows."""
    order = np.random.default_rng(SEED).permutation(len(x))
    return np.ascontiguousarray(x[order[np.arange(ROWS) % len(x)]], dtype=np.float32)


def register_boosters(converter):
    """Registers onnxmltools' XGBoost/LightGBM converters with skl2onnx (onnxmltools' own entry
    points stop at ai.onnx 15), as skl2onnx's documentation shows."""
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes
    if converter == "xgboost":
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
        from xgboost import XGBClassifier
        update_registered_converter(XGBClassifier, "XGBoostXGBClassifier", calculate_linear_classifier_output_shapes,
                                    convert_xgboost, options={"nocl": [True, False], "zipmap": [True, False]})
    elif converter == "lightgbm":
        from lightgbm import LGBMClassifier
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
        update_registered_converter(LGBMClassifier, "LightGbmLGBMClassifier", calculate_linear_classifier_output_shapes,
                                    convert_lightgbm, options={"nocl": [True, False], "zipmap": [True, False]})


def convert(name, model, converter, features):
    if converter != "skl2onnx":
        register_boosters(converter)
    options = {id(model): {"zipmap": False}} if hasattr(model, "classes_") else None
    onx = convert_sklearn(model, initial_types=[("input", FloatTensorType([None, features]))], target_opset=OPSET,
                          options=options)
    onx.graph.name = name  # skl2onnx names the graph with a random UUID
    # and lists the opsets in set order (which changes with PYTHONHASHSEED)
    opsets = sorted(((o.domain, o.version) for o in onx.opset_import))
    del onx.opset_import[:]
    onx.opset_import.extend(onnx.helper.make_opsetid(d, v) for d, v in opsets)
    # skl2onnx leaves the batch dimension unnamed; name it, as other exporters do.
    for value in list(onx.graph.input) + list(onx.graph.output):
        dim = value.type.tensor_type.shape.dim[0]
        if not dim.HasField("dim_value") and not dim.HasField("dim_param"):
            dim.dim_param = "N"
    onnx.checker.check_model(onx, full_check=True)
    return onx


def tree_facts(m):
    facts = []
    for n in m.graph.node:
        if not n.op_type.startswith("TreeEnsemble"):
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        facts.append({
            "op": f"{n.domain}.{n.op_type}",
            "trees": len(set(attrs["nodes_treeids"])),
            "nodes": len(attrs["nodes_treeids"]),
            "leaves": sum(1 for mode in attrs["nodes_modes"] if mode == b"LEAF"),
            "post_transform": attrs.get("post_transform", b"NONE").decode(),
            # absent means the default, SUM
            "aggregate_function": attrs["aggregate_function"].decode() if "aggregate_function" in attrs
            else ("SUM (default)" if n.op_type == "TreeEnsembleRegressor" else None),
            "base_values": [float(v) for v in attrs.get("base_values", [])],
        })
    return facts


def other_facts(m):
    out = []
    for n in m.graph.node:
        if n.op_type in ("SVMClassifier", "LinearClassifier", "Normalizer", "Scaler"):
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
            f = {"op": f"{n.domain}.{n.op_type}"}
            for k in ("post_transform", "kernel_type", "norm", "multi_class"):
                if k in attrs:
                    v = attrs[k]
                    f[k] = v.decode() if isinstance(v, bytes) else v
            if "vectors_per_class" in attrs:
                f["support_vectors"] = int(sum(attrs["vectors_per_class"]))
            out.append(f)
    return out


def make(name, out_dir):
    dataset, factory, converter = MODELS[name]
    x, y = load(dataset)
    model = factory()
    model.fit(x, y)
    onx = convert(name, model, converter, x.shape[1])
    path = os.path.join(out_dir, f"{name}.onnx")
    onnx.save(onx, path)

    rows = test_rows(x)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"], session.get_inputs()
    output_names = [o.name for o in session.get_outputs()]
    outputs = session.run(None, {"input": rows})

    case_dir = os.path.join(out_dir, "testdata", name)
    os.makedirs(case_dir, exist_ok=True)
    np.save(os.path.join(case_dir, "in_0.npy"), rows)
    for i, o in enumerate(outputs):
        np.save(os.path.join(case_dir, f"out_{i}.npy"), o)
    case = {
        "model": f"../../{name}.onnx",
        "inputs": ["in_0.npy"],
        "outputs": [f"out_{i}.npy" for i in range(len(outputs))],
        "input_names": ["input"],
        "input_shapes": [list(rows.shape)],
        "variant": "fp32",
        "output_names": output_names,
    }
    summary = {"name": name, "dataset": dataset, "estimator": type(model).__name__,
               "bytes": os.path.getsize(path), "input": [None, x.shape[1]],
               "outputs": {n: [str(o.dtype), list(o.shape)] for n, o in zip(output_names, outputs)}}
    classifier = hasattr(model, "classes_")
    if classifier:
        expected = model.predict(rows).astype(np.int64)
        np.save(os.path.join(case_dir, "labels.npy"), expected)
        case["classlabels"] = [int(c) for c in model.classes_]
        case["sklearn_labels"] = "labels.npy"
        label = outputs[output_names.index("label")]
        probabilities = outputs[output_names.index("probabilities")]
        summary["classes"] = len(model.classes_)
        summary["label_mismatches_vs_sklearn"] = int((label != expected).sum())
        summary["label_vs_argmax_probabilities_mismatches"] = int(
            (label != model.classes_[probabilities.argmax(1)]).sum())
        summary["probabilities_max_abs_vs_sklearn"] = float(np.abs(probabilities - model.predict_proba(rows)).max())
    else:
        expected = model.predict(rows).astype(np.float32).reshape(-1, 1)
        np.save(os.path.join(case_dir, "predictions.npy"), expected)
        case["sklearn_predictions"] = "predictions.npy"
        summary["variable_max_abs_vs_sklearn"] = float(np.abs(outputs[0] - expected).max())
    with open(os.path.join(case_dir, "case.json"), "w") as f:
        json.dump(case, f, indent=1)

    summary["opset_import"] = {o.domain or "ai.onnx": o.version for o in onx.opset_import}
    summary["operators"] = dict(collections.Counter(f"{n.domain or 'ai.onnx'}.{n.op_type}" for n in onx.graph.node))
    summary["tree_ensembles"] = tree_facts(onx)
    summary["other_ml_nodes"] = other_facts(onx)
    return summary


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "..", "models", "tabular")
    os.makedirs(out_dir, exist_ok=True)
    summaries = [make(name, out_dir) for name in MODELS]
    json.dump(summaries, sys.stdout, indent=1)
    print()
    return 1 if any(s.get("label_mismatches_vs_sklearn") for s in summaries) else 0


if __name__ == "__main__":
    sys.exit(main())
