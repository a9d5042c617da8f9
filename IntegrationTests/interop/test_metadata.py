"""Server/model metadata, readiness, ModelConfig, RepositoryIndex, statistics, health."""
from __future__ import annotations

import grpc
import numpy as np
import pytest

import model_zoo
from oip import HealthStatus, expect_code, health_pb2, infer, mc, pb


def tensors(meta_list):
    return [(t.name, t.datatype, list(t.shape)) for t in meta_list]


def test_server_live_and_ready(stub):
    assert stub.ServerLive(pb.ServerLiveRequest(), timeout=10).live is True
    assert stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready is True


def test_server_metadata(stub):
    meta = stub.ServerMetadata(pb.ServerMetadataRequest(), timeout=10)
    assert meta.name == "swerve"
    assert meta.version != "", "ServerMetadata.version is empty"


@pytest.mark.parametrize("model", model_zoo.GOOD_MODELS)
def test_every_good_model_ready(stub, model):
    assert stub.ModelReady(pb.ModelReadyRequest(name=model), timeout=10).ready is True


def test_model_metadata_breast_cancer_example(stub):
    meta = stub.ModelMetadata(pb.ModelMetadataRequest(name="breast_cancer_logreg"), timeout=10)
    assert meta.name == "breast_cancer_logreg"
    assert "onnx" in meta.platform.lower(), f"platform {meta.platform!r}"
    assert list(meta.versions) == ["1"]
    assert tensors(meta.inputs) == [("input", "FP32", [-1, 30])]
    assert tensors(meta.outputs) == [("label", "INT64", [-1]), ("probabilities", "FP32", [-1, 2])]


def test_model_metadata_digits_example(stub):
    meta = stub.ModelMetadata(pb.ModelMetadataRequest(name="digits_mlp", version="1"), timeout=10)
    assert meta.name == "digits_mlp"
    assert list(meta.versions) == ["1"]
    assert tensors(meta.inputs) == [("input", "FP32", [-1, 64])]
    assert tensors(meta.outputs) == [("label", "INT64", [-1]), ("probabilities", "FP32", [-1, 10])]


@pytest.mark.parametrize("model", ["dense", "dense_noconfig"])
def test_model_metadata_derived_from_onnx(stub, model):
    """No inputs/outputs in config.json (dense) or no config.json at all (dense_noconfig):
    names, datatypes and shapes come from the ONNX graph, symbolic dims as -1."""
    meta = stub.ModelMetadata(pb.ModelMetadataRequest(name=model), timeout=10)
    assert meta.name == model
    assert "onnx" in meta.platform.lower(), f"platform {meta.platform!r}"
    assert tensors(meta.inputs) == [("x", "FP32", [-1, 16])]
    assert tensors(meta.outputs) == [("logits", "FP32", [-1, 8]), ("probs", "FP32", [-1, 8]),
                                     ("gate", "FP32", [-1, 8])]


def test_model_metadata_two_inputs(stub):
    meta = stub.ModelMetadata(pb.ModelMetadataRequest(name="two_inputs"), timeout=10)
    assert tensors(meta.inputs) == [("a", "FP32", [-1, 4]), ("b", "FP32", [-1, 3])]
    assert tensors(meta.outputs) == [("y", "FP32", [-1, 4]), ("z", "FP32", [-1, 7])]


def test_model_config_breast_cancer(stub):
    cfg = stub.ModelConfig(pb.ModelConfigRequest(name="breast_cancer_logreg"), timeout=10).config
    assert cfg.name == "breast_cancer_logreg"
    assert "onnx" in cfg.platform.lower(), f"platform {cfg.platform!r}"
    assert cfg.max_batch_size == 64
    assert [(i.name, i.data_type, list(i.dims)) for i in cfg.input] == [("input", mc.TYPE_FP32, [30])]
    outs = {o.name: o for o in cfg.output}
    assert set(outs) == {"label", "probabilities"}
    assert outs["label"].data_type == mc.TYPE_INT64
    assert outs["probabilities"].data_type == mc.TYPE_FP32
    assert list(outs["probabilities"].dims) == [2]
    assert cfg.version_policy.WhichOneof("policy_choice") == "latest"
    assert cfg.version_policy.latest.num_versions == 1
    assert cfg.dynamic_batching.max_queue_delay_microseconds == 500


def test_model_config_version_policies(stub):
    def policy(name):
        return stub.ModelConfig(pb.ModelConfigRequest(name=name), timeout=10).config.version_policy
    p = policy("versioned_latest2")
    assert p.WhichOneof("policy_choice") == "latest" and p.latest.num_versions == 2
    assert policy("versioned_all").WhichOneof("policy_choice") == "all"
    p = policy("versioned_specific")
    assert p.WhichOneof("policy_choice") == "specific" and sorted(p.specific.versions) == [1, 3]


def test_model_config_without_config_json(stub):
    cfg = stub.ModelConfig(pb.ModelConfigRequest(name="dense_noconfig"), timeout=10).config
    assert cfg.name == "dense_noconfig"
    assert [(i.name, i.data_type) for i in cfg.input] == [("x", mc.TYPE_FP32)]
    assert [(o.name, o.data_type) for o in cfg.output] == [
        ("logits", mc.TYPE_FP32), ("probs", mc.TYPE_FP32), ("gate", mc.TYPE_FP32)]
    # dims leave out the batch dimension exactly when the model batches
    dims = list(cfg.input[0].dims)
    assert dims == ([16] if cfg.max_batch_size > 0 else [-1, 16]), (cfg.max_batch_size, dims)


def test_repository_index_lists_every_model_ready(stub):
    idx = stub.RepositoryIndex(pb.RepositoryIndexRequest(), timeout=10)
    states = {}
    for m in idx.models:
        states.setdefault(m.name, set()).add(m.state)
    missing = set(model_zoo.GOOD_MODELS) - set(states)
    assert not missing, f"RepositoryIndex misses {sorted(missing)}"
    not_ready = {n: s for n, s in states.items() if s != {"READY"}}
    assert not not_ready, f"not READY: {not_ready}"
    assert set(states) == set(model_zoo.GOOD_MODELS), f"unexpected entries {set(states) - set(model_zoo.GOOD_MODELS)}"
    ready_only = stub.RepositoryIndex(pb.RepositoryIndexRequest(ready=True), timeout=10)
    assert {m.name for m in ready_only.models} == set(model_zoo.GOOD_MODELS)


def _stats(stub, name):
    resp = stub.ModelStatistics(pb.ModelStatisticsRequest(name=name), timeout=10)
    entries = [s for s in resp.model_stats if s.name == name]
    assert entries, f"ModelStatistics has no entry for {name}: {resp}"
    return entries[0]


def test_model_statistics_increase(stub, zoo):
    case = zoo.cases["logreg_multiclass"]
    before = _stats(stub, "logreg_multiclass")
    batches = [1, 5, 3]
    for b in batches:  # inputs no other test sends (no response-cache hits)
        infer(stub, "logreg_multiclass", {"input": case.make_inputs(b) + np.float32(0.123)})
    after = _stats(stub, "logreg_multiclass")
    assert after.version == "1"
    assert after.inference_count - before.inference_count == sum(batches)
    executed = after.execution_count - before.execution_count
    assert 1 <= executed <= len(batches), f"execution_count grew by {executed}"
    succ_b, succ_a = before.inference_stats.success, after.inference_stats.success
    assert succ_a.count - succ_b.count == len(batches)
    assert succ_a.ns > succ_b.ns
    assert after.last_inference >= before.last_inference and after.last_inference > 0


def test_statistics_include_a_call_once_it_returned(stub, zoo):
    """A call's statistics are recorded before its response is sent: a client
    that reads ModelStatistics right after ModelInfer returned sees it counted."""
    case = zoo.cases["mlp_regressor_logistic"]
    misses = []
    for i in range(40):
        before = _stats(stub, "mlp_regressor_logistic")
        infer(stub, "mlp_regressor_logistic", {"input": case.make_inputs(2) + np.float32(i * 0.5 + 0.25)})
        after = _stats(stub, "mlp_regressor_logistic")
        if (after.inference_count - before.inference_count, after.inference_stats.success.count
                - before.inference_stats.success.count) != (2, 1):
            misses.append((i, after.inference_count - before.inference_count,
                           after.inference_stats.success.count - before.inference_stats.success.count))
    assert not misses, (f"{len(misses)}/40 calls not yet counted when their response arrived "
                        f"(iteration, rows counted, successes counted): {misses[:5]}")


def test_model_statistics_all_models(stub):
    resp = stub.ModelStatistics(pb.ModelStatisticsRequest(), timeout=10)
    names = {s.name for s in resp.model_stats}
    assert set(model_zoo.GOOD_MODELS) <= names, f"missing {set(model_zoo.GOOD_MODELS) - names}"


def test_model_statistics_unknown_model(stub):
    expect_code(grpc.StatusCode.NOT_FOUND, stub.ModelStatistics,
                pb.ModelStatisticsRequest(name="no_such_model"), timeout=10)


# ------------------------------------------------------------------ health


def test_health_check_overall(health):
    resp = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    assert resp.status == HealthStatus.SERVING


def test_health_check_model(health):
    resp = health.Check(health_pb2.HealthCheckRequest(service="dense"), timeout=10)
    assert resp.status == HealthStatus.SERVING


def test_health_check_unknown_model(health):
    expect_code(grpc.StatusCode.NOT_FOUND, health.Check,
                health_pb2.HealthCheckRequest(service="no_such_model"), timeout=10)


@pytest.mark.parametrize("service", ["", "digits_mlp"])
def test_health_watch_first_message_is_current(health, service):
    stream = health.Watch(health_pb2.HealthCheckRequest(service=service), timeout=15)
    try:
        first = next(stream)
        assert first.status == HealthStatus.SERVING
    finally:
        stream.cancel()
