"""Native XGBoost (model.xgb.json) and LightGBM (model.lgb.txt) files served with no conversion
step, compared with the library's own `predict` on holdout rows and adversarial ones: NaN (the
default directions), +-inf, zeros (LightGBM's zero-as-missing), huge values, values exactly on the
model's thresholds, categorical codes outside the training categories. Scores within 1e-5 relative
(1e-6 absolute), class indices exactly."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import oip

warnings.filterwarnings("ignore")
lgb = pytest.importorskip("lightgbm")
xgb = pytest.importorskip("xgboost")
from sklearn import datasets  # noqa: E402


def adversarial(x: np.ndarray, thresholds: list[tuple[int, float]], rng, n: int = 60) -> np.ndarray:
    rows = []
    for i in range(n):
        r = x[rng.integers(len(x))].copy()
        cols = rng.choice(x.shape[1], size=max(1, x.shape[1] // 4), replace=False)
        kind = i % 6
        if kind == 0:
            r[cols] = np.nan
        elif kind == 1:
            r[cols] = np.inf * rng.choice([-1, 1], size=len(cols))
        elif kind == 2:
            r[cols] = 0.0
        elif kind == 3:
            r[cols] = np.float32(3e38) * rng.choice([-1, 1], size=len(cols))
        elif thresholds:
            for _ in range(max(1, x.shape[1] // 3)):
                f, v = thresholds[rng.integers(len(thresholds))]
                r[f] = np.float32(v)
        rows.append(r)
    rows.append(np.full(x.shape[1], np.nan, dtype=np.float32))
    return np.vstack([x, np.array(rows, dtype=np.float32)]).astype(np.float32)


def xgb_thresholds(booster) -> list[tuple[int, float]]:
    out = []
    gb = json.loads(booster.save_raw("json"))["learner"]["gradient_booster"]
    for t in (gb["model"] if "model" in gb else gb["gbtree"]["model"])["trees"]:
        out += [(f, c) for f, c, l in zip(t["split_indices"], t["split_conditions"], t["left_children"]) if l != -1]
    return out


def lgb_thresholds(booster) -> list[tuple[int, float]]:
    out = []

    def walk(node):
        if "split_index" in node:
            if node.get("decision_type") == "<=":
                out.append((node["split_feature"], node["threshold"]))
            walk(node["left_child"])
            walk(node["right_child"])
    for t in booster.dump_model()["tree_info"]:
        walk(t["tree_structure"])
    return out


def with_nans(x, rng, share=0.08):
    x = x.copy()
    x[rng.random(x.shape) < share] = np.nan
    return x


@pytest.fixture(scope="module")
def native_server(tmp_path_factory):
    base = tmp_path_factory.mktemp("native_trees")
    repo = base / "repository"
    rng = np.random.default_rng(3)
    bc = datasets.load_breast_cancer()
    xb, yb = bc.data.astype(np.float32), bc.target
    iris = datasets.load_iris()
    xi, yi = iris.data.astype(np.float32), iris.target
    diab = datasets.load_diabetes()
    xd, yd = diab.data.astype(np.float32), diab.target
    # Categorical data: feature 0 a category code 0..7 whose effect is non-monotone.
    xc = rng.standard_normal((2000, 5)).astype(np.float32)
    xc[:, 0] = rng.integers(0, 8, 2000)
    yc = ((np.isin(xc[:, 0], [1, 4, 6]) * 1.5 + xc[:, 1]) > 0.7).astype(int)
    cases = {}

    def save_xgb(name, booster, x, hold, extra_rows=None):
        (repo / name / "1").mkdir(parents=True)
        booster.save_model(str(repo / name / "1" / "model.xgb.json"))
        rows = adversarial(hold, xgb_thresholds(booster), rng)
        if extra_rows is not None:
            rows = np.vstack([rows, extra_rows])
        # XGBoost refuses infinite inputs (its DMatrix: "Input data contains `inf`"), so its
        # oracle sees the largest finite floats there instead.
        rows[np.isinf(rows)] = np.sign(rows[np.isinf(rows)]) * np.finfo(np.float32).max
        cases[name] = ("xgb", booster, rows)

    def save_lgb(name, booster, x, hold, extra_rows=None):
        (repo / name / "1").mkdir(parents=True)
        booster.save_model(str(repo / name / "1" / "model.lgb.txt"))
        rows = adversarial(hold, lgb_thresholds(booster), rng)
        if extra_rows is not None:
            rows = np.vstack([rows, extra_rows])
        cases[name] = ("lgb", booster, rows)

    def xgb_train(params, x, y, rounds, **kw):
        return xgb.train({"seed": 0, "max_depth": 4, **params}, xgb.DMatrix(x, label=y, **kw), rounds)

    save_xgb("xgb_binary", xgb_train({"objective": "binary:logistic"}, with_nans(xb, rng), yb, 40), xb, xb[:80])
    save_xgb("xgb_logitraw", xgb_train({"objective": "binary:logitraw"}, xb, yb, 20), xb, xb[:40])
    save_xgb("xgb_softprob", xgb_train({"objective": "multi:softprob", "num_class": 3}, xi, yi, 20), xi, xi[::3])
    save_xgb("xgb_softmax", xgb_train({"objective": "multi:softmax", "num_class": 3}, xi, yi, 20), xi, xi[::3])
    save_xgb("xgb_regression", xgb_train({"objective": "reg:squarederror"}, with_nans(xd, rng), yd, 60), xd, xd[:80])
    save_xgb("xgb_poisson", xgb_train({"objective": "count:poisson"}, xd, np.round(yd / 30), 30), xd, xd[:40])
    save_xgb("xgb_dart", xgb_train({"objective": "binary:logistic", "booster": "dart", "rate_drop": 0.2, "skip_drop": 0.0},
                                   xb, yb, 20), xb, xb[:40])
    cat_rows = np.array([[c, 0.3, 0, 0, 0] for c in (-1, 0.5, 3.7, 8, 100, np.nan)], dtype=np.float32)
    save_xgb("xgb_categorical",
             xgb.train({"objective": "binary:logistic", "max_depth": 3, "seed": 0, "max_cat_to_onehot": 1},
                       xgb.DMatrix(xc, label=yc, feature_types=["c", "q", "q", "q", "q"], enable_categorical=True), 30),
             xc, xc[:60], cat_rows)

    def lgb_train(params, x, y, rounds, **kw):
        return lgb.train({"verbose": -1, "seed": 0, "num_leaves": 15, **params}, lgb.Dataset(x, label=y, **kw), rounds)

    save_lgb("lgb_binary", lgb_train({"objective": "binary"}, with_nans(xb, rng), yb, 40), xb, xb[:80])
    save_lgb("lgb_multiclass", lgb_train({"objective": "multiclass", "num_class": 3}, xi, yi, 20), xi, xi[::3])
    save_lgb("lgb_regression", lgb_train({"objective": "regression"}, with_nans(xd, rng), yd, 60), xd, xd[:80])
    save_lgb("lgb_zero_as_missing", lgb_train({"objective": "regression", "zero_as_missing": True}, xd, yd, 40), xd, xd[:60])
    save_lgb("lgb_no_missing", lgb_train({"objective": "regression", "use_missing": False}, xd, yd, 30), xd, xd[:40])
    save_lgb("lgb_poisson", lgb_train({"objective": "poisson"}, xd, np.round(yd / 30), 30), xd, xd[:40])
    save_lgb("lgb_categorical", lgb_train({"objective": "binary", "min_data_per_group": 5, "cat_smooth": 1},
                                          xc, yc, 30, categorical_feature=[0]), xc, xc[:60], cat_rows)
    save_lgb("lgb_rf", lgb_train({"objective": "binary", "boosting": "rf", "bagging_freq": 1, "bagging_fraction": 0.7},
                                 xb, yb, 20), xb, xb[:40])
    for name in cases:
        (repo / name / "config.json").write_text(json.dumps({"max_batch_size": 1024, "serving_mode": "dynamic"}))
    srv = oip.Server(repo, base / "swerve.log")
    srv.start()
    yield srv, cases
    srv.stop()


def predict(kind, booster, rows):
    if kind == "xgb":
        return booster.predict(xgb.DMatrix(rows))
    return booster.predict(rows)


def test_native_models_answer_what_the_library_predicts(native_server):
    srv, cases = native_server
    stub = srv.stub(srv.channel())
    for name, (kind, booster, rows) in cases.items():
        want = np.asarray(predict(kind, booster, rows), dtype=np.float64)
        for lo, hi in [(0, len(rows)), (0, 1), (5, 12), (len(rows) - 7, len(rows))]:
            got = oip.infer(stub, name, {"input": rows[lo:hi]}, timeout=60)["predictions"]
            assert got.shape == want[lo:hi].shape, f"{name}: shape {got.shape} != {want[lo:hi].shape}"
            if name == "xgb_softmax":
                np.testing.assert_array_equal(got, want[lo:hi], err_msg=name)
            else:
                np.testing.assert_allclose(got, want[lo:hi], rtol=1e-5, atol=1e-6, err_msg=f"{name} rows {lo}:{hi}")


def test_native_models_describe_their_signature(native_server):
    srv, cases = native_server
    stub = srv.stub(srv.channel())
    meta = stub.ModelMetadata(oip.pb.ModelMetadataRequest(name="lgb_binary"), timeout=10)
    assert meta.inputs[0].name == "input" and list(meta.inputs[0].shape) == [-1, 30]
    assert meta.outputs[0].name == "predictions" and list(meta.outputs[0].shape) == [-1]
    meta = stub.ModelMetadata(oip.pb.ModelMetadataRequest(name="xgb_softprob"), timeout=10)
    assert list(meta.outputs[0].shape) == [-1, 3]


def test_a_native_file_publishes_with_lineage_and_serves(tmp_path):
    """`swerve publish model.lgb.txt` puts the file in the next version folder under its native
    name, with a lineage record whose fingerprint is the file's; a broken file is refused."""
    import hashlib
    import subprocess
    rng = np.random.default_rng(8)
    x = rng.standard_normal((500, 4)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    booster = lgb.train({"objective": "binary", "verbose": -1, "seed": 0}, lgb.Dataset(x, label=y), 10)
    src = tmp_path / "trained.lgb.txt"
    booster.save_model(str(src))
    repo = tmp_path / "repo"
    repo.mkdir()
    out = subprocess.run([oip.swerve_bin(), "publish", str(src), "--repository", str(repo), "--name", "gbdt"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    folder = repo / "gbdt" / "1"
    assert (folder / "model.lgb.txt").read_bytes() == src.read_bytes()
    lineage = json.loads((folder / "metadata.json").read_text())
    assert hashlib.sha256(src.read_bytes()).hexdigest() in lineage["model_fingerprint"], lineage
    broken = tmp_path / "broken.lgb.txt"
    broken.write_text(src.read_text()[:300])
    out = subprocess.run([oip.swerve_bin(), "publish", str(broken), "--repository", str(repo), "--name", "gbdt"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "does not load" in out.stderr, out.stderr
    assert not (repo / "gbdt" / "2").exists()
    srv = oip.Server(repo, tmp_path / "swerve.log")
    srv.start()
    try:
        got = oip.infer(srv.stub(srv.channel()), "gbdt", {"input": x[:20]})["predictions"]
        np.testing.assert_allclose(got, booster.predict(x[:20]), rtol=1e-5, atol=1e-6)
    finally:
        srv.stop()
