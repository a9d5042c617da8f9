#!/usr/bin/env python3
"""Writes the models of the batching benchmark into a model repository.

Each is the issue's MLP, two hidden layers of 256 units (Gemm+Relu, Gemm+Relu, Gemm, Softmax),
with deterministic random weights, for several input widths: batching pays off as the work per
row grows relative to the per-request cost, and the width is what sets that work. Every model
gets a config.json with the same batching settings as examples/repository/digits_mlp.

usage: make_batching_models.py REPOSITORY [WIDTH ...]   (default widths: 64 1024 4096 32768)
"""
import json
import pathlib
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HIDDEN = 256
CLASSES = 10


def mlp(width, seed):
    rng = np.random.default_rng(seed)
    dims = [width, HIDDEN, HIDDEN, CLASSES]
    inits, nodes, prev = [], [], "input"
    for i in range(3):
        w = (rng.standard_normal((dims[i], dims[i + 1])) / np.sqrt(dims[i])).astype(np.float32)
        b = (rng.standard_normal(dims[i + 1]) * 0.01).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"W{i}"), numpy_helper.from_array(b, f"B{i}")]
        out = f"h{i}" if i < 2 else "logits"
        nodes.append(helper.make_node("Gemm", [prev, f"W{i}", f"B{i}"], [out]))
        if i < 2:
            nodes.append(helper.make_node("Relu", [out], [f"r{i}"]))
            out = f"r{i}"
        prev = out
    nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1))
    graph = helper.make_graph(
        nodes, f"mlp_{width}x256x256",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, width])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, CLASSES])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    repository = pathlib.Path(sys.argv[1])
    widths = [int(w) for w in sys.argv[2:]] or [64, 1024, 4096, 32768]
    # Dynamic mode: distinct random rows per request, so no cache may serve any of them.
    config = {"max_batch_size": 64, "dynamic_batching": {"max_queue_delay_us": 500}, "serving_mode": "dynamic"}
    for width in widths:
        folder = repository / f"mlp_in{width}_256x256"
        (folder / "1").mkdir(parents=True, exist_ok=True)
        onnx.save(mlp(width, seed=width), str(folder / "1" / "model.onnx"))
        (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        print(f"wrote {folder}", file=sys.stderr)


if __name__ == "__main__":
    main()
