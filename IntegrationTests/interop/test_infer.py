"""ModelInfer answers equal onnxruntime's on the same ONNX file.

allclose(rtol=1e-5, atol=1e-6) for floats, labels exactly; batch sizes 1, 7, 64
in one request; raw and typed contents.
"""
from __future__ import annotations

import numpy as np
import pytest

from oip import assert_matches, decode_response, infer, make_request, ort_run, pb

CORRECTNESS_MODELS = [
    "logreg_binary", "logreg_multiclass", "scaler_logreg", "linreg", "mlp_classifier",
    "mlp_classifier_tanh", "mlp_regressor", "mlp_regressor_logistic", "dense",
    "breast_cancer_logreg", "digits_mlp",
]


@pytest.mark.parametrize("raw", [True, False], ids=["raw", "typed"])
@pytest.mark.parametrize("batch", [1, 7, 64])
@pytest.mark.parametrize("model", CORRECTNESS_MODELS)
def test_matches_onnxruntime(stub, zoo, model, batch, raw):
    case = zoo.cases[model]
    x = case.make_inputs(batch)
    got = infer(stub, model, {case.input_name: x}, raw=raw)
    want = ort_run(zoo.path(model), {case.input_name: x})
    assert_matches(got, want, exact=case.labels)


@pytest.mark.parametrize("batch", [1, 7])
def test_model_without_config_json(stub, zoo, batch):
    x = zoo.cases["dense"].make_inputs(batch)
    got = infer(stub, "dense_noconfig", {"x": x})
    assert_matches(got, ort_run(zoo.path("dense_noconfig"), {"x": x}))


def test_requested_outputs_only(stub, zoo):
    x = zoo.cases["dense"].make_inputs(5)
    want = ort_run(zoo.path("dense"), {"x": x})
    got = infer(stub, "dense", {"x": x}, outputs=["probs"])
    assert_matches(got, {"probs": want["probs"]})
    got = infer(stub, "dense", {"x": x}, outputs=["gate", "logits"], raw=False)
    assert_matches(got, {"gate": want["gate"], "logits": want["logits"]})


def test_label_only_typed_int64(stub, zoo):
    case = zoo.cases["digits_mlp"]
    x = case.make_inputs(9)
    req = make_request("digits_mlp", {"input": x}, raw=False, outputs=["label"])
    resp = stub.ModelInfer(req, timeout=30)
    assert [(o.name, o.datatype, list(o.shape)) for o in resp.outputs] == [("label", "INT64", [9])]
    assert len(resp.outputs[0].contents.int64_contents) == 9
    want = ort_run(zoo.path("digits_mlp"), {"input": x})["label"]
    np.testing.assert_array_equal(np.array(resp.outputs[0].contents.int64_contents), want)


def test_response_echoes_id_name_and_version(stub, zoo):
    x = zoo.cases["dense"].make_inputs(2)
    req = make_request("dense", {"x": x}, request_id="req-42")
    resp = stub.ModelInfer(req, timeout=30)
    assert resp.id == "req-42"
    assert resp.model_name == "dense"
    assert resp.model_version == "1"


def test_multiple_inputs_matched_by_name(stub, zoo):
    """raw_input_contents follow the order of `inputs`, which need not be the graph's."""
    rng = np.random.default_rng(11)
    a = rng.standard_normal((6, 4)).astype(np.float32)
    b = rng.standard_normal((6, 3)).astype(np.float32)
    want = ort_run(zoo.path("two_inputs"), {"a": a, "b": b})
    for raw in (True, False):
        got = infer(stub, "two_inputs", [("b", b), ("a", a)], raw=raw)
        assert_matches(got, want, context=f"raw={raw}: ")
        got = infer(stub, "two_inputs", [("a", a), ("b", b)], raw=raw)
        assert_matches(got, want, context=f"raw={raw}: ")


def test_raw_output_little_endian_layout(stub, zoo):
    """raw_output_contents is the row-major little-endian bytes of the tensor."""
    x = zoo.cases["dense"].make_inputs(3)
    resp = stub.ModelInfer(make_request("dense", {"x": x}, outputs=["logits"]), timeout=30)
    want = ort_run(zoo.path("dense"), {"x": x})["logits"]
    assert len(resp.raw_output_contents) == 1
    got = np.frombuffer(resp.raw_output_contents[0], dtype="<f4").reshape(3, 8)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert not resp.outputs[0].HasField("contents") or not resp.outputs[0].contents.fp32_contents


def test_same_input_same_answer_repeated(stub, zoo):
    """Deterministic: the same request gives bit-identical answers."""
    x = zoo.cases["mlp_classifier_tanh"].make_inputs(7)
    first = infer(stub, "mlp_classifier_tanh", {"input": x})
    for _ in range(5):
        again = infer(stub, "mlp_classifier_tanh", {"input": x})
        for k in first:
            np.testing.assert_array_equal(first[k], again[k])


def test_heavy_model_matches(stub, zoo):
    x = np.random.default_rng(5).standard_normal((4, 1024)).astype(np.float32)
    got = infer(stub, "heavy", {"x": x}, timeout=60)
    want = ort_run(zoo.path("heavy"), {"x": x})
    np.testing.assert_allclose(got["y"], want["y"], rtol=1e-4, atol=1e-5)
    assert got["y"].shape == (4, 4)


@pytest.mark.parametrize("scale", [30.0, 1e3, 1e6])
@pytest.mark.parametrize("model", ["dense", "logreg_multiclass", "mlp_classifier_tanh", "digits_mlp",
                                   "mlp_classifier", "breast_cancer_logreg"])
def test_large_magnitude_inputs_numerically_stable(stub, zoo, model, scale):
    """Inputs far outside the training range saturate Softmax/Sigmoid/Tanh: results
    must still match onnxruntime's (max-subtracted softmax, no NaN or inf).
    Tolerances scale with the output's magnitude (summation order differs)."""
    case = zoo.cases[model]
    x = case.make_inputs(16)
    x = (x - x.mean(axis=0)) * np.float32(scale)
    want = ort_run(zoo.path(model), {case.input_name: x})
    got = infer(stub, model, {case.input_name: x})
    assert set(got) == set(want)
    for name, w in want.items():
        g = got[name]
        assert g.shape == w.shape and g.dtype == w.dtype, (name, g.shape, g.dtype)
        if not np.issubdtype(w.dtype, np.floating):
            continue
        np.testing.assert_array_equal(np.isfinite(g), np.isfinite(w), err_msg=f"{name}: finiteness")
        fin = np.isfinite(w)
        scale_w = float(np.max(np.abs(w[fin]))) if fin.any() else 1.0
        np.testing.assert_allclose(g[fin], w[fin], rtol=1e-5, atol=max(1e-6, 1e-5 * scale_w), err_msg=name)
    probs = want.get("probabilities", want.get("probs"))
    for label in case.labels:
        # labels must agree wherever onnxruntime's top-2 probabilities are clearly apart
        top2 = np.sort(probs, axis=1)[:, -2:]
        clear = (top2[:, 1] - top2[:, 0]) > 1e-4
        np.testing.assert_array_equal(got[label][clear], want[label][clear], err_msg=label)


@pytest.mark.parametrize("rows", [64, 1000])
def test_large_response_flow_control(stub, zoo, rows):
    """Responses larger than the 64 KiB initial HTTP/2 window (up to 8 MB)."""
    x = np.random.default_rng(rows).standard_normal((rows, 1024)).astype(np.float32)
    for raw in (True, False):
        got = infer(stub, "echo", {"x": x}, raw=raw, timeout=60)
        np.testing.assert_array_equal(got["y"], x)
        np.testing.assert_array_equal(got["r"], np.maximum(x, 0))


def test_concurrent_large_requests_and_responses(server, zoo):
    """16 concurrent 1 MB requests with 1 MB responses on one connection."""
    stub = server.stub(server.channel())
    rng = np.random.default_rng(77)
    xs = [rng.standard_normal((256, 1024)).astype(np.float32) for _ in range(16)]
    futures = [stub.ModelInfer.future(make_request("echo", {"x": x}, outputs=["y"]), timeout=120) for x in xs]
    for x, f in zip(xs, futures):
        np.testing.assert_array_equal(decode_response(f.result())["y"], x)


def test_request_parameters_are_accepted(stub, zoo):
    x = zoo.cases["dense"].make_inputs(2)
    req = make_request("dense", {"x": x})
    req.parameters["priority"].int64_param = 1
    req.parameters["note"].string_param = "hello"
    req.inputs[0].parameters["binary_data_size"].int64_param = x.nbytes
    req.outputs.add(name="probs").parameters["binary_data"].bool_param = True
    got = decode_response(stub.ModelInfer(req, timeout=30))
    assert_matches(got, {"probs": ort_run(zoo.path("dense"), {"x": x})["probs"]})


def test_long_request_id_echoed(stub, zoo):
    x = zoo.cases["dense"].make_inputs(1)
    rid = "id-" + "x" * 5000 + "-ü"
    resp = stub.ModelInfer(make_request("dense", {"x": x}, request_id=rid), timeout=30)
    assert resp.id == rid
