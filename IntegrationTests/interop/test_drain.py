"""Leaving a load balancer's rotation without failing a request (issue 10, "The replica"):

- SIGTERM: readiness turns false at once (HTTP /v2/health/ready 503, gRPC health NOT_SERVING,
  ServerReady false) while every request, on old and new connections, is still answered for
  --drain-seconds; then GOAWAY, in-flight calls finish, exit 0.
- --max-connection-age: a client holding one connection is moved to new connections without a
  failed call; --max-connection-age-grace cancels calls that outlive it.
"""
from __future__ import annotations

import signal
import threading
import time

import grpc
import numpy as np

import oip
from oip import health_pb2, make_request, pb


def _infer_ok(stub, x) -> None:
    stub.ModelInfer(make_request("dense", {"x": x}), timeout=10)


class Load:
    """Closed-loop grpcio load: `workers` threads on channels of their own, and one that opens a
    new channel for every call (a client that keeps arriving during the drain). Bounded by
    `stop()` and by `limit` calls per worker."""

    def __init__(self, srv: oip.Server, workers: int = 3, limit: int = 20000):
        self.srv = srv
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.results: list[tuple[float, str]] = []   # (monotonic time, status name)
        x = np.random.default_rng(5).standard_normal((2, 16)).astype(np.float32)
        self.threads = [threading.Thread(target=self._loop, args=(x, limit, False), daemon=True)
                        for _ in range(workers)]
        self.threads.append(threading.Thread(target=self._loop, args=(x, limit // 10, True), daemon=True))

    def _record(self, code: str) -> None:
        with self.lock:
            self.results.append((time.monotonic(), code))

    def _loop(self, x, limit: int, fresh: bool) -> None:
        channel = None if fresh else grpc.insecure_channel(self.srv.address)
        try:
            for _ in range(limit):
                if self.stop_flag.is_set():
                    return
                ch = grpc.insecure_channel(self.srv.address) if fresh else channel
                try:
                    _infer_ok(oip.pb_grpc.GRPCInferenceServiceStub(ch), x)
                    self._record("OK")
                except grpc.RpcError as e:
                    self._record(e.code().name)
                finally:
                    if fresh:
                        ch.close()
        finally:
            if channel is not None:
                channel.close()

    def start(self) -> "Load":
        for t in self.threads:
            t.start()
        return self

    def stop(self) -> None:
        self.stop_flag.set()
        for t in self.threads:
            t.join(timeout=30)
        assert not any(t.is_alive() for t in self.threads), "a load thread did not stop"

    def failures(self) -> list[tuple[float, str]]:
        with self.lock:
            return [r for r in self.results if r[1] != "OK"]

    def ok_after(self, t: float) -> int:
        with self.lock:
            return sum(1 for when, code in self.results if code == "OK" and when >= t)


def test_sigterm_turns_not_ready_at_once_and_answers_everything_through_the_drain(start_server):
    drain = 3.0
    srv = start_server(["dense"], extra_args=["--drain-seconds", str(drain)], name="drain-order")
    assert srv.http_status("/v2/health/ready") == 200
    assert srv.http_status("/v2/health/live") == 200
    load = Load(srv).start()
    try:
        oip.wait_until(lambda: load.ok_after(0) >= 50, 30, "the load to get going")
        signalled = time.monotonic()
        srv.signal(signal.SIGTERM)
        oip.wait_until(lambda: srv.http_status("/v2/health/ready") == 503, 1.0,
                       "/v2/health/ready to turn 503 within 1 s of SIGTERM")
        not_ready_after = time.monotonic() - signalled
        ch = grpc.insecure_channel(srv.address)
        try:
            health = oip.health_pb2_grpc.HealthStub(ch)
            assert health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status == oip.HealthStatus.NOT_SERVING
            assert oip.pb_grpc.GRPCInferenceServiceStub(ch).ServerReady(pb.ServerReadyRequest(), timeout=5).ready is False
        finally:
            ch.close()
        assert srv.http_status("/v2/health/live") == 200, "live must stay 200 while draining"
        # Keep loading until shortly before the drain delay ends (a balancer has taken the
        # replica out by then); nothing may fail meanwhile.
        time.sleep(max(0.0, signalled + drain - 0.4 - time.monotonic()))
    finally:
        load.stop()
    failures = load.failures()
    served_while_draining = load.ok_after(signalled)
    print(f"drain: not ready {not_ready_after * 1000:.0f} ms after SIGTERM; {served_while_draining} calls "
          f"answered while draining; failed requests: {len(failures)}")
    assert not failures, f"{len(failures)} calls failed during the drain delay: {failures[:5]}"
    assert served_while_draining > 20, f"only {served_while_draining} calls answered while draining"
    code = srv.wait_exit(timeout=drain + 30)
    took = time.monotonic() - signalled
    assert code == 0, f"exit code {code}\n{srv.log_tail()}"
    assert took >= drain - 0.1, f"exited {took:.2f} s after SIGTERM, before the {drain} s drain delay ended"
    log = srv.log_path.read_text()
    assert log.index("draining: not ready") < log.index("drain delay over: GOAWAY"), log[-2000:]


def test_a_second_signal_ends_the_drain_delay(start_server):
    srv = start_server(["dense"], extra_args=["--drain-seconds", "120"], name="drain-second")
    srv.signal(signal.SIGTERM)
    oip.wait_until(lambda: srv.http_status("/v2/health/ready") == 503, 2, "readiness to turn 503")
    t0 = time.monotonic()
    srv.signal(signal.SIGINT)
    assert srv.wait_exit(timeout=30) == 0, srv.log_tail()
    assert time.monotonic() - t0 < 15
    assert "second signal during the drain delay" in srv.log_path.read_text()


def test_connection_age_moves_a_long_lived_client_without_a_failed_call(start_server):
    srv = start_server(["dense"], extra_args=["--max-connection-age", "1"], name="age")
    ch = srv.channel()
    stub = srv.stub(ch)
    x = np.random.default_rng(6).standard_normal((2, 16)).astype(np.float32)
    calls, failures = 0, []
    end = time.monotonic() + 4.5
    while time.monotonic() < end and calls < 50000:
        try:
            _infer_ok(stub, x)
        except grpc.RpcError as e:
            failures.append(f"{e.code().name}: {e.details()}")
        calls += 1
    aged = oip.metric_sum(oip.parse_metrics(srv.metrics()), "swerve_grpc_connections_aged_total")
    print(f"connection age 1 s: {calls} calls on one channel over 4.5 s, {aged:.0f} connections aged out, "
          f"failed requests: {len(failures)}")
    assert not failures, f"{len(failures)} of {calls} calls failed: {failures[:5]}"
    assert aged >= 2, f"only {aged} connections were sent GOAWAY for their age in 4.5 s"


def _watch_until_end(srv: oip.Server, limit: float) -> tuple[float, str]:
    """Opens a Health Watch (a call that never ends by itself) on a new channel; returns how long
    it lasted (or `limit`) and how it ended."""
    ch = grpc.insecure_channel(srv.address)
    t0 = time.monotonic()
    stream = oip.health_pb2_grpc.HealthStub(ch).Watch(health_pb2.HealthCheckRequest(service=""), timeout=limit)
    try:
        for _ in stream:
            pass
        return time.monotonic() - t0, "ended OK"
    except grpc.RpcError as e:
        return time.monotonic() - t0, e.code().name
    finally:
        ch.close()


def test_connection_age_grace_bounds_calls_that_outlive_the_age(start_server):
    srv = start_server(["dense"], extra_args=["--max-connection-age", "1", "--max-connection-age-grace", "1"],
                       name="age-grace")
    lasted, how = _watch_until_end(srv, limit=15)
    # Age 0.9–1.1 s, the final GOAWAY ~1 s later, grace 1 s after the first GOAWAY, ticks of 0.2 s.
    print(f"age 1 s + grace 1 s: a Watch call lasted {lasted:.2f} s ({how})")
    assert how != "DEADLINE_EXCEEDED", f"the call outlived age + grace: it ran {lasted:.1f} s until its deadline"
    assert 1.5 <= lasted <= 6, f"the call ended after {lasted:.2f} s ({how})"
    # Without a grace, the same call runs on past the age (here until its own deadline).
    srv2 = start_server(["dense"], extra_args=["--max-connection-age", "1"], name="age-nograce")
    lasted2, how2 = _watch_until_end(srv2, limit=5)
    assert how2 == "DEADLINE_EXCEEDED" and lasted2 >= 4.5, (lasted2, how2)


def test_another_signal_while_calls_finish_stops_waiting_for_them(start_server):
    """A call that will not finish (its request body never completes) holds the shutdown for up
    to --shutdown-timeout; one more SIGTERM closes the connections at once and the process still
    exits 0."""
    from test_http2 import INFER, LIVE, RawH2, grpc_status
    srv = start_server(["dense"], extra_args=["--shutdown-timeout", "120", "--request-body-timeout", "120"],
                       name="drain-impatient")
    c = RawH2(srv.grpc_port)
    try:
        sid = c.headers(INFER)
        c.data(sid, b"\x00\x00\x00\x01\x00")  # a 256-byte message announced, nothing of it sent
        c.flush()
        # Frames are read in order: once a later call on the same connection is answered, the
        # server has the unfinished stream.
        assert grpc_status(c.wait(c.call(LIVE, b""))) == 0
        srv.signal(signal.SIGTERM)
        oip.wait_until(lambda: "drain delay over" in srv.log_path.read_text(), 10, "the GOAWAY")
        time.sleep(0.5)
        assert srv.proc.poll() is None, "the server did not wait for the unfinished call"
        t0 = time.monotonic()
        srv.signal(signal.SIGTERM)
        assert srv.wait_exit(timeout=15) == 0, srv.log_tail()
        assert time.monotonic() - t0 < 10
        assert "another signal while calls in flight finish" in srv.log_path.read_text()
    finally:
        c.close()


def test_a_broken_new_version_does_not_take_the_replica_out_of_rotation(start_server, zoo):
    """Every replica reads the same repository: if a broken newer version made each of them not
    ready, a balancer would have no replica left. While the model still serves a ready version
    the replica stays ready (HTTP 200) and answers; the broken version shows as not ready."""
    from conftest import good_call
    srv = start_server(["dense"], extra_args=["--poll-interval", "0.3"], name="broken-v2")
    (srv.repository / "dense" / "2").mkdir()
    (srv.repository / "dense" / "2" / "model.onnx").write_bytes(b"this is not an ONNX file")
    stub = srv.stub()

    def v2_failed():
        index = stub.RepositoryIndex(pb.RepositoryIndexRequest(), timeout=5).models
        return any(m.name == "dense" and m.version == "2" and m.state == "UNAVAILABLE" for m in index)
    oip.wait_until(v2_failed, 30, lambda: f"version 2 to fail to load:\n{srv.log_tail()}")
    assert stub.ModelReady(pb.ModelReadyRequest(name="dense", version="2"), timeout=5).ready is False
    assert stub.ModelReady(pb.ModelReadyRequest(name="dense", version="1"), timeout=5).ready is True
    assert srv.http_status("/v2/health/ready") == 200
    assert stub.ServerReady(pb.ServerReadyRequest(), timeout=5).ready is True
    good_call(stub, zoo)
