#!/usr/bin/env python3
"""onnxruntime baseline for `swerve bench --core`: one ONNX file, one fixed batch, one thread.

Prints one line and, with --json, writes the same figures the Swift side writes
(mean/p50/p90/p99 microseconds per run, rows per second).
"""
import argparse
import json
import time

import numpy as np
import onnxruntime as ort

NUMPY_TYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-file", required=True)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json")
    args = parser.parse_args()

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(args.model_file, sess_options=options, providers=["CPUExecutionProvider"])

    rng = np.random.default_rng(args.seed)
    feeds = {}
    for i in session.get_inputs():
        shape = [args.batch if (j == 0 and not isinstance(d, int)) else (d if isinstance(d, int) else 1)
                 for j, d in enumerate(i.shape)]
        dtype = NUMPY_TYPES[i.type]
        if dtype in (np.float32, np.float64):
            feeds[i.name] = rng.random(shape).astype(dtype)
        elif dtype == np.bool_:
            feeds[i.name] = rng.random(shape) < 0.5
        else:
            feeds[i.name] = rng.integers(0, 16, shape).astype(dtype)

    for _ in range(max(10, args.iterations // 10)):
        session.run(None, feeds)
    times = np.empty(args.iterations)
    start = time.perf_counter()
    for k in range(args.iterations):
        t0 = time.perf_counter()
        session.run(None, feeds)
        times[k] = time.perf_counter() - t0
    total = time.perf_counter() - start

    us = times * 1e6
    result = {
        "kind": "onnxruntime",
        "onnxruntime_version": ort.__version__,
        "model_file": args.model_file,
        "batch": args.batch,
        "iterations": args.iterations,
        "mean_micros": total / args.iterations * 1e6,
        "p50_micros": float(np.percentile(us, 50)),
        "p90_micros": float(np.percentile(us, 90)),
        "p99_micros": float(np.percentile(us, 99)),
        "min_micros": float(us.min()),
        "max_micros": float(us.max()),
        "runs_per_second": args.iterations / total,
        "rows_per_second": args.iterations * args.batch / total,
    }
    print(f"onnxruntime {args.model_file} batch {args.batch}: mean {result['mean_micros']:.2f} µs  "
          f"p50 {result['p50_micros']:.2f}  p99 {result['p99_micros']:.2f}  {result['rows_per_second']:.0f} rows/s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2, sort_keys=True)
            f.write("\n")


if __name__ == "__main__":
    main()
