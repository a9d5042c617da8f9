"""Every element type the server computes with, sent through Identity nodes, typed and raw.

The expected bytes and fields come from numpy (little-endian arrays), struct (BYTES length
prefixes) and grpcio's own protobuf encoding, not from Swerve: this is the server's one raw
layout and one typed-contents mapping as a client nobody here wrote sees them. Also: the
datatypes the core refuses (UINT16/32/64), narrow values that do not fit, and broken BYTES
length prefixes, each INVALID_ARGUMENT.
"""
from __future__ import annotations

import json
import struct

import grpc
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import oip
from oip import pb

MODEL = "identity_all_types"
ROWS = 2

# KServe datatype -> (ONNX element type, numpy dtype, typed contents field)
TYPES = {
    "BOOL": (TensorProto.BOOL, np.bool_, "bool_contents"),
    "UINT8": (TensorProto.UINT8, np.uint8, "uint_contents"),
    "INT8": (TensorProto.INT8, np.int8, "int_contents"),
    "INT16": (TensorProto.INT16, np.int16, "int_contents"),
    "INT32": (TensorProto.INT32, np.int32, "int_contents"),
    "INT64": (TensorProto.INT64, np.int64, "int64_contents"),
    "FP32": (TensorProto.FLOAT, np.float32, "fp32_contents"),
    "FP64": (TensorProto.DOUBLE, np.float64, "fp64_contents"),
    "BYTES": (TensorProto.STRING, None, "bytes_contents"),
}

# Two rows of three per type, with each type's extremes.
SAMPLES = {
    "BOOL": [[True, False, True], [False, False, True]],
    "UINT8": [[0, 1, 255], [128, 7, 9]],
    "INT8": [[-128, -1, 127], [0, 5, -5]],
    "INT16": [[-32768, 32767, 0x1234], [-2, 0, 1]],
    "INT32": [[-(2**31), 2**31 - 1, 0x01020304], [-1, 0, 1]],
    "INT64": [[-(2**63), 2**63 - 1, 0x0102030405060708], [-5_000_000_000, 0, 1]],
    "FP32": [[1.5, -0.0, float("inf")], [3.25, -1e-30, 0.1]],
    "FP64": [[np.pi, -1e300, float("-inf")], [0.0, 1e-310, 2.5]],
    "BYTES": [[b"hi", b"", b"\x00\xff"], ["日本".encode(), b"x" * 300, b"z"]],
}


def input_name(datatype: str) -> str:
    return f"x_{datatype.lower()}"


def raw_bytes(datatype: str, rows) -> bytes:
    """KServe's raw layout, made by numpy and struct."""
    if datatype == "BYTES":
        return b"".join(struct.pack("<I", len(e)) + e for row in rows for e in row)
    return np.array(rows, dtype=np.dtype(TYPES[datatype][1]).newbyteorder("<")).tobytes()


def typed_values(datatype: str, rows) -> list:
    """The values as grpcio reads them back from the datatype's typed field."""
    flat = [e for row in rows for e in row]
    dtype = TYPES[datatype][1]
    if dtype is np.float32:  # fp32_contents holds floats: compare at float32 precision
        return [float(v) for v in np.array(flat, dtype=np.float32)]
    return flat


@pytest.fixture(scope="module")
def dtype_stub(tmp_path_factory):
    base = tmp_path_factory.mktemp("datatypes")
    inputs, outputs, nodes = [], [], []
    for datatype, (elem, _, _) in TYPES.items():
        x, y = input_name(datatype), f"y_{datatype.lower()}"
        inputs.append(helper.make_tensor_value_info(x, elem, [None, 3]))
        outputs.append(helper.make_tensor_value_info(y, elem, [None, 3]))
        nodes.append(helper.make_node("Identity", [x], [y]))
    model = helper.make_model(helper.make_graph(nodes, MODEL, inputs, outputs),
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    folder = base / "repository" / MODEL / "1"
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(model.SerializeToString())
    # dynamic: every request is computed and encoded, never answered from a cache.
    (folder.parent / "config.json").write_text(json.dumps({
        "max_batch_size": 8, "serving_mode": "dynamic",
        "dynamic_batching": {"max_queue_delay_us": 100, "max_queue_size": 64}}))
    server = oip.Server(base / "repository", base / "swerve.log")
    server.start(wait_for=[MODEL])
    yield server.stub()
    server.stop()


def request(raw: bool, override: tuple[str, str, list[int], bytes | None, dict] | None = None) -> pb.ModelInferRequest:
    """Every input with its sample; `override` = (input, datatype, shape, raw bytes, typed fields)
    replaces one of them."""
    req = pb.ModelInferRequest(model_name=MODEL)
    for datatype in TYPES:
        name = input_name(datatype)
        if override is not None and override[0] == name:
            _, dt, shape, data, fields = override
            t = req.inputs.add(name=name, datatype=dt, shape=shape)
            for field, values in fields.items():
                getattr(t.contents, field).extend(values)
            if raw:
                req.raw_input_contents.append(data)
            continue
        t = req.inputs.add(name=name, datatype=datatype, shape=[ROWS, 3])
        if raw:
            req.raw_input_contents.append(raw_bytes(datatype, SAMPLES[datatype]))
        else:
            getattr(t.contents, TYPES[datatype][2]).extend(e for row in SAMPLES[datatype] for e in row)
    return req


@pytest.mark.parametrize("raw", [True, False], ids=["raw", "typed"])
def test_every_datatype_round_trips(dtype_stub, raw):
    resp = dtype_stub.ModelInfer(request(raw), timeout=20)
    assert [o.name for o in resp.outputs] == [f"y_{d.lower()}" for d in TYPES]
    assert len(resp.raw_output_contents) == (len(TYPES) if raw else 0)
    for i, (datatype, (_, _, field)) in enumerate(TYPES.items()):
        out = resp.outputs[i]
        assert out.datatype == datatype
        assert list(out.shape) == [ROWS, 3]
        if raw:
            assert not out.HasField("contents"), datatype
            assert resp.raw_output_contents[i] == raw_bytes(datatype, SAMPLES[datatype]), datatype
        else:
            # Exactly one field set: the datatype's (INT8/INT16 widened into int_contents,
            # UINT8 into uint_contents).
            assert [f.name for f, _ in out.contents.ListFields()] == [field], datatype
            assert list(getattr(out.contents, field)) == typed_values(datatype, SAMPLES[datatype]), datatype


def test_raw_bool_reads_any_nonzero_byte_as_true(dtype_stub):
    req = request(True, (input_name("BOOL"), "BOOL", [ROWS, 3], bytes([0, 2, 255, 1, 0, 0x80]), {}))
    resp = dtype_stub.ModelInfer(req, timeout=20)
    assert resp.raw_output_contents[0] == bytes([0, 1, 1, 1, 0, 1])


@pytest.mark.parametrize("datatype", ["UINT16", "UINT32", "UINT64"])
@pytest.mark.parametrize("raw", [True, False], ids=["raw", "typed"])
def test_unsigned_wide_datatypes_are_refused(dtype_stub, datatype, raw):
    field = "uint64_contents" if datatype == "UINT64" else "uint_contents"
    # Raw: 24 bytes, the right size for UINT32 [2, 3]; the datatype is refused before the bytes are read.
    override = (input_name("INT32"), datatype, [ROWS, 3], raw_bytes("INT32", SAMPLES["INT32"]),
                {} if raw else {field: [1, 2, 3, 4, 5, 6]})
    err = oip.expect_code(grpc.StatusCode.INVALID_ARGUMENT, dtype_stub.ModelInfer, request(raw, override), timeout=20)
    assert f"unsupported datatype '{datatype}'" in err.details()


@pytest.mark.parametrize("datatype,field,value", [
    ("INT8", "int_contents", 128), ("INT8", "int_contents", -129),
    ("INT16", "int_contents", 32768), ("INT16", "int_contents", -32769),
    ("UINT8", "uint_contents", 256),
])
def test_typed_values_that_do_not_fit_are_refused(dtype_stub, datatype, field, value):
    values = [e for row in SAMPLES[datatype] for e in row]
    values[4] = value
    req = request(False, (input_name(datatype), datatype, [ROWS, 3], None, {field: values}))
    err = oip.expect_code(grpc.StatusCode.INVALID_ARGUMENT, dtype_stub.ModelInfer, req, timeout=20)
    assert f"{datatype} value out of range" in err.details()


@pytest.mark.parametrize("data,message", [
    (raw_bytes("BYTES", [[b"a", b"b", b"c", b"d", b"e"]]) + b"\x01\x00", "length prefix of element 5 runs past the end"),
    (raw_bytes("BYTES", [[b"a"]]) + b"\x09\x00\x00\x00xy", "element 1 of 9 bytes runs past the end"),
    (raw_bytes("BYTES", SAMPLES["BYTES"]) + b"\x00", "1 bytes left after 6 elements"),
])
def test_broken_bytes_length_prefixes_are_refused(dtype_stub, data, message):
    req = request(True, (input_name("BYTES"), "BYTES", [ROWS, 3], data, {}))
    err = oip.expect_code(grpc.StatusCode.INVALID_ARGUMENT, dtype_stub.ModelInfer, req, timeout=20)
    assert message in err.details()
