#!/usr/bin/env python3
"""The core benchmark's models: MLPs as people export them from torch (Gemm with transB=1 and a
bias, GELU spelled out with Erf as torch.onnx writes it before opset 20, LayerNormalization from
opset 17) with Relu, Tanh, Sigmoid and GELU, a LayerNorm variant, and a Softmax head; narrow
(30→64→64→3), wide (30→256→256→3, the issue's shape) and extra wide (256→1024→1024→10).

Usage: make_core_models.py OUTDIR   (writes OUTDIR/<name>.onnx and prints the names)
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SHAPES = {"narrow": [30, 64, 64, 3], "wide": [30, 256, 256, 3], "xwide": [256, 1024, 1024, 10]}
MODELS = [
    ("relu", "narrow"), ("tanh", "narrow"), ("gelu", "narrow"),
    ("relu", "wide"), ("tanh", "wide"), ("sigmoid", "wide"), ("gelu", "wide"), ("layernorm_gelu", "wide"),
    ("gelu", "xwide"),
]


def build(activation, widths, seed=7):
    rng = np.random.default_rng(seed)
    inits, nodes = [], []
    const = lambda name, a: inits.append(numpy_helper.from_array(np.asarray(a), name)) or name
    const("sqrt2", np.array(np.sqrt(2.0), dtype=np.float32))
    const("one", np.array(1.0, dtype=np.float32))
    const("half", np.array(0.5, dtype=np.float32))
    x = "input"
    for layer, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
        w = const(f"fc{layer}.weight", (rng.standard_normal((fan_out, fan_in)) / np.sqrt(fan_in)).astype(np.float32))
        b = const(f"fc{layer}.bias", (0.1 * rng.standard_normal(fan_out)).astype(np.float32))
        y = f"fc{layer}"
        nodes.append(helper.make_node("Gemm", [x, w, b], [y], name=f"/fc{layer}/Gemm", transB=1))
        if layer == len(widths) - 2:
            x = y
            break
        if activation.startswith("layernorm"):
            s = const(f"ln{layer}.weight", (1 + 0.1 * rng.standard_normal(fan_out)).astype(np.float32))
            sb = const(f"ln{layer}.bias", (0.1 * rng.standard_normal(fan_out)).astype(np.float32))
            nodes.append(helper.make_node("LayerNormalization", [y, s, sb], [f"ln{layer}"], name=f"/ln{layer}/LayerNormalization",
                                          axis=-1, epsilon=1e-5))
            y = f"ln{layer}"
        act = activation.split("_")[-1]
        h = f"act{layer}"
        if act == "gelu":
            p = f"/act{layer}/"
            nodes += [
                helper.make_node("Div", [y, "sqrt2"], [p + "Div"], name=p + "Div"),
                helper.make_node("Erf", [p + "Div"], [p + "Erf"], name=p + "Erf"),
                helper.make_node("Add", [p + "Erf", "one"], [p + "Add"], name=p + "Add"),
                helper.make_node("Mul", [y, p + "Add"], [p + "Mul"], name=p + "Mul"),
                helper.make_node("Mul", [p + "Mul", "half"], [h], name=p + "Mul_1"),
            ]
        else:
            nodes.append(helper.make_node({"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid"}[act], [y], [h], name=f"/act{layer}"))
        x = h
    nodes.append(helper.make_node("Softmax", [x], ["probabilities"], name="/Softmax", axis=-1))
    vi = helper.make_tensor_value_info
    graph = helper.make_graph(nodes, "torch_jit", [vi("input", TensorProto.FLOAT, ["batch", widths[0]])],
                              [vi("probabilities", TensorProto.FLOAT, ["batch", widths[-1]])], inits)
    model = helper.make_model(graph, producer_name="pytorch", opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "core_models"
    os.makedirs(out, exist_ok=True)
    for activation, shape in MODELS:
        name = f"mlp_{activation}_{shape}"
        onnx.save(build(activation, SHAPES[shape]), os.path.join(out, name + ".onnx"))
        print(name)


if __name__ == "__main__":
    main()
