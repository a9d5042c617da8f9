"""Helper for benchmarks/training.sh: the synthetic data set, the scikit-learn (and, when it is
installed, PyTorch CPU) baselines, and the report.

  gen       DIR --rows N --features F --seed S   write DIR/train.csv, DIR/schema.json, DIR/data.npz once
  baselines DIR --out FILE [config]              train the baselines on Swerve's exact split
  report    --swerve NAME=metrics.json ... --baselines FILE --out FILE

The split is Swerve's (`splitIndices` in Sources/SwerveTraining/Data/Dataset.swift), recomputed
here, so every model is trained on the same rows and scored on the same validation rows. Times are
training time only (forward + backward + update over the training split): the validation scoring
after each epoch is not counted, for Swerve (its per-epoch `examplesPerSecond`) or the baselines.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def splitmix_mix(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def swerve_split(n: int, validation: float, holdout: float, seed: int):
    """Swerve's Dataset.split: rows ordered by mix(seed + (i+1)·φ); holdout first, then validation."""
    with np.errstate(over="ignore"):
        keys = splitmix_mix(np.uint64(seed) + (np.arange(1, n + 1, dtype=np.uint64) * np.uint64(GOLDEN)))
    order = np.argsort(keys, kind="stable")
    sizes = [min(n, int(np.floor(n * f + 0.5))) for f in (holdout, validation)]
    hold = np.sort(order[: sizes[0]])
    val = np.sort(order[sizes[0]: sizes[0] + sizes[1]])
    train = np.sort(order[sizes[0] + sizes[1]:])
    return train, val, hold


def gen(args):
    out = Path(args.dir)
    if (out / "data.npz").exists() and (out / "train.csv").exists():
        print(f"data: reusing {out}", file=sys.stderr)
        return
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    n, f = args.rows, args.features
    x = np.round(rng.standard_normal((n, f)), 4)
    w = rng.standard_normal(f) / np.sqrt(f) * 2.0
    # A linear part plus pairwise interactions, so an MLP has something to gain over a linear model.
    inter = sum(x[:, 2 * k] * x[:, 2 * k + 1] for k in range(min(8, f // 2))) * 0.6
    logit = x @ w + inter
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    np.savez(out / "data.npz", x=x, y=y)
    schema = {"columns": [{"name": f"x{i}", "type": "numeric"} for i in range(f)]
              + [{"name": "y", "type": "label", "task": "classification", "classes": ["0", "1"]}], "label": "y"}
    (out / "schema.json").write_text(json.dumps(schema))
    tmp = out / "train.csv.tmp"
    with open(tmp, "w") as fh:
        fh.write(",".join([f"x{i}" for i in range(f)] + ["y"]) + "\n")
        block = 20000
        for s in range(0, n, block):
            xb, yb = x[s:s + block], y[s:s + block]
            lines = [",".join(f"{v:.4f}" for v in row) + f",{int(t)}" for row, t in zip(xb, yb)]
            fh.write("\n".join(lines) + "\n")
    os.replace(tmp, out / "train.csv")
    print(f"data: wrote {n} rows x {f} features to {out}/train.csv ({(out / 'train.csv').stat().st_size / 1e6:.0f} MB)", file=sys.stderr)


def log_loss(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(p, 1e-15, 1 - 1e-15)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def baselines(args):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    d = np.load(Path(args.dir) / "data.npz")
    x, y = d["x"], d["y"]
    tr, va, _ = swerve_split(len(y), args.validation, args.holdout, args.seed)
    mean, std = x[tr].mean(0), x[tr].std(0)
    std[std == 0] = 1
    xt, yt = (x[tr] - mean) / std, y[tr]
    xv, yv = (x[va] - mean) / std, y[va]
    n = len(tr)
    out = {"train_rows": n, "validation_rows": len(va), "features": x.shape[1]}

    # LogisticRegression (lbfgs, full batch) at the same regularized objective: C = 1 / (l2 · n).
    # The time to a validation loss is the wall time of the smallest max_iter whose fit reaches it
    # (each fit from scratch); throughput counts one pass over the rows per lbfgs iteration.
    C = 1 / (args.l2 * n)
    curve = []
    for it in [1, 2, 3, 5, 8, 12, 18, 27, 40, 60, 100, 200, 1000]:
        m = LogisticRegression(C=C, max_iter=it, tol=1e-6)
        t0 = time.perf_counter()
        m.fit(xt, yt)
        dt = time.perf_counter() - t0
        curve.append({"max_iter": it, "n_iter": int(m.n_iter_[0]), "seconds": dt,
                      "val_log_loss": log_loss(m.predict_proba(xv)[:, 1], yv)})
        if m.n_iter_[0] < it:
            break
    full = curve[-1]
    out["sklearn_logistic"] = {
        "name": "sklearn LogisticRegression(lbfgs)", "curve": curve, "seconds": full["seconds"],
        "examples_per_second": n * full["n_iter"] / full["seconds"], "final_val_log_loss": full["val_log_loss"],
        "epochs_or_iterations": full["n_iter"]}

    # MLPClassifier: same architecture, Adam, learning rate, batch, epochs; alpha = l2 · batch.
    m = MLPClassifier(hidden_layer_sizes=tuple(args.hidden), activation="relu", solver="adam",
                      learning_rate_init=args.mlp_lr, batch_size=args.batch_size, alpha=args.l2 * args.batch_size,
                      random_state=args.seed, shuffle=True)
    epochs, total = [], 0.0
    for e in range(1, args.mlp_epochs + 1):
        t0 = time.perf_counter()
        m.partial_fit(xt, yt, classes=[0, 1])
        dt = time.perf_counter() - t0
        total += dt
        epochs.append({"epoch": e, "seconds": dt, "val_log_loss": log_loss(m.predict_proba(xv)[:, 1], yv)})
    out["sklearn_mlp"] = {"name": "sklearn MLPClassifier(adam)", "epochs": epochs, "seconds": total,
                          "examples_per_second": n * len(epochs) / total, "final_val_log_loss": epochs[-1]["val_log_loss"]}

    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        torch.manual_seed(args.seed)
        torch.set_num_threads(args.threads)
        X, Y = torch.tensor(xt, dtype=torch.float32), torch.tensor(yt, dtype=torch.float32)
        XV = torch.tensor(xv, dtype=torch.float32)
        for kind, lr, n_epochs in (("logistic", args.logistic_lr, args.logistic_epochs), ("mlp", args.mlp_lr, args.mlp_epochs)):
            layers, width = [], x.shape[1]
            for h in (args.hidden if kind == "mlp" else []):
                layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
                width = h
            net = torch.nn.Sequential(*layers, torch.nn.Linear(width, 1))
            opt = torch.optim.Adam(net.parameters(), lr=lr)
            lossf = torch.nn.BCEWithLogitsLoss()
            g = torch.Generator().manual_seed(args.seed)
            eps, total = [], 0.0
            for e in range(1, n_epochs + 1):
                t0 = time.perf_counter()
                perm = torch.randperm(n, generator=g)
                for s in range(0, n, args.batch_size):
                    idx = perm[s:s + args.batch_size]
                    opt.zero_grad()
                    out_ = net(X[idx]).squeeze(1)
                    loss = lossf(out_, Y[idx])
                    w2 = sum((p ** 2).sum() for name, p in net.named_parameters() if name.endswith("weight"))
                    (loss + args.l2 / 2 * w2).backward()
                    opt.step()
                dt = time.perf_counter() - t0
                total += dt
                with torch.no_grad():
                    pv = torch.sigmoid(net(XV).squeeze(1)).numpy().astype(np.float64)
                eps.append({"epoch": e, "seconds": dt, "val_log_loss": log_loss(pv, yv)})
            out[f"torch_{kind}"] = {"name": f"PyTorch {torch.__version__} CPU ({args.threads} threads)", "epochs": eps,
                                    "seconds": total, "examples_per_second": n * len(eps) / total,
                                    "final_val_log_loss": eps[-1]["val_log_loss"]}
    json.dump(out, open(args.out, "w"), indent=2)


def swerve_run(path: str) -> dict:
    m = json.load(open(path))
    n = m["rows"]["train"]
    eps, total = [], 0.0
    for h in m["history"]:
        dt = n / h["examplesPerSecond"]
        total += dt
        eps.append({"epoch": h["epoch"], "seconds": dt, "val_log_loss": h.get("validationLoss")})
    return {"epochs": eps, "seconds": total, "examples_per_second": n * len(eps) / total,
            "final_val_log_loss": eps[-1]["val_log_loss"], "train_rows": n,
            "threads": m["configuration"]["threads"]}


def time_to(run: dict, target: float):
    """Training seconds until the validation log loss first reaches `target` (None if never)."""
    if "curve" in run:  # lbfgs: the smallest budget that reaches it
        for c in run["curve"]:
            if c["val_log_loss"] <= target:
                return c["seconds"]
        return None
    t = 0.0
    for e in run["epochs"]:
        t += e["seconds"]
        if e["val_log_loss"] is not None and e["val_log_loss"] <= target:
            return t
    return None


def report(args):
    base = json.load(open(args.baselines))
    sw = {}
    for item in args.swerve:
        name, path = item.split("=", 1)
        sw[name] = swerve_run(path)
    wall = json.loads(args.wall) if args.wall else {}
    rows, result = [], {"figures": []}

    def ratio(a, b):
        return None if a is None or b is None or b == 0 else a / b

    def fig(label, unit, value, baseline_name, baseline, better="higher"):
        r = ratio(value, baseline)
        rows.append((label, unit, value, baseline_name, baseline, r, better))
        result["figures"].append({"figure": label, "unit": unit, "swerve": value, "baseline": baseline_name,
                                  "baseline_value": baseline, "ratio_swerve_over_baseline": r, "better": better})

    targets = {}
    for kind, margin in (("logistic", args.logistic_margin), ("mlp", args.mlp_margin)):
        finals = [sw[f"{kind}_t{args.threads}"]["final_val_log_loss"]]
        finals += [v["final_val_log_loss"] for k, v in base.items() if isinstance(v, dict) and k.endswith("_" + kind)]
        targets[kind] = round(max(finals) + margin, 4)
    result["targets_val_log_loss"] = targets

    t = args.threads
    for kind in ("logistic", "mlp"):
        s = sw[f"{kind}_t{t}"]
        for key in [k for k in base if isinstance(base[k], dict) and k.endswith("_" + kind)]:
            b = base[key]
            fig(f"{kind}: throughput, swerve {t} threads", "examples/s", s["examples_per_second"], b["name"], b["examples_per_second"])
            fig(f"{kind}: time to val log loss {targets[kind]}", "s", time_to(s, targets[kind]), b["name"], time_to(b, targets[kind]), "lower")
            fig(f"{kind}: final val log loss", "", s["final_val_log_loss"], b["name"], b["final_val_log_loss"], "lower")
    for kind in ("logistic", "mlp"):
        a, b = sw[f"{kind}_t{t}"], sw[f"{kind}_t1"]
        fig(f"{kind}: data-parallel speed-up ({t} vs 1 threads)", "examples/s", a["examples_per_second"],
            "swerve 1 thread", b["examples_per_second"])
        fig(f"{kind}: time to val log loss {targets[kind]} ({t} vs 1 threads)", "s", time_to(a, targets[kind]),
            "swerve 1 thread", time_to(b, targets[kind]), "lower")

    def fmt(v):
        if v is None:
            return "-"
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.4f}" if abs(v) < 10 else f"{v:.2f}"

    header = ("figure", "unit", "swerve", "baseline", "baseline value", "swerve/baseline", "better")
    table = [header] + [(l, u, fmt(v), bn, fmt(bv), "-" if r is None else f"{r:.2f}x", bt) for l, u, v, bn, bv, r, bt in rows]
    widths = [max(len(str(r[i])) for r in table) for i in range(len(header))]
    lines = []
    for i, r in enumerate(table):
        lines.append("  ".join(str(c).ljust(widths[j]) if j in (0, 1, 3, 6) else str(c).rjust(widths[j]) for j, c in enumerate(r)))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    print("\n".join(lines))
    print(f"\nrows: train {base['train_rows']}, validation {base['validation_rows']}, {base['features']} features; "
          f"targets = worst final validation log loss among the compared runs + margin: {targets}")
    if wall:
        print("swerve process wall time (CSV parse + split + train + holdout + export): "
              + ", ".join(f"{k} {v:.1f}s" for k, v in wall.items()))
    if not any(k.startswith("torch_") for k in base):
        print("PyTorch: not installed in the venv (skipped)")
    result.update({"swerve_runs": sw, "baselines": base, "swerve_process_wall_seconds": wall,
                   "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                               "numpy": np.__version__},
                   "config": vars(args) | {"swerve": args.swerve}, "unix_time": time.time()})
    try:
        import sklearn
        result["machine"]["sklearn"] = sklearn.__version__
    except ImportError:
        pass
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    json.dump(result, open(args.out, "w"), indent=2)
    print(f"wrote {args.out}")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("dir")
    g.add_argument("--rows", type=int, default=200_000)
    g.add_argument("--features", type=int, default=64)
    g.add_argument("--seed", type=int, default=7)
    for name in ("baselines", "report"):
        q = sub.add_parser(name)
        q.add_argument("--seed", type=int, default=7)
        q.add_argument("--validation", type=float, default=0.1)
        q.add_argument("--holdout", type=float, default=0.2)
        q.add_argument("--l2", type=float, default=1e-4)
        q.add_argument("--batch-size", type=int, default=256)
        q.add_argument("--hidden", type=int, nargs="+", default=[64])
        q.add_argument("--mlp-lr", type=float, default=0.001)
        q.add_argument("--mlp-epochs", type=int, default=15)
        q.add_argument("--logistic-lr", type=float, default=0.002)
        q.add_argument("--logistic-epochs", type=int, default=20)
        q.add_argument("--threads", type=int, default=2)
        q.add_argument("--out", required=True)
    sub.choices["baselines"].add_argument("dir")
    r = sub.choices["report"]
    r.add_argument("--swerve", nargs="+", required=True)
    r.add_argument("--baselines", required=True)
    r.add_argument("--wall", default="")
    r.add_argument("--logistic-margin", type=float, default=0.001)
    r.add_argument("--mlp-margin", type=float, default=0.005)
    a = p.parse_args()
    {"gen": gen, "baselines": baselines, "report": report}[a.cmd](a)


if __name__ == "__main__":
    main()
