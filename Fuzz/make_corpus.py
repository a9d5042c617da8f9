#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpus into Fuzz/corpus/ (committed; rerun to regenerate).

    .venv/bin/python Fuzz/make_corpus.py

Seeds come from what the tests already use, so the fuzzer starts from inputs the server
accepts and mutates from there:

- requests/  ModelInferRequest bytes (FuzzInferRequest, FuzzTensorCoding): the inputs of every
             Tests/SwerveInferenceTests/Fixtures/<name>.json, for model <name>, in raw and in
             typed layout, plus every datatype on the small_ints model the server tests build,
             a few rows of each, and requests the error tests send (unknown model, bad shape,
             both layouts at once).
- deframer/  the same requests framed with the 5-byte gRPC prefix, one or three per stream,
             behind FuzzDeframer's two control bytes (maximum size exponent, chunking seed).
- onnx/      every fixture model and every examples/repository model under 64 KiB, plus small
             graphs for the operators that fold at compile time (Concat, Gather, Reshape,
             Shape, Constant, broadcasting Add, Where) that the fixtures use little.

Deterministic: the same files each run (names are content hashes).
"""
import hashlib
import json
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
FIXTURES = ROOT / "Tests" / "SwerveInferenceTests" / "Fixtures"
OUT = HERE / "corpus"
MAX_ONNX = 64 * 1024


def stubs():
    gen = Path(tempfile.mkdtemp(prefix="swerve-fuzz-gen-"))
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", str(ROOT / "protos"),
                    f"--python_out={gen}", str(ROOT / "protos" / "grpc_service.proto"),
                    str(ROOT / "protos" / "model_config.proto")], check=True)
    sys.path.insert(0, str(gen))
    import grpc_service_pb2
    shutil.rmtree(gen)
    return grpc_service_pb2


def write(folder: str, data: bytes) -> None:
    d = OUT / folder
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)


NUMPY = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32, "INT16": np.int16,
         "INT8": np.int8, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
         "BOOL": np.bool_}
FIELD = {"FP32": "fp32_contents", "FP64": "fp64_contents", "INT64": "int64_contents", "INT32": "int_contents",
         "INT16": "int_contents", "INT8": "int_contents", "UINT8": "uint_contents", "UINT16": "uint_contents",
         "UINT32": "uint_contents", "UINT64": "uint64_contents", "BOOL": "bool_contents", "BYTES": "bytes_contents"}


def raw_bytes(dtype: str, values) -> bytes:
    if dtype == "BYTES":
        out = b""
        for v in values:
            b = v.encode() if isinstance(v, str) else bytes(v)
            out += struct.pack("<I", len(b)) + b
        return out
    return np.asarray(values, dtype=NUMPY[dtype]).tobytes()


def request(pb, model: str, inputs, raw: bool, rows: int | None = None):
    """inputs: [(name, dtype, shape, flat values)]; `rows` keeps only the first rows."""
    req = pb.ModelInferRequest(model_name=model, id="fuzz-seed")
    for name, dtype, shape, values in inputs:
        shape = list(shape)
        if rows is not None and shape:
            per_row = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            values = values[: rows * per_row]
            shape[0] = min(rows, shape[0])
        t = req.inputs.add(name=name, datatype=dtype, shape=shape)
        if raw:
            req.raw_input_contents.append(raw_bytes(dtype, values))
        else:
            field = getattr(t.contents, FIELD[dtype])
            if dtype == "BYTES":
                field.extend([v.encode() if isinstance(v, str) else bytes(v) for v in values])
            else:
                field.extend(np.asarray(values, dtype=NUMPY[dtype]).tolist())
    return req


def requests(pb):
    out = []
    for spec in sorted(FIXTURES.glob("*.json")):
        fixture = json.loads(spec.read_text())
        inputs = [(i["name"], i["dtype"], i["shape"], i["data"]) for i in fixture["inputs"]]
        for raw in (True, False):
            for rows in (1, 3):
                out.append(request(pb, spec.stem, inputs, raw, rows))
    small = [("a", "INT8", [2, 2], [-1, 2, -128, 127]), ("b", "INT16", [2, 2], [-1, 2, -32768, 32767]),
             ("c", "UINT8", [2, 2], [0, 1, 2, 255])]
    out += [request(pb, "small_ints", small, raw) for raw in (True, False)]
    # What the error tests send: unknown model and version, a wrong shape, both layouts, a
    # requested output.
    bad = request(pb, "lr_binary", [("X", "FP32", [1, 30], [0.5] * 30)], raw=True)
    bad.model_name = "no_such_model"
    out.append(bad)
    version = request(pb, "lr_binary", [("X", "FP32", [1, 30], [0.5] * 30)], raw=False)
    version.model_version = "7"
    out.append(version)
    shape = request(pb, "lr_binary", [("X", "FP32", [2, 29], [0.5] * 58)], raw=True)
    out.append(shape)
    both = request(pb, "lr_binary", [("X", "FP32", [1, 30], [0.5] * 30)], raw=False)
    both.raw_input_contents.append(raw_bytes("FP32", [0.5] * 30))
    out.append(both)
    asked = request(pb, "lr_binary", [("X", "FP32", [1, 30], [0.5] * 30)], raw=True)
    asked.outputs.add(name="probabilities")
    out.append(asked)
    return [r.SerializeToString(deterministic=True) for r in out]


def frame(message: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", len(message)) + message


def onnx_seeds():
    def model(nodes, inputs, outputs, initializers=(), opset=17):
        graph = helper.make_graph(nodes, "seed", inputs, outputs, list(initializers))
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="fuzz-seed")
        m.ir_version = 8
        return m.SerializeToString()

    f = TensorProto.FLOAT
    i64 = TensorProto.INT64
    x = helper.make_tensor_value_info("x", f, ["N", 4])
    y = helper.make_tensor_value_info("y", f, None)
    c = helper.make_tensor("c", f, [1, 4], [1.0, 2.0, 3.0, 4.0])
    seeds = [
        # Concat of constants (folded), then a broadcasting Add with the input.
        model([helper.make_node("Concat", ["c", "c"], ["cc"], axis=0),
               helper.make_node("Concat", ["cc", "cc"], ["c4"], axis=0),
               helper.make_node("Gather", ["c4", "idx"], ["row"], axis=0),
               helper.make_node("Add", ["x", "row"], ["y"])],
              [x], [y], [c, helper.make_tensor("idx", i64, [1], [0])]),
        # The shape arithmetic torch.onnx emits: Shape → Gather → Unsqueeze → Concat → Reshape.
        model([helper.make_node("Shape", ["x"], ["s"]),
               helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
               helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]),
               helper.make_node("Concat", ["n1", "minus1"], ["target"], axis=0),
               helper.make_node("Reshape", ["x", "target"], ["y"])],
              [x], [y], [helper.make_tensor("zero", i64, [], [0]), helper.make_tensor("axes", i64, [1], [0]),
                         helper.make_tensor("minus1", i64, [1], [-1])]),
        # Constant nodes, Where and a comparison, MatMul with a constant weight.
        model([helper.make_node("Constant", [], ["w"], value=helper.make_tensor("wv", f, [4, 2], [0.5] * 8)),
               helper.make_node("MatMul", ["x", "w"], ["m"]),
               helper.make_node("Constant", [], ["zero"], value=helper.make_tensor("zv", f, [], [0.0])),
               helper.make_node("Greater", ["m", "zero"], ["pos"]),
               helper.make_node("Where", ["pos", "m", "zero"], ["y"])],
              [x], [y]),
        # An initializer in raw_data and a Softmax / ArgMax head.
        model([helper.make_node("Gemm", ["x", "wr", "br"], ["g"], transB=1),
               helper.make_node("Softmax", ["g"], ["y"], axis=1),
               helper.make_node("ArgMax", ["g"], ["label"], axis=1)],
              [x], [y, helper.make_tensor_value_info("label", i64, None)],
              [helper.make_tensor("wr", f, [3, 4], np.arange(12, dtype=np.float32).tobytes(), raw=True),
               helper.make_tensor("br", f, [3], [0.0, 1.0, 2.0])]),
    ]
    return seeds


def main() -> None:
    pb = stubs()
    if OUT.exists():
        shutil.rmtree(OUT)
    reqs = requests(pb)
    for r in reqs:
        write("requests", r)
    # Deframer: control bytes (size exponent, chunking seed), then the stream.
    for k, r in enumerate(reqs):
        write("deframer", bytes([22, k % 256]) + frame(r))
    for k in range(0, len(reqs) - 2, 3):
        write("deframer", bytes([22, (k * 7) % 256]) + b"".join(frame(r) for r in reqs[k:k + 3]))
    write("deframer", bytes([4, 1]) + frame(b"x" * 17))         # over a 16-byte maximum
    write("deframer", bytes([22, 2]) + b"\x01" + frame(b"")[1:])  # compressed flag
    write("deframer", bytes([22, 3]) + frame(b"abc")[:6])       # a truncated message
    for path in sorted(FIXTURES.glob("*.onnx")) + sorted((ROOT / "examples" / "repository").glob("*/*/model.onnx")):
        data = path.read_bytes()
        if len(data) <= MAX_ONNX:
            write("onnx", data)
    for data in onnx_seeds():
        write("onnx", data)
    for folder in sorted(OUT.iterdir()):
        files = list(folder.iterdir())
        print(f"{folder.relative_to(ROOT)}: {len(files)} files, {sum(p.stat().st_size for p in files)} bytes")


if __name__ == "__main__":
    main()
