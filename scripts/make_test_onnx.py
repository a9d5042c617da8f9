#!/usr/bin/env python3
"""Builds the ONNX fixtures for Tests/SwerveInferenceTests and records onnxruntime's outputs.

Each fixture is <name>.onnx plus <name>.json holding an input batch and onnxruntime's outputs:
  {"model": "<name>.onnx", "inputs": [{"name", "dtype", "shape", "data"}], "outputs": [...]}
dtype is the KServe name (FP32, FP64, INT64, INT32, BOOL, BYTES); data is flat, row-major, with NaN
written as the string "NaN" (JSON has no literal for it).

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


def json_number(x):
    """NaN and infinities have no JSON literal; fixtures spell them "NaN", "Infinity", "-Infinity"."""
    if isinstance(x, float) and x != x:
        return "NaN"
    if isinstance(x, float) and x in (float("inf"), float("-inf")):
        return "Infinity" if x > 0 else "-Infinity"
    return x


def tensor_json(name, array):
    array = np.asarray(array)
    if array.dtype.kind in ("U", "S", "O"):
        return {"name": name, "dtype": "BYTES", "shape": list(array.shape),
                "data": [x.decode() if isinstance(x, bytes) else str(x) for x in array.reshape(-1)]}
    dtype = DTYPES[array.dtype.name]
    data = [json_number(x) for x in array.reshape(-1).tolist()]
    if dtype == "BOOL":
        data = [bool(x) for x in data]
    return {"name": name, "dtype": dtype, "shape": list(array.shape), "data": data}


def save(name, model, feeds, check=None):
    os.makedirs(OUT, exist_ok=True)
    onnx.checker.check_model(model)
    data = model.SerializeToString()
    with open(os.path.join(OUT, name + ".onnx"), "wb") as f:
        f.write(data)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    results = session.run(names, feeds)
    if check is not None:
        check(results)
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


def column_transformer_models():
    """skl2onnx's ColumnTransformer(OneHotEncoder(handle_unknown='ignore'), StandardScaler) →
    LogisticRegression, with one input per column group, for STRING and INT64 categoricals.
    The batches hold categories never seen in training (encoded as all-zero one-hot rows)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, Int64TensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(17)
    n = 200
    num = rng.standard_normal((n, 3)).astype(np.float32)
    kinds = {
        "string": (StringTensorType, [["red", "green", "blue"], ["s", "m", "l", "xl"]], ["purple", "xxl", ""]),
        "int64": (Int64TensorType, [[3, 7, 11], [0, 1, 2, 5]], [99, -4, 4]),
    }
    for kind, (tensor_type, vocab, unseen) in kinds.items():
        cat = np.stack([rng.choice(v, n) for v in vocab], 1)
        # The label depends on the categories and the numbers, so every coefficient matters.
        score = (cat[:, 0] == vocab[0][0]) * 1.5 - (cat[:, 1] == vocab[1][2]) + num[:, 0]
        y = np.digitize(score, [-0.5, 0.8])
        x = np.empty((n, 5), dtype=object)
        x[:, :2] = cat
        x[:, 2:] = num
        clf = LogisticRegression(max_iter=2000)
        pipe = Pipeline([
            ("pre", ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), [0, 1]),
                                       ("num", StandardScaler(), [2, 3, 4])])),
            ("clf", clf),
        ]).fit(x, y)
        onx = convert_sklearn(pipe, initial_types=[("cat", tensor_type([None, 2])), ("num", FloatTensorType([None, 3]))],
                              options={id(clf): {"zipmap": False}}, target_opset=TARGET_OPSET)
        batch_cat = np.stack([rng.choice(v, BATCH) for v in vocab], 1).astype(object if kind == "string" else np.int64)
        batch_cat[1, 0] = unseen[0]        # one unseen category
        batch_cat[4, 1] = unseen[1]
        batch_cat[7, :] = unseen[1:]       # both unseen: the one-hot part is all zeros
        if kind == "string":
            batch_cat = batch_cat.astype(object)
        feeds = {"cat": batch_cat, "num": rng.standard_normal((BATCH, 3)).astype(np.float32)}
        # The export's own answer for the unseen rows must be scikit-learn's.
        x_batch = np.empty((BATCH, 5), dtype=object)
        x_batch[:, :2] = batch_cat
        x_batch[:, 2:] = feeds["num"]
        save(f"ct_onehot_{kind}", onx, feeds, check=lambda out: np.testing.assert_allclose(
            out[1], pipe.predict_proba(x_batch), rtol=1e-4, atol=1e-5))


def torch_embedding_mlp():
    """What torch.onnx.export emits (opset 13) for two nn.Embedding tables feeding an MLP:

        a = torch.where(a < 10, a, 0)                  # ids past the vocabulary share row 0
        ea = self.emb_a(a).flatten(1)                  # a: [N, 1] → [N, 1, 4] → [N, 4]
        eb = self.emb_b(b.squeeze(1)).unsqueeze(1)     # b: [N, 1] → [N] → [N, 3] → [N, 1, 3]
        eb = eb.reshape(eb.shape[0], -1)               # constant [0, -1] after tracing
        h = torch.relu(self.fc1(torch.cat([ea, eb], 1)))
        h = h.view(h.size(0), -1)                      # Shape → Gather → Unsqueeze → Concat → Reshape
        return torch.softmax(self.fc2(h), -1)          # fc2 as MatMul + Add

    Negative ids index from the end of a table, as ONNX Gather defines."""
    rng = np.random.default_rng(23)
    f32 = lambda *shape: (rng.standard_normal(shape) * 0.5).astype(np.float32)
    N = helper.make_node
    vi = helper.make_tensor_value_info
    inits = [
        const("emb_a.weight", f32(10, 4)), const("emb_b.weight", f32(6, 3)),
        const("fc1.weight", f32(16, 7)), const("fc1.bias", f32(16)),
        const("fc2.weight_T", f32(16, 5)), const("fc2.bias", f32(5)),
        const("onnx::vocab_a", np.array(10, dtype=np.int64)), const("onnx::zero", np.array(0, dtype=np.int64)),
        const("onnx::shape", np.array([0, -1], dtype=np.int64)),
    ]
    nodes = [
        N("Less", ["a", "onnx::vocab_a"], ["/Less_output_0"], name="/Less"),
        N("Where", ["/Less_output_0", "a", "onnx::zero"], ["/Where_output_0"], name="/Where"),
        N("Gather", ["emb_a.weight", "/Where_output_0"], ["/emb_a/Gather_output_0"], name="/emb_a/Gather"),
        N("Flatten", ["/emb_a/Gather_output_0"], ["/Flatten_output_0"], name="/Flatten", axis=1),
        N("Constant", [], ["/Constant_output_0"], name="/Constant",
          value=numpy_helper.from_array(np.array([1], dtype=np.int64))),
        N("Squeeze", ["b", "/Constant_output_0"], ["/Squeeze_output_0"], name="/Squeeze"),
        N("Gather", ["emb_b.weight", "/Squeeze_output_0"], ["/emb_b/Gather_output_0"], name="/emb_b/Gather"),
        N("Unsqueeze", ["/emb_b/Gather_output_0", "/Constant_output_0"], ["/Unsqueeze_output_0"], name="/Unsqueeze"),
        N("Reshape", ["/Unsqueeze_output_0", "onnx::shape"], ["/Reshape_output_0"], name="/Reshape"),
        N("Concat", ["/Flatten_output_0", "/Reshape_output_0"], ["/Concat_output_0"], name="/Concat", axis=1),
        N("Gemm", ["/Concat_output_0", "fc1.weight", "fc1.bias"], ["/fc1/Gemm_output_0"], name="/fc1/Gemm",
          alpha=1.0, beta=1.0, transB=1),
        N("Relu", ["/fc1/Gemm_output_0"], ["/Relu_output_0"], name="/Relu"),
        N("Shape", ["/Relu_output_0"], ["/Shape_output_0"], name="/Shape"),
        N("Constant", [], ["/Constant_1_output_0"], name="/Constant_1",
          value=numpy_helper.from_array(np.array(0, dtype=np.int64))),
        N("Gather", ["/Shape_output_0", "/Constant_1_output_0"], ["/Gather_output_0"], name="/Gather", axis=0),
        N("Constant", [], ["/Constant_2_output_0"], name="/Constant_2",
          value=numpy_helper.from_array(np.array([0], dtype=np.int64))),
        N("Unsqueeze", ["/Gather_output_0", "/Constant_2_output_0"], ["/Unsqueeze_1_output_0"], name="/Unsqueeze_1"),
        N("Constant", [], ["/Constant_3_output_0"], name="/Constant_3",
          value=numpy_helper.from_array(np.array([-1], dtype=np.int64))),
        N("Concat", ["/Unsqueeze_1_output_0", "/Constant_3_output_0"], ["/Concat_1_output_0"], name="/Concat_1", axis=0),
        N("Reshape", ["/Relu_output_0", "/Concat_1_output_0"], ["/Reshape_1_output_0"], name="/Reshape_1"),
        N("MatMul", ["/Reshape_1_output_0", "fc2.weight_T"], ["/fc2/MatMul_output_0"], name="/fc2/MatMul"),
        N("Add", ["fc2.bias", "/fc2/MatMul_output_0"], ["/fc2/Add_output_0"], name="/fc2/Add"),
        N("Softmax", ["/fc2/Add_output_0"], ["probs"], name="/Softmax", axis=-1),
    ]
    graph = helper.make_graph(
        nodes, "main_graph",
        [vi("a", TensorProto.INT64, ["batch", 1]), vi("b", TensorProto.INT64, ["batch", 1])],
        [vi("probs", TensorProto.FLOAT, ["batch", 5])], inits)
    model = helper.make_model(graph, producer_name="pytorch", producer_version="2.5.0",
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    a = rng.integers(0, 10, (BATCH, 1)).astype(np.int64)
    b = rng.integers(0, 6, (BATCH, 1)).astype(np.int64)
    a[2, 0], a[5, 0] = 10, 1234     # out of vocabulary: mapped to row 0 by the model
    b[3, 0], b[8, 0] = -1, -6       # negative: rows 5 and 0
    save("torch_embedding_mlp", model, {"a": a, "b": b})


def categorical_operators():
    """LabelEncoder (string→int64, int64→string), CategoryMapper both ways, Binarizer, Equal and
    Where with broadcasting, on inputs that include unknown categories."""
    rng = np.random.default_rng(29)
    N = helper.make_node
    vi = helper.make_tensor_value_info
    ml = "ai.onnx.ml"
    colors = ["red", "green", "blue", "green"]  # a duplicate key: onnxruntime keeps the first
    nodes = [
        N("LabelEncoder", ["color"], ["color_id"], name="le_s2i", domain=ml,
          keys_strings=colors, values_int64s=[0, 1, 2, 7]),
        N("LabelEncoder", ["code"], ["code_name"], name="le_i2s", domain=ml,
          keys_int64s=[10, 20, 30], values_strings=["ten", "twenty", "thirty"], default_string="other"),
        N("LabelEncoder", ["code"], ["code_weight"], name="le_i2f", domain=ml,
          keys_int64s=[10, 20], values_floats=[0.5, 2.0]),
        N("CategoryMapper", ["color"], ["color_cat"], name="cm_s2i", domain=ml,
          cats_strings=["blue", "red", "blue"], cats_int64s=[5, 6, 8], default_int64=99),
        N("CategoryMapper", ["code"], ["code_cat"], name="cm_i2s", domain=ml,
          cats_strings=["a", "b", "c"], cats_int64s=[10, 20, 10]),
        N("Binarizer", ["x"], ["x_bin"], name="bin", domain=ml, threshold=0.25),
        N("Binarizer", ["x"], ["x_bin0"], name="bin_default", domain=ml),
        N("Equal", ["color_id", "minus_one"], ["unknown"], name="eq"),
        N("Where", ["unknown", "zero", "color_id"], ["color_safe"], name="where_scalar"),
        N("Unsqueeze", ["unknown", "axes1"], ["unknown_col"], name="unsq"),
        N("Where", ["unknown_col", "fill", "x"], ["x_masked"], name="where_broadcast"),
        N("Equal", ["x_bin", "x_bin0"], ["bins_agree"], name="eq_float"),
    ]
    inits = [const("minus_one", np.array(-1, dtype=np.int64)), const("zero", np.array(0, dtype=np.int64)),
             const("axes1", np.array([1], dtype=np.int64)), const("fill", np.array([9, 8, 7], dtype=np.float32))]
    outputs = [
        vi("color_id", TensorProto.INT64, [None]), vi("code_name", TensorProto.STRING, [None]),
        vi("code_weight", TensorProto.FLOAT, [None]),
        vi("color_cat", TensorProto.INT64, [None]), vi("code_cat", TensorProto.STRING, [None]),
        vi("x_bin", TensorProto.FLOAT, [None, 3]), vi("x_bin0", TensorProto.FLOAT, [None, 3]),
        vi("color_safe", TensorProto.INT64, [None]), vi("x_masked", TensorProto.FLOAT, [None, 3]),
        vi("bins_agree", TensorProto.BOOL, [None, 3]),
    ]
    graph = helper.make_graph(
        nodes, "categorical",
        [vi("color", TensorProto.STRING, [None]), vi("code", TensorProto.INT64, [None]),
         vi("x", TensorProto.FLOAT, [None, 3])], outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(ml, 2)])
    model.ir_version = 8
    color = np.array(["red", "green", "blue", "purple", "", "Red", "green", "blue", "red", "teal", "blue", "green"],
                     dtype=object)
    code = np.array([10, 20, 30, 40, -1, 10, 0, 20, 30, 10, 99, 20], dtype=np.int64)
    x = rng.standard_normal((BATCH, 3)).astype(np.float32)
    x[0, 0], x[1, 1] = 0.25, 0.0  # exactly at the thresholds
    save("categorical_operators", model, {"color": color, "code": code, "x": x})


def categorical_operators_legacy():
    """Opset 11 / ai.onnx.ml 1 forms: LabelEncoder's classes_strings in both directions,
    Unsqueeze and Squeeze with attribute axes, Gather on dynamic data along a negative axis."""
    N = helper.make_node
    vi = helper.make_tensor_value_info
    ml = "ai.onnx.ml"
    classes = ["cat", "dog", "bird", "dog"]
    nodes = [
        N("LabelEncoder", ["animal"], ["animal_id"], name="le1_s2i", domain=ml, classes_strings=classes,
          default_int64=-7),
        N("LabelEncoder", ["animal_id"], ["animal_back"], name="le1_i2s", domain=ml, classes_strings=classes,
          default_string="?"),
        N("Unsqueeze", ["animal_id"], ["id_3d"], name="unsq_attr", axes=[1, -1]),
        N("Squeeze", ["id_3d"], ["id_2d"], name="sq_attr", axes=[2]),
        N("Gather", ["pairs", "pick"], ["picked"], name="gather_cols", axis=-1),
        N("Gather", ["pairs", "row_idx"], ["picked_rows"], name="gather_rows", axis=0),
        N("OneHotEncoder", ["pairs"], ["pairs_onehot"], name="ohe_int", domain=ml, cats_int64s=[1, 2, 3, 5]),
        N("OneHotEncoder", ["ratio"], ["ratio_onehot"], name="ohe_float", domain=ml, cats_int64s=[0, 1, -1, 2]),
    ]
    inits = [const("pick", np.array([[1, -2], [0, 0]], dtype=np.int32)),
             const("row_idx", np.array(-1, dtype=np.int64))]
    outputs = [
        vi("animal_id", TensorProto.INT64, [None]), vi("animal_back", TensorProto.STRING, [None]),
        vi("id_3d", TensorProto.INT64, [None, 1, 1]), vi("id_2d", TensorProto.INT64, [None, 1]),
        vi("picked", TensorProto.INT64, [None, 2, 2]), vi("picked_rows", TensorProto.INT64, [2]),
        vi("pairs_onehot", TensorProto.FLOAT, [None, 2, 4]), vi("ratio_onehot", TensorProto.FLOAT, [None, 4]),
    ]
    graph = helper.make_graph(
        nodes, "legacy_categorical",
        [vi("animal", TensorProto.STRING, [None]), vi("pairs", TensorProto.INT64, [None, 2]),
         vi("ratio", TensorProto.FLOAT, [None])], outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11), helper.make_opsetid(ml, 1)])
    model.ir_version = 6
    animal = np.array(["cat", "dog", "bird", "fish", "Cat", "", "dog", "bird", "cat", "cow", "dog", "cat"],
                      dtype=object)
    rng = np.random.default_rng(31)
    pairs = rng.integers(0, 7, (BATCH, 2)).astype(np.int64)
    ratio = np.array([0.2, 1.9, -0.7, -1.2, 2.5, 3.0, 0.0, -0.0, 1.0, 2.99, -2.0, 0.5], dtype=np.float32)
    # picked_rows reads only the last row, so this fixture is not split into one-row batches.
    save("categorical_operators_legacy", model, {"animal": animal, "pairs": pairs, "ratio": ratio})


def categorical_operators_v4():
    """Opset 19 / ai.onnx.ml 4: LabelEncoder with tensor attributes (a NaN key, double values,
    default_tensor), Equal and Where on strings."""
    N = helper.make_node
    vi = helper.make_tensor_value_info
    ml = "ai.onnx.ml"
    nodes = [
        N("LabelEncoder", ["score"], ["score_name"], name="le4_f2s", domain=ml,
          keys_tensor=numpy_helper.from_array(np.array([0.5, np.nan, -1.0, 0.0], dtype=np.float32), "k"),
          values_tensor=numpy_helper.from_array(np.array(["half", "missing", "minus one", "zero"], dtype=object), "v"),
          default_tensor=numpy_helper.from_array(np.array(["n/a"], dtype=object), "d")),
        N("LabelEncoder", ["word"], ["word_weight"], name="le4_s2d", domain=ml,
          keys_tensor=numpy_helper.from_array(np.array(["a", "b"], dtype=object), "k"),
          values_tensor=numpy_helper.from_array(np.array([0.125, -3.5], dtype=np.float64), "v")),
        N("Equal", ["word", "target"], ["is_target"], name="eq_str"),
        N("Where", ["is_target", "word", "replacement"], ["word_or_other"], name="where_str"),
    ]
    inits = [const("target", np.array(["b"], dtype=object)), const("replacement", np.array("other", dtype=object))]
    outputs = [
        vi("score_name", TensorProto.STRING, [None]), vi("word_weight", TensorProto.DOUBLE, [None]),
        vi("is_target", TensorProto.BOOL, [None]), vi("word_or_other", TensorProto.STRING, [None]),
    ]
    graph = helper.make_graph(
        nodes, "v4_categorical",
        [vi("score", TensorProto.FLOAT, [None]), vi("word", TensorProto.STRING, [None])], outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19), helper.make_opsetid(ml, 4)])
    model.ir_version = 9
    score = np.array([0.5, np.nan, -1.0, 0.0, -0.0, 2.0, 0.5, np.nan, 1.0, -1.0, 0.25, 0.0], dtype=np.float32)
    word = np.array(["a", "b", "c", "", "b", "a", "B", "b", "a", "zz", "b", "a"], dtype=object)
    save("categorical_operators_v4", model, {"score": score, "word": word})


def torch_style_mlp():
    """An MLP as torch.onnx.export writes one before opset 20: Gemm with transB=1, GELU spelled
    out with Erf in both of torch's groupings, LayerNormalization (opset 17), Tanh and Sigmoid
    after biased products, and a Softmax head (the graph Swerve fuses: GELU into one kernel, the
    activations into the GEMM epilogue)."""
    rng = np.random.default_rng(23)
    f32 = lambda *shape: rng.standard_normal(shape).astype(np.float32)
    inits = [
        const("W1", f32(16, 10)), const("b1", f32(16)), const("W2", f32(16, 16)), const("b2", f32(16)),
        const("W3", f32(12, 16)), const("b3", f32(12)), const("W4", f32(12, 12)), const("b4", f32(12)),
        const("W5", f32(4, 12)), const("b5", f32(4)),
        const("sqrt2", np.array(1.4142135381698608, dtype=np.float32)),
        const("inv_sqrt2", np.array(0.7071067690849304, dtype=np.float32)),
        const("one", np.array(1.0, dtype=np.float32)), const("half", np.array(0.5, dtype=np.float32)),
        const("ln_scale", (1 + 0.1 * f32(16)).astype(np.float32)), const("ln_bias", (0.1 * f32(16)).astype(np.float32)),
    ]
    N = helper.make_node
    nodes = [
        N("Gemm", ["X", "W1", "b1"], ["g1"], name="fc1", transB=1),
        # torch: x * 0.5 * (1 + erf(x / sqrt(2))) exported as Mul(Mul(x, 1 + erf), 0.5)
        N("Div", ["g1", "sqrt2"], ["g1_s"], name="gelu1_div"),
        N("Erf", ["g1_s"], ["g1_e"], name="gelu1_erf"),
        N("Add", ["g1_e", "one"], ["g1_p"], name="gelu1_add"),
        N("Mul", ["g1", "g1_p"], ["g1_m"], name="gelu1_mul"),
        N("Mul", ["g1_m", "half"], ["h1"], name="gelu1_half"),
        N("Gemm", ["h1", "W2", "b2"], ["g2"], name="fc2", transB=1),
        N("LayerNormalization", ["g2", "ln_scale", "ln_bias"], ["n2"], name="ln2", axis=-1, epsilon=1e-5),
        # The other grouping: (x * 0.5) * (1 + erf(x * 1/sqrt(2)))
        N("Mul", ["n2", "inv_sqrt2"], ["n2_s"], name="gelu2_scale"),
        N("Erf", ["n2_s"], ["n2_e"], name="gelu2_erf"),
        N("Add", ["one", "n2_e"], ["n2_p"], name="gelu2_add"),
        N("Mul", ["n2", "half"], ["n2_h"], name="gelu2_half"),
        N("Mul", ["n2_h", "n2_p"], ["h2"], name="gelu2_mul"),
        N("Gemm", ["h2", "W3", "b3"], ["g3"], name="fc3", transB=1),
        N("Tanh", ["g3"], ["h3"], name="tanh3"),
        N("Gemm", ["h3", "W4", "b4"], ["g4"], name="fc4", transB=1),
        N("Sigmoid", ["g4"], ["h4"], name="sigmoid4"),
        N("Gemm", ["h4", "W5", "b5"], ["logits"], name="fc5", transB=1),
        N("Softmax", ["logits"], ["probs"], name="softmax", axis=-1),
    ]
    vi = helper.make_tensor_value_info
    graph = helper.make_graph(nodes, "torch_style", [vi("X", TensorProto.FLOAT, ["N", 10])],
                              [vi("probs", TensorProto.FLOAT, ["N", 4]), vi("logits", TensorProto.FLOAT, ["N", 4])], inits)
    model = helper.make_model(graph, producer_name="swerve-tests", opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    x = (3 * f32(BATCH, 10)).astype(np.float32)
    save("torch_style_mlp", model, {"X": x})


def hf_style_gelu_tanh():
    """GELU in its tanh form spelled out as Hugging Face models export it ("gelu_new":
    0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * pow(x, 3))))), once with Pow and the halves
    grouped (0.5 * x) * (...), once with x * x * x and ((1 + tanh) * x) * 0.5, after Gemms (the
    graph Swerve fuses into its GELU-tanh kernel and then into the GEMM epilogue)."""
    rng = np.random.default_rng(29)
    f32 = lambda *shape: rng.standard_normal(shape).astype(np.float32)
    inits = [
        const("W1", f32(16, 8)), const("b1", f32(16)), const("W2", f32(12, 16)), const("b2", f32(12)),
        const("W3", f32(3, 12)), const("b3", f32(3)),
        const("three", np.array(3.0, dtype=np.float32)), const("c", np.array(0.044715, dtype=np.float32)),
        const("k", np.array(np.sqrt(2 / np.pi), dtype=np.float32)),
        const("one", np.array(1.0, dtype=np.float32)), const("half", np.array(0.5, dtype=np.float32)),
    ]
    N = helper.make_node
    nodes = [
        N("Gemm", ["X", "W1", "b1"], ["g1"], name="fc1", transB=1),
        N("Mul", ["half", "g1"], ["a_half"], name="a_half"),
        N("Pow", ["g1", "three"], ["a_cube"], name="a_pow"),
        N("Mul", ["c", "a_cube"], ["a_cc"], name="a_mulc"),
        N("Add", ["g1", "a_cc"], ["a_in"], name="a_add"),
        N("Mul", ["k", "a_in"], ["a_ks"], name="a_mulk"),
        N("Tanh", ["a_ks"], ["a_t"], name="a_tanh"),
        N("Add", ["one", "a_t"], ["a_p"], name="a_add1"),
        N("Mul", ["a_half", "a_p"], ["h1"], name="a_out"),
        N("Gemm", ["h1", "W2", "b2"], ["g2"], name="fc2", transB=1),
        N("Mul", ["g2", "g2"], ["b_sq"], name="b_sq"),
        N("Mul", ["b_sq", "g2"], ["b_cube"], name="b_cube"),
        N("Mul", ["b_cube", "c"], ["b_cc"], name="b_mulc"),
        N("Add", ["b_cc", "g2"], ["b_in"], name="b_add"),
        N("Mul", ["b_in", "k"], ["b_ks"], name="b_mulk"),
        N("Tanh", ["b_ks"], ["b_t"], name="b_tanh"),
        N("Add", ["b_t", "one"], ["b_p"], name="b_add1"),
        N("Mul", ["b_p", "g2"], ["b_m"], name="b_mulx"),
        N("Mul", ["b_m", "half"], ["h2"], name="b_out"),
        N("Gemm", ["h2", "W3", "b3"], ["logits"], name="fc3", transB=1),
    ]
    vi = helper.make_tensor_value_info
    graph = helper.make_graph(nodes, "hf_style", [vi("X", TensorProto.FLOAT, ["N", 8])],
                              [vi("logits", TensorProto.FLOAT, ["N", 3])], inits)
    model = helper.make_model(graph, producer_name="swerve-tests", opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    x = (2 * f32(BATCH, 8)).astype(np.float32)
    save("hf_style_gelu_tanh", model, {"X": x})


def torch_decomposed_layernorm():
    """LayerNorm as torch.onnx.export writes it before opset 17: ReduceMean, Sub, Pow(·, 2) (or
    d · d), ReduceMean, Add ε, Sqrt, Div, Mul γ, Add β, after Gemms; a second one without β and
    with ε first; rows of very different scales (the graph Swerve fuses into one LayerNorm)."""
    rng = np.random.default_rng(31)
    f32 = lambda *shape: rng.standard_normal(shape).astype(np.float32)
    inits = [
        const("W1", f32(16, 8)), const("b1", f32(16)), const("W2", f32(12, 16)), const("b2", f32(12)),
        const("W3", f32(3, 12)), const("b3", f32(3)),
        const("two", np.array(2.0, dtype=np.float32)), const("eps", np.array(1e-5, dtype=np.float32)),
        const("g1", (1 + 0.1 * f32(16)).astype(np.float32)), const("be1", (0.1 * f32(16)).astype(np.float32)),
        const("g2", (1 + 0.1 * f32(12)).astype(np.float32)),
    ]
    N = helper.make_node
    nodes = [
        N("Gemm", ["X", "W1", "b1"], ["y1"], name="fc1", transB=1),
        N("ReduceMean", ["y1"], ["m1"], name="ln1_mean", axes=[-1], keepdims=1),
        N("Sub", ["y1", "m1"], ["d1"], name="ln1_sub"),
        N("Pow", ["d1", "two"], ["s1"], name="ln1_pow"),
        N("ReduceMean", ["s1"], ["v1"], name="ln1_var", axes=[-1], keepdims=1),
        N("Add", ["v1", "eps"], ["ve1"], name="ln1_add"),
        N("Sqrt", ["ve1"], ["sd1"], name="ln1_sqrt"),
        N("Div", ["d1", "sd1"], ["n1"], name="ln1_div"),
        N("Mul", ["n1", "g1"], ["a1"], name="ln1_scale"),
        N("Add", ["a1", "be1"], ["l1"], name="ln1_shift"),
        N("Relu", ["l1"], ["h1"], name="relu1"),
        N("Gemm", ["h1", "W2", "b2"], ["y2"], name="fc2", transB=1),
        N("ReduceMean", ["y2"], ["m2"], name="ln2_mean", axes=[1], keepdims=1),
        N("Sub", ["y2", "m2"], ["d2"], name="ln2_sub"),
        N("Mul", ["d2", "d2"], ["s2"], name="ln2_sq"),
        N("ReduceMean", ["s2"], ["v2"], name="ln2_var", axes=[1], keepdims=1),
        N("Add", ["eps", "v2"], ["ve2"], name="ln2_add"),
        N("Sqrt", ["ve2"], ["sd2"], name="ln2_sqrt"),
        N("Div", ["d2", "sd2"], ["n2"], name="ln2_div"),
        N("Mul", ["g2", "n2"], ["l2"], name="ln2_scale"),
        N("Gemm", ["l2", "W3", "b3"], ["logits"], name="fc3", transB=1),
    ]
    vi = helper.make_tensor_value_info
    graph = helper.make_graph(nodes, "torch_ln", [vi("X", TensorProto.FLOAT, ["N", 8])],
                              [vi("logits", TensorProto.FLOAT, ["N", 3])], inits)
    model = helper.make_model(graph, producer_name="swerve-tests", opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    x = f32(BATCH, 8) * np.logspace(-3, 3, BATCH, dtype=np.float32)[:, None]
    save("torch_decomposed_layernorm", model, {"X": x.astype(np.float32)})


def elementwise_and_reductions():
    """Exp, Log, Erf, Softplus, Sqrt, Gelu (both forms, opset 20), Pow, ReduceMean/Sum/Max with
    axes as an input (opset 20) and an unfused GELU (its erf has a second reader), on values that
    include infinities, NaN, zeros, denormals and numbers large enough to overflow exp."""
    N = helper.make_node
    inits = [
        const("two", np.array(2.0, dtype=np.float32)), const("three", np.array([3.0], dtype=np.float32)),
        const("ax_last", np.array([-1], dtype=np.int64)), const("ax_02", np.array([0, 2], dtype=np.int64)),
        const("sqrt2", np.array(1.4142135381698608, dtype=np.float32)),
        const("one", np.array(1.0, dtype=np.float32)), const("half", np.array(0.5, dtype=np.float32)),
    ]
    nodes = [
        N("Exp", ["X"], ["exp"], name="exp"),
        N("Mul", ["X", "X"], ["sq"], name="square"),
        N("Log", ["sq"], ["log"], name="log"),
        N("Erf", ["X"], ["erf"], name="erf"),
        N("Softplus", ["X"], ["softplus"], name="softplus"),
        N("Sqrt", ["sq"], ["sqrt"], name="sqrt"),
        N("Gelu", ["X"], ["gelu"], name="gelu"),
        N("Gelu", ["X"], ["gelu_tanh"], name="gelu_tanh", approximate="tanh"),
        N("Tanh", ["X"], ["tanh"], name="tanh"),
        N("Sigmoid", ["X"], ["sigmoid"], name="sigmoid"),
        N("Pow", ["X", "two"], ["pow2"], name="pow2"),
        N("Pow", ["X", "three"], ["pow3"], name="pow3"),
        N("ReduceMean", ["Y", "ax_last"], ["mean_last"], name="mean_last", keepdims=1),
        N("ReduceSum", ["Y", "ax_02"], ["sum_02"], name="sum_02", keepdims=0),
        N("ReduceMax", ["Y"], ["max_all"], name="max_all", keepdims=0),
        N("Div", ["X", "sqrt2"], ["gx"], name="g_div"),
        N("Erf", ["gx"], ["gerf"], name="g_erf"),
        N("Add", ["gerf", "one"], ["gp"], name="g_add"),
        N("Mul", ["X", "gp"], ["gm"], name="g_mul"),
        N("Mul", ["gm", "half"], ["gelu_unfused"], name="g_half"),
        N("Identity", ["gerf"], ["gelu_erf_reader"], name="g_reader"),
    ]
    vi = helper.make_tensor_value_info
    outs = ["exp", "log", "erf", "softplus", "sqrt", "gelu", "gelu_tanh", "tanh", "sigmoid", "pow2", "pow3"]
    outputs = [vi(o, TensorProto.FLOAT, ["N", 8]) for o in outs] + [
        vi("mean_last", TensorProto.FLOAT, ["N", 2, 1]), vi("sum_02", TensorProto.FLOAT, [2]),
        vi("max_all", TensorProto.FLOAT, []), vi("gelu_unfused", TensorProto.FLOAT, ["N", 8]),
        vi("gelu_erf_reader", TensorProto.FLOAT, ["N", 8]),
    ]
    graph = helper.make_graph(nodes, "elementwise", [vi("X", TensorProto.FLOAT, ["N", 8]), vi("Y", TensorProto.FLOAT, ["N", 2, 3])],
                              outputs, inits)
    model = helper.make_model(graph, producer_name="swerve-tests", opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 9
    rng = np.random.default_rng(31)
    x = (4 * rng.standard_normal((BATCH, 8))).astype(np.float32)
    x[0] = [0.0, -0.0, 1e-40, -1e-40, 88.0, -88.0, 100.0, -100.0]
    x[1] = [np.inf, -np.inf, np.nan, 1e-5, -1e-5, 4.5, -4.5, 0.625]
    y = rng.standard_normal((BATCH, 2, 3)).astype(np.float32)
    save("elementwise_and_reductions", model, {"X": x, "Y": y})


if __name__ == "__main__":
    import sys
    if len(sys.argv) > 1:  # only the fixtures named, e.g. `make_test_onnx.py hf_style_gelu_tanh`
        for name in sys.argv[1:]:
            globals()[name]()
        sys.exit(0)
    sklearn_models()
    dense_network()
    legacy_softmax()
    ml_operators()
    column_transformer_models()
    torch_embedding_mlp()
    categorical_operators()
    categorical_operators_legacy()
    categorical_operators_v4()
    torch_style_mlp()
    hf_style_gelu_tanh()
    torch_decomposed_layernorm()
    elementwise_and_reductions()
