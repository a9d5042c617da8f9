"""Every bad request gets the exact gRPC status, and the next good call is right."""
from __future__ import annotations

import grpc
import numpy as np
import pytest

from oip import SERVICE, expect_code, make_request, pb

NOT_FOUND = grpc.StatusCode.NOT_FOUND
INVALID = grpc.StatusCode.INVALID_ARGUMENT

X3 = np.random.default_rng(1).standard_normal((3, 16)).astype(np.float32)


def _both_raw_and_typed():
    req = make_request("dense", {"x": X3}, raw=False)
    req.raw_input_contents.append(X3.tobytes())
    return req


def _raw_count_mismatch():
    req = make_request("dense", {"x": X3})
    req.raw_input_contents.append(X3.tobytes())  # two raw entries for one input
    return req


def _typed_wrong_field():
    req = make_request("dense", {"x": X3}, raw=False)
    vals = list(req.inputs[0].contents.fp32_contents)
    req.inputs[0].contents.ClearField("fp32_contents")
    req.inputs[0].contents.fp64_contents.extend(vals)  # declared FP32, sent as fp64
    return req


def _no_contents():
    req = make_request("dense", {"x": X3}, raw=False)
    req.inputs[0].ClearField("contents")
    return req


BAD_INFER_REQUESTS = {
    # name: (request factory, expected code)
    "unknown_model": (lambda: make_request("no_such_model", {"x": X3}), NOT_FOUND),
    "unknown_version": (lambda: make_request("dense", {"x": X3}, version="7"), NOT_FOUND),
    "unknown_version_typed": (lambda: make_request("dense", {"x": X3}, raw=False, version="2"), NOT_FOUND),
    "wrong_input_name": (lambda: make_request("dense", {"input": X3}), INVALID),
    "missing_input": (lambda: make_request("two_inputs", {"a": X3[:, :4]}), INVALID),
    "no_inputs": (lambda: make_request("dense", {}), INVALID),
    "extra_input": (lambda: make_request("dense", [("x", X3), ("y", X3)]), INVALID),
    "duplicate_input": (lambda: make_request("dense", [("x", X3), ("x", X3)]), INVALID),
    "wrong_datatype_raw": (lambda: make_request("dense", {"x": X3.astype(np.float64)}), INVALID),
    "wrong_datatype_typed": (lambda: make_request("dense", {"x": X3.astype(np.float64)}, raw=False), INVALID),
    "wrong_datatype_int64": (lambda: make_request("dense", {"x": X3.astype(np.int64)}, raw=False), INVALID),
    "declared_type_not_matching_typed_field": (_typed_wrong_field, INVALID),
    "wrong_feature_dim": (lambda: make_request("dense", {"x": X3[:, :15]}), INVALID),
    "wrong_rank": (lambda: make_request("dense", {"x": X3.reshape(3, 4, 4)}), INVALID),
    "rank1": (lambda: make_request("dense", {"x": X3[0]}), INVALID),
    "negative_dim": (lambda: make_request("dense", {"x": X3}, shape=[-3, 16]), INVALID),
    "shape_vs_raw_length": (lambda: make_request("dense", {"x": X3}, shape=[4, 16]), INVALID),
    "shape_vs_typed_count": (lambda: make_request("dense", {"x": X3}, raw=False, shape=[2, 16]), INVALID),
    "raw_too_short": (lambda: _truncate_raw(make_request("dense", {"x": X3}), -4), INVALID),
    "raw_too_long": (lambda: _truncate_raw(make_request("dense", {"x": X3}), +4), INVALID),
    "raw_not_multiple_of_4": (lambda: _truncate_raw(make_request("dense", {"x": X3}), -1), INVALID),
    "raw_count_mismatch": (_raw_count_mismatch, INVALID),
    "both_raw_and_typed": (_both_raw_and_typed, INVALID),
    "no_contents": (_no_contents, INVALID),
    "batch_over_max": (lambda: make_request("dense", {"x": np.zeros((65, 16), np.float32)}), INVALID),
    "batch_over_max_versioned": (lambda: make_request("versioned_all", {"x": np.zeros((9, 4), np.float32)}), INVALID),
    "unknown_requested_output": (lambda: make_request("dense", {"x": X3}, outputs=["nope"]), INVALID),
    "empty_model_name": (lambda: make_request("", {"x": X3}), (NOT_FOUND, INVALID)),
    # element counts that overflow 64-bit arithmetic must be rejected, not trap
    "huge_shape_raw": (lambda: make_request("dense", {"x": X3}, shape=[2**62, 16]), INVALID),
    "huge_shape_typed": (lambda: make_request("dense", {"x": X3}, raw=False, shape=[2**62, 16]), INVALID),
    "shape_product_overflow": (lambda: make_request("two_inputs", [("a", X3[:, :4]), ("b", X3[:, :3])],
                                                    shape=[2**33, 2**33]), INVALID),
    "int64_min_dim": (lambda: make_request("dense", {"x": X3}, shape=[-(2**63), 16]), INVALID),
    "huge_batch_typed": (lambda: make_request("dense", {"x": X3}, raw=False, shape=[2**31, 16]), INVALID),
    "raw_fewer_than_inputs": (lambda: _drop_last_raw(make_request("two_inputs", [("a", X3[:, :4]), ("b", X3[:, :3])])), INVALID),
    "many_inputs": (lambda: make_request("dense", [(f"in{i}", X3) for i in range(1000)]), INVALID),
    "unknown_datatype": (lambda: make_request("dense", {"x": X3}, datatype="FP33"), INVALID),
    "bytes_datatype": (lambda: make_request("dense", {"x": X3}, datatype="BYTES"), INVALID),
    # names that are no plain folder name (test_auth.py covers them in every RPC)
    "long_model_name_20k": (lambda: make_request("m" * 20_000, {"x": X3}), INVALID),
    "long_model_name_100k": (lambda: make_request("m" * 100_000, {"x": X3}), INVALID),
    "path_model_name": (lambda: make_request("../dense", {"x": X3}), INVALID),
    "slash_model_name": (lambda: make_request("dense/1", {"x": X3}), INVALID),
    "nul_model_name": (lambda: make_request("dense\0", {"x": X3}), INVALID),
    "huge_version": (lambda: make_request("dense", {"x": X3}, version="99999999999999999999999"), (NOT_FOUND, INVALID)),
    "negative_version": (lambda: make_request("dense", {"x": X3}, version="-1"), (NOT_FOUND, INVALID)),
}


def _drop_last_raw(req):
    del req.raw_input_contents[-1]
    return req


def _truncate_raw(req, delta):
    data = req.raw_input_contents[0]
    req.raw_input_contents[0] = data[:delta] if delta < 0 else data + b"\0" * delta
    return req


@pytest.mark.parametrize("case", list(BAD_INFER_REQUESTS))
def test_bad_infer_request(stub, check_good, case):
    factory, code = BAD_INFER_REQUESTS[case]
    err = expect_code(code, stub.ModelInfer, factory(), timeout=20)
    assert err.details(), "error status without a message"
    check_good()


@pytest.mark.parametrize("rpc,req", [
    ("ModelMetadata", pb.ModelMetadataRequest(name="no_such_model")),
    ("ModelMetadata", pb.ModelMetadataRequest(name="dense", version="9")),
    ("ModelConfig", pb.ModelConfigRequest(name="no_such_model")),
    ("ModelConfig", pb.ModelConfigRequest(name="dense", version="9")),
])
def test_unknown_model_or_version_not_found(stub, check_good, rpc, req):
    expect_code(NOT_FOUND, getattr(stub, rpc), req, timeout=10)
    check_good()


def test_model_ready_unknown_model(stub, check_good):
    """Unknown model: not ready (either ready=false or NOT_FOUND)."""
    try:
        ready = stub.ModelReady(pb.ModelReadyRequest(name="no_such_model"), timeout=10).ready
        assert ready is False
    except grpc.RpcError as e:
        assert e.code() == NOT_FOUND, e
    check_good()


MALFORMED = {
    "truncated_length": b"\x0a\xff\xff\xff\xff\x0f",        # field 1, length far past the end
    "bad_wire_type": b"\x0f\x00",                             # wire type 7 does not exist
    "truncated_varint": b"\x08\xff\xff\xff",                  # varint never terminates
    "nested_garbage": b"\x2a\x05\x0a\xff\xff\xff\x7f",       # inputs[0] with a broken name length
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_protobuf(server, channel, check_good, case):
    call = channel.unary_unary(f"/{SERVICE}/ModelInfer", request_serializer=None,
                               response_deserializer=None)
    expect_code(INVALID, call, MALFORMED[case], timeout=10)
    check_good()


def test_malformed_protobuf_other_rpcs(channel, check_good):
    for method in ("ModelMetadata", "ModelReady", "RepositoryModelLoad"):
        call = channel.unary_unary(f"/{SERVICE}/{method}", request_serializer=None,
                                   response_deserializer=None)
        expect_code(INVALID, call, MALFORMED["truncated_length"], timeout=10)
    check_good()


@pytest.mark.parametrize("path", [
    f"/{SERVICE}/NoSuchMethod",
    "/inference.NoSuchService/ModelInfer",
    "/grpc.health.v1.Health/NoSuchMethod",
    "/nonsense",
])
def test_unknown_method_unimplemented(channel, check_good, path):
    call = channel.unary_unary(path, request_serializer=None, response_deserializer=None)
    expect_code(grpc.StatusCode.UNIMPLEMENTED, call, b"", timeout=10)
    check_good()


def test_gzip_request_unimplemented(stub, check_good, zoo):
    req = make_request("dense", {"x": X3})
    expect_code(grpc.StatusCode.UNIMPLEMENTED, stub.ModelInfer, req, timeout=10,
                compression=grpc.Compression.Gzip)
    check_good()


def test_gzip_channel_unimplemented(server, zoo):
    ch = server.channel()
    gz = grpc.insecure_channel(server.address, compression=grpc.Compression.Gzip)
    try:
        stub = server.stub(gz)
        expect_code(grpc.StatusCode.UNIMPLEMENTED, stub.ModelInfer, make_request("dense", {"x": X3}),
                    timeout=10)
    finally:
        gz.close()
    from conftest import good_call
    good_call(server.stub(ch), zoo)


def test_message_over_default_receive_limit(stub, check_good):
    """Default --max-receive-message-size is 4194304 bytes."""
    big = np.zeros((1100, 1024), np.float32)  # 4.5 MB raw, batch within wide's max_batch_size 2048
    expect_code(grpc.StatusCode.RESOURCE_EXHAUSTED, stub.ModelInfer,
                make_request("wide", {"x": big}), timeout=30)
    check_good()


def test_message_under_default_receive_limit(stub, zoo, check_good):
    from oip import infer, ort_run, assert_matches
    x = np.random.default_rng(3).standard_normal((1000, 1024)).astype(np.float32)  # ~4.0 MB < 4 MiB
    got = infer(stub, "wide", {"x": x}, timeout=30)
    assert_matches(got, ort_run(zoo.path("wide"), {"x": x}))
    check_good()


def test_deadline_exceeded(stub, check_good):
    x = np.random.default_rng(2).standard_normal((64, 1024)).astype(np.float32) + np.float32(0.5)
    expect_code(grpc.StatusCode.DEADLINE_EXCEEDED, stub.ModelInfer,
                make_request("heavy", {"x": x}), timeout=0.001)
    check_good()


def test_deadline_exceeded_while_computing(stub, zoo, check_good):
    """Deadlines that expire mid-queue/mid-compute: the server stays healthy and
    later calls (including heavy ones) still get correct answers."""
    import time
    from oip import assert_matches, infer, ort_run
    x = np.random.default_rng(4).standard_normal((64, 1024)).astype(np.float32)
    times = []
    for i in range(2):  # the second (warm) call is the one that counts
        t0 = time.monotonic()
        infer(stub, "heavy", {"x": x + np.float32(i)}, timeout=60)
        times.append(time.monotonic() - t0)
    budget = max(min(times) / 10, 0.002)
    # distinct inputs: nothing can come from a response cache or a coalesced twin
    futures = [stub.ModelInfer.future(make_request("heavy", {"x": x - np.float32(1 + i)}), timeout=budget)
               for i in range(4)]
    for f in futures:
        expect_code(grpc.StatusCode.DEADLINE_EXCEEDED, f.result)
    check_good()
    got = infer(stub, "heavy", {"x": x[:2]}, timeout=60)
    want = ort_run(zoo.path("heavy"), {"x": x[:2]})
    import numpy.testing as npt
    npt.assert_allclose(got["y"], want["y"], rtol=1e-4, atol=1e-5)


def test_two_messages_on_unary_call(channel, check_good):
    """A client stream of two requests on the unary ModelInfer: rejected, not served twice."""
    call = channel.stream_unary(f"/{SERVICE}/ModelInfer", request_serializer=None,
                                response_deserializer=None)
    req = make_request("dense", {"x": X3}).SerializeToString()
    try:
        call(iter([req, req]), timeout=10)
        raise AssertionError("two request messages on a unary method were accepted")
    except grpc.RpcError as e:
        assert e.code() not in (grpc.StatusCode.OK, grpc.StatusCode.DEADLINE_EXCEEDED), e
    check_good()


def test_zero_messages_on_unary_call(channel, check_good):
    call = channel.stream_unary(f"/{SERVICE}/ModelInfer", request_serializer=None,
                                response_deserializer=None)
    try:
        call(iter([]), timeout=10)
        raise AssertionError("a unary call without a request message succeeded")
    except grpc.RpcError as e:
        assert e.code() not in (grpc.StatusCode.OK, grpc.StatusCode.DEADLINE_EXCEEDED), e
    check_good()


def test_empty_message_is_valid_protobuf(channel, check_good):
    """Zero bytes is a valid (empty) ModelInferRequest: no model name -> an error status,
    while zero bytes to ServerLive is a normal request."""
    infer_call = channel.unary_unary(f"/{SERVICE}/ModelInfer", request_serializer=None,
                                     response_deserializer=None)
    expect_code((NOT_FOUND, INVALID), infer_call, b"", timeout=10)
    live = channel.unary_unary(f"/{SERVICE}/ServerLive", request_serializer=None,
                               response_deserializer=pb.ServerLiveResponse.FromString)
    assert live(b"", timeout=10).live is True
    check_good()


def test_unknown_fields_are_ignored(channel, zoo, check_good):
    """Forward compatibility: unknown protobuf fields in a request are skipped."""
    from oip import assert_matches, decode_response, ort_run
    req = make_request("dense", {"x": X3}).SerializeToString()
    extra = b"\xa0\x06\x01" + b"\xaa\x06\x03abc"  # field 100 varint, field 101 bytes
    call = channel.unary_unary(f"/{SERVICE}/ModelInfer", request_serializer=None,
                               response_deserializer=pb.ModelInferResponse.FromString)
    resp = call(extra + req + extra, timeout=10)
    assert_matches(decode_response(resp), ort_run(zoo.path("dense"), {"x": X3}))
    check_good()


@pytest.mark.parametrize("name", ["modèle", "100%", "a b"])
def test_error_message_with_odd_characters(stub, check_good, name):
    """grpc-message is percent-encoded: odd bytes in a name reach the client intact."""
    err = expect_code(NOT_FOUND, stub.ModelInfer, make_request(name, {"x": X3}), timeout=10)
    assert name in err.details(), err.details()
    check_good()


@pytest.mark.parametrize("name", ["a\nb", "a\r\nx-injected: 1", "tab\there", "\x7f\x01ctl"])
def test_control_characters_in_names(stub, check_good, name):
    """A name with control characters is no model name: INVALID_ARGUMENT, the name escaped in
    the message (no raw control character), and no header injected."""
    err = expect_code(INVALID, stub.ModelInfer, make_request(name, {"x": X3}), timeout=10)
    assert "invalid model name" in err.details(), err.details()
    assert not any(ord(c) < 0x20 or ord(c) == 0x7F for c in err.details()), repr(err.details())
    assert not any(k == "x-injected" for k, _ in (err.trailing_metadata() or ())), err.trailing_metadata()
    check_good()
