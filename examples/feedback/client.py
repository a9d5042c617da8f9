#!/usr/bin/env python3
"""A client of `swerve serve` for the feedback example: serve a week of the drift stream as
one-row ModelInfer requests with ids, then feed the true labels back.

    python3 client.py --server 127.0.0.1:8001 week /tmp/drift/batches/week-01.csv
    python3 client.py --server 127.0.0.1:8001 week /tmp/drift/batches/week-01.csv --no-labels
    python3 client.py --server 127.0.0.1:8001 labels /tmp/drift/batches/week-01.csv

Inputs are laid out as the model asks: ModelMetadata gives each input's name, datatype and
width, and the drift monitor (ServingInsights/Drift, from the version's reference_stats.json)
says which feature sits in which column of which input. Request ids are PREFIX-ROW (the prefix
defaults to the file's name), so `labels` can send the labels of the same file later.
`run.py` uses the same functions. Stubs are generated from protos/ into ./gen on first use.
"""
from __future__ import annotations

import argparse
import collections
import csv
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
GEN = HERE / "gen"
PROTOS = ["grpc_service.proto", "model_config.proto", "swerve_serving.proto", "swerve_training.proto"]

if not all((GEN / (p[:-len(".proto")] + "_pb2.py")).exists() for p in PROTOS):
    GEN.mkdir(exist_ok=True)
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", str(ROOT / "protos"), f"--python_out={GEN}",
                    f"--grpc_python_out={GEN}", *[str(ROOT / "protos" / p) for p in PROTOS]], check=True)
if str(GEN) not in sys.path:
    sys.path.insert(0, str(GEN))

import grpc  # noqa: E402
import grpc_service_pb2 as ipb  # noqa: E402
import grpc_service_pb2_grpc as ipb_grpc  # noqa: E402
import swerve_serving_pb2 as spb  # noqa: E402
import swerve_serving_pb2_grpc as spb_grpc  # noqa: E402


class Client:
    def __init__(self, server: str, model: str = "ads") -> None:
        self.model = model
        self.channel = grpc.insecure_channel(server)
        self.infer = ipb_grpc.GRPCInferenceServiceStub(self.channel)
        self.insights = spb_grpc.ServingInsightsStub(self.channel)
        self.append_labels = self.channel.unary_unary(
            "/swerve.v1.Feedback/AppendLabels", request_serializer=spb.AppendLabelsRequest.SerializeToString,
            response_deserializer=spb.AppendLabelsResponse.FromString)
        self.inputs: list[tuple[str, str, int]] = []
        self.placement: dict[tuple[str, int], str] = {}

    # -- the model's inputs

    def versions(self) -> list[str]:
        """The versions the server serves the model with now (ModelMetadata)."""
        try:
            return list(self.infer.ModelMetadata(ipb.ModelMetadataRequest(name=self.model), timeout=5).versions)
        except grpc.RpcError:
            return []

    def drift(self, version: str):
        """The drift monitor's report of one version (None when it has no monitor)."""
        resp = self.insights.Drift(spb.DriftRequest(name=self.model, version=version), timeout=10)
        return next((v for v in resp.versions if v.version == version), None)

    def layout(self) -> str:
        """Reads the model's inputs (ModelMetadata) and where each feature sits in them (the
        drift monitor's features, i.e. the `features` list of reference_stats.json)."""
        meta = self.infer.ModelMetadata(ipb.ModelMetadataRequest(name=self.model), timeout=10)
        self.inputs = [(t.name, t.datatype, int(t.shape[-1])) for t in meta.inputs]
        vd = self.drift(meta.versions[-1])
        if vd is None:
            raise RuntimeError(f"{self.model} v{meta.versions[-1]} has no drift monitor (monitoring in config.json, "
                               "reference_stats.json beside the model): cannot tell where the features go")
        if vd.unmapped:
            raise RuntimeError(f"features not found in the model's inputs: {list(vd.unmapped)}")
        self.placement = {(f.input, f.column): f.name for f in vd.features}
        for name, _, width in self.inputs:
            for c in range(width):
                if (name, c) not in self.placement:
                    raise RuntimeError(f"no feature is placed at {name}[{c}]")
        return "; ".join(f"{n} {t} [1,{w}] = " + ", ".join(self.placement[(n, c)] for c in range(w))
                         for n, t, w in self.inputs)

    def request(self, request_id: str, row: dict[str, str]) -> ipb.ModelInferRequest:
        r = ipb.ModelInferRequest(model_name=self.model, id=request_id)
        for name, dtype, width in self.inputs:
            t = r.inputs.add(name=name, datatype=dtype, shape=[1, width])
            values = [row[self.placement[(name, c)]] for c in range(width)]
            if dtype == "BYTES":
                t.contents.bytes_contents.extend(v.encode() for v in values)
            elif dtype == "FP32":
                t.contents.fp32_contents.extend(float(v) for v in values)
            else:
                raise RuntimeError(f"input {name}: datatype {dtype} is not handled here")
        return r

    # -- traffic and labels

    def send(self, ids: list[str], rows: list[dict[str, str]], concurrency: int = 32) -> list[tuple[str, str]]:
        """One-row ModelInfer requests with ids, `concurrency` in flight; per row the version
        that answered and the predicted class."""
        if not self.inputs:
            self.layout()
        answers: list = [None] * len(rows)
        pending: collections.deque = collections.deque()

        def collect() -> None:
            i, fut = pending.popleft()
            resp = fut.result()
            label = next(o for o in resp.outputs if o.name == "label")
            answers[i] = (resp.model_version, str(label.contents.int64_contents[0]))
        for i, (rid, row) in enumerate(zip(ids, rows)):
            pending.append((i, self.infer.ModelInfer.future(self.request(rid, row), timeout=30)))
            if len(pending) >= concurrency:
                collect()
        while pending:
            collect()
        return answers

    def feed(self, ids: list[str], labels: list[str], chunk: int = 250, calls: int = 1, timeout: float = 120):
        """AppendLabels, `chunk` labels a call, `calls` calls at once (the server forwards the
        joined examples of a call to the trainer one at a time). Returns the outcomes counted and
        how many joined labels reached the trainer's log."""
        requests = [spb.AppendLabelsRequest(model_name=self.model, labels=[
            spb.LabelFeedback(request_id=i, label=l) for i, l in zip(ids[k:k + chunk], labels[k:k + chunk])])
            for k in range(0, len(ids), chunk)]
        outcomes: collections.Counter = collections.Counter()
        forwarded = 0
        for k in range(0, len(requests), calls):
            futures = [self.append_labels.future(r, timeout=timeout) for r in requests[k:k + calls]]
            for resp in (f.result() for f in futures):
                for o in resp.outcomes:
                    outcomes[o.outcome] += 1
                    if resp.forwarded and o.outcome == "joined" and o.sequence > 0:
                        forwarded += 1
        return outcomes, forwarded


def read_rows(path: str) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", default="127.0.0.1:8001")
    ap.add_argument("--model", default="ads")
    ap.add_argument("--label-column", default="converted")
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("week", help="serve a CSV file's rows, then feed their labels back")
    w.add_argument("csv")
    w.add_argument("--prefix", help="request id prefix (default: the file's name)")
    w.add_argument("--no-labels", action="store_true", help="only serve the rows")
    w.add_argument("--concurrency", type=int, default=32)
    lb = sub.add_parser("labels", help="feed a CSV file's labels back (for rows served before)")
    lb.add_argument("csv")
    lb.add_argument("--prefix")
    args = ap.parse_args()

    client = Client(args.server, args.model)
    rows = read_rows(args.csv)
    prefix = args.prefix or Path(args.csv).stem
    ids = [f"{prefix}-{i:05d}" for i in range(len(rows))]
    labels = [r[args.label_column] for r in rows]
    if args.cmd == "week":
        print("inputs:", client.layout())
        answers = client.send(ids, rows, args.concurrency)
        served = collections.Counter(v for v, _ in answers)
        accuracy = sum(p == l for (_, p), l in zip(answers, labels)) / len(rows)
        print(f"{args.csv}: {len(rows)} requests answered by " + ", ".join(f"v{v} ({n})" for v, n in sorted(served.items()))
              + f"; accuracy {accuracy:.4f}")
        if args.no_labels:
            return
    outcomes, forwarded = client.feed(ids, labels)
    print(f"{args.csv}: labels {dict(outcomes)}, {forwarded} appended to the trainer's log")


if __name__ == "__main__":
    main()
