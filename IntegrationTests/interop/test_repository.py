"""Repository behaviour: models that fail to load, RepositoryModelLoad / Unload at run time.

Runs its own server (module scope) so loads and unloads do not disturb others.
"""
from __future__ import annotations

import shutil
import time

import grpc
import numpy as np
import pytest

import model_zoo
from conftest import _RUNNING, _start, good_call
from oip import (HealthStatus, assert_matches, expect_code, health_pb2, infer, make_request,
                 ort_run, pb)

MODELS = ["dense", "digits_mlp", "breast_cancer_logreg", "unsupported_conv", "broken"]
X4 = np.arange(12, dtype=np.float32).reshape(3, 4)


@pytest.fixture(scope="module")
def repo_server(tmp_path_factory, zoo):
    srv = _start(tmp_path_factory, zoo, "repo", MODELS,
                 wait_for=["dense", "digits_mlp", "breast_cancer_logreg"], require_server_ready=False)
    yield srv
    srv.stop()
    _RUNNING.remove(srv)


@pytest.fixture(scope="module")
def rstub(repo_server):
    return repo_server.stub()


@pytest.fixture(scope="module")
def rhealth(repo_server):
    return repo_server.health_stub()


def index(stub) -> dict[str, list]:
    out: dict[str, list] = {}
    for m in stub.RepositoryIndex(pb.RepositoryIndexRequest(), timeout=10).models:
        out.setdefault(m.name, []).append(m)
    return out


def model_ready(stub, name, version="") -> bool:
    try:
        return stub.ModelReady(pb.ModelReadyRequest(name=name, version=version), timeout=10).ready
    except grpc.RpcError as e:
        # INVALID_ARGUMENT: a name that is no plain folder name (test_auth.py)
        assert e.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT), e
        return False


def load(stub, name, timeout=60):
    stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name=name), timeout=timeout)


def unload(stub, name, timeout=60):
    stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name=name), timeout=timeout)


def copy_model(zoo, repo_server, src: str, dst: str, versions=None):
    """Copies zoo model `src` into the live repository as `dst` (only `versions` if given)."""
    target = repo_server.repository / dst
    if versions is None:
        shutil.copytree(zoo.root / src, target)
    else:
        target.mkdir()
        if (zoo.root / src / "config.json").exists():
            shutil.copy(zoo.root / src / "config.json", target / "config.json")
        for v in versions:
            shutil.copytree(zoo.root / src / str(v), target / str(v))
    return target


# ------------------------------------------------------------------ failed loads


def test_broken_model_not_ready(rstub):
    assert model_ready(rstub, "broken") is False


def test_unsupported_operator_not_ready(rstub):
    assert model_ready(rstub, "unsupported_conv") is False


def test_index_reports_failed_models(rstub):
    idx = index(rstub)
    assert set(MODELS) <= set(idx), f"index lists {sorted(idx)}"
    for name in ("broken", "unsupported_conv"):
        states = {m.state for m in idx[name]}
        assert states == {"UNAVAILABLE"}, f"{name}: {states}"
        assert all(m.reason for m in idx[name]), f"{name}: empty reason"
    assert any("Conv" in m.reason for m in idx["unsupported_conv"]), \
        f"unsupported_conv reason does not name the operator: {[m.reason for m in idx['unsupported_conv']]}"
    for name in ("dense", "digits_mlp", "breast_cancer_logreg"):
        assert {m.state for m in idx[name]} == {"READY"}, f"{name}: {idx[name]}"
    ready_only = {m.name for m in rstub.RepositoryIndex(pb.RepositoryIndexRequest(ready=True), timeout=10).models}
    assert ready_only == {"dense", "digits_mlp", "breast_cancer_logreg"}, ready_only


def test_failed_models_infer_unavailable(rstub):
    x = np.zeros((1, 1, 8, 8), np.float32)
    for name in ("broken", "unsupported_conv"):
        expect_code((grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.NOT_FOUND), rstub.ModelInfer,
                    make_request(name, {"x": x}), timeout=10)


def test_failed_models_health_not_serving(rhealth):
    for name in ("broken", "unsupported_conv"):
        resp = rhealth.Check(health_pb2.HealthCheckRequest(service=name), timeout=10)
        assert resp.status == HealthStatus.NOT_SERVING, f"{name}: {resp.status}"


def test_others_still_serve(rstub, zoo):
    good_call(rstub, zoo)
    case = zoo.cases["digits_mlp"]
    x = case.make_inputs(7)
    assert_matches(infer(rstub, "digits_mlp", {"input": x}), ort_run(zoo.path("digits_mlp"), {"input": x}),
                   exact=("label",))
    assert rstub.ServerLive(pb.ServerLiveRequest(), timeout=10).live


def test_server_ready_with_failed_models(rstub, rhealth):
    """Strict readiness (the default, as Triton's --strict-readiness): the repository says to
    serve "broken" and "unsupported_conv", they failed, so the server is not ready, and
    ServerReady and overall health agree. The models that loaded still serve (test_others_still_serve)."""
    ready = rstub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready
    overall = rhealth.Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status
    assert (overall == HealthStatus.SERVING) == ready, f"ServerReady={ready}, health(\"\")={overall}"
    assert ready is False, "strict readiness: failed models keep the server not ready"


# ------------------------------------------------------------------ load / unload


def test_load_model_added_at_runtime(rstub, rhealth, zoo, repo_server):
    assert model_ready(rstub, "late_dense") is False
    copy_model(zoo, repo_server, "dense", "late_dense")
    load(rstub, "late_dense")
    assert model_ready(rstub, "late_dense") is True
    x = zoo.cases["dense"].make_inputs(7)
    assert_matches(infer(rstub, "late_dense", {"x": x}), ort_run(zoo.path("dense"), {"x": x}))
    assert {m.state for m in index(rstub)["late_dense"]} == {"READY"}
    assert rhealth.Check(health_pb2.HealthCheckRequest(service="late_dense"), timeout=10).status \
        == HealthStatus.SERVING


def test_unload_then_load_again(rstub, rhealth, zoo, repo_server):
    copy_model(zoo, repo_server, "dense", "cycled")
    load(rstub, "cycled")
    x = zoo.cases["dense"].make_inputs(3)
    want = ort_run(zoo.path("dense"), {"x": x})
    assert_matches(infer(rstub, "cycled", {"x": x}), want)

    unload(rstub, "cycled")
    assert model_ready(rstub, "cycled") is False
    expect_code((grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE), rstub.ModelInfer,
                make_request("cycled", {"x": x}), timeout=10)
    try:
        status = rhealth.Check(health_pb2.HealthCheckRequest(service="cycled"), timeout=10).status
        assert status == HealthStatus.NOT_SERVING, status
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.NOT_FOUND, e
    entries = index(rstub).get("cycled", [])
    assert all(m.state != "READY" for m in entries), f"unloaded model still READY in index: {entries}"
    good_call(rstub, zoo)

    load(rstub, "cycled")
    assert model_ready(rstub, "cycled") is True
    assert_matches(infer(rstub, "cycled", {"x": x}), want)


def test_unload_example_model_others_unaffected(rstub, zoo):
    unload(rstub, "breast_cancer_logreg")
    assert model_ready(rstub, "breast_cancer_logreg") is False
    good_call(rstub, zoo)
    x = zoo.cases["digits_mlp"].make_inputs(2)
    assert_matches(infer(rstub, "digits_mlp", {"input": x}), ort_run(zoo.path("digits_mlp"), {"input": x}),
                   exact=("label",))
    load(rstub, "breast_cancer_logreg")
    assert model_ready(rstub, "breast_cancer_logreg") is True
    case = zoo.cases["breast_cancer_logreg"]
    x = case.make_inputs(7)
    assert_matches(infer(rstub, "breast_cancer_logreg", {"input": x}),
                   ort_run(zoo.path("breast_cancer_logreg"), {"input": x}), exact=("label",))


def test_reload_picks_up_new_version(rstub, zoo, repo_server):
    """versioned_default has no config (policy: latest 1). Add version 2, reload: 2 is served."""
    target = copy_model(zoo, repo_server, "versioned_default", "growing", versions=[1])
    load(rstub, "growing")
    np.testing.assert_array_equal(infer(rstub, "growing", {"x": X4})["y"], X4 + 1)
    shutil.copytree(zoo.root / "versioned_default" / "2", target / "2")
    load(rstub, "growing")
    np.testing.assert_array_equal(infer(rstub, "growing", {"x": X4})["y"], X4 + 2)
    meta = rstub.ModelMetadata(pb.ModelMetadataRequest(name="growing"), timeout=10)
    assert list(meta.versions) == ["2"]
    expect_code(grpc.StatusCode.NOT_FOUND, rstub.ModelInfer, make_request("growing", {"x": X4}, version="1"),
                timeout=10)


def test_reload_picks_up_new_config(rstub, zoo, repo_server):
    import json
    target = copy_model(zoo, repo_server, "versioned_all", "reconfigured")
    load(rstub, "reconfigured")
    meta = rstub.ModelMetadata(pb.ModelMetadataRequest(name="reconfigured"), timeout=10)
    assert sorted(meta.versions, key=int) == ["1", "2", "3"]
    (target / "config.json").write_text(json.dumps(
        {"max_batch_size": 8, "version_policy": {"specific": {"versions": [2]}}}))
    load(rstub, "reconfigured")
    meta = rstub.ModelMetadata(pb.ModelMetadataRequest(name="reconfigured"), timeout=10)
    assert list(meta.versions) == ["2"]
    np.testing.assert_array_equal(infer(rstub, "reconfigured", {"x": X4})["y"], X4 + 2)


def test_load_fixes_broken_model(rstub, zoo, repo_server):
    copy_model(zoo, repo_server, "broken", "was_broken")
    expect_code(_LOAD_FAIL_CODES, load, rstub, "was_broken")
    assert model_ready(rstub, "was_broken") is False
    shutil.copy(zoo.path("dense"), repo_server.repository / "was_broken" / "1" / "model.onnx")
    load(rstub, "was_broken")
    assert model_ready(rstub, "was_broken") is True
    x = zoo.cases["dense"].make_inputs(2)
    assert_matches(infer(rstub, "was_broken", {"x": x}), ort_run(zoo.path("dense"), {"x": x}))


_LOAD_FAIL_CODES = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.INTERNAL,
                    grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.FAILED_PRECONDITION,
                    grpc.StatusCode.UNIMPLEMENTED)


def test_load_unsupported_operator_fails_with_reason(rstub, zoo, repo_server):
    copy_model(zoo, repo_server, "unsupported_conv", "late_conv")
    err = expect_code(_LOAD_FAIL_CODES, load, rstub, "late_conv")
    assert "Conv" in err.details(), f"load error does not name the operator: {err.details()!r}"
    entries = index(rstub)["late_conv"]
    assert {m.state for m in entries} == {"UNAVAILABLE"} and any("Conv" in m.reason for m in entries), entries
    good_call(rstub, zoo)


def test_load_nonexistent_model(rstub, zoo):
    expect_code((grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT), load, rstub, "never_existed")
    good_call(rstub, zoo)


def test_unload_unknown_model(rstub, zoo):
    code = None
    try:
        unload(rstub, "never_existed_either")
    except grpc.RpcError as e:
        code = e.code()
    assert code in (None, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT), code
    good_call(rstub, zoo)


def test_calls_during_reload_all_succeed(rstub, zoo, repo_server):
    """Reloading a model while calls hit it: every call answers correctly."""
    copy_model(zoo, repo_server, "dense", "hot")
    load(rstub, "hot")
    case = zoo.cases["dense"]
    inputs = [case.make_inputs(1 + i % 4) + i for i in range(60)]
    futures = []
    for i, x in enumerate(inputs):
        futures.append((x, rstub.ModelInfer.future(make_request("hot", {"x": x}), timeout=60)))
        if i == 20:
            load(rstub, "hot")
    from oip import decode_response
    for x, f in futures:
        assert_matches(decode_response(f.result()), ort_run(zoo.path("dense"), {"x": x}))


@pytest.mark.parametrize("name", ["../outside", "../outside/", "./../outside", "..", ".", "",
                                  "dense/../../outside", "/abs_outside"])
def test_load_path_traversal_rejected(rstub, zoo, repo_server, name):
    """RepositoryModelLoad names a folder *inside* the repository: anything that
    would resolve outside it is refused and nothing gets loaded."""
    outside = repo_server.repository.parent / "outside"
    if not outside.exists():
        shutil.copytree(zoo.root / "dense", outside)
    abs_outside = repo_server.repository.parent / "abs_outside"
    if name == "/abs_outside":
        name = str(abs_outside)
        if not abs_outside.exists():
            shutil.copytree(zoo.root / "dense", abs_outside)
    before = {m.name for m in rstub.RepositoryIndex(pb.RepositoryIndexRequest(ready=True), timeout=10).models}
    expect_code((grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND), load, rstub, name)
    after = {m.name for m in rstub.RepositoryIndex(pb.RepositoryIndexRequest(ready=True), timeout=10).models}
    assert after == before, f"ready models changed: +{after - before} -{before - after}"
    for probe in (name, "outside", "../outside"):
        assert model_ready(rstub, probe) is False, f"{probe!r} became ready"
    good_call(rstub, zoo)


def test_unload_path_like_name(rstub, zoo):
    code = None
    try:
        unload(rstub, "../dense")
    except grpc.RpcError as e:
        code = e.code()
    assert code in (None, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT), code
    assert model_ready(rstub, "dense") is True, "unloading '../dense' unloaded dense"
    good_call(rstub, zoo)


def test_watch_reports_unload_and_load(rstub, rhealth, zoo, repo_server):
    """grpc.health.v1 Watch: after the first (current) status, changes are sent.
    (Beyond the first message this is the standard health protocol, not Swerve's contract.)"""
    import queue
    import threading
    copy_model(zoo, repo_server, "dense", "watched")
    load(rstub, "watched")
    stream = rhealth.Watch(health_pb2.HealthCheckRequest(service="watched"), timeout=60)
    seen: "queue.Queue" = queue.Queue()

    def pump():
        try:
            for msg in stream:
                seen.put(msg.status)
        except grpc.RpcError:
            pass

    threading.Thread(target=pump, daemon=True).start()
    try:
        assert seen.get(timeout=10) == HealthStatus.SERVING
        unload(rstub, "watched")
        assert seen.get(timeout=10) in (HealthStatus.NOT_SERVING, HealthStatus.SERVICE_UNKNOWN)
        load(rstub, "watched")
        assert seen.get(timeout=10) == HealthStatus.SERVING
    finally:
        stream.cancel()
