"""Models the interop tests serve, made in the test session (no downloads).

Every model is a folder `<name>/<version>/model.onnx` (+ optional
`<name>/config.json`), written by `build_zoo(dir)`. `CASES` describes the
correctness cases: which model, which inputs to feed it.

scikit-learn models are trained on data sklearn ships and exported with
skl2onnx (zipmap off); the rest are written with onnx.helper from fixed random
weights. Only operators in Swerve's subset appear, except in the models that
exist to be rejected (`unsupported_conv`, `broken`).
"""
from __future__ import annotations

import json
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "repository"

OPSET = 13
ML_OPSET = 1
ALLOWED_OPS = {
    "Scaler", "LinearClassifier", "Normalizer", "Cast", "ArgMax",
    "ArrayFeatureExtractor", "Gemm", "MatMul", "Add", "Sub", "Mul", "Div",
    "Relu", "Sigmoid", "Tanh", "Softmax", "Flatten", "Reshape", "Identity",
    "Concat", "LeakyRelu", "LinearRegressor",
}

# Heavy model: HEAVY_DEPTH chained [*, 1024] x [1024, 1024] MatMuls (+Tanh).
HEAVY_WIDTH = 1024
HEAVY_DEPTH = 24
WIDE_WIDTH = 1024


def default_config(max_batch_size: int = 64, **extra) -> dict:
    cfg = {
        "max_batch_size": max_batch_size,
        "dynamic_batching": {"max_queue_delay_us": 500, "max_queue_size": 1024},
        "version_policy": {"latest": {"num_versions": 1}},
        "instance_count": 1,
    }
    cfg.update(extra)
    return cfg


@dataclass
class Case:
    """A correctness case: model name in the repository + input generator."""
    model: str
    input_name: str
    make_inputs: Callable[[int], np.ndarray]  # batch size -> rows
    labels: tuple[str, ...] = ()               # integer outputs compared exactly


@dataclass
class Zoo:
    root: Path
    cases: dict[str, Case] = field(default_factory=dict)

    def path(self, model: str, version: int = 1) -> Path:
        return self.root / model / str(version) / "model.onnx"


# --------------------------------------------------------------------------
# writing


def _save(root: Path, name: str, model: onnx.ModelProto | bytes, version: int = 1,
          config: dict | None = None, metadata: dict | None = None) -> Path:
    folder = root / name / str(version)
    folder.mkdir(parents=True, exist_ok=True)
    data = model if isinstance(model, bytes) else model.SerializeToString()
    (folder / "model.onnx").write_bytes(data)
    if config is not None:
        (root / name / "config.json").write_text(json.dumps(config, indent=2))
    if metadata is not None:
        (folder / "metadata.json").write_text(json.dumps(metadata, indent=2))
    return folder / "model.onnx"


def _check_ops(name: str, model: onnx.ModelProto) -> None:
    ops = {n.op_type for n in model.graph.node}
    bad = ops - ALLOWED_OPS
    assert not bad, f"{name}: exporter emitted unsupported ops {sorted(bad)}"


def _finish(model: onnx.ModelProto, name: str) -> onnx.ModelProto:
    model.graph.name = name
    onnx.checker.check_model(model)
    return model


def _helper_model(name: str, nodes, inputs, outputs, initializers) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, name, inputs, outputs, initializers)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="swerve-interop")
    model.ir_version = 7
    return _finish(model, name)


def _f32(rng: np.random.Generator, *shape, scale=1.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


# --------------------------------------------------------------------------
# onnx.helper models


def dense_network(seed: int = 7) -> onnx.ModelProto:
    """[N,16] -> logits/probs/gate [N,8]; covers most of the op subset."""
    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array(_f32(rng, 32, 16, scale=0.4), "W1"),   # raw_data
        helper.make_tensor("b1", TensorProto.FLOAT, [32], _f32(rng, 32, scale=0.1).tolist()),  # float_data
        numpy_helper.from_array(_f32(rng, 32, 32, scale=0.25), "W2"),
        numpy_helper.from_array(_f32(rng, 32, scale=0.1), "b2"),
        numpy_helper.from_array(np.float32(1.5).reshape(()), "s"),
        numpy_helper.from_array(_f32(rng, 32, scale=0.2), "c"),
        numpy_helper.from_array((np.abs(_f32(rng, 32)) + 0.5).astype(np.float32), "d"),
        numpy_helper.from_array(_f32(rng, 64, 8, scale=0.3), "W3"),
        numpy_helper.from_array(_f32(rng, 8, scale=0.1), "b3"),
        numpy_helper.from_array(np.array([-1, 2, 4], dtype=np.int64), "shape3"),
    ]
    nodes = [
        helper.make_node("Gemm", ["x", "W1", "b1"], ["g1"], transB=1),
        helper.make_node("Relu", ["g1"], ["h1"]),
        helper.make_node("MatMul", ["h1", "W2"], ["m2"]),
        helper.make_node("Add", ["m2", "b2"], ["a2"]),
        helper.make_node("Tanh", ["a2"], ["h2"]),
        helper.make_node("Mul", ["h2", "s"], ["p3"]),
        helper.make_node("Sub", ["p3", "c"], ["q3"]),
        helper.make_node("LeakyRelu", ["q3"], ["r3"], alpha=0.1),
        helper.make_node("Div", ["r3", "d"], ["h3"]),
        helper.make_node("Concat", ["h3", "h1"], ["cat"], axis=1),
        helper.make_node("Gemm", ["cat", "W3", "b3"], ["g4"], alpha=0.5, beta=1.0),
        helper.make_node("Identity", ["g4"], ["logits"]),
        helper.make_node("Softmax", ["g4"], ["probs"], axis=1),
        helper.make_node("Sigmoid", ["g4"], ["sig"]),
        helper.make_node("Reshape", ["sig", "shape3"], ["sig3"]),
        helper.make_node("Flatten", ["sig3"], ["gate"], axis=1),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 8])
            for n in ("logits", "probs", "gate")]
    return _helper_model("dense", nodes, [x], outs, inits)


def heavy_network(depth: int = HEAVY_DEPTH, width: int = HEAVY_WIDTH, seed: int = 3) -> onnx.ModelProto:
    """[N,width] -> y [N,4]: `depth` chained MatMul(width x width)+Tanh. Slow on purpose."""
    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array(_f32(rng, width, width, scale=1.0 / np.sqrt(width)), "W"),
        numpy_helper.from_array(_f32(rng, width, 4, scale=0.05), "Wout"),
        numpy_helper.from_array(_f32(rng, 4, scale=0.1), "bout"),
    ]
    nodes, prev = [], "x"
    for i in range(depth):
        nodes.append(helper.make_node("MatMul", [prev, "W"], [f"m{i}"]))
        nodes.append(helper.make_node("Tanh", [f"m{i}"], [f"t{i}"]))
        prev = f"t{i}"
    nodes.append(helper.make_node("Gemm", [prev, "Wout", "bout"], ["y"]))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", width])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    return _helper_model("heavy", nodes, [x], [y], inits)


def wide_network(width: int = WIDE_WIDTH, seed: int = 5) -> onnx.ModelProto:
    """[N,width] -> y [N,4]: cheap but with wide rows (message-size tests)."""
    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array(_f32(rng, 4, width, scale=0.03), "W"),
        numpy_helper.from_array(_f32(rng, 4, scale=0.1), "b"),
    ]
    nodes = [helper.make_node("Gemm", ["x", "W", "b"], ["y"], transB=1)]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", width])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    return _helper_model("wide", nodes, [x], [y], inits)


def echo_network(width: int = WIDE_WIDTH) -> onnx.ModelProto:
    """[N,width] -> y = x (Identity), r = Relu(x): responses as large as requests."""
    nodes = [helper.make_node("Identity", ["x"], ["y"]), helper.make_node("Relu", ["x"], ["r"])]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", width])
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", width]) for n in ("y", "r")]
    return _helper_model("echo", nodes, [x], outs, [])


def add_constant(value: float, name: str = "versioned") -> onnx.ModelProto:
    """[N,4] -> y = x + value. The versioned models use value = version."""
    inits = [numpy_helper.from_array(np.full([4], value, dtype=np.float32), "c")]
    nodes = [helper.make_node("Add", ["x", "c"], ["y"])]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    return _helper_model(name, nodes, [x], [y], inits)


def two_inputs() -> onnx.ModelProto:
    """a [N,4], b [N,3] -> y = a*2 [N,4] and z = Concat(a, b) [N,7]: input order tests."""
    inits = [numpy_helper.from_array(np.full([4], 2.0, dtype=np.float32), "two")]
    nodes = [
        helper.make_node("Mul", ["a", "two"], ["y"]),
        helper.make_node("Concat", ["a", "b"], ["z"], axis=1),
    ]
    ins = [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 4]),
           helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", 3])]
    outs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4]),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 7])]
    return _helper_model("two_inputs", nodes, ins, outs, inits)


def conv_network() -> onnx.ModelProto:
    """Uses Conv, which Swerve does not implement: must be rejected at load."""
    w = numpy_helper.from_array(np.ones([2, 1, 3, 3], dtype=np.float32), "W")
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["c"], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c"], ["y"]),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, 6, 6])
    return _helper_model("unsupported_conv", nodes, [x], [y], [w])


# --------------------------------------------------------------------------
# scikit-learn models


def _sklearn_models():
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn import datasets
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    bc = datasets.load_breast_cancer()
    iris = datasets.load_iris()
    wine = datasets.load_wine()
    diabetes = datasets.load_diabetes()

    specs = {
        # name: (estimator, dataset, classifier?)
        "logreg_binary": (LogisticRegression(max_iter=5000, random_state=0), bc, True),
        "logreg_multiclass": (LogisticRegression(max_iter=2000, random_state=0), iris, True),
        "scaler_logreg": (make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=0)),
                          wine, True),
        "linreg": (LinearRegression(), diabetes, False),
        "mlp_classifier": (make_pipeline(StandardScaler(), MLPClassifier(
            hidden_layer_sizes=(32, 16), max_iter=500, random_state=0)), bc, True),
        "mlp_classifier_tanh": (make_pipeline(StandardScaler(), MLPClassifier(
            hidden_layer_sizes=(32,), activation="tanh", max_iter=500, random_state=0)), wine, True),
        "mlp_regressor": (make_pipeline(StandardScaler(), MLPRegressor(
            hidden_layer_sizes=(32,), max_iter=500, random_state=0)), diabetes, False),
        "mlp_regressor_logistic": (MLPRegressor(
            hidden_layer_sizes=(16,), activation="logistic", max_iter=300, random_state=0), diabetes, False),
    }
    out = {}
    for name, (est, data, is_clf) in specs.items():
        x = data.data.astype(np.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(x, data.target)
        model = convert_sklearn(
            est,
            initial_types=[("input", FloatTensorType([None, x.shape[1]]))],
            options={id(est): {"zipmap": False}} if is_clf else None,
            target_opset={"": OPSET, "ai.onnx.ml": ML_OPSET},
        )
        _check_ops(name, model)
        out[name] = (_finish(model, name), x, is_clf)
    return out


def _rows(data: np.ndarray, seed: int) -> Callable[[int], np.ndarray]:
    """Batch generator drawing real dataset rows (with replacement if needed)."""
    def make(batch: int) -> np.ndarray:
        rng = np.random.default_rng(seed * 1000 + batch)
        idx = rng.choice(len(data), size=batch, replace=batch > len(data))
        return np.ascontiguousarray(data[idx], dtype=np.float32)
    return make


def _normal(width: int, seed: int) -> Callable[[int], np.ndarray]:
    def make(batch: int) -> np.ndarray:
        return np.random.default_rng(seed * 1000 + batch).standard_normal((batch, width)).astype(np.float32)
    return make


# --------------------------------------------------------------------------
# the zoo


def build_zoo(root: Path) -> Zoo:
    """Writes every test model under `root` (one folder per model)."""
    root.mkdir(parents=True, exist_ok=True)
    zoo = Zoo(root)

    for i, (name, (model, x, is_clf)) in enumerate(_sklearn_models().items()):
        _save(root, name, model, config=default_config())
        zoo.cases[name] = Case(name, "input", _rows(x, i + 1), ("label",) if is_clf else ())

    _save(root, "dense", dense_network(), config=default_config())
    zoo.cases["dense"] = Case("dense", "x", _normal(16, 99))
    # The same network pinned to each place computed requests can run (config "execution"),
    # for tests whose outcome depends on whether a response is made on the read path.
    _save(root, "dense_workers", dense_network(), config={**default_config(), "execution": "workers"})
    _save(root, "dense_inline", dense_network(), config={**default_config(), "execution": "inline"})

    _save(root, "two_inputs", two_inputs(), config=default_config())

    # Same network, no config.json: everything derived from the ONNX file.
    _save(root, "dense_noconfig", dense_network())

    _save(root, "heavy", heavy_network(), config=default_config(max_batch_size=64))
    _save(root, "wide", wide_network(), config={"max_batch_size": 2048})
    _save(root, "echo", echo_network(), config={"max_batch_size": 1024})

    for v in (1, 2, 3):
        _save(root, "versioned_latest2", add_constant(v), v,
              config={"max_batch_size": 8, "version_policy": {"latest": {"num_versions": 2}}})
        _save(root, "versioned_all", add_constant(v), v,
              config={"max_batch_size": 8, "version_policy": {"all": {}}})
        _save(root, "versioned_specific", add_constant(v), v,
              config={"max_batch_size": 8, "version_policy": {"specific": {"versions": [1, 3]}}})
        _save(root, "versioned_default", add_constant(v), v)
    # Folders that are not versions are ignored; so is 0 (versions are positive).
    _save(root, "versioned_all", add_constant(0), 0)
    for name in ("versioned_latest2", "versioned_all"):
        (root / name / "notes").mkdir()
        (root / name / "notes" / "README.txt").write_text("not a version\n")
        (root / name / "README.md").write_text("not a version either\n")

    _save(root, "unsupported_conv", conv_network(), config=default_config())
    _save(root, "broken", b"\x08\x07this is not an ONNX protobuf\xff\xff\xff\xff", config=default_config())

    for example in ("breast_cancer_logreg", "digits_mlp"):
        shutil.copytree(EXAMPLES / example, root / example)
        inputs = {"breast_cancer_logreg": _breast_cancer_rows, "digits_mlp": _digits_rows}[example]()
        zoo.cases[example] = Case(example, "input", inputs, ("label",))
    return zoo


def _breast_cancer_rows():
    from sklearn.datasets import load_breast_cancer
    return _rows(load_breast_cancer().data.astype(np.float32), 101)


def _digits_rows():
    from sklearn.datasets import load_digits
    return _rows((load_digits().data / 16.0).astype(np.float32), 102)


def make_repository(zoo: Zoo, dest: Path, models: list[str]) -> Path:
    """Copies the named zoo models into a fresh repository folder `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    for m in models:
        shutil.copytree(zoo.root / m, dest / m)
    return dest


GOOD_MODELS = [
    "logreg_binary", "logreg_multiclass", "scaler_logreg", "linreg", "mlp_classifier",
    "mlp_classifier_tanh", "mlp_regressor", "mlp_regressor_logistic", "dense", "dense_noconfig",
    "two_inputs", "echo",
    "heavy", "wide", "versioned_latest2", "versioned_all", "versioned_specific",
    "versioned_default", "breast_cancer_logreg", "digits_mlp",
]
BAD_MODELS = ["unsupported_conv", "broken"]
