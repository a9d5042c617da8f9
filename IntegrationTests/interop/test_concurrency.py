"""Many concurrent ModelInfer calls, each with its own input: every answer must
be onnxruntime's answer for that call's input (catches mixed-up batching)."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from conftest import good_call
from oip import assert_matches, decode_response, make_request, ort_run

N_CALLS = 200


def distinct_inputs(zoo, model: str, n: int, max_rows: int = 4, salt: float = 0.0):
    """n inputs of 1..max_rows rows, each row different from every other call's
    (and, through `salt`, from other tests': no response-cache hits)."""
    case = zoo.cases[model]
    pool = case.make_inputs(64)
    out = []
    for i in range(n):
        rows = 1 + i % max_rows
        x = pool[(np.arange(rows) + i) % len(pool)].copy()
        x[:, 0] += np.float32(i * 0.01 + salt)  # make every call unique
        out.append(x)
    return out


def run_and_check(stubs, zoo, model: str, inputs, raw_every: int = 2, timeout: float = 120):
    case = zoo.cases[model]
    futures = []
    for i, x in enumerate(inputs):
        stub = stubs[i % len(stubs)]
        raw = i % raw_every == 0
        req = make_request(model, {case.input_name: x}, raw=raw, request_id=f"call-{i}")
        futures.append((i, x, raw, stub.ModelInfer.future(req, timeout=timeout)))
    for i, x, raw, f in futures:
        resp = f.result()
        assert resp.id == f"call-{i}", f"call {i} got the response of {resp.id!r}"
        got = decode_response(resp, raw=raw)
        want = ort_run(zoo.path(model), {case.input_name: x})
        assert_matches(got, want, exact=case.labels, context=f"call {i} ({x.shape[0]} rows): ")


@pytest.mark.parametrize("model", ["dense", "digits_mlp", "scaler_logreg"])
def test_200_concurrent_one_channel(server, zoo, model):
    stub = server.stub(server.channel())
    run_and_check([stub], zoo, model, distinct_inputs(zoo, model, N_CALLS, salt=0.001))


@pytest.mark.parametrize("model", ["dense", "breast_cancer_logreg"])
def test_200_concurrent_eight_channels(server, zoo, model):
    stubs = [server.stub(server.channel()) for _ in range(8)]
    run_and_check(stubs, zoo, model, distinct_inputs(zoo, model, N_CALLS, salt=0.002))


def test_concurrent_mixed_models(server, zoo):
    """Calls to different models interleaved on shared channels."""
    stubs = [server.stub(server.channel()) for _ in range(4)]
    models = ["dense", "digits_mlp", "mlp_regressor", "logreg_multiclass"]
    plan = {m: distinct_inputs(zoo, m, 50, salt=0.003) for m in models}
    futures = []
    for i in range(50):
        for j, m in enumerate(models):
            x = plan[m][i]
            case = zoo.cases[m]
            req = make_request(m, {case.input_name: x}, request_id=f"{m}-{i}")
            futures.append((m, i, x, stubs[(i + j) % 4].ModelInfer.future(req, timeout=120)))
    for m, i, x, f in futures:
        resp = f.result()
        assert resp.model_name == m and resp.id == f"{m}-{i}"
        case = zoo.cases[m]
        assert_matches(decode_response(resp, raw=True), ort_run(zoo.path(m), {case.input_name: x}),
                       exact=case.labels, context=f"{m} call {i}: ")


def test_concurrent_threads_blocking_calls(server, zoo):
    """8 threads x 25 blocking calls each, own channel per thread."""
    errors: list[str] = []
    case = zoo.cases["dense"]
    inputs = distinct_inputs(zoo, "dense", 200, max_rows=8, salt=0.004)

    def worker(t: int):
        stub = server.stub(server.channel())
        for k in range(25):
            i = t * 25 + k
            x = inputs[i]
            try:
                resp = stub.ModelInfer(make_request("dense", {"x": x}, raw=bool(k % 2)), timeout=60)
                assert_matches(decode_response(resp), ort_run(zoo.path("dense"), {"x": x}),
                               context=f"thread {t} call {k}: ")
            except Exception as e:  # noqa: BLE001 - collected and reported below
                errors.append(f"{type(e).__name__}: {e}")

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    t0 = time.monotonic()
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=180)
    assert not any(th.is_alive() for th in threads), "worker threads still running after 180 s"
    assert not errors, f"{len(errors)} failures, first: {errors[0]}"
    assert time.monotonic() - t0 < 180


def test_mixed_good_and_bad_concurrently(server, zoo):
    """Bad requests in the same batch window must fail alone."""
    import grpc
    stub = server.stub(server.channel())
    inputs = distinct_inputs(zoo, "dense", 60, salt=0.005)
    futures = []
    for i, x in enumerate(inputs):
        if i % 3 == 2:
            bad = x[:, :15].copy()  # wrong feature dim
            futures.append((None, stub.ModelInfer.future(make_request("dense", {"x": bad}), timeout=60)))
        else:
            futures.append((x, stub.ModelInfer.future(make_request("dense", {"x": x}), timeout=60)))
    for x, f in futures:
        if x is None:
            try:
                f.result()
                raise AssertionError("bad request succeeded")
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
        else:
            assert_matches(decode_response(f.result()), ort_run(zoo.path("dense"), {"x": x}))
    good_call(stub, zoo)
