"""Label feedback (swerve.v1.Feedback/AppendLabels): labels joined with the logged predictions
of their requests, counted into the answering version's online metrics (checked against the
same figures computed here from the responses the client got), and appended to the trainer's
write-ahead log as examples keyed by request id, so a retried call writes nothing twice; labels
for unknown, expired or malformed ids are counted and dropped; the join survives a restart."""
from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import grpc
import numpy as np
import pytest

import oip
import swerve_serving_pb2 as spb
from test_drift import BC, FEATURES, publish, write_csv
from test_training import Trainer, read_log

APPEND = "/swerve.v1.Feedback/AppendLabels"


def append_stub(srv):
    return srv.channel().unary_unary(APPEND, request_serializer=spb.AppendLabelsRequest.SerializeToString,
                                     response_deserializer=spb.AppendLabelsResponse.FromString)


def labels(model: str, pairs) -> spb.AppendLabelsRequest:
    return spb.AppendLabelsRequest(model_name=model, labels=[spb.LabelFeedback(request_id=i, label=l) for i, l in pairs])


def calibration_error(confidence: np.ndarray, correct: np.ndarray) -> float:
    bins = np.minimum(9, (confidence * 10).astype(int))
    e = 0.0
    for b in range(10):
        m = bins == b
        if m.any():
            e += m.sum() / len(confidence) * abs(correct[m].mean() - confidence[m].mean())
    return float(e)


@pytest.fixture
def feedback_env(tmp_path):
    trainer = Trainer(tmp_path / "trainer-repo", tmp_path / "state", tmp_path / "trainer.log")
    (tmp_path / "trainer-repo").mkdir()
    trainer.start()
    log = {"sample_rate": 1.0, "max_bytes": 1 << 20, "join_window_seconds": 60}
    srv = oip.example_server(tmp_path, {
        "bc": ("breast_cancer_logreg", {"serving_mode": "dynamic", "prediction_log": log}),
        "short": ("breast_cancer_logreg", {"serving_mode": "dynamic", "prediction_log": dict(log, join_window_seconds=1)}),
        "nolog": ("breast_cancer_logreg", {}),
    })
    write_csv(tmp_path / "bc.csv", FEATURES + ["label"], [list(map(float, r)) + [int(y)] for r, y in zip(BC.data[:300], BC.target[:300])])
    publish(srv.repository, "bc", srv.repository / "bc" / "1" / "model.onnx", tmp_path / "bc.csv", "--label", "label")
    srv.extra_args += ["--prediction-log-dir", str(tmp_path / "plogs"), "--feedback-trainer", f"127.0.0.1:{trainer.port}"]
    srv.start(wait_for=["bc", "short", "nolog"])
    yield srv, trainer, tmp_path
    srv.stop()
    trainer.stop()


def test_labels_join_feed_metrics_and_reach_the_trainer_once(feedback_env):
    srv, trainer, tmp_path = feedback_env
    stub, append = srv.stub(), append_stub(srv)
    rows = BC.data[300:350].astype(np.float32)
    truth = BC.target[300:350]
    answers = {}
    for i, row in enumerate(rows):
        resp = stub.ModelInfer(oip.make_request("bc", {"input": row[None, :]}, request_id=f"req-{i}"), timeout=20)
        answers[i] = oip.decode_response(resp)

    first = append(labels("bc", [(f"req-{i}", str(truth[i])) for i in range(40)]
                        + [("nope-1", "1"), ("", "1"), ("req-45", "")]), timeout=30)
    assert first.forwarded
    outcomes = [(o.request_id, o.outcome, o.version) for o in first.outcomes]
    assert outcomes[:40] == [(f"req-{i}", "joined", "2") for i in range(40)]
    assert outcomes[40:] == [("nope-1", "unknown", ""), ("", "invalid", ""), ("req-45", "invalid", "")]
    sequences = [o.sequence for o in first.outcomes[:40]]
    assert len(set(sequences)) == 40 and min(sequences) >= 1

    # A retry (the client never saw the answer): nothing counted or written again, the trainer
    # answers with the original sequence numbers.
    again = append(labels("bc", [(f"req-{i}", str(truth[i])) for i in range(10)]), timeout=30)
    assert [o.outcome for o in again.outcomes] == ["duplicate"] * 10
    assert [o.sequence for o in again.outcomes] == sequences[:10]

    records = read_log(tmp_path / "state" / "logs" / "bc")
    assert len(records) == 40, "each joined label once in the trainer's log"
    by_key = {}
    for seq, payload in records.items():
        e = json.loads(payload)
        by_key[e["appendKey"]] = (seq, e)
    for i in range(40):
        seq, e = by_key[f"label:req-{i}"]
        assert seq == sequences[i]
        assert e["label"] == str(truth[i])
        assert sorted(e["features"]) == sorted(FEATURES)
        got = np.array([float(e["features"][f]) for f in FEATURES], dtype=np.float32)
        assert np.array_equal(got, rows[i]), i

    # Online metrics: the same figures from the answers the client got.
    predicted = np.array([int(answers[i]["label"][0]) for i in range(40)])
    probs = np.stack([answers[i]["probabilities"][0].astype(np.float64) for i in range(40)])
    y = truth[:40]
    accuracy = float((predicted == y).mean())
    log_loss = float(np.mean(-np.log(np.clip(probs[np.arange(40), y], 1e-15, 1))))
    ece = calibration_error(probs.max(axis=1), (predicted == y).astype(float))
    samples = oip.parse_metrics(srv.metrics())

    def metric(name):
        return oip.metric_sum(samples, "swerve_online_metric", model="bc", version="2", metric=name)
    assert abs(metric("accuracy") - accuracy) <= 1e-12
    assert abs(metric("log_loss") - log_loss) <= 1e-9
    assert abs(metric("calibration_error") - ece) <= 1e-9
    count = lambda outcome, version="2": oip.metric_sum(samples, "swerve_online_labels_total", model="bc", version=version, outcome=outcome)
    assert count("joined") == 40 and count("duplicate") == 10
    assert count("unknown", "") == 1 and count("invalid", "") == 2

    # The join survives a crash: the rest of the labels, after kill -9 and a restart, join with
    # predictions read back from the prediction log.
    from test_wal import read_log as read_records
    oip.wait_until(lambda: len(read_records(tmp_path / "plogs" / "bc", suffix=".plog")) >= 50, 10, "every prediction logged")
    srv.signal(signal.SIGKILL)
    srv.wait_exit(10)
    srv.start(wait_for=["bc"])
    append = append_stub(srv)
    late = append(labels("bc", [(f"req-{i}", str(truth[i])) for i in range(40, 50)]), timeout=30)
    assert [o.outcome for o in late.outcomes] == ["joined"] * 10
    assert len(read_log(tmp_path / "state" / "logs" / "bc")) == 50


def test_expired_unknown_model_and_no_log(feedback_env):
    srv, trainer, _ = feedback_env
    stub, append = srv.stub(), append_stub(srv)
    row = BC.data[:1].astype(np.float32)
    stub.ModelInfer(oip.make_request("short", {"input": row}, request_id="late-1"), timeout=20)
    time.sleep(1.5)
    resp = append(labels("short", [("late-1", "1"), ("never", "0")]), timeout=30)
    assert [o.outcome for o in resp.outcomes] == ["expired", "unknown"]
    # "short" has no reference statistics: nothing to forward; its joined labels still count.
    stub.ModelInfer(oip.make_request("short", {"input": row}, request_id="soon-1"), timeout=20)
    resp = append(labels("short", [("soon-1", "1")]), timeout=30)
    assert [(o.outcome, o.sequence) for o in resp.outcomes] == [("unmapped", 0)]
    # Several rows in one request: a label cannot say which.
    stub.ModelInfer(oip.make_request("bc", {"input": BC.data[:3].astype(np.float32)}, request_id="three-rows"), timeout=20)
    resp = append(labels("bc", [("three-rows", "1")]), timeout=30)
    assert [o.outcome for o in resp.outcomes] == ["ambiguous"]
    oip.expect_code(grpc.StatusCode.NOT_FOUND, append, labels("ghost", [("a", "1")]), timeout=10)
    oip.expect_code(grpc.StatusCode.INVALID_ARGUMENT, append, labels("../x", [("a", "1")]), timeout=10)
    e = oip.expect_code(grpc.StatusCode.FAILED_PRECONDITION, append, labels("nolog", [("a", "1")]), timeout=10)
    assert "prediction_log" in e.details()
    too_many = labels("bc", [(f"x{i}", "1") for i in range(10_001)])
    oip.expect_code(grpc.StatusCode.INVALID_ARGUMENT, append, too_many, timeout=10)
    malformed = srv.channel().unary_unary(APPEND, request_serializer=lambda b: b, response_deserializer=lambda b: b)
    oip.expect_code(grpc.StatusCode.INVALID_ARGUMENT, malformed, b"\x0a\xff\xff", timeout=10)


def test_trainer_down_is_unavailable_and_a_retry_lands_once(feedback_env):
    srv, trainer, tmp_path = feedback_env
    stub, append = srv.stub(), append_stub(srv)
    for i in range(5):
        stub.ModelInfer(oip.make_request("bc", {"input": BC.data[i:i + 1].astype(np.float32)}, request_id=f"r{i}"), timeout=20)
    trainer.kill9()
    call = labels("bc", [(f"r{i}", str(BC.target[i])) for i in range(5)])
    e = oip.expect_code(grpc.StatusCode.UNAVAILABLE, append, call, timeout=30)
    assert "Retry" in e.details()
    trainer.start()
    resp = append(call, timeout=30)
    assert [o.outcome for o in resp.outcomes] == ["duplicate"] * 5  # counted by the first call
    assert all(o.sequence > 0 for o in resp.outcomes)
    records = read_log(tmp_path / "state" / "logs" / "bc")
    assert len(records) == 5
    samples = oip.parse_metrics(srv.metrics())
    assert oip.metric_sum(samples, "swerve_online_labels_total", model="bc", version="2", outcome="joined") == 5
