"""The training service end to end: `swerve trainer` publishes into a repository that
`swerve serve --poll-interval 1` serves; gates keep a bad model out; the example log keeps
every acknowledged example across kill -9.

Stubs for protos/swerve_training.proto are generated here (conftest generates the serving ones).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest

import oip
from conftest import GEN, ROOT

_done = subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", str(ROOT / "protos"),
                        f"--python_out={GEN}", f"--grpc_python_out={GEN}",
                        str(ROOT / "protos" / "swerve_training.proto")], capture_output=True, text=True)
if _done.returncode != 0:
    raise RuntimeError(_done.stderr)

import swerve_training_pb2 as tpb  # noqa: E402
import swerve_training_pb2_grpc as tpb_grpc  # noqa: E402

SCHEMA = {
    "columns": [
        {"name": "x1", "type": "numeric"},
        {"name": "x2", "type": "numeric"},
        {"name": "x3", "type": "numeric"},
        {"name": "y", "type": "label", "task": "classification", "classes": ["0", "1"]},
    ],
    "label": "y",
}
HYPER = {"epochs": "10", "lr": "0.05", "patience": "0", "seed": "3"}


def make_rows(n: int, seed: int, shuffle_labels: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    y = (2 * x[:, 0] - x[:, 1] + 0.5 * x[:, 2] + 0.3 * rng.normal(size=n) > 0).astype(int)
    if shuffle_labels:
        y = rng.permutation(y)
    return x, y


def write_csv(path: Path, x: np.ndarray, y: np.ndarray) -> Path:
    lines = ["x1,x2,x3,y"] + [f"{a!r},{b!r},{c!r},{l}" for (a, b, c), l in zip(x.tolist(), y.tolist())]
    path.write_text("\n".join(lines) + "\n")
    return path


class Trainer:
    """A `swerve trainer` child process."""

    def __init__(self, repository: Path, state: Path, log_path: Path, extra_args=()):
        self.repository, self.state, self.log_path = repository, state, log_path
        self.extra_args = list(extra_args)
        self.port = oip.free_port()
        self.proc: subprocess.Popen | None = None
        self.channel: grpc.Channel | None = None

    def start(self, timeout: float = 30) -> "Trainer":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [oip.swerve_bin(), "trainer", "--repository", str(self.repository), "--state-dir", str(self.state),
             "--host", "127.0.0.1", "--grpc-port", str(self.port), *self.extra_args],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        self.stub = tpb_grpc.TrainerStub(self.channel)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"trainer exited:\n{self.log_tail()}"
            try:
                self.stub.ListJobs(tpb.ListJobsRequest(), timeout=1)
                return self
            except grpc.RpcError:
                time.sleep(0.1)
        raise TimeoutError(f"trainer not up:\n{self.log_tail()}")

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.channel.close()

    def stop(self) -> int:
        if self.channel is not None:
            self.channel.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode if self.proc else 0

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


@pytest.fixture
def trainer_env(tmp_path):
    repo = tmp_path / "repository"
    repo.mkdir()
    started: list = []

    def start_trainer() -> Trainer:
        t = Trainer(repo, tmp_path / "state", tmp_path / "trainer.log").start()
        started.append(t)
        return t

    def start_server() -> oip.Server:
        # Started on an empty repository: a server with no model to serve is not ready until
        # the first version is published (and polled), so wait only for it to be live.
        s = oip.Server(repo, tmp_path / "serve.log", ["--poll-interval", "1"]).start(require_server_ready=False)
        started.append(s)
        return s

    yield repo, start_trainer, start_server
    for p in reversed(started):
        p.stop()


def submit_and_watch(stub, request, timeout: float = 60) -> tuple[tpb.JobStatus, list[str]]:
    status = stub.SubmitJob(request, timeout=10)
    assert status.state in ("queued", "running"), status
    lines, last = [], None
    for event in stub.WatchJob(tpb.JobRef(job_id=status.job_id), timeout=timeout):
        lines.append(event.progress_line)
        last = event.status
    assert last is not None and last.state in ("succeeded", "rejected", "failed", "cancelled"), lines
    return last, lines


def static_job(name: str, data: Path) -> tpb.SubmitJobRequest:
    return tpb.SubmitJobRequest(model_name=name, model_kind="logistic", data_path=str(data),
                                schema_json=json.dumps(SCHEMA), hyperparameters=HYPER, started_by="interop")


def served_versions(stub, name: str) -> list[str]:
    try:
        return list(stub.ModelMetadata(oip.pb.ModelMetadataRequest(name=name), timeout=5).versions)
    except grpc.RpcError:
        return []


def wait_for_full_rescan(server: oip.Server, repo: Path, scratch: Path, name: str = "poll_canary") -> None:
    """Returns once `serve --poll-interval` has rescanned every model in `repo`, and loaded what
    changed, after this call began. A new model `name` appears (moved in whole): its version 1
    serving proves a scan started after now. Then its version 2 appears: 2 serving proves a later
    scan started, and scans run one at a time, each loading synchronously, so the first one had
    finished every model by then."""
    source = ROOT / "examples" / "repository" / "breast_cancer_logreg"
    stub = server.stub()
    shutil.copytree(source, scratch / f"{name}-staged")
    os.rename(scratch / f"{name}-staged", repo / name)
    oip.wait_until(lambda: "1" in served_versions(stub, name), 30,
                   lambda: f"{name} version 1 to be served (a rescan)\n{server.log_tail()}")
    shutil.copytree(source / "1", scratch / f"{name}-2-staged")
    os.rename(scratch / f"{name}-2-staged", repo / name / "2")
    oip.wait_until(lambda: "2" in served_versions(stub, name), 30,
                   lambda: f"{name} version 2 to be served (a second rescan)\n{server.log_tail()}")


def test_static_job_is_published_served_and_a_bad_one_is_not(trainer_env, tmp_path):
    repo, start_trainer, start_server = trainer_env
    server = start_server()
    trainer = start_trainer()
    x, y = make_rows(1200, seed=1)
    good = write_csv(tmp_path / "good.csv", x, y)

    final, lines = submit_and_watch(trainer.stub, static_job("clicks", good))
    assert final.state == "succeeded", (final, lines[-5:])
    assert final.published_version == 1
    assert any(l.startswith("epoch ") for l in lines), lines

    versions = trainer.stub.ListVersions(tpb.ModelRef(model_name="clicks"), timeout=10).versions
    assert [(v.version, v.status) for v in versions] == [(1, "serving")]
    lineage = json.loads(versions[0].lineage_json)
    assert lineage["data_fingerprint"].startswith("sha256:") and lineage["metrics"]["accuracy"] > 0.85
    assert lineage["origin"]["user"] == "interop" and lineage["seed"] == 3

    # The inference server picks the version up on its poll and serves what onnxruntime computes.
    stub = server.stub()
    deadline = time.monotonic() + 20
    while "1" not in served_versions(stub, "clicks") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "1" in served_versions(stub, "clicks")
    probe = x[:16].astype(np.float32)
    got = oip.infer(stub, "clicks", {"numeric": probe})
    want = oip.ort_run(repo / "clicks" / "1" / "model.onnx", {"numeric": probe})
    np.testing.assert_allclose(got["probabilities"], want["probabilities"], rtol=1e-5, atol=1e-6)
    assert (got["label"] == want["label"]).all()
    # The reference statistics say where each feature sits in the exported inputs, so the server
    # watches them for drift (ServingInsights/Drift) and joins fed-back labels into examples.
    reference = json.loads((repo / "clicks" / "1" / "reference_stats.json").read_text())
    assert reference["features"] == [{"name": f"x{i}", "input": "numeric", "column": i - 1} for i in (1, 2, 3)]
    assert oip.metric_sum(oip.parse_metrics(server.metrics()), "swerve_holdout_metric", model="clicks", version="1",
                          metric="accuracy") == lineage["metrics"]["accuracy"]

    # Same features, shuffled labels: rejected by the no-regression gate, never published.
    xs, ys = make_rows(1200, seed=1, shuffle_labels=True)
    bad = write_csv(tmp_path / "shuffled.csv", xs, ys)
    final, lines = submit_and_watch(trainer.stub, static_job("clicks", bad))
    assert final.state == "rejected", (final, lines[-5:])
    assert final.published_version == 0 and "regresses" in final.message
    versions = trainer.stub.ListVersions(tpb.ModelRef(model_name="clicks"), timeout=10).versions
    assert [v.version for v in versions] == [1]
    assert sorted(os.listdir(repo / ".rejected" / "clicks"))
    wait_for_full_rescan(server, repo, tmp_path)  # the server has looked again: still only version 1
    assert served_versions(stub, "clicks") == ["1"]
    index = stub.RepositoryIndex(oip.pb.RepositoryIndexRequest(), timeout=10).models
    # .rejected is not a model (poll_canary is the rescan probe's own model).
    assert {m.name for m in index} == {"clicks", "poll_canary"}, [(m.name, m.version, m.state) for m in index]

    # Errors map to statuses.
    oip.expect_code(grpc.StatusCode.NOT_FOUND, trainer.stub.WatchJob(tpb.JobRef(job_id="nope"), timeout=5).__next__)
    oip.expect_code(grpc.StatusCode.NOT_FOUND, trainer.stub.ListVersions, tpb.ModelRef(model_name="nope"), timeout=5)
    bad_hp = static_job("clicks", good)
    bad_hp.hyperparameters["epochs"] = "many"
    oip.expect_code(grpc.StatusCode.INVALID_ARGUMENT, trainer.stub.SubmitJob, bad_hp, timeout=5)
    bad_schema = static_job("clicks", good)
    bad_schema.schema_json = "{\"columns\": []}"
    oip.expect_code(grpc.StatusCode.INVALID_ARGUMENT, trainer.stub.SubmitJob, bad_schema, timeout=5)
    oip.expect_code(grpc.StatusCode.NOT_FOUND, trainer.stub.PromoteVersion, tpb.VersionRef(model_name="clicks", version=7), timeout=5)

    # SIGTERM: a clean exit.
    assert trainer.stop() == 0


def read_log(directory: Path) -> dict[int, bytes]:
    """The WAL read independently (test_wal.py's reader): sequence → payload."""
    from test_wal import read_log as read_records
    return dict(read_records(directory))


def test_acknowledged_examples_survive_kill_9(trainer_env, tmp_path):
    repo, start_trainer, _ = trainer_env
    trainer = start_trainer()
    acked: dict[int, dict] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def pusher(worker: int) -> None:
        stub = trainer.stub
        i = 0
        while not stop.is_set():
            examples = [tpb.Example(features={"x1": f"{worker}.{i}.{k}", "x2": "0", "x3": "1"}, label=str(k % 2))
                        for k in range(10)]
            try:
                resp = stub.AppendExamples(tpb.AppendExamplesRequest(model_name="clicks", examples=examples), timeout=5)
            except grpc.RpcError:
                return  # the trainer died mid-call: not acknowledged
            with lock:
                for k, e in enumerate(examples):
                    acked[resp.first_sequence + k] = {"x1": e.features["x1"], "label": e.label}
            i += 1

    threads = [threading.Thread(target=pusher, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while len(acked) < 300 and time.monotonic() < deadline:
        time.sleep(0.05)
    trainer.kill9()
    stop.set()
    for t in threads:
        t.join(timeout=10)
    assert len(acked) >= 100, f"only {len(acked)} acknowledged:\n{trainer.log_tail()}"

    # Restart over the same state: recovery keeps every acknowledged example, and appends go on.
    again = start_trainer()
    resp = again.stub.AppendExamples(tpb.AppendExamplesRequest(
        model_name="clicks", examples=[tpb.Example(features={"x1": "after"}, label="1")]), timeout=10)
    assert resp.first_sequence > max(acked)
    assert again.stop() == 0
    records = read_log(tmp_path / "state" / "logs" / "clicks")
    missing = [s for s in acked if s not in records]
    assert not missing, f"{len(missing)} acknowledged examples lost, e.g. {missing[:5]}"
    for seq, want in acked.items():
        got = json.loads(records[seq])
        assert got["features"]["x1"] == want["x1"] and got["label"] == want["label"], (seq, got, want)
    assert sorted(records) == list(range(1, len(records) + 1))


def test_appends_are_all_or_nothing_and_retries_with_a_key_are_not_written_twice(trainer_env, tmp_path):
    """kill -9 while 50-example appends with idempotency keys are in flight, then retry every
    append that got no answer with its key, and one that did: no append is in the log in part,
    none twice, every acknowledged one keeps its sequence numbers, and a retry of one that had
    landed is answered with its original numbers (replayed) without writing anything."""
    repo, start_trainer, _ = trainer_env
    trainer = start_trainer()
    acked: dict[str, tuple[int, list]] = {}      # key -> (first sequence, examples)
    unanswered: dict[str, list] = {}             # key -> examples
    lock = threading.Lock()
    stop = threading.Event()

    def unit(key: str) -> list:
        return [tpb.Example(features={"x1": f"{key}/{k}", "x2": "0", "x3": "1"}, label=str(k % 2)) for k in range(50)]

    def pusher(worker: int) -> None:
        i = 0
        while not stop.is_set():
            key = f"w{worker}-{i}"
            examples = unit(key)
            try:
                resp = trainer.stub.AppendExamples(tpb.AppendExamplesRequest(
                    model_name="clicks", examples=examples, idempotency_key=key), timeout=5)
            except grpc.RpcError:
                with lock:
                    unanswered[key] = examples
                return
            assert resp.count == 50 and not resp.replayed
            with lock:
                acked[key] = (resp.first_sequence, examples)
            i += 1

    threads = [threading.Thread(target=pusher, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 15
    while len(acked) < 20 and time.monotonic() < deadline:
        time.sleep(0.02)
    trainer.kill9()
    stop.set()
    for t in threads:
        t.join(timeout=10)
    assert len(acked) >= 5, f"only {len(acked)} appends acknowledged:\n{trainer.log_tail()}"

    again = start_trainer()
    # A retry of an acknowledged append: its original numbers, nothing written.
    key, (first, examples) = next(iter(acked.items()))
    resp = again.stub.AppendExamples(tpb.AppendExamplesRequest(model_name="clicks", examples=examples, idempotency_key=key), timeout=10)
    assert resp.replayed and resp.first_sequence == first and resp.count == 50
    # The same key for an append of another size is refused.
    with pytest.raises(grpc.RpcError) as refused:
        again.stub.AppendExamples(tpb.AppendExamplesRequest(model_name="clicks", examples=examples[:3], idempotency_key=key), timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # Retries of the appends that got no answer: each lands exactly once.
    replayed = 0
    for key, examples in unanswered.items():
        resp = again.stub.AppendExamples(tpb.AppendExamplesRequest(model_name="clicks", examples=examples, idempotency_key=key), timeout=10)
        assert resp.count == 50
        replayed += resp.replayed
        acked[key] = (resp.first_sequence, examples)
    assert again.stop() == 0

    records = read_log(tmp_path / "state" / "logs" / "clicks")
    assert sorted(records) == list(range(1, len(records) + 1))
    by_unit: dict[str, list[int]] = {}
    for seq in sorted(records):
        x1 = json.loads(records[seq])["features"]["x1"]
        u, k = x1.split("/")
        by_unit.setdefault(u, []).append(int(k))
    partial_or_twice = {u: ks for u, ks in by_unit.items() if ks != list(range(50))}
    assert not partial_or_twice, f"appends in part or twice: {list(partial_or_twice.items())[:3]}"
    assert set(by_unit) == set(acked), (set(by_unit) ^ set(acked))
    for key, (first, _) in acked.items():
        assert json.loads(records[first])["features"]["x1"] == f"{key}/0"
        assert json.loads(records[first])["appendKey"] == key
    print(f"{len(acked)} appends, {len(unanswered)} unanswered at the kill, {replayed} of those had landed")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_cancel_job_stops_the_training_thread(trainer_env, tmp_path):
    """CancelJob after the first epoch of a job that would run for hours: the job ends cancelled
    within seconds and the trainer goes idle (its training thread stopped, not abandoned)."""
    repo, start_trainer, _ = trainer_env
    trainer = start_trainer()
    x, y = make_rows(20000, seed=11)
    data = write_csv(tmp_path / "long.csv", x, y)
    request = tpb.SubmitJobRequest(model_name="long", model_kind="mlp", data_path=str(data), schema_json=json.dumps(SCHEMA),
                                   hyperparameters={"epochs": "100000", "patience": "0", "hidden": "64", "batch_size": "16"},
                                   started_by="interop")
    status = trainer.stub.SubmitJob(request, timeout=10)
    events = trainer.stub.WatchJob(tpb.JobRef(job_id=status.job_id), timeout=120)
    epochs_seen, cancelled_at, last = 0, None, None
    for event in events:
        last = event.status
        if event.epoch > 0:
            epochs_seen = max(epochs_seen, event.epoch)
            if cancelled_at is None:
                trainer.stub.CancelJob(tpb.JobRef(job_id=status.job_id), timeout=10)
                cancelled_at = time.monotonic()
    assert cancelled_at is not None and last is not None
    assert last.state == "cancelled", (last, trainer.log_tail())
    assert time.monotonic() - cancelled_at < 10
    assert epochs_seen <= 2
    before = cpu_seconds(trainer.proc.pid)
    time.sleep(1.5)  # the observation window itself: an idle trainer burns (almost) no CPU in it
    burned = cpu_seconds(trainer.proc.pid) - before
    assert burned < 0.5, f"the trainer kept computing after the cancellation: {burned:.2f} CPU s in 1.5 s"
    assert not (repo / "long").exists()
