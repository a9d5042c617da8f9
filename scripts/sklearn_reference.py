#!/usr/bin/env python3
"""Reference numbers for Swerve's trainer, from scikit-learn on the same rows and the same split.

Writes to Tests/SwerveTrainingTests/Fixtures/:
  breast_cancer.csv + breast_cancer.schema.json   569 rows, 30 numeric features, label y in {0, 1}
  digits.csv + digits.schema.json                 1797 rows, 64 pixel features (0..16), label 0..9
  sklearn_reference.json                          per experiment: hyperparameters, the split,
                                                  scikit-learn's holdout accuracy and log loss

The split is Swerve's (`Dataset.split`): row i gets the key splitmix64_mix(seed + (i + 1) *
0x9E3779B97F4A7C15 mod 2^64); rows sorted by key give round(n * holdout) holdout rows, then
round(n * validation) validation rows, the rest train (each part in file order; round = half up).
scikit-learn fits on the train part only (Swerve uses validation for early stopping) and both are
scored on the holdout part. Features are standardized with the train part's mean and population
std (StandardScaler), as Swerve's encoder does.

Regularization: Swerve minimizes mean loss + l2/2 * ||W||^2 (biases unpenalized);
LogisticRegression minimizes C * sum(loss) + 1/2 * ||W||^2, the same optimum when
C = 1 / (l2 * n_train). MLPClassifier adds alpha/(2 * batch) * ||W||^2 per mini-batch of mean loss,
so alpha = l2 * batch_size.

Run from the repository root: .venv/bin/python scripts/sklearn_reference.py
"""
import csv
import json
import math
import os
import warnings

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "SwerveTrainingTests", "Fixtures")
MASK = (1 << 64) - 1


def mix(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def split(n, validation, holdout, seed):
    order = sorted(range(n), key=lambda i: mix((seed + (i + 1) * 0x9E3779B97F4A7C15) & MASK))
    n_hold = min(n, int(math.floor(n * holdout + 0.5)))
    n_val = min(n - n_hold, int(math.floor(n * validation + 0.5)))
    hold = sorted(order[:n_hold])
    val = sorted(order[n_hold:n_hold + n_val])
    train = sorted(order[n_hold + n_val:])
    return np.array(train), np.array(val), np.array(hold)


def write_csv(name, header, rows, fmt):
    with open(os.path.join(OUT, name + ".csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        for features, label in rows:
            w.writerow([fmt(v) for v in features] + [str(int(label))])


def read_csv(name):
    with open(os.path.join(OUT, name + ".csv")) as f:
        rows = list(csv.reader(f))
    data = np.array([[float(v) for v in r[:-1]] for r in rows[1:]])
    labels = np.array([int(r[-1]) for r in rows[1:]])
    return rows[0][:-1], data, labels


def write_schema(name, features):
    schema = {"columns": [{"name": c, "type": "numeric"} for c in features] + [{"name": "y", "type": "label"}], "label": "y"}
    with open(os.path.join(OUT, name + ".schema.json"), "w") as f:
        json.dump(schema, f, indent=1)
        f.write("\n")


def main():
    os.makedirs(OUT, exist_ok=True)
    bc = load_breast_cancer()
    write_csv("breast_cancer", [f"f{i}" for i in range(bc.data.shape[1])] + ["y"], zip(bc.data, bc.target), lambda v: f"{v:.6g}")
    dg = load_digits()
    write_csv("digits", [f"p{i}" for i in range(64)] + ["y"], zip(dg.data, dg.target), lambda v: str(int(v)))

    experiments = [
        # Hyperparameters shared with the Swift test. Convex models run without early stopping
        # (patience 0) so both sides aim at the same regularized optimum; the MLP early-stops on
        # Swerve's side and runs max_iter epochs (stopping on training loss) on scikit-learn's.
        dict(name="breast_cancer_logistic", data="breast_cancer", model="logistic", l2=1e-3,
             optimizer="adam", learning_rate=0.01, epochs=150, batch_size=32, patience=0),
        dict(name="digits_softmax", data="digits", model="softmax", l2=1e-3,
             optimizer="adam", learning_rate=0.003, epochs=100, batch_size=32, patience=0),
        dict(name="digits_mlp", data="digits", model="mlp", hidden=[32], activation="relu", l2=3e-3,
             optimizer="adam", learning_rate=0.003, epochs=40, batch_size=32, patience=8),
    ]
    seed, validation, holdout = 7, 0.1, 0.2
    results = []
    for e in experiments:
        features, x, y = read_csv(e["data"])
        write_schema(e["data"], features)
        train, _, hold = split(len(y), validation, holdout, seed)
        scaler = StandardScaler().fit(x[train])
        xt, xh = scaler.transform(x[train]), scaler.transform(x[hold])
        # An MLP's result depends on its initialization; the reference is the mean over
        # random_state 0..3 (the spread is recorded too).
        seeds = [0] if e["model"] in ("logistic", "softmax") else [0, 1, 2, 3]
        scores = []
        for random_state in seeds:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                if e["model"] in ("logistic", "softmax"):
                    clf = LogisticRegression(C=1.0 / (e["l2"] * len(train)), max_iter=10000, tol=1e-10)
                else:
                    clf = MLPClassifier(hidden_layer_sizes=tuple(e["hidden"]), activation=e["activation"], solver="adam",
                                        alpha=e["l2"] * e["batch_size"], batch_size=e["batch_size"],
                                        learning_rate_init=e["learning_rate"], max_iter=e["epochs"],
                                        early_stopping=False, n_iter_no_change=8, random_state=random_state)
                clf.fit(xt, y[train])
            p = clf.predict_proba(xh)
            scores.append((accuracy_score(y[hold], p.argmax(axis=1)), log_loss(y[hold], p, labels=clf.classes_)))
        scores = np.array(scores)
        e.update(seed=seed, validation=validation, holdout=holdout, train_rows=len(train), holdout_rows=len(hold),
                 holdout_indices_head=hold[:10].tolist(), sklearn_random_states=seeds,
                 sklearn_accuracy=float(scores[:, 0].mean()), sklearn_log_loss=float(scores[:, 1].mean()),
                 sklearn_accuracy_range=[float(scores[:, 0].min()), float(scores[:, 0].max())],
                 sklearn_log_loss_range=[float(scores[:, 1].min()), float(scores[:, 1].max())])
        results.append(e)
        print(f"{e['name']}: accuracy {e['sklearn_accuracy']:.4f}, log loss {e['sklearn_log_loss']:.4f}")
    import sklearn
    with open(os.path.join(OUT, "sklearn_reference.json"), "w") as f:
        json.dump({"sklearn_version": sklearn.__version__, "experiments": results}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
