#!/usr/bin/env python3
"""Collects the per-run JSON of benchmarks/run.sh into one table (each figure beside its
baseline and the ratio) and benchmarks/results/latest.json; draws latency curves when
matplotlib is installed."""
import argparse
import datetime
import json
import os
import pathlib
import platform
import re
import subprocess


def load_json(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def parse_h2load(path):
    try:
        text = path.read_text()
    except OSError:
        return None
    out = {"raw": text.strip().splitlines()[-12:]}
    m = re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s", text)
    if m:
        out["rps"] = float(m.group(3))
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", text)
    if m:
        out.update(total=int(m.group(1)), succeeded=int(m.group(4)), failed=int(m.group(5)), errored=int(m.group(6)))
    m = re.search(r"status codes: (\d+) 2xx", text)
    if m:
        out["status_2xx"] = int(m.group(1))
    m = re.search(r"time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)", text)
    if m:
        scale = {"us": 1, "ms": 1e3, "s": 1e6}
        out["request_time_mean_us"] = float(m.group(5)) * scale[m.group(6)]
    return out


def ratio(a, b):
    return a / b if a and b else None


def fmt(x, digits=0):
    if x is None:
        return "-"
    return f"{x:,.{digits}f}"


def table(headers, rows):
    widths = [max(len(str(r[i])) for r in [headers] + rows) for i in range(len(headers))]
    lines = ["  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in [headers] + rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def git_revision(root):
    try:
        rev = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain"], capture_output=True, text=True).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except OSError:
        return None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("runs")
    p.add_argument("output")
    p.add_argument("--duration")
    p.add_argument("--h2load-args", default="")
    p.add_argument("--h2load-model", default="")
    args = p.parse_args()
    runs = pathlib.Path(args.runs)

    # a) + b): batched vs unbatched per model and concurrency, from one `swerve bench --sweep` each
    load = {}
    for f in sorted(runs.glob("load-*.json")):
        m = re.match(r"load-(batched|unbatched)-(.+)\.json", f.name)
        r = load_json(f)
        if m and r:
            for step in r.get("steps", []):
                load.setdefault((m.group(2), int(step["concurrency"])), {})[m.group(1)] = step
    load_rows, load_out = [], []
    for (model, c), pair in sorted(load.items()):
        b, u = pair.get("batched"), pair.get("unbatched")
        def fig(r, key):
            if not r:
                return None
            return r["throughput_rps"] if key == "rps" else r["latency_micros"][key]
        gain = ratio(fig(b, "rps"), fig(u, "rps"))
        errors = sum((r or {}).get("errors", 0) for r in (b, u))
        load_rows.append([model, c, fmt(fig(b, "rps")), fmt(fig(b, "p50")), fmt(fig(b, "p99")),
                          fmt(fig(u, "rps")), fmt(fig(u, "p50")), fmt(fig(u, "p99")),
                          fmt(gain, 2) + "x" if gain else "-", errors])
        load_out.append({"model": model, "concurrency": c,
                         "batched": {k: fig(b, k) for k in ("rps", "p50", "p90", "p99", "p999", "max")} if b else None,
                         "unbatched": {k: fig(u, k) for k in ("rps", "p50", "p90", "p99", "p999", "max")} if u else None,
                         "batching_gain": gain, "errors": errors})

    # e) batching gain per model: alternating rounds, the median of the per-round gains
    # (one `swerve bench --target batched=… --target unbatched=… --rounds N` per model)
    batching = {}
    for f in sorted(runs.glob("batching-*.json")):
        r = load_json(f)
        for run in (r or {}).get("runs", []):
            batching.setdefault(f.stem[len("batching-"):], {}).setdefault(run["round"], {})[run["target"]] = run["throughput_rps"]
    batching_rows, batching_out = [], []
    def width(model):
        m = re.search(r"in(\d+)", model)
        return int(m.group(1)) if m else 0
    for model in sorted(batching, key=width):
        rounds = batching[model]
        gains = [ratio(r.get("batched"), r.get("unbatched")) for _, r in sorted(rounds.items())]
        ok = sorted(g for g in gains if g)
        med = ok[len(ok) // 2] if ok else None
        b = sorted(r.get("batched") or 0 for r in rounds.values())[len(rounds) // 2]
        u = sorted(r.get("unbatched") or 0 for r in rounds.values())[len(rounds) // 2]
        batching_rows.append([model, fmt(b), fmt(u), " ".join(fmt(g, 2) for g in gains), fmt(med, 2) + "x" if med else "-"])
        batching_out.append({"model": model, "input_width": width(model), "rounds": rounds, "gains": gains, "median_gain": med})

    # c) HTTP/2 ceiling: alternating rounds, the median of the per-round ratios
    h2_rounds = []
    for f in sorted(runs.glob("h2load-swerve-*.txt"), key=lambda p: int(p.stem.rsplit("-", 1)[1])):
        n = f.stem.rsplit("-", 1)[1]
        sw, dy, ng = (parse_h2load(f), parse_h2load(runs / f"h2load-dynamic-{n}.txt"),
                      parse_h2load(runs / f"h2load-nghttpd-{n}.txt"))
        h2_rounds.append({"round": int(n), "swerve": sw, "swerve_dynamic": dy, "nghttpd": ng,
                          "ratio": ratio((sw or {}).get("rps"), (ng or {}).get("rps")),
                          "dynamic_ratio": ratio((dy or {}).get("rps"), (ng or {}).get("rps"))})

    def median(values):
        values = sorted(v for v in values if v)
        return values[len(values) // 2] if values else None
    ratios = [r["ratio"] for r in h2_rounds if r["ratio"]]
    h2_ratio = median(ratios)
    h2_dynamic_ratio = median(r["dynamic_ratio"] for r in h2_rounds)

    # d) core vs onnxruntime
    core = {}
    for f in sorted(runs.glob("core-*.json")):
        m = re.match(r"core-(swerve|ort)-(.+)-b(\d+)\.json", f.name)
        r = load_json(f)
        if m and r:
            core.setdefault((m.group(2), int(m.group(3))), {})[m.group(1)] = r
    core_rows, core_out = [], []
    for (model, batch), pair in sorted(core.items()):
        s, o = pair.get("swerve"), pair.get("ort")
        sm, om = (s or {}).get("mean_micros"), (o or {}).get("mean_micros")
        speed = ratio(om, sm)  # > 1: Swerve faster
        core_rows.append([model, batch, fmt(sm, 2), fmt((s or {}).get("p99_micros"), 2),
                          fmt(om, 2), fmt((o or {}).get("p99_micros"), 2), fmt(speed, 2) + "x" if speed else "-"])
        core_out.append({"model": model, "batch": batch, "swerve": s, "onnxruntime": o,
                         "swerve_speed_vs_onnxruntime": speed})

    print("\na+b) ModelInfer, closed loop, 1 connection, 1 row per request, unique inputs"
          f" ({args.duration} s per run); baseline: same repository with max_batch_size 1")
    print(table(["model", "conc", "batched rps", "p50 µs", "p99 µs", "unbatched rps", "p50 µs", "p99 µs", "gain", "errors"],
                load_rows) if load_rows else "  (no runs)")
    print(f"\nc) HTTP/2 ceiling, h2load {args.h2load_args}, one-row {args.h2load_model} ModelInfer request body"
          "; baseline: nghttpd serving a static response-sized file, in alternating rounds")
    def h2cells(r):
        return [fmt((r or {}).get("rps")), (r or {}).get("succeeded", "-"), f"{(r or {}).get('failed', '-')}/{(r or {}).get('errored', '-')}"]
    print(table(["round", "swerve rps", "ok", "failed/errored", "dynamic rps", "ok", "failed/errored",
                 "nghttpd rps", "ok", "failed/errored", "ratio", "dynamic ratio"],
                [[r["round"], *h2cells(r["swerve"]), *h2cells(r["swerve_dynamic"]), *h2cells(r["nghttpd"]),
                  fmt(r["ratio"], 3), fmt(r["dynamic_ratio"], 3)] for r in h2_rounds])
          + f"\n  swerve (as configured: auto, answered from the response cache) / nghttpd, median of {len(ratios)} rounds = {fmt(h2_ratio, 3)}"
          + f"\n  swerve (serving_mode dynamic: computed by the batcher every time) / nghttpd, median = {fmt(h2_dynamic_ratio, 3)}"
          if h2_rounds else "  (skipped)")
    print("\ne) batching gain on the issue's MLP (hidden layers 256, 256) with inputs of width W"
          " (benchmarks/make_batching_models.py, serving_mode dynamic), concurrency 64, unique inputs;"
          " baseline: the same models with max_batch_size 1, in alternating rounds (median req/s)")
    print(table(["model", "batched rps", "unbatched rps", "gain per round", "median gain"], batching_rows)
          if batching_rows else "  (no runs)")
    print("\nd) inference core alone, one thread, mean µs per run; baseline: onnxruntime on the same file")
    print(table(["model", "batch", "swerve mean", "swerve p99", "ort mean", "ort p99", "swerve speed"], core_rows)
          if core_rows else "  (no runs)")

    result = {
        "generated_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git": git_revision(str(pathlib.Path(__file__).resolve().parent.parent)),
        "host": {"machine": platform.machine(), "cpus": os.cpu_count(), "system": platform.platform()},
        "duration_seconds": float(args.duration) if args.duration else None,
        "modelinfer": load_out,
        "http2_ceiling": {"h2load_args": args.h2load_args, "model": args.h2load_model,
                          "rounds": h2_rounds, "swerve_over_nghttpd_median": h2_ratio,
                          "dynamic_over_nghttpd_median": h2_dynamic_ratio},
        "batching_gain": batching_out,
        "core": core_out,
        "runs": {f.name: load_json(f) for f in sorted(runs.glob("*.json"))},
    }
    out = pathlib.Path(args.output)
    out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(f"\nwrote {out}")

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not installed: no latency plot)")
        return
    fig, ax = plt.subplots(figsize=(9, 5))
    for (model, c), pair in sorted(load.items()):
        for config, style in (("batched", "-"), ("unbatched", ":")):
            r = pair.get(config)
            if not r or not r.get("percentiles"):
                continue
            pts = [(p["percentile"], p["value_micros"]) for p in r["percentiles"] if p["percentile"] < 100]
            ax.plot([1 / (1 - q / 100) for q, _ in pts], [v for _, v in pts], style, label=f"{model} c={c} {config}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("percentile (1/(1-q)): 2 = p50, 10 = p90, 100 = p99, 1000 = p99.9")
    ax.set_ylabel("latency µs")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    png = out.with_name("latency.png")
    fig.savefig(png, dpi=120, bbox_inches="tight")
    print(f"wrote {png}")


if __name__ == "__main__":
    main()
