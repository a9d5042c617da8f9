"""Version labels seen by a gRPC client nobody here wrote (grpcio).

A model with two versions and labels.json {stable: 1, canary: 2, canary_percent: 50}:
unversioned requests split between the versions by a hash of their inputs (or of the
x-swerve-route-key header when the client sends one), every response names the version that
answered, `stable` and `canary` work as model_version, RolloutStatistics reports the labels as
applied and each version's evidence, and labels.json moved on disk reaches the server on its
next repository poll. A broken labels.json keeps the labels last read.
"""
from __future__ import annotations

import json
import shutil

import grpc
import numpy as np
import pytest

import oip
import swerve_serving_pb2 as spb
import swerve_serving_pb2_grpc as spb_grpc

BC = oip.ROOT / "examples" / "repository" / "breast_cancer_logreg"


def write_labels(repo, labels: dict) -> None:
    tmp = repo / "bc" / ".labels.tmp"
    tmp.write_text(json.dumps(labels))
    tmp.rename(repo / "bc" / "labels.json")


@pytest.fixture()
def server(tmp_path):
    repo = tmp_path / "repository"
    (repo / "bc").mkdir(parents=True)
    config = json.loads((BC / "config.json").read_text())
    config["serving_mode"] = "dynamic"
    (repo / "bc" / "config.json").write_text(json.dumps(config))
    for v in ("1", "2", "3"):
        shutil.copytree(BC / "1", repo / "bc" / v)
    write_labels(repo, {"stable": 1, "canary": 2, "canary_percent": 50, "generation": 1})
    s = oip.Server(repo, tmp_path / "swerve.log", ["--poll-interval", "0.1"]).start(wait_for=["bc"])
    yield s
    s.stop()


def rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 20, size=(n, 30)).astype(np.float32)


def version_of(stub, x: np.ndarray, version: str = "", metadata=None) -> str:
    req = oip.make_request("bc", {"input": x}, version=version)
    return stub.ModelInfer(req, timeout=10, metadata=metadata).model_version


def rollout_statistics(server):
    return spb_grpc.ServingInsightsStub(server.channel()).RolloutStatistics(
        spb.RolloutStatisticsRequest(name="bc"), timeout=10)


def test_canary_share_by_input_hash_and_labels_as_versions(server):
    stub = server.stub()
    xs = rows(300, 1)
    seen = [version_of(stub, xs[i:i + 1]) for i in range(300)]
    assert set(seen) == {"1", "2"}
    assert 100 < seen.count("2") < 200, f"canary answered {seen.count('2')} of 300 at 50%"
    # One input always meets the same version.
    assert [version_of(stub, xs[i:i + 1]) for i in range(60)] == seen[:60]
    # A route key decides instead of the inputs: one key, one version, whatever the inputs.
    for key in ("user-1", "user-2", "user-3", "user-4"):
        got = {version_of(stub, xs[i:i + 1], metadata=[("x-swerve-route-key", key)]) for i in range(20)}
        assert len(got) == 1, f"route key {key} met versions {got}"
    assert version_of(stub, xs[:1], "canary") == "2"
    assert version_of(stub, xs[:1], "stable") == "1"
    assert version_of(stub, xs[:1], "3") == "3"
    oip.expect_code(grpc.StatusCode.NOT_FOUND, version_of, stub, xs[:1], "beta")
    assert stub.ModelReady(oip.pb.ModelReadyRequest(name="bc", version="canary"), timeout=10).ready

    stats = rollout_statistics(server)
    assert (stats.stable, stats.canary, stats.canary_percent, stats.labels_generation) == (1, 2, 50.0, 1)
    by_version = {v.version: v for v in stats.versions}
    assert list(by_version["1"].labels) == ["stable"] and list(by_version["2"].labels) == ["canary"]
    assert by_version["3"].state == "READY" and list(by_version["3"].labels) == []
    total = sum(v.requests for v in stats.versions)
    assert total == 300 + 60 + 80 + 3
    for v in stats.versions:
        assert sum(v.latency_counts) == v.requests
        if v.requests:
            assert v.prediction_kind == "class" and sum(v.class_counts) == v.requests


def test_labels_moved_on_disk_reach_the_server_and_a_broken_file_changes_nothing(server):
    stub = server.stub()
    xs = rows(100, 2)
    write_labels(server.repository, {"stable": 3, "canary": None, "canary_percent": 0,
                                     "previous_stable": 1, "generation": 2})
    oip.wait_until(lambda: rollout_statistics(server).labels_generation == 2, 10, "labels generation 2 applied")
    assert {version_of(stub, xs[i:i + 1]) for i in range(100)} == {"3"}
    # 2 is no longer labelled nor wanted by latest(1)=3: unloaded; 1 is the previous stable: kept.
    oip.wait_until(lambda: {v.version for v in rollout_statistics(server).versions} == {"1", "3"}, 10,
                   "version 2 unloaded, the previous stable kept")
    (server.repository / "bc" / "labels.json").write_text('{"stable": ')
    # A poll or two later, still serving 3 from the labels last read; the server stays ready.
    oip.wait_until(lambda: 'labels' in server.log_tail(80), 10, "the broken labels file logged")
    assert {version_of(stub, xs[i:i + 1]) for i in range(30)} == {"3"}
    assert server.http_status("/v2/health/ready") == 200
