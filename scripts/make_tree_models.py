"""Tree-ensemble models as people export them, for the tree tests and benchmarks.

    python scripts/make_tree_models.py OUT_DIR [--only NAME,...] [--bench]

Writes OUT_DIR/<name>.onnx for scikit-learn models (skl2onnx) and LightGBM / XGBoost models
(onnxmltools), trained with fixed seeds on data sets scikit-learn ships and on wide synthetic data,
plus OUT_DIR/<name>.rows.npy: holdout rows followed by adversarial ones (NaN, +-inf, values exactly
on the model's thresholds, huge values). Prints one name per line. With --bench it writes the
benchmark's models instead (100-tree depth-6 LightGBM, 500-tree depth-8 XGBoost on 200 features,
300-tree random forest), also as native files (<name>.lgb.txt, <name>.xgb.json).
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

warnings.filterwarnings("ignore")

# skl2onnx 1.20 passes HistGradientBoosting's missing-value directions as numpy uint8 scalars,
# which onnx 1.23's make_attribute refuses in an ints field: give it ints (values unchanged).
_make_attribute = onnx.helper.make_attribute


def _ints_not_bools(key, value, *args, **kwargs):
    if isinstance(value, (list, tuple, np.ndarray)) and len(value) and isinstance(value[0], (bool, np.bool_, np.integer)):
        value = [int(v) for v in value]
    return _make_attribute(key, value, *args, **kwargs)


onnx.helper.make_attribute = _ints_not_bools


def thresholds(model: onnx.ModelProto) -> list[tuple[int, float]]:
    """(feature, threshold) of every branch of every tree operator in the model."""
    out = []
    for node in model.graph.node:
        attrs = {a.name: a for a in node.attribute}
        if node.op_type in ("TreeEnsembleClassifier", "TreeEnsembleRegressor"):
            feats = list(attrs["nodes_featureids"].ints)
            if "nodes_values" in attrs:
                vals = list(attrs["nodes_values"].floats)
            else:
                vals = numpy_helper.to_array(attrs["nodes_values_as_tensor"].t).tolist()
            modes = [m.decode() for m in attrs["nodes_modes"].strings]
            out += [(f, v) for f, v, m in zip(feats, vals, modes) if m != "LEAF"]
        elif node.op_type == "TreeEnsemble":
            feats = list(attrs["nodes_featureids"].ints)
            vals = numpy_helper.to_array(attrs["nodes_splits"].t).tolist()
            out += list(zip(feats, vals))
    return out


def adversarial(model: onnx.ModelProto, base: np.ndarray, rng: np.random.Generator, n: int = 48) -> np.ndarray:
    """Rows of `base` with features set to NaN, +-inf, huge values and exact thresholds."""
    rows = []
    ts = thresholds(model)
    for i in range(n):
        r = base[rng.integers(len(base))].copy()
        kind = i % 6
        cols = rng.choice(r.shape[0], size=max(1, r.shape[0] // 4), replace=False)
        if kind == 0:
            r[cols] = np.nan
        elif kind == 1:
            r[cols] = np.inf
        elif kind == 2:
            r[cols] = -np.inf
        elif kind == 3:
            r[cols] = np.float32(3e38) * rng.choice([-1, 1], size=len(cols))
        elif ts:
            # Exactly on thresholds (as float32, which is what the model compares).
            for _ in range(max(1, r.shape[0] // 3)):
                f, v = ts[rng.integers(len(ts))]
                r[f] = np.float32(v)
        rows.append(r)
    rows.append(np.full(base.shape[1], np.nan, dtype=np.float32))
    rows.append(np.zeros(base.shape[1], dtype=np.float32))
    return np.vstack([base] + [np.array(rows, dtype=np.float32)])


def sk(model, x, name, out, rng, holdout, ml_opset=3):
    from skl2onnx import to_onnx
    onx = to_onnx(model, x[:1].astype(np.float32), options={id(model): {"zipmap": False}} if hasattr(model, "predict_proba") else None,
                  target_opset={"": 17, "ai.onnx.ml": ml_opset})
    (out / f"{name}.onnx").write_bytes(onx.SerializeToString())
    np.save(out / f"{name}.rows.npy", adversarial(onx, holdout.astype(np.float32), rng))
    return name


def lgb_onnx(booster_model, x, name, out, rng, holdout):
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType
    onx = convert_lightgbm(booster_model, initial_types=[("input", FloatTensorType([None, x.shape[1]]))],
                           target_opset=15, zipmap=False)
    (out / f"{name}.onnx").write_bytes(onx.SerializeToString())
    np.save(out / f"{name}.rows.npy", adversarial(onx, holdout.astype(np.float32), rng))
    return name


def xgb_onnx(model, x, name, out, rng, holdout):
    from onnxmltools import convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType
    onx = convert_xgboost(model, initial_types=[("input", FloatTensorType([None, x.shape[1]]))], target_opset=15)
    (out / f"{name}.onnx").write_bytes(onx.SerializeToString())
    np.save(out / f"{name}.rows.npy", adversarial(onx, holdout.astype(np.float32), rng))
    return name


def with_nans(x: np.ndarray, rng, share=0.05) -> np.ndarray:
    x = x.copy()
    x[rng.random(x.shape) < share] = np.nan
    return x


def test_models(out: Path, only: set[str] | None) -> list[str]:
    from sklearn import datasets, ensemble, tree
    from sklearn.model_selection import train_test_split
    import lightgbm as lgb
    import xgboost as xgb

    rng = np.random.default_rng(7)
    names = []

    def want(n):
        return only is None or n in only

    bc = datasets.load_breast_cancer()
    xb, xbt, yb, _ = train_test_split(bc.data.astype(np.float32), bc.target, test_size=0.2, random_state=0)
    iris = datasets.load_iris()
    xi, xit, yi, _ = train_test_split(iris.data.astype(np.float32), iris.target, test_size=0.3, random_state=0)
    diab = datasets.load_diabetes()
    xd, xdt, yd, _ = train_test_split(diab.data.astype(np.float32), diab.target, test_size=0.2, random_state=0)
    digits = datasets.load_digits()
    xg, xgt, yg, _ = train_test_split(digits.data.astype(np.float32), digits.target, test_size=0.2, random_state=0)
    iris_str = np.array(["setosa", "versicolor", "virginica"])[yi]

    specs = [
        ("dt_clf_binary", lambda: tree.DecisionTreeClassifier(max_depth=6, random_state=0).fit(xb, yb), xb, xbt),
        ("dt_clf_iris_strings", lambda: tree.DecisionTreeClassifier(max_depth=4, random_state=0).fit(xi, iris_str), xi, xit),
        ("dt_reg", lambda: tree.DecisionTreeRegressor(max_depth=8, random_state=0).fit(xd, yd), xd, xdt),
        ("rf_clf_binary", lambda: ensemble.RandomForestClassifier(n_estimators=30, max_depth=8, random_state=0).fit(xb, yb), xb, xbt),
        ("rf_clf_digits", lambda: ensemble.RandomForestClassifier(n_estimators=20, max_depth=10, random_state=0).fit(xg, yg), xg, xgt),
        ("rf_reg", lambda: ensemble.RandomForestRegressor(n_estimators=30, max_depth=8, random_state=0).fit(xd, yd), xd, xdt),
        ("et_clf_iris", lambda: ensemble.ExtraTreesClassifier(n_estimators=25, random_state=0).fit(xi, yi), xi, xit),
        ("et_reg", lambda: ensemble.ExtraTreesRegressor(n_estimators=25, max_depth=10, random_state=0).fit(xd, yd), xd, xdt),
        ("gb_clf_binary", lambda: ensemble.GradientBoostingClassifier(n_estimators=40, max_depth=3, random_state=0).fit(xb, yb), xb, xbt),
        ("gb_clf_iris", lambda: ensemble.GradientBoostingClassifier(n_estimators=30, max_depth=3, random_state=0).fit(xi, yi), xi, xit),
        ("gb_reg", lambda: ensemble.GradientBoostingRegressor(n_estimators=50, max_depth=4, random_state=0).fit(xd, yd), xd, xdt),
        ("hgb_clf_binary_nan", lambda: ensemble.HistGradientBoostingClassifier(max_iter=40, random_state=0).fit(with_nans(xb, rng), yb), xb, xbt),
        ("hgb_clf_digits", lambda: ensemble.HistGradientBoostingClassifier(max_iter=15, random_state=0).fit(xg, yg), xg, xgt),
        ("hgb_reg_nan", lambda: ensemble.HistGradientBoostingRegressor(max_iter=40, random_state=0).fit(with_nans(xd, rng), yd), xd, xdt),
    ]
    for name, fit, x, holdout in specs:
        if want(name):
            names.append(sk(fit(), x, name, out, rng, holdout))
    if want("rf_reg_ml5"):
        m = ensemble.RandomForestRegressor(n_estimators=10, max_depth=6, random_state=0).fit(xd, yd)
        names.append(sk(m, xd, "rf_reg_ml5", out, rng, xdt, ml_opset=5))

    # LightGBM and XGBoost through onnxmltools.
    if want("lgb_binary_nan"):
        m = lgb.LGBMClassifier(n_estimators=60, num_leaves=15, random_state=0, verbose=-1).fit(with_nans(xb, rng), yb)
        names.append(lgb_onnx(m, xb, "lgb_binary_nan", out, rng, xbt))
    if want("lgb_multiclass"):
        m = lgb.LGBMClassifier(n_estimators=30, num_leaves=15, random_state=0, verbose=-1).fit(xi, yi)
        names.append(lgb_onnx(m, xi, "lgb_multiclass", out, rng, xit))
    if want("lgb_regression"):
        m = lgb.LGBMRegressor(n_estimators=80, num_leaves=31, random_state=0, verbose=-1).fit(xd, yd)
        names.append(lgb_onnx(m, xd, "lgb_regression", out, rng, xdt))
    if want("xgb_binary_nan"):
        m = xgb.XGBClassifier(n_estimators=60, max_depth=4, random_state=0).fit(with_nans(xb, rng), yb)
        names.append(xgb_onnx(m, xb, "xgb_binary_nan", out, rng, xbt))
    if want("xgb_multiclass"):
        m = xgb.XGBClassifier(n_estimators=30, max_depth=4, random_state=0).fit(xg, yg)
        names.append(xgb_onnx(m, xg, "xgb_multiclass", out, rng, xgt))
    if want("xgb_regression"):
        m = xgb.XGBRegressor(n_estimators=80, max_depth=5, random_state=0).fit(xd, yd)
        names.append(xgb_onnx(m, xd, "xgb_regression", out, rng, xdt))
    if want("xgb_wide"):
        # The wide synthetic model: 200 features, 500 trees, depth 8.
        xw = rng.standard_normal((3000, 200)).astype(np.float32)
        yw = (xw[:, :10].sum(axis=1) + 0.5 * rng.standard_normal(3000) > 0).astype(int)
        m = xgb.XGBClassifier(n_estimators=500, max_depth=8, random_state=0, tree_method="hist").fit(xw[:2500], yw[:2500])
        names.append(xgb_onnx(m, xw, "xgb_wide", out, rng, xw[2500:2700]))
    return names


def bench_models(out: Path) -> list[str]:
    """The issue's benchmark models, each as ONNX (+ native file) and 2,048 rows (<name>.f32)."""
    from sklearn import ensemble
    import lightgbm as lgb
    import xgboost as xgb

    rng = np.random.default_rng(11)
    names = []

    def rows(x):
        return x[rng.permutation(len(x))[:2048]].astype(np.float32)

    # 100-tree depth-6 LightGBM on 50 features.
    x = rng.standard_normal((20000, 50)).astype(np.float32)
    y = (x[:, :8] @ rng.standard_normal(8) + 0.3 * rng.standard_normal(20000) > 0).astype(int)
    m = lgb.LGBMClassifier(n_estimators=100, max_depth=6, num_leaves=63, random_state=0, verbose=-1).fit(x, y)
    m.booster_.save_model(str(out / "lgb100.lgb.txt"))
    lgb_onnx(m, x, "lgb100", out, rng, x[:10])
    rows(x).tofile(out / "lgb100.f32")
    names.append("lgb100")
    # 500-tree depth-8 XGBoost on 200 features.
    x = rng.standard_normal((20000, 200)).astype(np.float32)
    y = (x[:, :10].sum(axis=1) + 0.5 * rng.standard_normal(20000) > 0).astype(int)
    m = xgb.XGBClassifier(n_estimators=500, max_depth=8, random_state=0, tree_method="hist").fit(x, y)
    m.get_booster().save_model(str(out / "xgb500.xgb.json"))
    xgb_onnx(m, x, "xgb500", out, rng, x[:10])
    rows(x).tofile(out / "xgb500.f32")
    names.append("xgb500")
    # 300-tree random forest (scikit-learn) on 30 features.
    x = rng.standard_normal((8000, 30)).astype(np.float32)
    y = (x[:, :5].sum(axis=1) > 0).astype(int)
    m = ensemble.RandomForestClassifier(n_estimators=300, max_depth=10, random_state=0, n_jobs=1).fit(x, y)
    sk(m, x, "rf300", out, rng, x[:10])
    rows(x).tofile(out / "rf300.f32")
    names.append("rf300")
    return names


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--only", default="")
    ap.add_argument("--bench", action="store_true")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    only = set(args.only.split(",")) if args.only else None
    for name in bench_models(out) if args.bench else test_models(out, only):
        print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
