#!/usr/bin/env python3
"""A tiny client of `swerve trainer` (gRPC swerve.v1.Trainer) for the drift demo.

    python3 push.py --trainer 127.0.0.1:8003 submit --data data        # start a continuous job
    python3 push.py --trainer 127.0.0.1:8003 push data/batches/week-01.csv   # AppendExamples
    python3 push.py --trainer 127.0.0.1:8003 versions                  # ListVersions
    python3 push.py --trainer 127.0.0.1:8003 watch JOB_ID              # WatchJob

Stubs are generated from protos/swerve_training.proto into ./gen on first use.
"""
from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
GEN = HERE / "gen"
if not (GEN / "swerve_training_pb2.py").exists():
    GEN.mkdir(exist_ok=True)
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", str(ROOT / "protos"), f"--python_out={GEN}",
                    f"--grpc_python_out={GEN}", str(ROOT / "protos" / "swerve_training.proto")], check=True)
sys.path.insert(0, str(GEN))

import grpc  # noqa: E402
import swerve_training_pb2 as pb  # noqa: E402
import swerve_training_pb2_grpc as pb_grpc  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trainer", default="127.0.0.1:8003")
    ap.add_argument("--model", default="ads")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("submit")
    s.add_argument("--data", default="data", help="the generator's output folder (for schema.json)")
    s.add_argument("--kind", default="logistic")
    s.add_argument("--poll-seconds", type=int, default=3)
    s.add_argument("--watch-dir", help="also train on CSV files dropped here")
    s.add_argument("--min-batch-rows", default="500")
    s.add_argument("--static", help="a CSV file: run one static job instead")
    p = sub.add_parser("push")
    p.add_argument("csv", nargs="+")
    p.add_argument("--chunk", type=int, default=500)
    sub.add_parser("versions")
    w = sub.add_parser("watch")
    w.add_argument("job_id")
    args = ap.parse_args()

    stub = pb_grpc.TrainerStub(grpc.insecure_channel(args.trainer))
    if args.cmd == "submit":
        schema = (Path(args.data) / "schema.json").read_text()
        hyper = {"epochs": "10", "lr": "0.05", "patience": "0"}
        if not args.static:
            hyper["min_batch_rows"] = args.min_batch_rows
        req = pb.SubmitJobRequest(model_name=args.model, model_kind=args.kind, schema_json=schema,
                                  continuous=not args.static, data_path=args.static or args.watch_dir or "",
                                  hyperparameters=hyper, slice_column="category", started_by="drift-demo",
                                  poll_seconds=args.poll_seconds)
        status = stub.SubmitJob(req, timeout=10)
        print(f"job {status.job_id}: {status.state}")
    elif args.cmd == "push":
        for path in args.csv:
            with open(path, newline="") as f:
                rows = list(csv.DictReader(f))
            for i in range(0, len(rows), args.chunk):
                examples = [pb.Example(features={k: v for k, v in r.items() if k != "converted"}, label=r["converted"])
                            for r in rows[i:i + args.chunk]]
                resp = stub.AppendExamples(pb.AppendExamplesRequest(model_name=args.model, examples=examples), timeout=60)
                print(f"{path}: appended {resp.count} examples from sequence {resp.first_sequence} (durable)")
    elif args.cmd == "versions":
        for v in stub.ListVersions(pb.ModelRef(model_name=args.model), timeout=10).versions:
            lineage = json.loads(v.lineage_json or "{}")
            metrics = ", ".join(f"{k} {x:.3f}" for k, x in sorted(lineage.get("metrics", {}).items()))
            prog = lineage.get("extra", {}).get("progressive.accuracy")
            print(f"v{v.version} {v.status:10} parent {lineage.get('parent_version')}  holdout: {metrics}"
                  + (f"  progressive accuracy (before training): {float(prog):.3f}" if prog else ""))
    elif args.cmd == "watch":
        for e in stub.WatchJob(pb.JobRef(job_id=args.job_id)):
            print(f"[{e.status.state}] {e.progress_line}")


if __name__ == "__main__":
    main()
