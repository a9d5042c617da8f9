"""Process lifecycle: startup flags, SIGTERM/SIGINT drain and exit code."""
from __future__ import annotations

import signal
import subprocess
import time

import grpc
import numpy as np

import oip
from oip import decode_response, make_request, ort_run, pb, streams_opened


def test_help_lists_flags():
    out = subprocess.run([oip.swerve_bin(), "serve", "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    text = out.stdout + out.stderr
    for flag in ("--repository", "--host", "--grpc-port", "--metrics-port",
                 "--max-receive-message-size", "--max-concurrent-streams", "--log-level"):
        assert flag in text, f"{flag} missing from `swerve serve --help`"


def test_missing_repository_fails(tmp_path):
    out = subprocess.run([oip.swerve_bin(), "serve", "--repository", str(tmp_path / "absent"),
                          "--host", "127.0.0.1", "--grpc-port", str(oip.free_port()),
                          "--metrics-port", str(oip.free_port())],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0, "serve with a missing repository exited 0"


def test_sigterm_idle_exits_zero(start_server):
    srv = start_server(["dense"], name="idle")
    t0 = time.monotonic()
    srv.signal(signal.SIGTERM)
    assert srv.wait_exit(timeout=20) == 0, srv.log_tail()
    assert time.monotonic() - t0 < 10, "idle shutdown took more than 10 s"


def test_sigint_exits_zero(start_server, zoo):
    srv = start_server(["dense"], name="sigint")
    from conftest import good_call
    good_call(srv.stub(), zoo)
    srv.signal(signal.SIGINT)
    assert srv.wait_exit(timeout=20) == 0, srv.log_tail()


def test_log_level_flag(start_server, zoo):
    srv = start_server(["dense"], extra_args=["--log-level", "debug"], name="debuglog")
    from conftest import good_call
    good_call(srv.stub(), zoo)


def test_sigterm_drains_in_flight_calls(start_server, zoo):
    """SIGTERM while 20 calls are in flight: all complete successfully, exit code 0,
    and the server stops accepting new connections."""
    srv = start_server(["heavy", "dense"], name="drain")
    stub = srv.stub()
    rng = np.random.default_rng(21)
    x = rng.standard_normal((64, 1024)).astype(np.float32)
    stub.ModelInfer(make_request("heavy", {"x": x}), timeout=120)  # warm: the model is loaded and has run

    inputs = [rng.standard_normal((64, 1024)).astype(np.float32) for _ in range(20)]
    futures = [stub.ModelInfer.future(make_request("heavy", {"x": xi}), timeout=120) for xi in inputs]
    # The requests (256 KB each) have reached the server, so SIGTERM finds them in flight.
    streams_opened(stub)
    pending = sum(not f.done() for f in futures)
    srv.signal(signal.SIGTERM)
    failures = []
    for i, (xi, f) in enumerate(zip(inputs, futures)):
        try:
            got = decode_response(f.result(timeout=120))
            np.testing.assert_allclose(got["y"], ort_run(zoo.path("heavy"), {"x": xi})["y"],
                                       rtol=1e-4, atol=1e-5)
        except grpc.RpcError as e:
            failures.append(f"call {i}: {e.code().name} {e.details()!r}")
    assert not failures, (f"{len(failures)}/20 in-flight calls failed after SIGTERM "
                          f"({pending} were pending when it was sent): {failures[:3]}")
    code = srv.wait_exit(timeout=60)
    assert code == 0, f"exit code {code}\n{srv.log_tail()}"
    assert pending > 0, (f"test did not exercise draining: all 20 calls finished within "
                         f"{min(0.3, one * 2):.2f}s (one call took {one:.3f}s)")


def test_sigterm_new_calls_refused_after_exit(start_server, zoo):
    srv = start_server(["dense"], name="refuse")
    from conftest import good_call
    good_call(srv.stub(), zoo)
    srv.signal(signal.SIGTERM)
    assert srv.wait_exit(timeout=20) == 0
    ch = grpc.insecure_channel(srv.address)
    try:
        stub = oip.pb_grpc.GRPCInferenceServiceStub(ch)
        try:
            stub.ServerLive(pb.ServerLiveRequest(), timeout=2)
            raise AssertionError("server answered after exiting")
        except grpc.RpcError as e:
            assert e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    finally:
        ch.close()


def test_sigterm_with_open_watch_stream(start_server, zoo):
    """A Health.Watch stream never ends by itself: SIGTERM must still end the
    process (closing the stream) with exit code 0."""
    from oip import health_pb2
    srv = start_server(["dense"], name="watch")
    health = srv.health_stub()
    stream = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=60)
    first = next(stream)
    assert first.status == oip.HealthStatus.SERVING
    srv.signal(signal.SIGTERM)
    try:
        code = srv.wait_exit(timeout=20)
    except subprocess.TimeoutExpired:
        raise AssertionError("server still running 20 s after SIGTERM with an open Watch stream")
    finally:
        stream.cancel()
    assert code == 0, f"exit code {code}\n{srv.log_tail()}"


def test_sigterm_with_idle_and_half_open_connections(start_server, zoo):
    """Idle gRPC connections and raw sockets that never finished the preface
    must not keep the server alive after SIGTERM."""
    import socket
    from conftest import good_call
    srv = start_server(["dense"], name="halfopen")
    good_call(srv.stub(), zoo)  # an idle, connected channel stays open
    socks = []
    for payload in (b"", b"PRI * HTTP/2.0\r\n", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"):
        s = socket.create_connection(("127.0.0.1", srv.grpc_port), timeout=5)
        if payload:
            s.sendall(payload)
        socks.append(s)
    try:
        good_call(srv.stub(), zoo)
        t0 = time.monotonic()
        srv.signal(signal.SIGTERM)
        try:
            code = srv.wait_exit(timeout=30)
        except subprocess.TimeoutExpired:
            raise AssertionError("server still running 30 s after SIGTERM with idle connections open")
        assert code == 0, f"exit code {code}\n{srv.log_tail()}"
        assert time.monotonic() - t0 < 15, f"shutdown took {time.monotonic() - t0:.1f}s"
    finally:
        for s in socks:
            s.close()


def test_sigterm_twice_still_exits_zero(start_server, zoo):
    srv = start_server(["dense"], name="twice")
    srv.signal(signal.SIGTERM)
    srv.signal(signal.SIGTERM)
    assert srv.wait_exit(timeout=20) == 0, srv.log_tail()


def test_metrics_port_closed_after_exit(start_server):
    import urllib.error
    srv = start_server(["dense"], name="metricsexit")
    assert "swerve_models_loaded" in srv.metrics()
    srv.signal(signal.SIGTERM)
    assert srv.wait_exit(timeout=20) == 0
    try:
        srv.metrics()
        raise AssertionError("metrics endpoint answered after exit")
    except (urllib.error.URLError, ConnectionError, OSError):
        pass


def test_sigterm_sends_goaway_and_finishes_open_stream(start_server, zoo):
    """On SIGTERM an open connection receives GOAWAY; a stream already in flight
    still gets its full answer; then the connection closes and the process exits 0."""
    from test_http2 import INFER, LIVE, RawH2, grpc_status, messages
    srv = start_server(["heavy", "dense"], name="goaway")
    c = RawH2(srv.grpc_port)
    try:
        assert grpc_status(c.wait(c.call(LIVE, b""))) == 0
        x = np.random.default_rng(31).standard_normal((64, 1024)).astype(np.float32)
        sids = [c.call(INFER, make_request("heavy", {"x": x}).SerializeToString()) for _ in range(4)]
        # A ServerLive after them on the same connection is answered only once the server has read
        # the four requests before it: they are in flight when SIGTERM comes.
        assert grpc_status(c.wait(c.call(LIVE, b""))) == 0
        srv.signal(signal.SIGTERM)
        for sid in sids:
            st = c.wait(sid, timeout=60)
            assert st["ended"], f"in-flight stream {sid} did not finish: {st} goaway={c.goaway} eof={c.terminated}"
            assert grpc_status(st) == 0, st
            resp = pb.ModelInferResponse.FromString(messages(st)[0])
            got = decode_response(resp)["y"]
            np.testing.assert_allclose(got, ort_run(zoo.path("heavy"), {"x": x})["y"], rtol=1e-4, atol=1e-5)
        deadline = time.monotonic() + 30
        while not c.terminated and time.monotonic() < deadline:
            c._pump()
        assert c.goaway is not None, "no GOAWAY frame before the connection closed"
        assert c.goaway[0] == 0, f"GOAWAY error code {c.goaway[0]} (expected NO_ERROR)"
        assert c.terminated, "connection still open 30 s after its streams finished"
    finally:
        c.close()
    assert srv.wait_exit(timeout=30) == 0, srv.log_tail()
