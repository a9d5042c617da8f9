"""Version policies. versioned_* models have versions 1, 2, 3 computing y = x + version."""
from __future__ import annotations

import grpc
import numpy as np
import pytest

from oip import expect_code, infer, make_request, pb

X = np.arange(8, dtype=np.float32).reshape(2, 4)

POLICIES = {
    # model: (served versions, version served for "")
    "versioned_latest2": (["2", "3"], 3),
    "versioned_all": (["1", "2", "3"], 3),
    "versioned_specific": (["1", "3"], 3),
    "versioned_default": (["3"], 3),
}


def _versions(stub, model):
    return sorted(stub.ModelMetadata(pb.ModelMetadataRequest(name=model), timeout=10).versions, key=int)


@pytest.mark.parametrize("model", list(POLICIES))
def test_metadata_versions(stub, model):
    assert _versions(stub, model) == POLICIES[model][0]


@pytest.mark.parametrize("model", list(POLICIES))
def test_each_served_version_answers(stub, model):
    for v in POLICIES[model][0]:
        got = infer(stub, model, {"x": X}, version=v)["y"]
        np.testing.assert_array_equal(got, X + int(v))
        assert stub.ModelReady(pb.ModelReadyRequest(name=model, version=v), timeout=10).ready
        meta = stub.ModelMetadata(pb.ModelMetadataRequest(name=model, version=v), timeout=10)
        assert meta.name == model


@pytest.mark.parametrize("model", list(POLICIES))
def test_empty_version_is_latest(stub, model):
    latest = POLICIES[model][1]
    resp = stub.ModelInfer(make_request(model, {"x": X}), timeout=10)
    assert resp.model_version == str(latest)
    got = infer(stub, model, {"x": X})["y"]
    np.testing.assert_array_equal(got, X + latest)


@pytest.mark.parametrize("model", list(POLICIES))
def test_unserved_versions_not_found(stub, check_good, model):
    served = POLICIES[model][0]
    for v in ["1", "2", "3", "4", "0", "17"]:
        if v in served:
            continue
        expect_code(grpc.StatusCode.NOT_FOUND, stub.ModelInfer,
                    make_request(model, {"x": X}, version=v), timeout=10)
        expect_code(grpc.StatusCode.NOT_FOUND, stub.ModelMetadata,
                    pb.ModelMetadataRequest(name=model, version=v), timeout=10)
        try:
            ready = stub.ModelReady(pb.ModelReadyRequest(name=model, version=v), timeout=10).ready
            assert ready is False, f"ModelReady({model}, {v}) is true for an unserved version"
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.NOT_FOUND, e
    check_good()


def test_non_numeric_version_rejected(stub, check_good):
    code = None
    try:
        stub.ModelInfer(make_request("versioned_all", {"x": X}, version="latest"), timeout=10)
    except grpc.RpcError as e:
        code = e.code()
    assert code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT), code
    check_good()


def test_repository_index_versions(stub):
    idx = stub.RepositoryIndex(pb.RepositoryIndexRequest(), timeout=10)
    for model, (served, _) in POLICIES.items():
        entries = [m for m in idx.models if m.name == model]
        assert entries, f"{model} missing from RepositoryIndex"
        assert all(m.state == "READY" for m in entries), entries
        listed = sorted({m.version for m in entries if m.version}, key=int)
        # Either one entry per served version or one per model with an empty version.
        assert listed in (served, []), f"{model}: index versions {listed}, served {served}"
