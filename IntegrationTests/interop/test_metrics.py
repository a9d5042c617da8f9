"""Prometheus endpoint on --metrics-port."""
from __future__ import annotations

import urllib.error
import urllib.request

import grpc
import numpy as np

from oip import infer, make_request, metric_sum, parse_metrics

REQUIRED = ["swerve_requests_total", "swerve_request_duration_seconds_bucket",
            "swerve_batch_size_bucket", "swerve_queue_depth", "swerve_models_loaded"]


def test_metrics_page_has_required_families(server, stub, zoo):
    infer(stub, "dense", {"x": zoo.cases["dense"].make_inputs(2)})
    samples = parse_metrics(server.metrics())
    names = {n for n, _, _ in samples}
    missing = [m for m in REQUIRED if m not in names]
    assert not missing, f"missing metric families {missing}; have {sorted(names)[:40]}"
    for n, labels, _ in samples:
        if n == "swerve_requests_total":
            assert {"model", "version", "status"} <= set(labels), f"labels {labels}"
    loaded = metric_sum(samples, "swerve_models_loaded")
    assert loaded >= 15, f"swerve_models_loaded = {loaded}"


def test_metrics_content_type(server):
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10) as r:
        assert r.headers.get_content_type() in ("text/plain", "application/openmetrics-text"), \
            r.headers.get("Content-Type")


def test_request_counts_increase(server, stub, zoo):
    model = "mlp_regressor"
    before = parse_metrics(server.metrics())
    rows = [1, 4, 9]
    for b in rows:  # inputs no other test sends (no response-cache hits)
        infer(stub, model, {"input": zoo.cases[model].make_inputs(b) + np.float32(0.321)})
    after = parse_metrics(server.metrics())
    d = metric_sum(after, "swerve_requests_total", model=model) - metric_sum(before, "swerve_requests_total", model=model)
    assert d == len(rows), f"swerve_requests_total{{model={model}}} grew by {d}, expected {len(rows)}"
    d = metric_sum(after, "swerve_requests_total", model=model, version="1") \
        - metric_sum(before, "swerve_requests_total", model=model, version="1")
    assert d == len(rows), f"version=\"1\" series grew by {d}"
    # histogram counts move too
    def count(samples, name):
        return sum(v for n, l, v in samples if n == name and l.get("le") == "+Inf"
                   and l.get("model", model) == model)
    assert count(after, "swerve_request_duration_seconds_bucket") - count(before, "swerve_request_duration_seconds_bucket") >= len(rows)
    assert count(after, "swerve_batch_size_bucket") > count(before, "swerve_batch_size_bucket")


def test_error_requests_counted_with_error_status(server, stub, zoo):
    model = "mlp_classifier"
    ok_x = zoo.cases[model].make_inputs(2)
    infer(stub, model, {"input": ok_x})
    # The server counts a request before it answers, so one read after the calls is exact.
    before = parse_metrics(server.metrics())
    bad = np.zeros((2, 29), np.float32)
    for _ in range(3):
        try:
            stub.ModelInfer(make_request(model, {"input": bad}), timeout=10)
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
    after = parse_metrics(server.metrics())
    grew = {}
    for n, labels, v in after:
        if n == "swerve_requests_total" and labels.get("model") == model:
            old = sum(ov for on, ol, ov in before if on == n and ol == labels)
            if v - old:
                grew[labels.get("status")] = v - old
    assert sum(grew.values()) == 3, f"series that grew: {grew}"
    ok_statuses = {l.get("status") for n, l, v in before
                   if n == "swerve_requests_total" and l.get("model") == model}
    assert ok_statuses and not (set(grew) & ok_statuses), \
        f"errors were counted under status {set(grew)}, the successful calls under {ok_statuses}"


def test_unknown_model_names_do_not_create_series(server, stub):
    """Client-chosen names of models / versions that do not exist must not become
    label values: 50 unknown names + 20 unknown versions may add at most 2 series
    (otherwise any client can grow the metrics page and memory without bound)."""
    def series(samples):
        return {tuple(sorted(l.items())) for n, l, _ in samples if n == "swerve_requests_total"}
    before = series(parse_metrics(server.metrics()))
    x = np.zeros((1, 16), np.float32)
    for i in range(50):
        try:
            stub.ModelInfer(make_request(f"no_such_model_{i}_" + "z" * 200, {"x": x}), timeout=10)
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.NOT_FOUND
    for i in range(20):  # unknown versions of a known model: client-chosen too
        try:
            stub.ModelInfer(make_request("dense", {"x": np.zeros((1, 16), np.float32)}, version=str(1000 + i)),
                            timeout=10)
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.NOT_FOUND
    after = series(parse_metrics(server.metrics()))
    new = sorted(after - before)
    n_new = len(new)
    example = [tuple((k, v[:40]) for k, v in labels) for labels in new[:2]]
    assert n_new <= 2, f"{n_new} new swerve_requests_total series after 70 not-found calls, e.g. {example}"


def test_label_values_escaped(server, stub):
    """Whatever ends up in a label value is escaped per the text format."""
    x = np.zeros((1, 16), np.float32)
    for name in ['a\nb} 99\nfake_metric{x="1"', 'q"uote', "back\\slash"]:
        try:
            stub.ModelInfer(make_request(name, {"x": x}), timeout=10)
        except grpc.RpcError:
            pass
    text = server.metrics()
    samples = parse_metrics(text)  # raises on a broken line
    assert "fake_metric" not in {n for n, _, _ in samples}, "label value injected a metric line"
