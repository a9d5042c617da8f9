#!/usr/bin/env python3
"""The baselines of benchmarks/trees.sh: one tree model, one fixed batch of the given rows, one
thread, timed the way `swerve bench --core` times itself (p50 and mean µs per batch).

    tree_bench.py --engine ort|xgboost|lightgbm|treelite --model-file F --rows-file R.f32
                  --features N --batch B --iterations I [--json OUT]

ort runs the ONNX file; xgboost / lightgbm run the native file with the library's own predict
(nthread 1); treelite compiles the native file with tl2cgen to a shared library (-O3) and runs it
(exits 3 when treelite/tl2cgen are not installed).
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_runner(args, batch_rows):
    if args.engine == "ort":
        import onnxruntime as ort
        o = ort.SessionOptions()
        o.intra_op_num_threads = 1
        o.inter_op_num_threads = 1
        o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        o.log_severity_level = 3  # no per-run warnings about declared output shapes
        s = ort.InferenceSession(args.model_file, sess_options=o, providers=["CPUExecutionProvider"])
        feed = {s.get_inputs()[0].name: batch_rows}
        return lambda: s.run(None, feed)
    if args.engine == "xgboost":
        import xgboost as xgb
        b = xgb.Booster(model_file=args.model_file)
        b.set_param({"nthread": 1})
        # inplace_predict: no DMatrix per call, the library's fastest path.
        return lambda: b.inplace_predict(batch_rows)
    if args.engine == "lightgbm":
        import lightgbm as lgb
        b = lgb.Booster(model_file=args.model_file)
        return lambda: b.predict(batch_rows, num_threads=1)
    if args.engine == "treelite":
        try:
            import tl2cgen
            import treelite
        except ImportError:
            sys.exit(3)
        if args.model_file.endswith(".xgb.json"):
            model = treelite.frontend.load_xgboost_model(args.model_file)
        else:
            model = treelite.frontend.load_lightgbm_model(args.model_file)
        # Compiled once per model file (the compile takes longer than the measurement).
        lib = Path(args.model_file + ".tl2cgen.so")
        if not lib.exists():
            tmp = Path(tempfile.mkdtemp()) / "model.so"
            tl2cgen.export_lib(model, toolchain="gcc", libpath=str(tmp), params={"parallel_comp": 8}, nthread=1)
            tmp.replace(lib)
        predictor = tl2cgen.Predictor(str(lib), nthread=1)
        dmat = tl2cgen.DMatrix(batch_rows)
        return lambda: predictor.predict(dmat)
    raise SystemExit(f"unknown engine {args.engine}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--engine", required=True)
    p.add_argument("--model-file", required=True)
    p.add_argument("--rows-file", required=True)
    p.add_argument("--features", type=int, required=True)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--iterations", type=int, default=1000)
    p.add_argument("--json")
    args = p.parse_args()
    rows = np.fromfile(args.rows_file, dtype=np.float32).reshape(-1, args.features)
    batch_rows = np.ascontiguousarray(np.resize(rows, (args.batch, args.features)))
    run = make_runner(args, batch_rows)
    for _ in range(max(10, args.iterations // 10)):
        run()
    times = np.empty(args.iterations)
    start = time.perf_counter()
    for i in range(args.iterations):
        t0 = time.perf_counter_ns()
        run()
        times[i] = (time.perf_counter_ns() - t0) / 1000
    total = time.perf_counter() - start
    result = {"engine": args.engine, "batch": args.batch, "iterations": args.iterations,
              "mean_micros": total / args.iterations * 1e6, "p50_micros": float(np.percentile(times, 50))}
    print(f"{args.engine} {Path(args.model_file).name} batch {args.batch}: p50 {result['p50_micros']:.2f} µs")
    if args.json:
        Path(args.json).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
