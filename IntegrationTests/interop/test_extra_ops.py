"""Abs, Neg, Reciprocal, HardSigmoid, Clip (attributes and inputs), Min, Max (variadic, broadcast),
BatchNormalization, Transpose, and ai.onnx.ml Imputer and FeatureVectorizer: small graphs built with
onnx.helper plus an skl2onnx imputing pipeline, served by Swerve and compared with onnxruntime on
rows with NaN, +-inf, zeros and negatives. Operators Swerve cannot run a form of are refused at
load naming the node."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import oip


def model(name, nodes, inputs, outputs, inits=(), opset=17, ml=None):
    g = helper.make_graph(nodes, name, inputs, outputs, list(inits))
    imports = [helper.make_opsetid("", opset)] + ([helper.make_opsetid("ai.onnx.ml", ml)] if ml else [])
    m = helper.make_model(g, opset_imports=imports)
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def f32(name, *dims):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(dims))


def build_models():
    rng = np.random.default_rng(2)
    ms = {}
    ms["elementwise"] = model("elementwise", [
        helper.make_node("Abs", ["x"], ["a"]),
        helper.make_node("Neg", ["x"], ["n"]),
        helper.make_node("Reciprocal", ["x"], ["r"]),
        helper.make_node("HardSigmoid", ["x"], ["h"], alpha=0.3, beta=0.4),
        helper.make_node("Clip", ["x", "lo", "hi"], ["c"]),
        helper.make_node("Clip", ["x", "", "hi"], ["c2"]),
    ], [f32("x", "N", 6)], [f32(o, "N", 6) for o in ("a", "n", "r", "h", "c", "c2")],
        [numpy_helper.from_array(np.array(-0.5, np.float32), "lo"), numpy_helper.from_array(np.array(0.75, np.float32), "hi")])
    ms["clip_opset6"] = model("clip6", [helper.make_node("Clip", ["x"], ["y"], min=-1.0, max=2.0)],
                              [f32("x", "N", 6)], [f32("y", "N", 6)], opset=6)
    ms["minmax"] = model("minmax", [
        helper.make_node("Mul", ["x", "two"], ["x2"]),
        helper.make_node("Min", ["x", "row", "x2"], ["mn"]),
        helper.make_node("Max", ["x", "row"], ["mx"]),
        helper.make_node("Max", ["x"], ["one"]),
    ], [f32("x", "N", 6)], [f32("mn", "N", 6), f32("mx", "N", 6), f32("one", "N", 6)],
        [numpy_helper.from_array(rng.standard_normal(6).astype(np.float32), "row"),
         numpy_helper.from_array(np.array([2.0], np.float32), "two")])
    c = 3
    ms["batchnorm_transpose"] = model("bn", [
        helper.make_node("Reshape", ["x", "shape"], ["x3"]),
        helper.make_node("BatchNormalization", ["x3", "scale", "b", "mean", "var"], ["bn"], epsilon=1e-3),
        helper.make_node("Transpose", ["bn"], ["t"], perm=[0, 2, 1]),
        helper.make_node("Flatten", ["t"], ["y"]),
    ], [f32("x", "N", 6)], [f32("y", "N", 6)], [
        numpy_helper.from_array(np.array([0, c, 2], np.int64), "shape"),
        numpy_helper.from_array(rng.uniform(0.5, 2, c).astype(np.float32), "scale"),
        numpy_helper.from_array(rng.standard_normal(c).astype(np.float32), "b"),
        numpy_helper.from_array(rng.standard_normal(c).astype(np.float32), "mean"),
        numpy_helper.from_array(rng.uniform(0.1, 3, c).astype(np.float32), "var"),
    ])
    ms["imputer_vectorizer"] = model("iv", [
        helper.make_node("Imputer", ["x"], ["imp"], domain="ai.onnx.ml", imputed_value_floats=[1.5, -2.0, 0.0, 3.25, 9.0, -1.0],
                         replaced_value_float=float("nan")),
        helper.make_node("Imputer", ["x"], ["imp0"], domain="ai.onnx.ml", imputed_value_floats=[7.0], replaced_value_float=0.0),
        helper.make_node("FeatureVectorizer", ["imp", "k"], ["fv"], domain="ai.onnx.ml", inputdimensions=[6, 3]),
    ], [f32("x", "N", 6), f32("k", "N", 2)],
        [f32("imp", "N", 6), f32("imp0", "N", 6), f32("fv", "N", 9)], ml=1)
    # An skl2onnx pipeline: SimpleImputer + StandardScaler + LogisticRegression.
    from sklearn.datasets import load_breast_cancer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from skl2onnx import to_onnx
    x, y = load_breast_cancer(return_X_y=True)
    x = x[:, :6].astype(np.float32)
    x[rng.random(x.shape) < 0.1] = np.nan
    pipe = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y)
    ms["sk_imputer_pipeline"] = to_onnx(pipe, x[:1], options={id(pipe.steps[-1][1]): {"zipmap": False}},
                                        target_opset={"": 17, "ai.onnx.ml": 3})
    return ms


@pytest.fixture(scope="module")
def ops_server(tmp_path_factory):
    base = tmp_path_factory.mktemp("extra_ops")
    repo = base / "repository"
    ms = build_models()
    for name, m in ms.items():
        (repo / name / "1").mkdir(parents=True)
        (repo / name / "1" / "model.onnx").write_bytes(m.SerializeToString())
        (repo / name / "config.json").write_text(json.dumps({"max_batch_size": 256, "serving_mode": "dynamic"}))
    srv = oip.Server(repo, base / "swerve.log")
    srv.start()
    yield srv, repo
    srv.stop()


def rows(n=40, seed=5):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, 6)) * 3).astype(np.float32)
    x[0] = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-30]
    x[1] = [0.75, -0.5, 2.0, -1.0, 1.0, np.nan]
    x[2, ::2] = 0.0
    return x


def test_extra_operators_match_onnxruntime(ops_server):
    srv, repo = ops_server
    stub = srv.stub(srv.channel())
    x = rows()
    for name in ("elementwise", "clip_opset6", "minmax", "batchnorm_transpose", "imputer_vectorizer", "sk_imputer_pipeline"):
        path = repo / name / "1" / "model.onnx"
        sess = oip.ort_session(str(path))
        feeds = {sess.get_inputs()[0].name: x}
        if name == "imputer_vectorizer":
            feeds["k"] = np.arange(2 * len(x), dtype=np.float32).reshape(-1, 2)
        want = oip.ort_run(path, feeds)
        for lo, hi in [(0, len(x)), (0, 3), (5, 6)]:
            got = oip.infer(stub, name, {k: v[lo:hi] for k, v in feeds.items()}, timeout=30)
            oip.assert_matches(got, {k: v[lo:hi] for k, v in want.items()}, exact=("label",), context=f"{name} {lo}:{hi}: ")


def test_forms_swerve_cannot_run_are_refused_naming_the_node(tmp_path):
    bad = {
        "bn_training": model("t", [helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], name="bn0", training_mode=1)],
                             [f32("x", "N", 3)], [f32("y", "N", 3)],
                             [numpy_helper.from_array(np.ones(3, np.float32), n) for n in ("s", "b", "m", "v")]),
        "transpose_batch": model("t", [helper.make_node("Transpose", ["x"], ["y"], name="tr0", perm=[1, 0])],
                                 [f32("x", "N", 3)], [f32("y", 3, "N")]),
    }
    # Hostile forms that onnx's checker lets through: an FP32 NaN bound on an INT64 Clip (once
    # crashed the server's warm-up run converting NaN to an integer), and FeatureVectorizer inputs
    # of different row counts (once read past the shorter input into the response).
    i64 = helper.make_tensor_value_info
    clip = helper.make_graph([helper.make_node("Clip", ["x", "lo"], ["y"], name="clip0")], "c",
                             [i64("x", TensorProto.INT64, ["N", 3])], [i64("y", TensorProto.INT64, ["N", 3])],
                             [numpy_helper.from_array(np.array(np.nan, np.float32), "lo")])
    bad["clip_nan_bound"] = helper.make_model(clip, opset_imports=[helper.make_opsetid("", 13)])
    fv = helper.make_graph([helper.make_node("FeatureVectorizer", ["b", "a"], ["y"], name="fv0", domain="ai.onnx.ml",
                                             inputdimensions=[3, 2])], "fv",
                           [f32("b", 3), f32("a", "N", 2)], [f32("y", "N", 5)])
    bad["fv_rows_differ"] = helper.make_model(fv, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 1)])
    for m in bad.values():
        m.ir_version = 8
    repo = tmp_path / "repo"
    for name, m in bad.items():
        (repo / name / "1").mkdir(parents=True)
        (repo / name / "1" / "model.onnx").write_bytes(m.SerializeToString())
    srv = oip.Server(repo, tmp_path / "swerve.log")
    srv.start(require_server_ready=False)
    try:
        stub = srv.stub(srv.channel())
        idx = {m.name: m for m in stub.RepositoryIndex(oip.pb.RepositoryIndexRequest(), timeout=10).models}
        assert "bn0" in idx["bn_training"].reason and "training_mode" in idx["bn_training"].reason, idx["bn_training"]
        assert "tr0" in idx["transpose_batch"].reason and "batch" in idx["transpose_batch"].reason, idx["transpose_batch"]
        assert "clip0" in idx["clip_nan_bound"].reason and "FP32" in idx["clip_nan_bound"].reason, idx["clip_nan_bound"]
        assert "fv0" in idx["fv_rows_differ"].reason and "row counts" in idx["fv_rows_differ"].reason, idx["fv_rows_differ"]
        assert srv.proc.poll() is None, "the server died loading a hostile model"
    finally:
        srv.stop()
