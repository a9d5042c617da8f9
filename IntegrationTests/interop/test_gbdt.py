"""`swerve train --model gbdt`: histogram gradient boosting trained in Swerve, exported as an
ai.onnx.ml TreeEnsembleClassifier.

On breast_cancer (binary), a three-class make_classification set and digits (ten classes), written
as CSV: the holdout accuracy is within 0.01 of scikit-learn's HistGradientBoostingClassifier with
the same hyperparameters on the same split; onnxruntime on the exported model reproduces the trainer's holdout metrics (metrics.json);
and `swerve serve` of the exported model answers as onnxruntime does.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

import oip

sklearn = pytest.importorskip("sklearn")
from sklearn.datasets import load_breast_cancer, load_digits, make_classification  # noqa: E402
from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: E402

M64 = (1 << 64) - 1


def splitmix_mix(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def swerve_split(n: int, holdout: float, validation: float, seed: int) -> tuple[list[int], list[int]]:
    """Dataset.split's row indices (train, holdout): rows ordered by a seeded SplitMix64 key."""
    order = sorted(range(n), key=lambda i: (splitmix_mix((seed + (i + 1) * 0x9E3779B97F4A7C15) & M64), i))
    h = min(n, int(n * holdout + 0.5))
    v = min(n - h, int(n * validation + 0.5))
    return sorted(order[h + v:]), sorted(order[:h])


def write_data(base: Path, x: np.ndarray, y: np.ndarray) -> tuple[Path, Path]:
    names = [f"f{j}" for j in range(x.shape[1])]
    classes = sorted(set(int(v) for v in y))
    schema = {"columns": [{"name": n, "type": "numeric"} for n in names]
              + [{"name": "y", "type": "label", "task": "classification", "classes": [str(c) for c in classes]}],
              "label": "y"}
    (base / "schema.json").write_text(json.dumps(schema))
    lines = [",".join(names + ["y"])] + [",".join(repr(float(v)) for v in row) + f",{int(label)}" for row, label in zip(x, y)]
    (base / "data.csv").write_text("\n".join(lines) + "\n")
    return base / "data.csv", base / "schema.json"


CASES = {
    "breast_cancer": (load_breast_cancer, dict(trees=100, depth=6, lr=0.1, min_leaf=20)),
    # Multiclass boosting grows trees with the same splits and leaf values as scikit-learn's where
    # the gradients agree: both keep them in FP32, so splits on different features that tie
    # exactly in gain (common in the first iterations, when each class's gradients take two
    # values, and on digits' small-integer pixels) tie exactly in both, and both take the first.
    # Rounding elsewhere still lets the ensembles drift apart a little: measured 0.9550 vs 0.9583
    # here, 0.9666 vs 0.9638 on digits (0.9694 before the gradients were FP32).
    "three_classes": (lambda return_X_y: make_classification(
        n_samples=3000, n_features=10, n_informative=6, n_classes=3, class_sep=1.5, random_state=1),
        dict(trees=100, depth=6, lr=0.1, min_leaf=20)),
    "digits": (load_digits, dict(trees=30, depth=4, lr=0.1, min_leaf=20)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_gbdt_matches_sklearn_onnxruntime_and_serving(case, tmp_path):
    loader, hp = CASES[case]
    x, y = loader(return_X_y=True)
    data, schema = write_data(tmp_path, x, y)
    out = tmp_path / "out"
    seed, holdout = 7, 0.2
    run = subprocess.run(
        [oip.swerve_bin(), "train", "--data", str(data), "--schema", str(schema), "--model", "gbdt",
         "--trees", str(hp["trees"]), "--depth", str(hp["depth"]), "--learning-rate", str(hp["lr"]),
         "--min-leaf", str(hp["min_leaf"]), "--validation", "0", "--holdout", str(holdout),
         "--seed", str(seed), "--output", str(out)],
        capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "trees 10: train loss" in run.stdout, run.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    ours = metrics["holdout"]["overall"]["accuracy"]

    train_rows, holdout_rows = swerve_split(len(y), holdout, 0, seed)
    assert metrics["rows"]["train"] == len(train_rows) and metrics["rows"]["holdout"] == len(holdout_rows)
    ref = HistGradientBoostingClassifier(
        max_iter=hp["trees"], max_depth=hp["depth"], learning_rate=hp["lr"], min_samples_leaf=hp["min_leaf"],
        max_leaf_nodes=None, early_stopping=False, random_state=0).fit(x[train_rows], y[train_rows])
    theirs = float((ref.predict(x[holdout_rows]) == y[holdout_rows]).mean())
    print(f"{case}: swerve holdout accuracy {ours:.4f}, sklearn {theirs:.4f}")
    assert abs(ours - theirs) <= 0.01 + 1e-9, (ours, theirs)

    # onnxruntime on the export reproduces the trainer's own holdout metrics.
    model = out / "model.onnx"
    xh = x[holdout_rows].astype(np.float32)
    want = oip.ort_run(model, {"numeric": xh})
    labels, probabilities = want["label"], want["probabilities"]
    assert probabilities.shape == (len(holdout_rows), len(set(y.tolist())))
    assert float((labels == y[holdout_rows]).mean()) == pytest.approx(ours, abs=1e-12)
    assert np.array_equal(labels, probabilities.argmax(axis=1))
    p = np.clip(probabilities[np.arange(len(labels)), y[holdout_rows]].astype(np.float64), 1e-15, 1)
    assert float(-np.log(p).mean()) == pytest.approx(metrics["holdout"]["overall"]["logLoss"], abs=1e-4)

    # swerve serve answers as onnxruntime does, also on rows with missing (NaN) features, which
    # follow each split's learned default direction (nodes_missing_value_tracks_true).
    nan_rows = xh[:20].copy()
    nan_rows[np.arange(20), np.arange(20) % xh.shape[1]] = np.nan
    nan_rows[0, :] = np.nan
    want_nan = oip.ort_run(model, {"numeric": nan_rows})
    repo = tmp_path / "repository"
    (repo / "gbdt" / "1").mkdir(parents=True)
    (repo / "gbdt" / "1" / "model.onnx").write_bytes(model.read_bytes())
    (repo / "gbdt" / "config.json").write_text(json.dumps({"max_batch_size": 1024}))
    srv = oip.Server(repo, tmp_path / "swerve.log")
    srv.start(wait_for=["gbdt"])
    try:
        stub = srv.stub(srv.channel())
        got = oip.infer(stub, "gbdt", {"numeric": xh}, timeout=60)
        got_nan = oip.infer(stub, "gbdt", {"numeric": nan_rows}, timeout=60)
    finally:
        srv.stop()
    assert np.array_equal(got["label"], labels)
    np.testing.assert_allclose(got["probabilities"], probabilities, rtol=0, atol=1e-5)
    assert np.array_equal(got_nan["label"], want_nan["label"])
    np.testing.assert_allclose(got_nan["probabilities"], want_nan["probabilities"], rtol=0, atol=1e-5)
