"""Tree ensembles as scikit-learn (skl2onnx), LightGBM and XGBoost (onnxmltools) export them,
served by Swerve and compared with onnxruntime on the same files: holdout rows and adversarial ones
(NaN on the missing-value paths, +-inf, huge values, values exactly on thresholds), every batch
size from 1 to all rows. Labels exactly, scores within 1e-5 relative (1e-6 absolute)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import oip

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tree_server(tmp_path_factory):
    base = tmp_path_factory.mktemp("trees")
    files = base / "files"
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_tree_models.py"), str(files)],
                         check=True, capture_output=True, text=True, timeout=300)
    names = out.stdout.split()
    repo = base / "repository"
    for name in names:
        (repo / name / "1").mkdir(parents=True)
        (repo / name / "1" / "model.onnx").write_bytes((files / f"{name}.onnx").read_bytes())
        # Computed on every request: the batcher and the core, not a cache, answer.
        (repo / name / "config.json").write_text(json.dumps({"max_batch_size": 1024, "serving_mode": "dynamic"}))
    srv = oip.Server(repo, base / "swerve.log")
    srv.start()
    yield srv, names, files
    srv.stop()


EXPECTED = {
    "dt_clf_binary", "dt_clf_iris_strings", "dt_reg", "rf_clf_binary", "rf_clf_digits", "rf_reg", "et_clf_iris", "et_reg",
    "gb_clf_binary", "gb_clf_iris", "gb_reg", "hgb_clf_binary_nan", "hgb_clf_digits", "hgb_reg_nan", "rf_reg_ml5",
    "lgb_binary_nan", "lgb_multiclass", "lgb_regression", "xgb_binary_nan", "xgb_multiclass", "xgb_regression", "xgb_wide",
}


def test_every_exported_tree_model_matches_onnxruntime(tree_server):
    srv, names, files = tree_server
    assert set(names) == EXPECTED, set(names) ^ EXPECTED
    stub = srv.stub(srv.channel())
    for name in names:
        path = files / f"{name}.onnx"
        sess = oip.ort_session(str(path))
        input_name = sess.get_inputs()[0].name
        rows = np.load(files / f"{name}.rows.npy").astype(np.float32)
        want_all = oip.ort_run(path, {input_name: rows})
        labels = [k for k, v in want_all.items() if not np.issubdtype(v.dtype, np.floating)]
        # All rows at once, then in uneven batches (a row's answer must not depend on its batch).
        for lo, hi in [(0, len(rows))] + [(i, min(i + 7, len(rows))) for i in range(0, 40, 7)] + [(len(rows) - 1, len(rows))]:
            got = oip.infer(stub, name, {input_name: rows[lo:hi]}, timeout=60)
            want = {k: v[lo:hi] for k, v in want_all.items()}
            oip.assert_matches(got, want, exact=labels, context=f"{name} rows {lo}:{hi}: ")


def test_the_adversarial_nan_rows_take_the_missing_value_paths(tree_server):
    # The NaN rows above only test the missing-value paths if those paths change answers: for the
    # models trained with NaNs, a row with NaNs must score differently from the same row with 0s
    # there (onnxruntime's scores), and Swerve must agree on both.
    srv, names, files = tree_server
    stub = srv.stub(srv.channel())
    for name in ("hgb_clf_binary_nan", "lgb_binary_nan", "xgb_binary_nan"):
        path = files / f"{name}.onnx"
        input_name = oip.ort_session(str(path)).get_inputs()[0].name
        base = np.load(files / f"{name}.rows.npy").astype(np.float32)[:20]
        nan_rows, zero_rows = base.copy(), base.copy()
        nan_rows[:, ::3] = np.nan
        zero_rows[:, ::3] = 0.0
        want_nan = oip.ort_run(path, {input_name: nan_rows})["probabilities"]
        want_zero = oip.ort_run(path, {input_name: zero_rows})["probabilities"]
        assert not np.allclose(want_nan, want_zero), f"{name}: NaN and 0 take the same paths"
        got = oip.infer(stub, name, {input_name: nan_rows}, timeout=30)["probabilities"]
        np.testing.assert_allclose(got, want_nan, rtol=1e-5, atol=1e-6, err_msg=name)
