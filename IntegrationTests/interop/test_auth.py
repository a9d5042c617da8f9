"""The control plane against the real binary, as a hostile client would try it:

- `swerve serve --admin-token-file F`: RepositoryModelLoad/Unload without the token get
  UNAUTHENTICATED, with a wrong one PERMISSION_DENIED, and change nothing; with it they work;
  inference, metadata, statistics, the index and health stay open.
- Model names that are no plain folder name get INVALID_ARGUMENT in every RPC and touch nothing.
- A non-loopback --host without a token refuses to start (exit non-zero, nothing listening)
  unless --insecure-control-plane; a bad token file refuses to start too.
- `swerve trainer` guards SubmitJob, CancelJob, AppendExamples, PromoteVersion, RollbackVersion.
- `swerve models load|unload --token-file`, `swerve publish` with a bad name.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import grpc
import numpy as np
import pytest

import oip
from conftest import _RUNNING, good_call
from oip import expect_code, make_request, pb
import model_zoo
import test_training
from test_training import tpb

TOKEN = "interop-admin-token-5f0c1d9e8b7a6f5e"
UNAUTH = grpc.StatusCode.UNAUTHENTICATED
DENIED = grpc.StatusCode.PERMISSION_DENIED
INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
MODELS = ["dense", "two_inputs"]
RIGHT = (("authorization", f"Bearer {TOKEN}"),)
HOSTILE = ["..", ".", "../x", "../dense", "/etc", "a/b", "dense/", "dense/1", "", ".hidden", "dense\0x",
           "a\\b", "line\nbreak", "m" * 256]


def write_token(path: Path, text: str = TOKEN + "\n", mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory, zoo):
    base = tmp_path_factory.mktemp("auth")
    repo = model_zoo.make_repository(zoo, base / "repository", MODELS)
    token = write_token(base / "admin-token")
    srv = oip.Server(repo, base / "swerve.log", ["--admin-token-file", str(token)])
    _RUNNING.append(srv)
    try:
        srv.start(wait_for=MODELS)
        yield srv
    finally:
        srv.stop()
        _RUNNING.remove(srv)


@pytest.fixture(scope="module")
def astub(auth_server):
    return auth_server.stub()


def index(stub) -> list[tuple]:
    return sorted((m.name, m.version, m.state, m.reason)
                  for m in stub.RepositoryIndex(pb.RepositoryIndexRequest(), timeout=10).models)


def tree(root: Path) -> dict[str, tuple]:
    """Every path under root with its type, size and mtime: what 'nothing on disk changed' compares."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            st = p.lstat()
            out[str(p.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


def load(stub, name, metadata=None):
    return stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name=name), timeout=60, metadata=metadata)


def unload(stub, name, metadata=None):
    return stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name=name), timeout=60, metadata=metadata)


def ready(stub, name) -> bool:
    return stub.ModelReady(pb.ModelReadyRequest(name=name), timeout=10).ready


def dense_ok(stub, zoo) -> None:
    good_call(stub, zoo)


# ------------------------------------------------------------------ the token


@pytest.mark.parametrize("metadata,code", [
    (None, UNAUTH),
    ((("authorization", "Basic " + TOKEN),), UNAUTH),
    ((("authorization", "Bearer"),), UNAUTH),
    ((("authorization", TOKEN),), UNAUTH),
    ((("authorization", "Bearer wrong-token"),), DENIED),
    ((("authorization", f"Bearer {TOKEN}x"),), DENIED),
    ((("authorization", f"Bearer {TOKEN[:-1]}"),), DENIED),
    ((("authorization", f"Bearer {TOKEN.upper()}"),), DENIED),
    ((("x-admin-token", TOKEN),), UNAUTH),
], ids=["none", "basic", "bearer-empty", "no-scheme", "wrong", "longer", "shorter", "case", "other-header"])
def test_control_calls_refused_without_the_right_token(auth_server, astub, zoo, metadata, code):
    before_index, before_tree = index(astub), tree(auth_server.repository)
    for call in (unload, load):
        err = expect_code(code, call, astub, "dense", metadata=metadata)
        assert TOKEN not in err.details() and "wrong-token" not in err.details(), err.details()
    assert index(astub) == before_index
    assert tree(auth_server.repository) == before_tree
    assert ready(astub, "dense")
    dense_ok(astub, zoo)


def test_right_token_loads_and_unloads(astub, zoo):
    unload(astub, "two_inputs", metadata=RIGHT)
    assert not ready(astub, "two_inputs")
    states = {m.state for m in astub.RepositoryIndex(pb.RepositoryIndexRequest(), timeout=10).models if m.name == "two_inputs"}
    assert "READY" not in states, states
    load(astub, "two_inputs", metadata=(("authorization", f"bearer   {TOKEN}"),))   # scheme in any case, 1*SP
    assert ready(astub, "two_inputs")
    dense_ok(astub, zoo)


def test_everything_else_is_open(auth_server, astub, zoo):
    assert astub.ServerLive(pb.ServerLiveRequest(), timeout=10).live
    assert astub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready
    assert ready(astub, "dense")
    assert astub.ModelMetadata(pb.ModelMetadataRequest(name="dense"), timeout=10).name == "dense"
    assert astub.ModelConfig(pb.ModelConfigRequest(name="dense"), timeout=10).config.name == "dense"
    assert any(s.name == "dense" for s in astub.ModelStatistics(pb.ModelStatisticsRequest(), timeout=10).model_stats)
    assert index(astub)
    from health_pb2 import HealthCheckRequest
    assert auth_server.health_stub().Check(HealthCheckRequest(service=""), timeout=10).status == 1  # SERVING
    dense_ok(astub, zoo)


def test_refusals_counted_and_logged_without_the_token(auth_server, astub):
    for _ in range(30):
        expect_code(DENIED, unload, astub, "dense", metadata=(("authorization", "Bearer not-the-token-xyz"),))
    samples = oip.parse_metrics(auth_server.metrics())
    failures = {l.get("reason"): v for n, l, v in samples if n == "swerve_admin_auth_failures_total"}
    assert failures.get("wrong", 0) >= 30, failures
    log = auth_server.log_path.read_text(errors="replace")
    refusals = [l for l in log.splitlines() if "refused a control call" in l]
    assert refusals, auth_server.log_tail()
    assert len(refusals) <= 5, f"refusal warnings are not rate-limited: {len(refusals)}"
    assert "not-the-token-xyz" not in log and TOKEN not in log


# ------------------------------------------------------------------ names


@pytest.mark.parametrize("name", HOSTILE, ids=lambda n: repr(n)[:20])
def test_hostile_names_invalid_everywhere(auth_server, astub, zoo, name):
    repo = auth_server.repository
    before_index, before_tree, before_parent = index(astub), tree(repo), sorted(os.listdir(repo.parent))
    # Authorized, so the name check itself answers.
    expect_code(INVALID, load, astub, name, metadata=RIGHT)
    expect_code(INVALID, unload, astub, name, metadata=RIGHT)
    # Unauthorized: refused before the request is even decoded.
    expect_code(UNAUTH, load, astub, name)
    lookups = [
        lambda: astub.ModelReady(pb.ModelReadyRequest(name=name), timeout=10),
        lambda: astub.ModelMetadata(pb.ModelMetadataRequest(name=name), timeout=10),
        lambda: astub.ModelConfig(pb.ModelConfigRequest(name=name), timeout=10),
        lambda: astub.ModelInfer(make_request(name, {"x": np.zeros((1, 16), np.float32)}), timeout=10),
    ]
    if name:  # "" asks ModelStatistics for every model
        lookups.append(lambda: astub.ModelStatistics(pb.ModelStatisticsRequest(name=name), timeout=10))
    for call in lookups:
        err = expect_code(INVALID, call)
        assert len(err.details()) < 500, len(err.details())
    assert index(astub) == before_index
    assert tree(repo) == before_tree
    assert sorted(os.listdir(repo.parent)) == before_parent
    dense_ok(astub, zoo)


@pytest.mark.parametrize("name", ["%2e%2e", "a..b", "x.", "名前"])
def test_odd_but_plain_names_are_names(astub, name):
    expect_code(NOT_FOUND, load, astub, name, metadata=RIGHT)
    expect_code(NOT_FOUND, astub.ModelMetadata, pb.ModelMetadataRequest(name=name), timeout=10)


# ------------------------------------------------------------------ start-up


def run_until_exit(argv, port: int, timeout: float = 30) -> tuple[int, str, bool]:
    """Runs argv to its end (bounded); returns its exit code, output, and whether anything ever
    accepted a connection on 127.0.0.1:port while it ran."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    listened = False
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    listened = True
            except OSError:
                pass
            time.sleep(0.02)
        if proc.poll() is None:
            raise AssertionError(f"{argv} still running after {timeout}s")
        return proc.returncode, proc.stdout.read().decode(errors="replace"), listened
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        proc.stdout.close()


def serve_argv(repo: Path, grpc_port: int, metrics_port: int, *extra) -> list[str]:
    return [oip.swerve_bin(), "serve", "--repository", str(repo), "--grpc-port", str(grpc_port),
            "--metrics-port", str(metrics_port), *extra]


def two_ports() -> tuple[int, int]:
    a = oip.free_port()
    b = oip.free_port()
    while b == a:
        b = oip.free_port()
    return a, b


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_non_loopback_without_token_refuses_to_start(auth_server, host):
    g, m = two_ports()
    code, out, listened = run_until_exit(serve_argv(auth_server.repository, g, m, "--host", host), g)
    assert code != 0, out
    assert not listened, "something listened on the port before the refusal"
    assert "refusing to listen on" in out and "--admin-token-file" in out and "--insecure-control-plane" in out, out
    assert "load and unload models" in out, out


@pytest.mark.parametrize("contents,why", [
    ("", "is empty"), ("\n\n", "is empty"), ("   \n", "is empty"), ("two words\n", "whitespace"),
    (None, "does not exist"), ("x" * 5000, "above the limit of 4096 bytes"),
])
def test_bad_token_file_refuses_to_start(auth_server, tmp_path, contents, why):
    path = tmp_path / "token"
    if contents is not None:
        write_token(path, contents)
    g, m = two_ports()
    code, out, listened = run_until_exit(serve_argv(auth_server.repository, g, m, "--admin-token-file", str(path)), g)
    assert code != 0 and not listened, out
    assert why in out, out


def start_on_any_address(repo: Path, log: Path, *extra) -> oip.Server:
    """A server bound to 0.0.0.0 (reached through 127.0.0.1); the last --host given wins."""
    srv = oip.Server(repo, log, ["--host", "0.0.0.0", *extra])
    _RUNNING.append(srv)
    try:
        srv.start(wait_for=MODELS)
    except BaseException:
        _RUNNING.remove(srv)
        raise
    return srv


def test_non_loopback_with_insecure_flag_or_token_starts(auth_server, tmp_path):
    insecure = start_on_any_address(auth_server.repository, tmp_path / "insecure.log", "--insecure-control-plane")
    try:
        assert insecure.stub().ServerLive(pb.ServerLiveRequest(), timeout=10).live
        assert "open to anyone" in insecure.log_path.read_text(errors="replace")
        unload(insecure.stub(), "dense")   # open, as the operator asked
        load(insecure.stub(), "dense")
    finally:
        insecure.stop()
        _RUNNING.remove(insecure)
    token = write_token(tmp_path / "token", mode=0o644)
    guarded = start_on_any_address(auth_server.repository, tmp_path / "guarded.log", "--admin-token-file", str(token))
    try:
        expect_code(UNAUTH, unload, guarded.stub(), "dense")
        load(guarded.stub(), "dense", metadata=RIGHT)
        assert "readable by every user" in guarded.log_path.read_text(errors="replace")
    finally:
        guarded.stop()
        _RUNNING.remove(guarded)


# ------------------------------------------------------------------ trainer


@pytest.fixture
def trainer(tmp_path):
    repo = tmp_path / "repository"
    repo.mkdir()
    token = write_token(tmp_path / "token")
    t = test_training.Trainer(repo, tmp_path / "state", tmp_path / "trainer.log",
                              ["--admin-token-file", str(token)]).start()
    yield t
    t.stop()


def test_trainer_state_changes_need_the_token(trainer, tmp_path):
    x, y = test_training.make_rows(300, seed=2)
    data = test_training.write_csv(tmp_path / "d.csv", x, y)
    job = test_training.static_job("clicks", data)
    example = tpb.AppendExamplesRequest(model_name="clicks")
    ex = example.examples.add()
    ex.label = "1"
    for k in ("x1", "x2", "x3"):
        ex.features[k] = "0.5"
    calls = [
        (trainer.stub.SubmitJob, job),
        (trainer.stub.CancelJob, tpb.JobRef(job_id="job-x")),
        (trainer.stub.AppendExamples, example),
        (trainer.stub.PromoteVersion, tpb.VersionRef(model_name="clicks", version=1)),
        (trainer.stub.RollbackVersion, tpb.VersionRef(model_name="clicks", version=1)),
    ]
    before_repo, before_state = tree(trainer.repository), tree(trainer.state)
    for call, req in calls:
        expect_code(UNAUTH, call, req, timeout=10)
        expect_code(DENIED, call, req, timeout=10, metadata=(("authorization", "Bearer nope"),))
    assert tree(trainer.repository) == before_repo and tree(trainer.state) == before_state
    assert list(trainer.stub.ListJobs(tpb.ListJobsRequest(), timeout=10).jobs) == []   # open, and nothing was queued
    # Names: INVALID_ARGUMENT with the token, in open calls too.
    for name in ("../x", "/etc", "a/b", ".."):
        bad = test_training.static_job(name, data)
        expect_code(INVALID, trainer.stub.SubmitJob, bad, timeout=10, metadata=RIGHT)
        bad_example = tpb.AppendExamplesRequest(model_name=name)
        bad_example.examples.add().CopyFrom(ex)
        expect_code(INVALID, trainer.stub.AppendExamples, bad_example, timeout=10, metadata=RIGHT)
        expect_code(INVALID, trainer.stub.ListVersions, tpb.ModelRef(model_name=name), timeout=10)
        expect_code(INVALID, trainer.stub.PromoteVersion, tpb.VersionRef(model_name=name, version=1), timeout=10, metadata=RIGHT)
        expect_code(INVALID, trainer.stub.ListJobs, tpb.ListJobsRequest(model_name=name), timeout=10)
    assert tree(trainer.repository) == before_repo and tree(trainer.state) == before_state
    # With the token the job runs.
    status = trainer.stub.SubmitJob(job, timeout=10, metadata=RIGHT)
    last = None
    for event in trainer.stub.WatchJob(tpb.JobRef(job_id=status.job_id), timeout=120):   # WatchJob is open
        last = event.status
    assert last is not None and last.state == "succeeded", last


def test_trainer_non_loopback_without_token_refuses_to_start(tmp_path):
    port = oip.free_port()
    code, out, listened = run_until_exit(
        [oip.swerve_bin(), "trainer", "--repository", str(tmp_path / "r"), "--host", "0.0.0.0", "--grpc-port", str(port)], port)
    assert code != 0 and not listened, out
    assert "--insecure-control-plane" in out and "submit and cancel training jobs" in out, out
    assert not (tmp_path / "r").exists(), "the trainer created its repository before refusing"


# ------------------------------------------------------------------ CLI


def test_cli_models_load_unload_token_file(auth_server, astub, tmp_path):
    token = write_token(tmp_path / "token")
    server = ["--server", auth_server.address]
    run = lambda *args: subprocess.run([oip.swerve_bin(), "models", *args], capture_output=True, text=True, timeout=60)
    refused = run("unload", "two_inputs", *server)
    assert refused.returncode == 16 and "UNAUTHENTICATED" in refused.stderr, refused   # the status code is the exit code
    assert ready(astub, "two_inputs")
    wrong = write_token(tmp_path / "wrong", "not-it\n")
    denied = run("unload", "two_inputs", *server, "--token-file", str(wrong))
    assert denied.returncode == 7 and "PERMISSION_DENIED" in denied.stderr, denied
    done = run("unload", "two_inputs", *server, "--token-file", str(token))
    assert done.returncode == 0 and "unloaded two_inputs" in done.stdout, done
    assert not ready(astub, "two_inputs")
    done = run("load", "two_inputs", *server, "--token-file", str(token))
    assert done.returncode == 0 and "loaded two_inputs" in done.stdout, done
    assert ready(astub, "two_inputs")
    bad = run("load", "../x", *server, "--token-file", str(token))
    assert bad.returncode != 0 and "invalid model name" in bad.stderr, bad
    listed = run(*server)   # plain `swerve models` still lists
    assert listed.returncode == 0 and "two_inputs" in listed.stdout, listed


@pytest.mark.parametrize("name", ["../escaped", "/tmp/abs", "a/b", ".hidden", ".."])
def test_publish_refuses_hostile_names(zoo, tmp_path, name):
    repo = tmp_path / "repo"
    repo.mkdir()
    out = subprocess.run([oip.swerve_bin(), "publish", str(zoo.path("dense")), "--repository", str(repo), "--name", name],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "invalid model name" in out.stderr, out
    assert list(tmp_path.iterdir()) == [repo] and list(repo.iterdir()) == []


def test_append_labels_needs_the_token(auth_server):
    """Fed-back labels become training data: with a token, AppendLabels needs it (checked before
    the request is read: the model need not even exist)."""
    import swerve_serving_pb2 as spb
    call = auth_server.channel().unary_unary("/swerve.v1.Feedback/AppendLabels",
                                             request_serializer=spb.AppendLabelsRequest.SerializeToString,
                                             response_deserializer=spb.AppendLabelsResponse.FromString)
    request = spb.AppendLabelsRequest(model_name="dense", labels=[spb.LabelFeedback(request_id="r", label="1")])
    expect_code(UNAUTH, call, request, timeout=10)
    expect_code(DENIED, call, request, timeout=10, metadata=(("authorization", "Bearer wrong-token"),))
    # With the token it is read: "dense" keeps no predictions (no prediction_log).
    expect_code(grpc.StatusCode.FAILED_PRECONDITION, call, request, timeout=10, metadata=RIGHT)
