"""HTTP/2 transport robustness: broken connections, cancellation, stream limits,
the --max-receive-message-size and --max-concurrent-streams flags."""
from __future__ import annotations

import socket
import struct
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest

from conftest import good_call
from oip import assert_matches, expect_code, infer, make_request, ort_run, pb, streams_opened

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
FRAME_SETTINGS, FRAME_GOAWAY = 0x4, 0x7


def frame(ftype: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream) + payload


def read_until_eof(sock: socket.socket, timeout: float = 10.0) -> tuple[bytes, bool]:
    """Reads until the peer closes. Returns (bytes read, closed?)."""
    sock.settimeout(0.5)
    data, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


def parse_frames(data: bytes) -> list[tuple[int, int, int, bytes]]:
    frames, i = [], 0
    while i + 9 <= len(data):
        length = int.from_bytes(data[i:i + 3], "big")
        ftype, flags = data[i + 3], data[i + 4]
        stream = int.from_bytes(data[i + 5:i + 9], "big") & 0x7FFFFFFF
        frames.append((ftype, flags, stream, data[i + 9:i + 9 + length]))
        i += 9 + length
    return frames


def raw_connect(server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.grpc_port), timeout=5)


GARBAGE = {
    "http1_request": b"GET /inference HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "random_bytes": bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)),
    "broken_preface": b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + b"\x00" * 64,
    "truncated_preface_then_junk": PREFACE[:10] + b"\xde\xad\xbe\xef" * 16,
    "bad_settings_length": PREFACE + frame(FRAME_SETTINGS, 0, 0, b"\x00\x03\x00"),  # length 3: FRAME_SIZE_ERROR
    "settings_on_stream": PREFACE + frame(FRAME_SETTINGS, 0, 1),                    # PROTOCOL_ERROR
    "data_on_idle_stream": PREFACE + frame(FRAME_SETTINGS, 0, 0) + frame(0x0, 0, 3, b"hello"),
    "oversized_frame": PREFACE + frame(FRAME_SETTINGS, 0, 0) + struct.pack(">I", 1 << 20)[1:] + b"\x00\x00\x00\x00\x00\x01" + b"\x00" * 1000,
}


@pytest.mark.parametrize("case", list(GARBAGE))
def test_garbage_connection_closed_others_unaffected(server, zoo, case):
    ch = server.channel()
    stub = server.stub(ch)
    good_call(stub, zoo)  # channel connected before the garbage arrives
    sock = raw_connect(server)
    try:
        sock.sendall(GARBAGE[case])
        data, closed = read_until_eof(sock)
    finally:
        sock.close()
    assert closed, f"server kept the connection open 10 s after {case!r} (got {len(data)} bytes)"
    good_call(stub, zoo)                 # old channel still works
    good_call(server.stub(), zoo)        # and new ones too


def test_connect_and_close_immediately(server, zoo, stub):
    for _ in range(20):
        s = raw_connect(server)
        s.close()
    s = raw_connect(server)
    s.sendall(PREFACE)
    s.close()
    good_call(stub, zoo)


def test_server_settings_and_ping(server):
    """A well-formed client preface gets SETTINGS, and a PING gets its ACK."""
    sock = raw_connect(server)
    try:
        sock.sendall(PREFACE + frame(FRAME_SETTINGS, 0, 0) + frame(0x6, 0, 0, b"swerve!!"))
        sock.settimeout(1.0)
        data, deadline = b"", time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                chunk = None
            if chunk == b"":
                break
            data += chunk or b""
            frames = parse_frames(data)
            if any(f[0] == 0x6 and f[1] & 1 for f in frames):
                break
        frames = parse_frames(data)
        assert frames and frames[0][0] == FRAME_SETTINGS and frames[0][1] & 1 == 0, \
            f"first server frame must be SETTINGS: {frames[:3]}"
        pings = [f for f in frames if f[0] == 0x6 and f[1] & 1]
        assert pings and pings[0][3] == b"swerve!!", f"no PING ACK: {[f[:3] for f in frames]}"
    finally:
        sock.close()


def test_cancelled_calls_do_not_disturb_others(server, stub, zoo):
    rng = np.random.default_rng(8)
    heavy_x = rng.standard_normal((64, 1024)).astype(np.float32)
    victims = [stub.ModelInfer.future(make_request("heavy", {"x": heavy_x}), timeout=60) for _ in range(6)]
    inputs = [zoo.cases["dense"].make_inputs(1 + i % 5) + i for i in range(24)]
    others = [stub.ModelInfer.future(make_request("dense", {"x": x}), timeout=60) for x in inputs]
    streams_opened(stub)  # the victims are on the server before they are cancelled
    for f in victims:
        f.cancel()
    for f in victims:
        assert f.cancelled() or f.done()
    from oip import decode_response
    for x, f in zip(inputs, others):
        assert_matches(decode_response(f.result(), raw=True), ort_run(zoo.path("dense"), {"x": x}))
    good_call(stub, zoo)
    # and heavy still works after its cancelled calls
    got = infer(stub, "heavy", {"x": heavy_x[:3]}, timeout=60)
    np.testing.assert_allclose(got["y"], ort_run(zoo.path("heavy"), {"x": heavy_x[:3]})["y"],
                               rtol=1e-4, atol=1e-5)


def test_client_closes_channel_mid_call(server, zoo, stub):
    ch = server.channel()
    s = server.stub(ch)
    x = np.random.default_rng(9).standard_normal((64, 1024)).astype(np.float32)
    futures = [s.ModelInfer.future(make_request("heavy", {"x": x}), timeout=60) for _ in range(4)]
    streams_opened(s)  # the calls are on the server when the channel goes
    ch.close()
    for f in futures:
        try:
            f.result(timeout=30)
        except grpc.RpcError:
            pass
        except grpc.FutureCancelledError:
            pass
    good_call(stub, zoo)


# ------------------------------------------------------------------ flag server

LIMITED_FLAGS = ["--max-concurrent-streams", "4", "--max-receive-message-size", "65536"]


@pytest.fixture(scope="module")
def limited(tmp_path_factory, zoo):
    from conftest import _RUNNING, _start
    srv = _start(tmp_path_factory, zoo, "limited", ["dense", "wide", "heavy"], LIMITED_FLAGS)
    yield srv
    srv.stop()
    _RUNNING.remove(srv)


def test_advertises_max_concurrent_streams(limited):
    sock = raw_connect(limited)
    try:
        sock.sendall(PREFACE + frame(FRAME_SETTINGS, 0, 0))
        sock.settimeout(1.0)
        data, deadline = b"", time.monotonic() + 10
        while time.monotonic() < deadline and not any(f[0] == FRAME_SETTINGS and not f[1] & 1
                                                      for f in parse_frames(data)):
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                break
            data += chunk
        settings = [f for f in parse_frames(data) if f[0] == FRAME_SETTINGS and not f[1] & 1]
        assert settings, "no SETTINGS frame from server"
        payload = settings[0][3]
        values = {int.from_bytes(payload[i:i + 2], "big"): int.from_bytes(payload[i + 2:i + 6], "big")
                  for i in range(0, len(payload), 6)}
        assert values.get(0x3) == 4, f"SETTINGS_MAX_CONCURRENT_STREAMS: {values}"
    finally:
        sock.close()


@pytest.mark.parametrize("warm", [False, True], ids=["fresh_channel", "warm_channel"])
def test_64_concurrent_calls_with_4_streams(limited, zoo, warm):
    """Fresh channel: calls may be sent before the server's SETTINGS arrive, so
    streams over the limit may be refused (REFUSED_STREAM) and transparently
    retried by the client; either way every call must succeed."""
    stub = limited.stub()
    if warm:
        good_call(stub, zoo)
    inputs = [zoo.cases["dense"].make_inputs(1 + i % 3) * (1 + i / 64) for i in range(64)]
    futures = [stub.ModelInfer.future(make_request("dense", {"x": x}), timeout=60) for x in inputs]
    from oip import decode_response
    for x, f in zip(inputs, futures):
        assert_matches(decode_response(f.result(), raw=True), ort_run(zoo.path("dense"), {"x": x}))


def test_64_concurrent_heavy_calls_with_4_streams(limited, zoo):
    """Calls that occupy the streams for a while: the rest wait, none fail."""
    stub = limited.stub()
    rng = np.random.default_rng(12)
    inputs = [rng.standard_normal((1, 1024)).astype(np.float32) for _ in range(64)]
    futures = [stub.ModelInfer.future(make_request("heavy", {"x": x}), timeout=120) for x in inputs]
    from oip import decode_response
    for x, f in zip(inputs, futures):
        got = decode_response(f.result(), raw=True)
        np.testing.assert_allclose(got["y"], ort_run(zoo.path("heavy"), {"x": x})["y"], rtol=1e-4, atol=1e-5)


def test_custom_receive_limit(limited, zoo):
    stub = limited.stub()
    small = np.random.default_rng(1).standard_normal((14, 1024)).astype(np.float32)   # ~57 KB
    got = infer(stub, "wide", {"x": small})
    assert_matches(got, ort_run(zoo.path("wide"), {"x": small}))
    big = np.zeros((20, 1024), np.float32)                                             # ~82 KB
    expect_code(grpc.StatusCode.RESOURCE_EXHAUSTED, stub.ModelInfer,
                make_request("wide", {"x": big}), timeout=20)
    expect_code(grpc.StatusCode.RESOURCE_EXHAUSTED, stub.ModelInfer,
                make_request("wide", {"x": big}, raw=False), timeout=20)
    got = infer(stub, "wide", {"x": small})
    assert_matches(got, ort_run(zoo.path("wide"), {"x": small}))
    good_call(stub, zoo)
