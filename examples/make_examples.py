#!/usr/bin/env python3
"""Regenerates examples/repository: small ONNX models trained on data that
scikit-learn ships (no downloads), each with config.json and metadata.json.

    .venv/bin/python examples/make_examples.py   (or: make examples)

Deterministic: fixed random_state everywhere. Swerve's ONNX subset is small, so
every exported graph is checked against ALLOWED_OPS and the script fails if
skl2onnx emitted anything else.
"""
from __future__ import annotations

import datetime as _dt
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import sklearn
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

ROOT = Path(__file__).resolve().parent
REPO = ROOT / "repository"
TARGET_OPSET = {"": 13, "ai.onnx.ml": 1}
ALLOWED_OPS = {
    "OneHotEncoder", "Gather", "LabelEncoder", "CategoryMapper", "Binarizer", "Equal", "Where",
    "Unsqueeze", "Squeeze",
    "Scaler", "LinearClassifier", "Normalizer", "Cast", "ArgMax",
    "ArrayFeatureExtractor", "Gemm", "MatMul", "Add", "Sub", "Mul", "Div",
    "Relu", "Sigmoid", "Tanh", "Softmax", "Flatten", "Reshape", "Identity",
    "Concat", "LeakyRelu", "LinearRegressor",
}


def op_types(model: onnx.ModelProto) -> list[str]:
    return sorted({n.op_type for n in model.graph.node})


def export(estimator, n_features: int, name: str) -> onnx.ModelProto:
    model = convert_sklearn(
        estimator,
        initial_types=[("input", FloatTensorType([None, n_features]))],
        options={id(estimator): {"zipmap": False}},
        target_opset=TARGET_OPSET,
    )
    return finish_export(model, name)


def finish_export(model: onnx.ModelProto, name: str) -> onnx.ModelProto:
    """Makes an exported graph reproducible and checks it stays inside Swerve's operator subset."""
    model.producer_name = "swerve-examples"
    model.graph.name = name  # skl2onnx picks a random uuid: keep files reproducible
    # skl2onnx can list the default domain twice; keep one entry per domain.
    seen = {}
    for imp in model.opset_import:
        seen[imp.domain] = max(seen.get(imp.domain, 0), imp.version)
    del model.opset_import[:]
    for domain, version in sorted(seen.items()):
        model.opset_import.add(domain=domain, version=version)
    model.doc_string = ""
    bad = set(op_types(model)) - ALLOWED_OPS
    if bad:
        raise SystemExit(f"exported graph uses ops outside Swerve's subset: {sorted(bad)}")
    onnx.checker.check_model(model)
    return model


def write_model(name: str, model: onnx.ModelProto, config: dict, metadata: dict) -> None:
    folder = REPO / name
    old_meta = folder / "1" / "metadata.json"
    old_model = folder / "1" / "model.onnx"
    if (old_meta.exists() and old_model.exists()
            and old_model.read_bytes() == model.SerializeToString()):
        # Same bytes as before: keep the original creation time (no churn in git).
        metadata = dict(metadata, created=json.loads(old_meta.read_text()).get("created", metadata["created"]))
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "1").mkdir(parents=True)
    (folder / "1" / "model.onnx").write_bytes(model.SerializeToString())
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (folder / "1" / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
    size = (folder / "1" / "model.onnx").stat().st_size
    print(f"{name}: ops {op_types(model)}; {size} bytes; holdout accuracy "
          f"{metadata['holdout_accuracy']:.4f}")


def io_desc(model: onnx.ModelProto) -> list[str]:
    return [f"{o.name}" for o in model.graph.output]


def metadata(dataset: str, rows: int, train_rows: int, test_rows: int, acc: float) -> dict:
    return {
        "trainer": "examples/make_examples.py",
        "dataset": dataset,
        "rows": rows,
        "train_rows": train_rows,
        "holdout_rows": test_rows,
        "sklearn_version": sklearn.__version__,
        "holdout_accuracy": round(float(acc), 6),
        "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
    }


KSERVE_TYPES = {onnx.TensorProto.FLOAT: "FP32", onnx.TensorProto.INT64: "INT64", onnx.TensorProto.STRING: "BYTES"}


def tensor_desc(value: onnx.ValueInfoProto) -> dict:
    t = value.type.tensor_type
    shape = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
    return {"name": value.name, "datatype": KSERVE_TYPES[t.elem_type], "shape": shape}


def config(model: onnx.ModelProto) -> dict:
    return {
        "max_batch_size": 64,
        "dynamic_batching": {"max_queue_delay_us": 500, "max_queue_size": 1024},
        "version_policy": {"latest": {"num_versions": 1}},
        "instance_count": 1,
        "inputs": [tensor_desc(v) for v in model.graph.input],
        "outputs": [tensor_desc(v) for v in model.graph.output],
    }


def breast_cancer_logreg() -> None:
    data = load_breast_cancer()
    x = data.data.astype(np.float32)
    y = data.target
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    pipe = Pipeline([
        ("scaler", StandardScaler()),
        ("logreg", LogisticRegression(max_iter=1000, random_state=0)),
    ])
    pipe.fit(xtr, ytr)
    acc = pipe.score(xte, yte)
    model = export(pipe, x.shape[1], "breast_cancer_logreg")
    # Output names are part of the contract the config declares.
    assert [o.name for o in model.graph.output] == ["label", "probabilities"], io_desc(model)
    check_against_sklearn(model, pipe, xte)
    write_model("breast_cancer_logreg", model, config(model),
                metadata("sklearn.datasets.load_breast_cancer", len(x), len(xtr), len(xte), acc))


def digits_mlp() -> None:
    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    mlp = MLPClassifier(hidden_layer_sizes=(256, 256), max_iter=300, random_state=0)
    mlp.fit(xtr, ytr)
    acc = mlp.score(xte, yte)
    model = export(mlp, x.shape[1], "digits_mlp")
    assert [o.name for o in model.graph.output] == ["label", "probabilities"], io_desc(model)
    check_against_sklearn(model, mlp, xte)
    write_model("digits_mlp", model, config(model),
                metadata("sklearn.datasets.load_digits (pixels / 16)", len(x), len(xtr), len(xte), acc))


DEVICES = ["mobile", "desktop", "tablet"]
COUNTRIES = ["us", "de", "fr", "jp", "br", "in", "gb", "ca"]
AD_CATEGORIES = ["fashion", "sports", "travel", "tech", "food", "games"]


def ad_conversion_onehot() -> None:
    """A model over categorical features only, so Swerve serves it from a static table:
    synthetic ad-click events (device, country, ad category) → converted or not, through
    OneHotEncoder(handle_unknown="ignore") + LogisticRegression. Unseen categories are valid
    inputs: they one-hot to zeros, as in scikit-learn."""
    from skl2onnx.common.data_types import StringTensorType
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(7)
    n = 20000
    dev = rng.choice(len(DEVICES), n, p=[0.6, 0.3, 0.1])
    cty = rng.choice(len(COUNTRIES), n)
    cat = rng.choice(len(AD_CATEGORIES), n)
    # Conversion depends on the combination (fashion on mobile in some countries, tech on desktop...).
    logit = (-2.0 + 0.8 * (dev == 0) * (cat == 0) + 0.6 * (dev == 1) * (cat == 3)
             + 0.3 * np.isin(cty, [0, 6, 7]) + 0.4 * (cat == 2) * np.isin(cty, [1, 2]) - 0.5 * (dev == 2))
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    x = np.stack([np.array(DEVICES)[dev], np.array(COUNTRIES)[cty], np.array(AD_CATEGORIES)[cat]], axis=1).astype(object)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    pipe = Pipeline([
        ("onehot", OneHotEncoder(handle_unknown="ignore")),
        ("logreg", LogisticRegression(max_iter=1000, random_state=0)),
    ])
    pipe.fit(xtr, ytr)
    acc = pipe.score(xte, yte)
    model = convert_sklearn(
        pipe, initial_types=[("input", StringTensorType([None, 3]))],
        options={id(pipe.steps[-1][1]): {"zipmap": False}}, target_opset=TARGET_OPSET)
    model = finish_export(model, "ad_conversion_onehot")
    assert [o.name for o in model.graph.output] == ["label", "probabilities"], io_desc(model)
    check_against_sklearn(model, pipe, xte)
    cfg = config(model)
    cfg["serving_mode"] = "auto"
    meta = metadata("synthetic ad-click events (seed 7): device, country, ad category", n, len(xtr), len(xte), acc)
    meta["domain"] = {"device": DEVICES, "country": COUNTRIES, "ad_category": AD_CATEGORIES}
    write_model("ad_conversion_onehot", model, cfg, meta)


def check_against_sklearn(model: onnx.ModelProto, estimator, x: np.ndarray) -> None:
    """onnxruntime on the exported graph must agree with scikit-learn."""
    try:
        import onnxruntime as ort
    except ImportError:  # the check is a courtesy; export does not need it
        return
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    label, proba = sess.run(None, {"input": x})
    agree = float(np.mean(label == estimator.predict(x)))
    if agree < 0.99:
        raise SystemExit(f"onnxruntime and scikit-learn disagree on {1 - agree:.1%} of rows")
    np.testing.assert_allclose(proba, estimator.predict_proba(x), rtol=1e-3, atol=1e-4)


def main() -> int:
    REPO.mkdir(exist_ok=True)
    breast_cancer_logreg()
    digits_mlp()
    ad_conversion_onehot()
    return 0


if __name__ == "__main__":
    sys.exit(main())
