#!/usr/bin/env python3
"""Builds the ONNX fixtures for Tests/SwerveInferenceTests and records onnxruntime's outputs.

Each fixture is <name>.onnx plus <name>.json holding an input batch and onnxruntime's outputs:
  {"model": "<name>.onnx", "inputs": [{"name", "dtype", "shape", "data"}], "outputs": [...]}
dtype is the KServe name (FP32, FP64, INT64, BYTES); data is flat, row-major.

Run with the project venv:  .venv/bin/python scripts/make_test_onnx.py
"""
import json
import os
import warnings

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

warnings.filterwarnings("ignore")

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "SwerveInferenceTests", "Fixtures")
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
BATCH = 12

DTYPES = {"float32": "FP32", "float64": "FP64", "int64": "INT64", "int32": "INT32", "bool": "BOOL"}


def tensor_json(name, array):
    array = np.asarray(array)
    if array.dtype.kind in ("U", "S", "O"):
        return {"name": name, "dtype": "BYTES", "shape": list(array.shape),
                "data": [x.decode() if isinstance(x, bytes) else str(x) for x in array.reshape(-1)]}
    dtype = DTYPES[array.dtype.name]
    data = array.reshape(-1).tolist()
    if dtype == "BOOL":
        data = [bool(x) for x in data]
    return {"name": name, "dtype": dtype, "shape": list(array.shape), "data": data}


def save(name, model, feeds):
    os.makedirs(OUT, exist_ok=True)
    onnx.checker.check_model(model)
    data = model.SerializeToString()
    with open(os.path.join(OUT, name + ".onnx"), "wb") as f:
        f.write(data)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    results = session.run(names, feeds)
    record = {
        "model": name + ".onnx",
        "inputs": [tensor_json(k, v) for k, v in feeds.items()],
        "outputs": [tensor_json(n, r) for n, r in zip(names, results)],
    }
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump(record, f, separators=(",", ":"))
    ops = sorted({(n.domain, n.op_type) for n in model.graph.node})
    print(f"{name}: {len(data)} bytes, ops {ops}")


def sklearn_models():
    from skl2onnx import to_onnx
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(7)
    cancer = load_breast_cancer()
    iris = load_iris()
    diabetes = load_diabetes()

    def batch(x):
        idx = rng.choice(len(x), BATCH, replace=False)
        return x[idx].astype(np.float32)

    def convert(model, x):
        return to_onnx(model, x[:1].astype(np.float32), target_opset=TARGET_OPSET,
                       options={id(model): {"zipmap": False}} if hasattr(model, "predict_proba") else None)

    xc, yc = cancer.data.astype(np.float32), cancer.target
    lr = LogisticRegression(max_iter=5000).fit(xc, yc)
    save("lr_binary", convert(lr, xc), {"X": batch(xc)})

    xi, yi = iris.data.astype(np.float32), iris.target
    lr3 = LogisticRegression(max_iter=1000).fit(xi, yi)
    save("lr_multiclass", convert(lr3, xi), {"X": batch(xi)})

    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(xc, yc)
    onx = to_onnx(pipe, xc[:1], target_opset=TARGET_OPSET, options={"zipmap": False})
    save("scaler_lr_pipeline", onx, {"X": batch(xc)})

    xd, yd = diabetes.data.astype(np.float32), diabetes.target
    reg = LinearRegression().fit(xd, yd)
    save("linear_regression", convert(reg, xd), {"X": batch(xd)})

    mlp = MLPClassifier(hidden_layer_sizes=(16, 8), max_iter=2000, random_state=0).fit(xi, yi)
    save("mlp_classifier", convert(mlp, xi), {"X": batch(xi)})

    mlpr = MLPRegressor(hidden_layer_sizes=(16,), max_iter=3000, random_state=0).fit(xd, yd)
    save("mlp_regressor", convert(mlpr, xd), {"X": batch(xd)})


def const(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def dense_network():
    """A hand-built network touching every default-domain operator Swerve implements."""
    rng = np.random.default_rng(11)
    f32 = lambda *shape: rng.standard_normal(shape).astype(np.float32)
    inits = [
        const("W1", f32(8, 6)), const("b1", f32(8)),
        const("W2", f32(8, 8)), const("b2", f32(1, 8)),
        const("C16", f32(16)), const("two", np.array(2.0, dtype=np.float32)),
        const("D16", (np.abs(f32(1, 16)) + 0.5).astype(np.float32)),
        const("shape_n44", np.array([0, 4, 4], dtype=np.int64)),
        const("W3", f32(4, 2)),
        const("idx", np.array([0, 3, 5], dtype=np.int64)),
        const("dconst", np.array([0.25], dtype=np.float64)),
    ]
    N = helper.make_node
    nodes = [
        N("Gemm", ["X", "W1", "b1"], ["g1"], name="gemm1", transB=1, alpha=0.9, beta=1.1),
        N("Relu", ["g1"], ["h1"], name="relu1"),
        N("MatMul", ["h1", "W2"], ["m2"], name="matmul2"),
        N("Add", ["m2", "b2"], ["a2"], name="add2"),
        N("Tanh", ["a2"], ["h2"], name="tanh2"),
        N("Sigmoid", ["h2"], ["s"], name="sigmoid"),
        N("LeakyRelu", ["a2"], ["l"], name="leaky", alpha=0.1),
        N("Concat", ["s", "l"], ["c"], name="concat", axis=1),
        N("Reshape", ["c", "shape_n44"], ["r"], name="reshape"),
        N("MatMul", ["r", "W3"], ["mm3"], name="batched_matmul"),
        N("Flatten", ["r"], ["f"], name="flatten", axis=1),
        N("Sub", ["f", "C16"], ["sub"], name="sub"),
        N("Mul", ["sub", "two"], ["mul"], name="mul"),
        N("Div", ["mul", "D16"], ["d"], name="div"),
        N("Softmax", ["d"], ["probs"], name="softmax", axis=-1),
        N("ArgMax", ["probs"], ["label"], name="argmax", axis=1, keepdims=0),
        N("Cast", ["label"], ["label_f"], name="cast_label", to=TensorProto.FLOAT),
        N("Identity", ["label_f"], ["label_float"], name="identity"),
        N("Normalizer", ["d"], ["norm"], name="normalizer", domain="ai.onnx.ml", norm="L2"),
        N("ArrayFeatureExtractor", ["d", "idx"], ["picked"], name="afe", domain="ai.onnx.ml"),
        N("Cast", ["d"], ["d64"], name="cast_double", to=TensorProto.DOUBLE),
        N("Add", ["d64", "dconst"], ["dbl"], name="add_double"),
        N("ArgMax", ["mm3"], ["arg_last"], name="argmax_last", axis=-1, keepdims=1, select_last_index=1),
    ]
    vi = helper.make_tensor_value_info
    outputs = [
        vi("probs", TensorProto.FLOAT, ["N", 16]), vi("label", TensorProto.INT64, ["N"]),
        vi("label_float", TensorProto.FLOAT, ["N"]), vi("norm", TensorProto.FLOAT, ["N", 16]),
        vi("picked", TensorProto.FLOAT, ["N", 3]), vi("mm3", TensorProto.FLOAT, ["N", 4, 2]),
        vi("dbl", TensorProto.DOUBLE, ["N", 16]), vi("arg_last", TensorProto.INT64, ["N", 4, 1]),
    ]
    graph = helper.make_graph(nodes, "dense", [vi("X", TensorProto.FLOAT, ["N", 6])], outputs, inits)
    model = helper.make_model(graph, producer_name="swerve-tests",
                              opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("ai.onnx.ml", 1)])
    model.ir_version = 8
    save("dense_network", model, {"X": f32(BATCH, 6)})


def legacy_softmax():
    """Opset 11 Softmax coerces to 2-D at `axis`: here [N, 2, 3] normalized over 6 values."""
    rng = np.random.default_rng(3)
    N = helper.make_node
    vi = helper.make_tensor_value_info
    nodes = [N("Softmax", ["X"], ["Y"], name="softmax_legacy", axis=1),
             N("Flatten", ["X"], ["F"], name="flatten0", axis=0)]
    graph = helper.make_graph(nodes, "legacy", [vi("X", TensorProto.FLOAT, [None, 2, 3])],
                              [vi("Y", TensorProto.FLOAT, [None, 2, 3]), vi("F", TensorProto.FLOAT, [1, None])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 6
    save("legacy_softmax", model, {"X": rng.standard_normal((BATCH, 2, 3)).astype(np.float32)})


def ml_operators():
    """Scaler, LinearClassifier (string labels, binary with two labels), LinearRegressor, Normalizer."""
    rng = np.random.default_rng(5)
    N = helper.make_node
    vi = helper.make_tensor_value_info
    ml = "ai.onnx.ml"
    coef3 = rng.standard_normal(12).astype(np.float32).tolist()
    nodes = [
        N("Scaler", ["X"], ["xs"], name="scaler", domain=ml, offset=[0.5, -0.2, 0.1, 0.0], scale=[2.0, 0.5, 1.5, 1.0]),
        N("LinearClassifier", ["xs"], ["label3", "scores3"], name="lc3", domain=ml, coefficients=coef3,
          intercepts=[0.1, -0.2, 0.3], classlabels_strings=["setosa", "versicolor", "virginica"],
          post_transform="SOFTMAX"),
        N("LinearClassifier", ["xs"], ["label3z", "scores3z"], name="lc3z", domain=ml, coefficients=coef3,
          intercepts=[0.1, -0.2, 0.3], classlabels_ints=[7, 8, 9], post_transform="SOFTMAX_ZERO"),
        N("LinearClassifier", ["xs"], ["label3l", "scores3l"], name="lc3l", domain=ml, coefficients=coef3,
          intercepts=[0.1, -0.2, 0.3], classlabels_ints=[0, 1, 2], post_transform="LOGISTIC"),
        N("LinearClassifier", ["xs"], ["label2", "scores2"], name="lc2", domain=ml,
          coefficients=[0.5, -1.0, 0.25, 2.0], intercepts=[0.05], classlabels_ints=[3, 5], post_transform="LOGISTIC"),
        N("LinearClassifier", ["xs"], ["label2n", "scores2n"], name="lc2n", domain=ml,
          coefficients=[0.5, -1.0, 0.25, 2.0], intercepts=[0.05], classlabels_strings=["no", "yes"]),
        N("LinearRegressor", ["xs"], ["reg"], name="lr2", domain=ml, coefficients=coef3[:8],
          intercepts=[1.0, -1.0], targets=2),
        N("Normalizer", ["xs"], ["nmax"], name="nmax", domain=ml, norm="MAX"),
        N("Normalizer", ["xs"], ["nl1"], name="nl1", domain=ml, norm="L1"),
    ]
    outputs = [
        vi("label3", TensorProto.STRING, [None]), vi("scores3", TensorProto.FLOAT, [None, 3]),
        vi("label3z", TensorProto.INT64, [None]), vi("scores3z", TensorProto.FLOAT, [None, 3]),
        vi("label3l", TensorProto.INT64, [None]), vi("scores3l", TensorProto.FLOAT, [None, 3]),
        vi("label2", TensorProto.INT64, [None]), vi("scores2", TensorProto.FLOAT, [None, 2]),
        vi("label2n", TensorProto.STRING, [None]), vi("scores2n", TensorProto.FLOAT, [None, 2]),
        vi("reg", TensorProto.FLOAT, [None, 2]), vi("nmax", TensorProto.FLOAT, [None, 4]),
        vi("nl1", TensorProto.FLOAT, [None, 4]),
    ]
    graph = helper.make_graph(nodes, "ml", [vi("X", TensorProto.FLOAT, [None, 4])], outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(ml, 1)])
    model.ir_version = 8
    save("ml_operators", model, {"X": rng.standard_normal((BATCH, 4)).astype(np.float32)})


if __name__ == "__main__":
    sklearn_models()
    dense_network()
    legacy_softmax()
    ml_operators()
