"""Continuous training end to end on the bundled drift stream (examples/drift/generate.py).

A continuous job is submitted to `swerve trainer`; weekly batches are pushed with AppendExamples;
each week becomes one published version whose parent is the previous one, and `swerve serve
--poll-interval 1` on the same repository serves the newest. The trainer is then killed with
SIGKILL and restarted over the same state directory: the job comes back by itself (no resubmit),
and each following week is published exactly once, as a child of the last version.
"""
from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

import oip
from conftest import ROOT
from test_training import Trainer, served_versions, tpb

MODEL = "ads"
WEEKS = 4
ROWS = 1500  # per week; also the job's min_batch_rows, so a round only ever sees whole weeks
# Explicit gates also check every slice (category) for regression against the previous model on
# the same holdout, and at 1,500 rows/week a slice holds ~60 holdout rows: with the default-like
# margin 0.15 week 1 was rejected on category=books (0.70 -> 0.54, ~9 rows). Keep an absolute
# floor overall and a margin that tolerates that slice noise (one margin serves overall and slices).
GATES = {"overall": [{"metric": "accuracy", "comparison": "at_least", "threshold": 0.6}],
         "max_regression": {"accuracy": 0.25}}


def generate(out: Path) -> Path:
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "drift" / "generate.py"), "--out", str(out),
                           "--weeks", str(WEEKS), "--rows-per-week", str(ROWS), "--seed", "7"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return out


def week_examples(data: Path, week: int) -> list:
    with open(data / "batches" / f"week-{week:02d}.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == ROWS
    return [tpb.Example(features={k: v for k, v in r.items() if k != "converted"}, label=r["converted"]) for r in rows]


def push_week(stub, data: Path, week: int) -> tuple[int, int]:
    """One AppendExamples call per week (durable when it returns); the sequence range it got."""
    resp = stub.AppendExamples(tpb.AppendExamplesRequest(model_name=MODEL, examples=week_examples(data, week)),
                               timeout=30)
    assert resp.count == ROWS, resp
    return resp.first_sequence, resp.first_sequence + resp.count - 1


def versions(stub) -> list:
    try:
        return list(stub.ListVersions(tpb.ModelRef(model_name=MODEL), timeout=5).versions)
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.NOT_FOUND:
            return []
        raise


def wait_for_versions(trainer: Trainer, count: int, timeout: float = 30) -> list:
    deadline = time.monotonic() + timeout
    got = []
    while time.monotonic() < deadline:
        assert trainer.proc.poll() is None, f"trainer exited:\n{trainer.log_tail()}"
        got = versions(trainer.stub)
        if len(got) >= count:
            return got
        time.sleep(0.2)
    raise AssertionError(f"{len(got)} versions after {timeout}s, wanted {count}: "
                         f"{[(v.version, v.status) for v in got]}\n{rejections(trainer)}\n{trainer.log_tail()}")


def rejections(trainer: Trainer) -> str:
    d = trainer.repository / ".rejected" / MODEL
    q = trainer.repository / ".quarantine" / MODEL
    return f"rejected: {sorted(p.name for p in d.iterdir()) if d.exists() else []}; " \
           f"quarantined: {sorted(p.name for p in q.iterdir()) if q.exists() else []}"


def lineage(v) -> dict:
    return json.loads(v.lineage_json)


def log_range(v) -> tuple[int, int]:
    lo, hi = lineage(v)["extra"]["continuous.log_range"].split("-")
    return int(lo), int(hi)


def wait_served(server: oip.Server, version: int, timeout: float = 20) -> None:
    stub = server.stub()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if str(version) in served_versions(stub, MODEL):
            break
        time.sleep(0.2)
    assert str(version) in served_versions(stub, MODEL), (served_versions(stub, MODEL), server.log_tail())
    assert stub.ModelReady(oip.pb.ModelReadyRequest(name=MODEL, version=str(version)), timeout=5).ready
    # The default (unversioned) model is the newest.
    meta = stub.ModelMetadata(oip.pb.ModelMetadataRequest(name=MODEL), timeout=5)
    assert max(int(s) for s in meta.versions) == version, list(meta.versions)


def running_continuous_jobs(stub) -> list:
    jobs = stub.ListJobs(tpb.ListJobsRequest(model_name=MODEL), timeout=5).jobs
    return [j for j in jobs if j.job_id.startswith("cont-") and j.state == "running"]


@pytest.fixture
def env(tmp_path):
    repo = tmp_path / "repository"
    repo.mkdir()
    started: list = []

    def start_trainer() -> Trainer:
        t = Trainer(repo, tmp_path / "state", tmp_path / "trainer.log")
        started.append(t)
        return t.start()

    def start_server() -> oip.Server:
        # Started on an empty repository: a server with no model to serve is not ready until
        # the first version is published (and polled), so wait only for it to be live.
        s = oip.Server(repo, tmp_path / "serve.log", ["--poll-interval", "1"])
        started.append(s)
        return s.start(require_server_ready=False)

    yield repo, start_trainer, start_server
    for p in reversed(started):  # SIGTERM, bounded wait, SIGKILL (Trainer.stop / Server.stop)
        p.stop()


def test_continuous_job_publishes_serves_and_resumes_after_kill_9(env, tmp_path):
    t0 = time.monotonic()
    repo, start_trainer, start_server = env
    data = generate(tmp_path / "drift")
    server = start_server()
    trainer = start_trainer()

    request = tpb.SubmitJobRequest(
        model_name=MODEL, model_kind="logistic", schema_json=(data / "schema.json").read_text(), continuous=True,
        hyperparameters={"epochs": "10", "lr": "0.05", "patience": "0", "seed": "7", "min_batch_rows": str(ROWS)},
        gates_json=json.dumps(GATES), slice_column="category", started_by="interop-continuous", poll_seconds=1)
    status = trainer.stub.SubmitJob(request, timeout=10)
    assert status.job_id.startswith("cont-") and status.state in ("queued", "running"), status
    # A second continuous job for the same model is refused while the first runs.
    oip.expect_code(grpc.StatusCode.ALREADY_EXISTS, trainer.stub.SubmitJob, request, timeout=10)

    # Week 0 → v1 (no parent).
    ranges = [push_week(trainer.stub, data, 0)]
    vs = wait_for_versions(trainer, 1)
    assert [v.version for v in vs] == [1], [(v.version, v.status) for v in vs]
    l1 = lineage(vs[0])
    assert l1.get("parent_version") is None, l1.get("parent_version")
    assert log_range(vs[0]) == ranges[0], (lineage(vs[0])["extra"], ranges)
    wait_served(server, 1)

    # Week 1 → v2, parent v1, progressive validation recorded (scored before training on it).
    ranges.append(push_week(trainer.stub, data, 1))
    vs = wait_for_versions(trainer, 2)
    assert [v.version for v in vs] == [1, 2]
    l2 = lineage(vs[1])
    assert l2["parent_version"] == 1, l2.get("parent_version")
    assert log_range(vs[1]) == ranges[1], (l2["extra"], ranges)
    assert 0.5 <= float(l2["extra"]["progressive.accuracy"]) <= 1.0, l2["extra"]
    wait_served(server, 2)

    # kill -9, restart over the same state, no resubmission: the job comes back by itself.
    trainer.kill9()
    trainer = start_trainer()
    deadline = time.monotonic() + 10
    while not running_continuous_jobs(trainer.stub) and time.monotonic() < deadline:
        time.sleep(0.1)
    resumed = running_continuous_jobs(trainer.stub)
    assert len(resumed) == 1, (trainer.stub.ListJobs(tpb.ListJobsRequest(), timeout=5), trainer.log_tail())
    assert resumed[0].model_name == MODEL, resumed

    # Week 2 → v3, parent v2; then week 3 → v4, parent v3. Each version holds exactly its week:
    # had the resumed job trained again on weeks 0-1, or on week 2 a second time, a version would
    # carry their sequence range (alone or merged with the next week), or a rejection would be
    # recorded; so no waiting for idle polls is needed to see that it did not.
    for week in (2, 3):
        ranges.append(push_week(trainer.stub, data, week))
        assert ranges[week][0] == ranges[week - 1][1] + 1, ranges  # the log kept its sequence across kill -9
        wait_for_versions(trainer, week + 1)
    vs = versions(trainer.stub)
    assert [v.version for v in vs] == [1, 2, 3, 4], [(v.version, lineage(v)["extra"]) for v in vs]
    assert [lineage(v).get("parent_version") for v in vs] == [None, 1, 2, 3]
    assert [log_range(v) for v in vs] == ranges
    for v in vs:
        extra = lineage(v)["extra"]
        lo, hi = log_range(v)
        assert hi - lo + 1 == ROWS and int(extra["continuous.log_next_sequence"]) == hi + 1, extra
    assert not (repo / ".rejected" / MODEL).exists() and not (repo / ".quarantine" / MODEL).exists(), rejections(trainer)
    wait_served(server, 4)
    # A version is published (validated), then promoted: the policy first (which the server
    # follows), then the status. Ask until the status has followed too.
    oip.wait_until(lambda: [(v.version, v.status) for v in versions(trainer.stub)][-1] == (4, "serving"), 10,
                   lambda: f"v4's status to become serving: {[(v.version, v.status) for v in versions(trainer.stub)]}")

    assert time.monotonic() - t0 < 90, f"took {time.monotonic() - t0:.1f}s"
