"""`swerve rollout` across 3 replicas behind the real HAProxy (deploy/local/cluster.sh), sharing one
repository folder, under open-loop load from `swerve bench` through HAProxy. Every gRPC status
other than OK counts as a failed request; each test prints its count.

The models are scikit-learn LogisticRegressions on iris (skl2onnx): v1 and v2 trained properly
(C=1 and C=0.5: 99% of predictions equal), v3 on shuffled labels (its predicted class frequencies
differ from v2's by a total variation distance of ~0.27), v4 = v2 padded with an unused 64 KB
initializer (one replica runs with --max-model-bytes 16384, so it cannot load it), v5 = v2's
graph fed with input + 0 x (a 160-layer 512-wide MatMul/Tanh chain of the input): the same
predictions, ~100x the compute, v6 = v2 retrained (C=0.7) for the kill -9 run.

Gates: the windows here are a few hundred requests (steps 50,100, bake 3 s at 200 req/s), where
two samples of one distribution differ by a TVD of ~0.05 +- 0.02: --max-prediction-shift 0.15
keeps the same model from failing by chance, while v3 (0.27) fails by far. The p99 of such a
window is nearly its maximum, so only the slow-version test gates on it (see NO_P99). The
replicas poll the repository every 0.3 s.

Tests, in order on one fleet: v1 -> v2 (zero failed requests, every replica answers v2), v3
rolled back on the prediction check, v4 stops before any traffic moves (a 4th replica cannot load
it), v5 rolled back on p99, v6 interrupted by SIGINT at 50% and by kill -9 at 100% and run again
to the end. Apart: `swerve label` by hand and through `swerve registry` (token, --replicas
refusal), a rollout through `--registry` with 2 replicas following it (promote, then a rolled-back
v3 that a later run refuses without --force), and the whole loop from a continuous training job's examples to served predictions.

Exit codes of `swerve rollout`: 0 promoted, 2 usage/connection, 3 rolled back, 130 SIGINT.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import grpc
import numpy as np
import pytest

import oip
from test_cluster import CLUSTER_SH, Bench, Cluster, failures, swerve_bin, wait_until

MODEL = "iris"
RATE = 200
STEPS = ["--steps", "50,100", "--bake", "3s", "--min-requests", "150", "--max-prediction-shift", "0.15",
         "--ready-timeout", "60s", "--apply-timeout", "30s"]
# Only the slow-version test checks p99 (at 3x). Elsewhere the p99 gate is opened wide: on this
# shared 2-core machine a CPU stall of other jobs now and then lifts the p99 of a few-hundred-request
# window of an unchanged model from 0.2 ms to 12 ms (seen once in the first runs), which says
# nothing about the model. The gate itself is unit-tested (SwerveRolloutTests).
NO_P99 = ["--max-p99-ratio", "1000"]

pytestmark = pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy not installed (make deps)")


# --------------------------------------------------------------------------
# models


def iris_model(c: float = 1.0, shuffle_seed: int | None = None):
    from sklearn import datasets
    from sklearn.linear_model import LogisticRegression
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    iris = datasets.load_iris()
    x, y = iris.data.astype(np.float32), iris.target
    if shuffle_seed is not None:
        y = np.random.default_rng(shuffle_seed).permutation(y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = LogisticRegression(C=c, max_iter=2000, random_state=0).fit(x, y)
    return convert_sklearn(est, initial_types=[("input", FloatTensorType([None, 4]))],
                           options={id(est): {"zipmap": False}}, target_opset={"": 13, "ai.onnx.ml": 1})


def padded(model, nbytes: int):
    import onnx
    from onnx import numpy_helper
    m = onnx.ModelProto()
    m.CopyFrom(model)
    m.graph.initializer.append(numpy_helper.from_array(np.zeros(nbytes // 4, np.float32), "padding_unused"))
    return m


def slowed(model, width: int = 512, layers: int = 160, seed: int = 1):
    """`model` computing on input + 0 x chain(input): the same predictions, much more work."""
    import onnx
    from onnx import helper, numpy_helper
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    for n in g.node:
        for i, name in enumerate(n.input):
            if name == "input":
                n.input[i] = "x_slow"
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((width, width)))
    inits = [numpy_helper.from_array((rng.standard_normal((4, width)) / 2).astype(np.float32), "slow_a"),
             numpy_helper.from_array(q.astype(np.float32), "slow_b"),  # orthogonal: values stay bounded
             numpy_helper.from_array((rng.standard_normal((width, 4)) / np.sqrt(width)).astype(np.float32), "slow_c"),
             numpy_helper.from_array(np.zeros((1, 4), np.float32), "slow_zero")]
    nodes = [helper.make_node("MatMul", ["input", "slow_a"], ["slow_h0"])]
    for i in range(layers):
        nodes += [helper.make_node("MatMul", [f"slow_h{i}", "slow_b"], [f"slow_m{i}"]),
                  helper.make_node("Tanh", [f"slow_m{i}"], [f"slow_h{i + 1}"])]
    nodes += [helper.make_node("MatMul", [f"slow_h{layers}", "slow_c"], ["slow_z"]),
              helper.make_node("Mul", ["slow_z", "slow_zero"], ["slow_z0"]),
              helper.make_node("Add", ["input", "slow_z0"], ["x_slow"])]
    rest = list(g.node)
    del g.node[:]
    g.node.extend(nodes + rest)
    g.initializer.extend(inits)
    return m


def write_inputs(path: Path, n: int = 3000, seed: int = 5) -> Path:
    """n distinct iris-like rows (real rows + noise), one request per line: the canary's hash share
    of them is a fair sample of the whole."""
    from sklearn import datasets
    data = datasets.load_iris().data
    rng = np.random.default_rng(seed)
    rows = data[rng.integers(0, len(data), n)] + rng.normal(0, 0.15, (n, 4))
    path.write_text("".join(json.dumps({"input": [[round(float(v), 4) for v in r]]}) + "\n" for r in rows))
    return path


def publish(repo: Path, model, scratch: Path, name: str = MODEL) -> int:
    import onnx
    f = scratch / f"publish-{time.monotonic_ns()}.onnx"
    onnx.save(model, f)
    done = subprocess.run([swerve_bin(), "publish", str(f), "--repository", str(repo), "--name", name],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return max(int(p.name) for p in (repo / name).iterdir() if p.name.isdigit())


# --------------------------------------------------------------------------
# helpers


def labels(repo: Path, name: str = MODEL) -> dict:
    p = repo / name / "labels.json"
    return json.loads(p.read_text()) if p.exists() else {}


def lineage(repo: Path, version: int, name: str = MODEL) -> dict:
    return json.loads((repo / name / str(version) / "metadata.json").read_text())


def rollout(repo: Path, version: int, replicas: list[str], *extra: str, name: str = MODEL,
            timeout: float = 120, p99: list[str] = NO_P99) -> subprocess.CompletedProcess:
    done = subprocess.run([swerve_bin(), "rollout", "--model", name, "--version", str(version),
                           "--replicas", ",".join(replicas), "--repository", str(repo), *STEPS, *p99, *extra],
                          capture_output=True, text=True, timeout=timeout)
    print(f"\n$ swerve rollout --version {version} -> exit {done.returncode}\n{done.stdout}{done.stderr}")
    return done


class Load(Bench):
    """`swerve bench` in open loop through HAProxy in the background, counting every failed request."""

    def __init__(self, endpoint: str, inputs: Path, out: Path, duration: float, name: str = MODEL, rate: float = RATE):
        super().__init__(endpoint, out, duration, "--inputs", f"file:{inputs}", rate=rate, model=name,
                         concurrency=32, connections=2)

    def failed(self, what: str) -> int:
        report = self.result()
        assert report["ok"] > 0, report
        return failures(report, what)


def answering_versions(addresses: list[str], inputs: Path, name: str = MODEL, count: int = 20) -> dict[str, set[str]]:
    """The model_version of the responses of each replica (asked directly) to unversioned requests."""
    rows = [json.loads(l)["input"] for l in inputs.read_text().splitlines()[:count]]
    out = {}
    for address in addresses:
        with grpc.insecure_channel(address) as ch:
            stub = oip.pb_grpc.GRPCInferenceServiceStub(ch)
            seen = set()
            for r in rows:
                req = oip.make_request(name, {"input": np.array(r, np.float32)})
                seen.add(stub.ModelInfer(req, timeout=10).model_version)
            out[address] = seen
    return out


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """3 replicas behind HAProxy on one repository holding iris v1 (served: version policy
    specific [1], no labels yet) and v2..v6 (published, not served)."""
    tmp = tmp_path_factory.mktemp("rollout")
    repo = tmp / "repo"
    (repo / MODEL).mkdir(parents=True)
    v2 = iris_model(0.5)
    models = [iris_model(1.0), v2, iris_model(0.01, shuffle_seed=2), padded(v2, 64000), slowed(v2), iris_model(0.7)]
    for m in models:
        publish(repo, m, tmp)
    config = {"max_batch_size": 64, "serving_mode": "dynamic",
              "dynamic_batching": {"max_queue_delay_us": 500, "max_queue_size": 1024},
              "version_policy": {"specific": {"versions": [1]}}}
    (repo / MODEL / "config.json").write_text(json.dumps(config))
    cluster = Cluster(tmp / "cluster")
    cluster.run("up", "-n", "3", "--repository", str(repo), "--drain-seconds", "0", "--",
                "--poll-interval", "0.3")
    try:
        yield repo, cluster, write_inputs(tmp / "inputs.jsonl"), tmp
    finally:
        cluster.down()


def replica_addresses(cluster: Cluster) -> list[str]:
    return [f"127.0.0.1:{cluster.grpc_port(n)}" for n in cluster.replica_names()]


# --------------------------------------------------------------------------
# tests


def test_v1_to_v2_under_load(fleet):
    repo, cluster, inputs, tmp = fleet
    replicas = replica_addresses(cluster)
    assert all(v == {"1"} for v in answering_versions(replicas, inputs).values())
    dry = rollout(repo, 2, replicas, "--dry-run")
    assert dry.returncode == 0 and "dry run: nothing changed" in dry.stdout
    assert labels(repo) == {}
    load = Load(cluster.endpoint(), inputs, tmp / "v2.json", 20)
    time.sleep(1)
    done = rollout(repo, 2, replicas)
    assert load.failed("v1 -> v2 by rollout") == 0
    assert done.returncode == 0, done.stderr
    # One progress line per step with both sides' figures.
    steps = [l for l in done.stdout.splitlines() if l.startswith("step ")]
    assert len(steps) == 2 and all("canary v2:" in l and "stable v1:" in l and "-> pass" in l for l in steps), steps
    l = labels(repo)
    assert (l["stable"], l.get("canary"), l["previous_stable"]) == (2, None, 1), l
    assert lineage(repo, 2)["status"] == "serving"
    assert lineage(repo, 1)["status"] == "validated"
    assert all(v == {"2"} for v in answering_versions(replicas, inputs).values()), answering_versions(replicas, inputs)
    # Run again: already done.
    again = rollout(repo, 2, replicas)
    assert again.returncode == 0 and "stable already" in again.stdout


def current_stable(repo: Path, replicas: list[str], inputs: Path) -> str:
    """What serves now (v2 after the first test; whatever every replica answers otherwise)."""
    versions = set().union(*answering_versions(replicas, inputs).values())
    assert len(versions) == 1, versions
    return versions.pop()


def test_shifted_predictions_roll_back(fleet):
    repo, cluster, inputs, tmp = fleet
    replicas = replica_addresses(cluster)
    stable = current_stable(repo, replicas, inputs)
    load = Load(cluster.endpoint(), inputs, tmp / "v3.json", 12)
    time.sleep(1)
    done = rollout(repo, 3, replicas)
    assert load.failed("v3 (shuffled labels) rolled back") == 0
    assert done.returncode == 3, done.stderr
    assert "prediction shift" in done.stderr and "classes TVD" in done.stderr, done.stderr
    assert labels(repo).get("canary") is None
    record = lineage(repo, 3)
    assert record["status"] == "rolled_back", record["status"]
    why = record["status_history"][-1]["reason"]
    assert "prediction shift" in why and "canary v3:" in why, why
    assert all(v == {stable} for v in answering_versions(replicas, inputs).values())


def test_a_version_one_replica_cannot_load_stops_before_traffic_moves(fleet):
    repo, cluster, inputs, tmp = fleet
    replicas = replica_addresses(cluster)
    # A 4th replica on the same repository that refuses model files above 16 KiB (v4 is 64 KB).
    odd = oip.Server(repo, tmp / "odd.log", ["--poll-interval", "0.3", "--max-model-bytes", "16384"]).start()
    try:
        before = labels(repo)
        shares: list[float] = []
        proc = subprocess.Popen([swerve_bin(), "rollout", "--model", MODEL, "--version", "4", "--replicas",
                                 ",".join(replicas + [odd.address]), "--repository", str(repo), *STEPS, *NO_P99],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # Watch every labels.json the rollout writes: no canary share above 0 ever.
        deadline = time.monotonic() + 90
        while proc.poll() is None and time.monotonic() < deadline:
            shares.append(labels(repo).get("canary_percent", 0))
            time.sleep(0.02)
        if proc.poll() is None:
            proc.kill()
        out, err = proc.communicate(timeout=10)
        print(out, err)
        assert proc.returncode == 3, err
        assert max(shares) == 0, shares
        assert f"{odd.address} cannot load v4" in err and "16384" in err, err
        after = labels(repo)
        assert after.get("canary") is None and after["stable"] == before.get("stable", after["stable"])
        assert lineage(repo, 4)["status"] == "rolled_back"
        assert "cannot load v4" in lineage(repo, 4)["status_history"][-1]["reason"]
    finally:
        odd.stop()


def test_slow_version_rolls_back_on_p99(fleet):
    repo, cluster, inputs, tmp = fleet
    replicas = replica_addresses(cluster)
    stable = current_stable(repo, replicas, inputs)
    load = Load(cluster.endpoint(), inputs, tmp / "v5.json", 14)
    time.sleep(1)
    done = rollout(repo, 5, replicas, p99=["--max-p99-ratio", "3"])
    assert load.failed("v5 (slow) rolled back") == 0
    assert done.returncode == 3, done.stderr
    assert "p99" in done.stderr and "ratio" in done.stderr, done.stderr
    assert "prediction shift" not in done.stderr.split("(canary")[0], done.stderr
    assert lineage(repo, 5)["status"] == "rolled_back"
    assert labels(repo).get("canary") is None
    assert all(v == {stable} for v in answering_versions(replicas, inputs).values())


def test_sigint_then_kill_9_mid_rollout_then_run_again(fleet):
    repo, cluster, inputs, tmp = fleet
    replicas = replica_addresses(cluster)
    stable = int(current_stable(repo, replicas, inputs))
    load = Load(cluster.endpoint(), inputs, tmp / "v6.json", 35)
    time.sleep(1)
    argv = [swerve_bin(), "rollout", "--model", MODEL, "--version", "6", "--replicas", ",".join(replicas),
            "--repository", str(repo), *STEPS, *NO_P99]

    def interrupt_at(share: float, how) -> subprocess.Popen:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            wait_until(lambda: labels(repo).get("canary_percent", 0) == share or proc.poll() is not None, 60,
                       f"the rollout to reach {share}%")
            assert proc.poll() is None, proc.communicate()[0]
            time.sleep(1)  # inside the step's bake
            how(proc)
            proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        return proc

    # SIGINT during the 50% bake: labels left as they are, and it says how to resume.
    proc = interrupt_at(50, lambda p: p.send_signal(signal.SIGINT))
    out = proc.stdout.read()
    print(out)
    assert proc.returncode == 130, out
    assert "interrupted by SIGINT; labels left as they are (stable" in out and "Run the same command again" in out, out
    mid = labels(repo)
    assert (mid["stable"], mid["canary"], mid["canary_percent"]) == (stable, 6, 50), mid

    # Run again, and kill -9 it during the 100% bake (it re-bakes 50% first: that window was not judged).
    proc = interrupt_at(100, lambda p: p.kill())
    out = proc.stdout.read()
    print(out)
    assert "resuming: stable" in out and "step 1/2 50%" in out, out
    mid = labels(repo)
    assert (mid["stable"], mid["canary"], mid["canary_percent"]) == (stable, 6, 100), mid

    # Run again: resumed at 100%, it compares with stable's figures since it loaded, and finishes.
    done = rollout(repo, 6, replicas)
    assert load.failed("v6 rollout: SIGINT at 50%, kill -9 at 100%, run again") == 0
    assert done.returncode == 0, done.stderr
    assert "resuming: stable" in done.stdout and "stable since it loaded" in done.stdout, done.stdout
    l = labels(repo)
    assert (l["stable"], l.get("canary"), l["previous_stable"]) == (6, None, stable), l
    assert lineage(repo, 6)["status"] == "serving"
    assert lineage(repo, stable)["status"] == "validated"
    assert all(v == {"6"} for v in answering_versions(replicas, inputs).values())


def test_label_by_hand_and_through_the_registry(tmp_path):
    repo = tmp_path / "repo"
    (repo / MODEL).mkdir(parents=True)
    for m in (iris_model(1.0), iris_model(0.5)):
        publish(repo, m, tmp_path)
    (repo / MODEL / "config.json").write_text(json.dumps({"version_policy": {"specific": {"versions": [1]}}}))
    token = tmp_path / "token"
    token.write_text("rollout-test-token-0123456789\n")
    token.chmod(0o600)
    server = oip.Server(repo, tmp_path / "serve.log", ["--poll-interval", "0.3"]).start()
    registry_port = oip.free_port()
    registry = subprocess.Popen([swerve_bin(), "registry", "--repository", str(repo), "--port", str(registry_port),
                                 "--admin-token-file", str(token)], stdout=open(tmp_path / "registry.log", "wb"),
                                stderr=subprocess.STDOUT)
    try:
        def label(*args: str, store: list[str] | None = None) -> subprocess.CompletedProcess:
            done = subprocess.run([swerve_bin(), "label", "--model", MODEL, *args,
                                   *(store or ["--repository", str(repo)])], capture_output=True, text=True, timeout=30)
            print(f"$ swerve label {' '.join(args)} -> {done.returncode}\n{done.stdout}{done.stderr}")
            return done

        done = label()
        assert done.returncode == 0 and "generation 0): no labels" in done.stdout
        done = label("stable=1")
        assert done.returncode == 0 and "stable v1, no canary" in done.stdout
        assert lineage(repo, 1)["status"] == "serving"
        # v2 is not loaded on the replica (policy: v1 only): a label may not point at it there.
        done = label("canary=2", "--canary-percent", "10", "--replicas", server.address)
        assert done.returncode == 2 and f"{server.address}: v2 not loaded" in done.stderr, done.stderr
        assert labels(repo).get("canary") is None
        # Canary at 0% makes every replica load it; once it is READY the share may move.
        assert label("canary=2").returncode == 0
        wait_until(lambda: label("--canary-percent", "10", "--replicas", server.address).returncode == 0, 30,
                   "v2 to be READY on the replica")
        assert (labels(repo)["canary"], labels(repo)["canary_percent"]) == (2, 10)
        assert label("stable=2", "canary=3").returncode == 2  # no version 3
        assert label("stable=x").returncode == 2

        # Through the registry: the token is needed, and the same labels come back.
        wait_until(lambda: subprocess.run([swerve_bin(), "label", "--model", MODEL, "--registry",
                                           f"127.0.0.1:{registry_port}", "--token-file", str(token)],
                                          capture_output=True, timeout=30).returncode == 0, 30, "the registry to answer")
        via = ["--registry", f"127.0.0.1:{registry_port}", "--token-file", str(token)]
        done = label(store=via)
        assert done.returncode == 0 and "stable v1, canary v2 at 10%" in done.stdout, done.stdout
        done = label(store=["--registry", f"127.0.0.1:{registry_port}"])
        assert done.returncode == 2 and "UNAUTHENTICATED" in done.stderr, done.stderr
        done = label("--clear-canary", store=via)
        assert done.returncode == 0 and "stable v1, no canary" in done.stdout, done.stdout
        assert labels(repo).get("canary") is None
        done = subprocess.run([swerve_bin(), "rollout", "--model", MODEL, "--version", "2", "--replicas", server.address,
                               *via, "--dry-run"], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0 and "plan: write canary=v2 at 0%" in done.stdout, done.stdout + done.stderr
    finally:
        registry.terminate()
        try:
            registry.wait(timeout=15)
        except subprocess.TimeoutExpired:
            registry.kill()
            registry.wait(timeout=10)
        server.stop()


def test_rollout_through_a_registry_that_replicas_follow(tmp_path):
    """The same controller over `--registry`: labels and lineage through swerve.v1.Registry
    (SetLabels compare-and-set, SetVersionStatus), replicas following it with their own folders."""
    repo = tmp_path / "registry-repo"
    (repo / MODEL).mkdir(parents=True)
    for m in (iris_model(1.0), iris_model(0.5), iris_model(0.01, shuffle_seed=2)):
        publish(repo, m, tmp_path)
    (repo / MODEL / "config.json").write_text(json.dumps({"serving_mode": "dynamic",
                                                          "version_policy": {"specific": {"versions": [1]}}}))
    token = tmp_path / "token"
    token.write_text("rollout-registry-token-0123456789\n")
    token.chmod(0o600)
    port = oip.free_port()
    registry = subprocess.Popen([swerve_bin(), "registry", "--repository", str(repo), "--port", str(port),
                                 "--admin-token-file", str(token)], stdout=open(tmp_path / "registry.log", "wb"),
                                stderr=subprocess.STDOUT)
    servers = []
    try:
        wait_until(lambda: subprocess.run([swerve_bin(), "label", "--model", MODEL, "--registry", f"127.0.0.1:{port}",
                                           "--token-file", str(token)], capture_output=True, timeout=30).returncode == 0,
                   30, "the registry to answer")
        for i in range(2):
            local = tmp_path / f"local{i}"
            local.mkdir()
            servers.append(oip.Server(local, tmp_path / f"follower{i}.log",
                                      ["--follow", f"127.0.0.1:{port}", "--follow-token-file", str(token)])
                           .start(require_server_ready=False, wait_for=[MODEL]))
        replicas = [s.address for s in servers]
        inputs = write_inputs(tmp_path / "inputs.jsonl")
        via = ["--registry", f"127.0.0.1:{port}", "--token-file", str(token)]
        loads = [Load(a, inputs, tmp_path / f"load{i}.json", 16, rate=RATE / 2) for i, a in enumerate(replicas)]
        time.sleep(1)
        done = subprocess.run([swerve_bin(), "rollout", "--model", MODEL, "--version", "2", "--replicas", ",".join(replicas),
                               *via, *STEPS, *NO_P99], capture_output=True, text=True, timeout=120)
        print(done.stdout, done.stderr)
        for i, load in enumerate(loads):
            assert load.failed(f"registry-followed replica {i}, v1 -> v2") == 0
        assert done.returncode == 0, done.stderr
        l = labels(repo)
        assert (l["stable"], l.get("canary")) == (2, None), l
        assert lineage(repo, 2)["status"] == "serving" and lineage(repo, 1)["status"] == "validated"
        assert all(v == {"2"} for v in answering_versions(replicas, inputs).values())

        # v3 (shuffled labels) through the registry: rolled back, recorded in the registry's lineage.
        loads = [Load(a, inputs, tmp_path / f"load3-{i}.json", 8, rate=RATE / 2) for i, a in enumerate(replicas)]
        time.sleep(1)
        done = subprocess.run([swerve_bin(), "rollout", "--model", MODEL, "--version", "3", "--replicas", ",".join(replicas),
                               *via, *STEPS, *NO_P99, "--steps", "50"],
                              capture_output=True, text=True, timeout=120)
        print(done.stdout, done.stderr)
        for i, load in enumerate(loads):
            assert load.failed(f"registry-followed replica {i}, v3 rolled back") == 0
        assert done.returncode == 3, done.stderr
        assert "prediction shift" in done.stderr, done.stderr
        assert lineage(repo, 3)["status"] == "rolled_back"
        assert labels(repo).get("canary") is None
        # A version rolled back before is refused (the registry's Watch shows its status) unless --force.
        again = subprocess.run([swerve_bin(), "rollout", "--model", MODEL, "--version", "3", "--replicas", ",".join(replicas),
                                *via, "--dry-run"], capture_output=True, text=True, timeout=60)
        assert again.returncode == 0 and "was rolled back before" in again.stdout, again.stdout
    finally:
        for s in servers:
            s.stop()
        registry.terminate()
        try:
            registry.wait(timeout=15)
        except subprocess.TimeoutExpired:
            registry.kill()
            registry.wait(timeout=10)


# --------------------------------------------------------------------------
# the whole loop: examples -> trainer (continuous job) -> rollout -> served predictions


def test_continuous_training_to_served_predictions(tmp_path):
    from test_training import SCHEMA, Trainer, make_rows, tpb

    name = "clicks"
    repo = tmp_path / "repo"
    repo.mkdir()
    trainer = Trainer(repo, tmp_path / "state", tmp_path / "trainer.log").start()
    cluster = None
    try:
        rows = 600
        gates = {"overall": [{"metric": "accuracy", "comparison": "at_least", "threshold": 0.7}],
                 "max_regression": {"accuracy": 0.2}}
        status = trainer.stub.SubmitJob(tpb.SubmitJobRequest(
            model_name=name, model_kind="logistic", schema_json=json.dumps(SCHEMA), continuous=True,
            hyperparameters={"epochs": "10", "lr": "0.05", "patience": "0", "seed": "3", "min_batch_rows": str(rows)},
            gates_json=json.dumps(gates), started_by="interop-rollout", poll_seconds=1), timeout=10)
        assert status.job_id.startswith("cont-"), status

        def push(seed: int) -> None:
            x, y = make_rows(rows, seed=seed)
            examples = [tpb.Example(features={"x1": repr(a), "x2": repr(b), "x3": repr(c)}, label=str(l))
                        for (a, b, c), l in zip(x.tolist(), y.tolist())]
            assert trainer.stub.AppendExamples(tpb.AppendExamplesRequest(model_name=name, examples=examples),
                                               timeout=30).count == rows

        def versions() -> list:
            try:
                return [(v.version, v.status) for v in trainer.stub.ListVersions(tpb.ModelRef(model_name=name), timeout=5).versions]
            except grpc.RpcError:
                return []

        push(1)
        wait_until(lambda: len(versions()) >= 1, 60, "the continuous job to publish v1")
        # From here on the model is label-managed: stable=1.
        done = subprocess.run([swerve_bin(), "label", "--model", name, "stable=1", "--repository", str(repo)],
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        assert "stable v1" in done.stdout

        cluster = Cluster(tmp_path / "cluster")
        cluster.run("up", "-n", "3", "--repository", str(repo), "--drain-seconds", "0", "--", "--poll-interval", "0.3")
        replicas = replica_addresses(cluster)

        push(2)
        wait_until(lambda: len(versions()) >= 2, 60, "the continuous job to publish v2")
        # A label-managed model's new version stays validated: a rollout takes it to stable.
        assert versions()[1] == (2, "validated"), versions()
        assert labels(repo, name)["stable"] == 1

        x, _ = make_rows(3000, seed=9)
        inputs = tmp_path / "inputs.jsonl"
        inputs.write_text("".join(json.dumps({"numeric": [[round(v, 4) for v in r]]}) + "\n" for r in x.tolist()))
        load = Load(cluster.endpoint(), inputs, tmp_path / "cont.json", 18, name=name)
        time.sleep(1)
        # Two models trained on different batches predict a positive rate a few points apart (a TVD
        # of 0.02-0.10 on these windows, seen): the gate here is set above that.
        done = rollout(repo, 2, replicas, "--max-prediction-shift", "0.25", name=name)
        assert load.failed("continuous job's v2 by rollout") == 0
        assert done.returncode == 0, done.stderr
        assert versions()[1] == (2, "serving"), versions()
        # Every replica answers with v2, and what it answers is what onnxruntime computes with v2.
        probe = x[:8].astype(np.float32)
        want = oip.ort_run(repo / name / "2" / "model.onnx", {"numeric": probe})
        for address in replicas:
            with grpc.insecure_channel(address) as ch:
                stub = oip.pb_grpc.GRPCInferenceServiceStub(ch)
                resp = stub.ModelInfer(oip.make_request(name, {"numeric": probe}), timeout=10)
                assert resp.model_version == "2", (address, resp.model_version)
                got = oip.decode_response(resp)
                assert (got["label"] == want["label"]).all()
                np.testing.assert_allclose(got["probabilities"], want["probabilities"], rtol=1e-5, atol=1e-6)
    finally:
        if cluster is not None:
            cluster.down()
        trainer.stop()
