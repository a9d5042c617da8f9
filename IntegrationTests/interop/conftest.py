"""Interop tests: the real `swerve serve` binary ($SWERVE_BIN, default
.build/debug/swerve) driven over gRPC by grpcio clients generated from protos/.

Fixtures
  zoo            session: every test model written to a tmp dir (model_zoo.py)
  server         session: swerve serving all good zoo models + the examples
  stub, health   session: clients of `server`
  start_server   function: factory for extra servers (own repo / flags),
                 each stopped (SIGTERM, wait, SIGKILL) at teardown
  check_good     function: asserts a known-good ModelInfer still answers right
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
GEN = HERE / "gen"


def generate_stubs() -> None:
    """python -m grpc_tools.protoc -I protos --python_out=gen --grpc_python_out=gen ..."""
    GEN.mkdir(exist_ok=True)
    cmd = [sys.executable, "-m", "grpc_tools.protoc", "-I", str(ROOT / "protos"),
           f"--python_out={GEN}", f"--grpc_python_out={GEN}",
           str(ROOT / "protos" / "grpc_service.proto"),
           str(ROOT / "protos" / "model_config.proto"),
           str(ROOT / "protos" / "health.proto"),
           str(ROOT / "protos" / "swerve_serving.proto"),
           str(ROOT / "protos" / "swerve_registry.proto")]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr}")
    if str(GEN) not in sys.path:
        sys.path.insert(0, str(GEN))


generate_stubs()

import numpy as np  # noqa: E402

import model_zoo  # noqa: E402
import oip  # noqa: E402

_RUNNING: list[oip.Server] = []


@pytest.fixture(scope="session")
def zoo(tmp_path_factory) -> model_zoo.Zoo:
    return model_zoo.build_zoo(tmp_path_factory.mktemp("zoo"))


def _start(tmp_path_factory, zoo, name, models, extra_args=(), **kw) -> oip.Server:
    base = tmp_path_factory.mktemp(name)
    repo = model_zoo.make_repository(zoo, base / "repository", models)
    srv = oip.Server(repo, base / "swerve.log", extra_args)
    _RUNNING.append(srv)
    try:
        srv.start(**kw)
    except BaseException:
        _RUNNING.remove(srv)
        raise
    return srv


@pytest.fixture(scope="session")
def server(tmp_path_factory, zoo):
    srv = _start(tmp_path_factory, zoo, "main", model_zoo.GOOD_MODELS)
    yield srv
    srv.stop()
    _RUNNING.remove(srv)


@pytest.fixture(scope="session")
def channel(server):
    return server.channel()


@pytest.fixture(scope="session")
def stub(server, channel):
    return server.stub(channel)


@pytest.fixture(scope="session")
def health(server, channel):
    return server.health_stub(channel)


@pytest.fixture
def start_server(tmp_path_factory, zoo):
    """start_server(models, extra_args=(), wait_for=(), require_server_ready=True) -> Server"""
    mine: list[oip.Server] = []

    def start(models, extra_args=(), name="extra", **kw) -> oip.Server:
        srv = _start(tmp_path_factory, zoo, name, models, extra_args, **kw)
        mine.append(srv)
        return srv

    yield start
    for srv in mine:
        srv.stop()
        _RUNNING.remove(srv)


def good_call(stub, zoo, batch: int = 3, raw: bool = True) -> None:
    """The dense model answers correctly (used after every error)."""
    case = zoo.cases["dense"]
    x = case.make_inputs(batch)
    got = oip.infer(stub, "dense", {"x": x}, raw=raw, timeout=20)
    want = oip.ort_run(zoo.path("dense"), {"x": x})
    oip.assert_matches(got, want, context="good call after error: ")


@pytest.fixture
def check_good(stub, zoo):
    return lambda s=None, **kw: good_call(s or stub, zoo, **kw)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the tail of every running server's log."""
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for srv in _RUNNING:
            report.sections.append((f"swerve log {srv.log_path}", srv.log_tail(30)))
