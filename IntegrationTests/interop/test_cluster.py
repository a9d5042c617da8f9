"""Scale-out through the real HAProxy (deploy/local/cluster.sh, deploy/haproxy/haproxy.cfg.in)
under open-loop load from `swerve bench` ($SWERVE_BIN for the replicas and the load alike).

Every gRPC status other than OK counts as a failed request; each test prints its count.
Requests the open loop dropped for backlog (the client falling behind, not the cluster) are
printed beside it.

  scale out   a 4th replica joins under load: 0 failures, it takes a share within seconds,
              also from a client on ONE long-lived HTTP/2 connection. HAProxy balances each
              stream by itself, so the client's connection (to HAProxy) never needs to move;
              the replicas run with --max-connection-age so HAProxy's own backend connections
              are also recycled under load, which must fail nothing either.
  scale in    SIGTERM to one of four (cluster.sh remove): 0 failures.
  kill -9     one replica killed under load: failures bounded by the requests in flight on it
              whose answer had begun (HAProxy replays the rest: retry-on conn-failure
              empty-response, option redispatch), so at most the open loop's in-flight cap;
              counted and printed. Restarted, it rejoins and takes calls again.
  affinity    Zipf(1.1) over 10^6 inputs: response-cache hit ratio of 3 replicas with
              cache-affine routing (x-swerve-route-key, consistent hashing with bounded loads)
              vs round robin, beside one replica with the three's total cache budget.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from oip import metric_sum, parse_metrics

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_SH = ROOT / "deploy" / "local" / "cluster.sh"
BC = ROOT / "examples" / "repository" / "breast_cancer_logreg"
MODEL = "bc_cached"
CACHE_BYTES = 128 * 1024  # per replica: ~250 entries of ~520 bytes
RATE = 150  # requests/s: well inside what 3 debug replicas on 2 shared cores answer
INFLIGHT_CAP = 32  # bench --concurrency: the most requests in flight at once

pytestmark = pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy not installed (make deps)")


def swerve_bin() -> str:
    return os.environ.get("SWERVE_BIN", str(ROOT / ".build" / "debug" / "swerve"))


def make_repository(path: Path, cache_bytes: int) -> Path:
    model = path / MODEL
    shutil.copytree(BC, model)
    config = json.loads((model / "config.json").read_text())
    config["serving_mode"] = "cached"
    config["response_cache"] = {"max_bytes": cache_bytes}
    (model / "config.json").write_text(json.dumps(config))
    return path


class Cluster:
    """deploy/local/cluster.sh on a state directory of its own; every process it started is
    stopped by PID at the end (cluster.sh down, then SIGKILL for anything left)."""

    def __init__(self, state: Path, retry_on: str | None = None):
        self.state = state
        self.env = dict(os.environ, CLUSTER_DIR=str(state), SWERVE_BIN=swerve_bin(), CLUSTER_WAIT="90")
        if retry_on is not None:
            self.env["CLUSTER_RETRY_ON"] = retry_on

    def run(self, *args: str, timeout: float = 150) -> str:
        done = subprocess.run([str(CLUSTER_SH), *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, f"cluster.sh {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def endpoint(self) -> str:
        return self.run("endpoint").strip()

    def replica_pid(self, name: str) -> int:
        return int((self.state / "replicas" / f"{name}.pid").read_text())

    def metrics_port(self, name: str) -> int:
        return int((self.state / "replicas" / f"{name}.metrics").read_text())

    def grpc_port(self, name: str) -> int:
        return int((self.state / "replicas" / f"{name}.grpc").read_text())

    def replica_names(self) -> list[str]:
        return sorted(p.stem for p in (self.state / "replicas").glob("*.grpc"))

    def haproxy(self, command: str) -> str:
        import socket
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(str(self.state / "haproxy.sock"))
            s.sendall(command.encode() + b"\n")
            out = b""
            while chunk := s.recv(65536):
                out += chunk
        return out.decode()

    def calls(self, backend: str) -> dict[str, int]:
        """Calls HAProxy sent to each replica of `backend` so far (stot)."""
        counts = {}
        for line in self.haproxy("show stat").splitlines():
            f = line.split(",")
            if len(f) > 18 and f[0] == backend and f[1] not in ("FRONTEND", "BACKEND"):
                counts[f[1]] = int(f[7])
        return counts

    def retries(self, backend: str) -> tuple[int, int]:
        """HAProxy's (retries, redispatches) of `backend` so far (wretr, wredis)."""
        for line in self.haproxy("show stat").splitlines():
            f = line.split(",")
            if len(f) > 18 and f[0] == backend and f[1] == "BACKEND":
                return int(f[15] or 0), int(f[16] or 0)
        return 0, 0

    def status(self, backend: str, name: str) -> str:
        for line in self.haproxy("show stat").splitlines():
            f = line.split(",")
            if len(f) > 18 and f[0] == backend and f[1] == name:
                return f[17]
        return "absent"

    def down(self) -> None:
        pids = []
        for f in list((self.state / "replicas").glob("*.pid")) + [self.state / "haproxy.pid"]:
            if f.exists():
                pids += [int(p) for p in f.read_text().split()]
        try:
            self.run("down", timeout=90)
        finally:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


@pytest.fixture
def cluster_factory(tmp_path):
    made: list[Cluster] = []

    def make(n: int, repository: Path, *serve_args: str, drain: float = 2, retry_on: str | None = None) -> Cluster:
        c = Cluster(tmp_path / f"cluster{len(made)}", retry_on)
        made.append(c)
        c.run("up", "-n", str(n), "--repository", str(repository), "--drain-seconds", str(drain), "--", *serve_args)
        return c

    yield make
    for c in made:
        c.down()


class Bench:
    """`swerve bench` in open loop in the background; .result() waits (bounded) for its JSON."""

    def __init__(self, endpoint: str, out: Path, duration: float, *extra: str, rate: float = RATE, model: str = MODEL,
                 concurrency: int = INFLIGHT_CAP, connections: int = 1):
        self.out = out
        self.duration = duration
        self.log = open(out.with_suffix(".log"), "w")
        self.proc = subprocess.Popen(
            [swerve_bin(), "bench", "--server", endpoint, "--model", model, "--rate", str(rate),
             "--concurrency", str(concurrency), "--connections", str(connections), "--duration", str(duration),
             "--warmup", "0", "--timeout", "20", "--quiet", "--json", str(out), *extra],
            stdout=self.log, stderr=subprocess.STDOUT)

    def result(self) -> dict:
        try:
            self.proc.wait(timeout=self.duration + 60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=10)
            self.log.close()
        text = self.out.with_suffix(".log").read_text()
        assert self.proc.returncode == 0, f"swerve bench exited {self.proc.returncode}:\n{text[-2000:]}"
        return json.loads(self.out.read_text())


def failures(report: dict, what: str) -> int:
    failed = sum(report["errors_by_code"].values())
    print(f"\n{what}: {report['requests']} requests, failed {failed} {report['errors_by_code'] or ''}"
          f"{' ' + str(report['error_messages']) if failed else ''}, dropped by the client for backlog {report['dropped']}")
    assert failed == report["errors"]
    return failed


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.1)


def test_scale_out_in_and_kill(cluster_factory, tmp_path):
    repo = make_repository(tmp_path / "repo", CACHE_BYTES)
    # --max-connection-age 3: the replicas GOAWAY HAProxy's backend connections every ~3 s.
    c = cluster_factory(3, repo, "--max-connection-age", "3")
    endpoint = c.endpoint()

    # Scale out: add r4 after 3 s of a 14 s run on one client connection.
    bench = Bench(endpoint, tmp_path / "out.json", 14)
    time.sleep(3)
    c.run("add")
    added = time.monotonic()
    wait_until(lambda: c.calls("swerve_rr").get("r4", 0) >= 20, 10, "r4 to take 20 calls")
    print(f"\nscale out: r4 took its 20th call {time.monotonic() - added:.1f} s after joining")
    report = bench.result()
    share = c.calls("swerve_rr")
    print(f"calls per replica: {share}")
    assert failures(report, "scale out (3 -> 4 replicas, one client connection)") == 0
    assert report["ok"] > 0

    # Scale in: SIGTERM r1 (cluster.sh remove: drains, leaves rotation, exits, deleted).
    bench = Bench(endpoint, tmp_path / "in.json", 12)
    time.sleep(3)
    pid = c.replica_pid("r1")
    c.run("remove", "r1")
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    report = bench.result()
    assert failures(report, "scale in (SIGTERM one of 4)") == 0
    assert "r1" not in c.calls("swerve_rr")

    # kill -9 of r2 under load; then it is restarted and must rejoin.
    bench = Bench(endpoint, tmp_path / "kill.json", 12)
    time.sleep(3)
    c.run("kill", "r2")
    wait_until(lambda: c.status("swerve_rr", "r2").startswith("DOWN"), 10, "HAProxy to mark r2 DOWN")
    report = bench.result()
    failed = failures(report, f"kill -9 (one of 3; bound: in-flight cap {INFLIGHT_CAP})")
    retried, redispatched = c.retries("swerve_rr")
    print(f"HAProxy replayed {retried} requests on another replica ({redispatched} redispatches) in this test")
    assert failed <= INFLIGHT_CAP
    before = c.calls("swerve_rr").get("r2", 0)
    c.run("restart", "r2")
    bench = Bench(endpoint, tmp_path / "rejoin.json", 4)
    report = bench.result()
    assert failures(report, "after r2 restarted") == 0
    rejoined = c.calls("swerve_rr").get("r2", 0) - before
    print(f"r2 took {rejoined} calls after its restart")
    assert rejoined > 0


def test_scale_in_without_haproxy_retries(cluster_factory, tmp_path):
    """HAProxy's retries would hide a replica that closed connections while still in rotation
    (a request refused after a GOAWAY is replayed elsewhere). With `retry-on none` only the
    replica's own drain order keeps every request OK: not ready first, serving on through the
    drain delay while the health checks take it out, GOAWAY only then. (By hand, 2026-12-04: the
    same run with --drain-seconds 0 failed 1 of 1,500 with INTERNAL, HAProxy cutting a stream
    the GOAWAY caught; another helper's longer run failed 23. Rare at this rate, but not never:
    the check is not vacuous.)"""
    c = cluster_factory(3, make_repository(tmp_path / "repo", CACHE_BYTES), retry_on="none")
    assert "retry-on none" in (c.state / "haproxy.cfg").read_text()
    bench = Bench(c.endpoint(), tmp_path / "in.json", 10)
    time.sleep(3)
    c.run("remove", "r1")
    report = bench.result()
    assert failures(report, "scale in without HAProxy retries (SIGTERM one of 3)") == 0
    assert report["ok"] > 0


def hit_ratio(ports: list[int]) -> tuple[float, int, int]:
    hits = misses = 0
    for port in ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            samples = parse_metrics(r.read().decode())
        hits += metric_sum(samples, "swerve_cache_hits_total")
        misses += metric_sum(samples, "swerve_cache_misses_total")
    return (hits / (hits + misses) if hits + misses else 0.0), int(hits), int(misses)


def test_cache_affinity(cluster_factory, tmp_path):
    requests = 3000
    duration = requests / 200 + 2
    zipf = ("--inputs", "zipf:1.1", "--distinct", "1000000", "--requests", str(requests))

    def run(endpoint: str, ports: list[int], seed: int, *extra: str, label: str) -> float:
        _, h0, m0 = hit_ratio(ports)
        report = Bench(endpoint, tmp_path / f"{label}.json", duration, *zipf, "--seed", str(seed), *extra,
                       rate=200).result()
        assert failures(report, label) == 0
        _, h1, m1 = hit_ratio(ports)
        ratio = (h1 - h0) / max(1, (h1 - h0) + (m1 - m0))
        print(f"{label}: hit ratio {ratio:.3f} ({h1 - h0} hits, {m1 - m0} misses)")
        return ratio

    c = cluster_factory(3, make_repository(tmp_path / "repo3", CACHE_BYTES), drain=0)
    ports = [c.metrics_port(n) for n in c.replica_names()]
    # Different seeds: different inputs, so the second run finds nothing of the first's.
    rr = run(c.endpoint(), ports, 1, label="3 replicas, round robin")
    affine = run(c.endpoint(), ports, 2, "--route-key", label="3 replicas, affine")
    spread = c.calls("swerve_affine")
    print(f"affine calls per replica: {spread}")
    c.down()

    one = cluster_factory(1, make_repository(tmp_path / "repo1", 3 * CACHE_BYTES), drain=0)
    direct = f"127.0.0.1:{one.grpc_port('r1')}"
    single = run(direct, [one.metrics_port("r1")], 3, label="1 replica, 3x cache, direct")
    print(f"\naffinity (Zipf(1.1) over 10^6 inputs, {requests} requests): round robin {rr:.3f}, "
          f"affine {affine:.3f}, single replica with the same total budget {single:.3f}")
    # Round robin gives each replica every key: its hit ratio is one small cache's. Affine
    # splits the keys, so the three caches act as one of three times the size.
    assert affine > rr
    assert affine > single - 0.1
    # Bounded loads: no replica got more than 1.5x the average (+ slack for the probe).
    assert max(spread.values()) <= 1.5 * requests / 3 + 10
