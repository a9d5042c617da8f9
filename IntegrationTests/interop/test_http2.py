"""Hand-made HTTP/2 gRPC requests (python `h2`), for what grpcio never sends:
odd framing, bad headers, server-side deadlines, resets mid-upload.

Each case asserts the server answers that stream (response + trailers, or
RST_STREAM) within a bounded time, and that other connections keep working.
"""
from __future__ import annotations

import socket
import struct
import time

import numpy as np
import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (ConnectionTerminated, DataReceived, ResponseReceived, StreamEnded,
                       StreamReset, TrailersReceived)

from conftest import good_call
from oip import SERVICE, make_request, pb

GRPC_OK, GRPC_DEADLINE_EXCEEDED, GRPC_UNIMPLEMENTED = 0, 4, 12


def grpc_frame(message: bytes, compressed: bool = False, declared_len: int | None = None) -> bytes:
    n = len(message) if declared_len is None else declared_len
    return struct.pack(">BI", 1 if compressed else 0, n) + message


class RawH2:
    """Minimal HTTP/2 client over a socket."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.conn = H2Connection(config=H2Configuration(client_side=True, header_encoding="utf-8",
                                                        validate_outbound_headers=False,
                                                        normalize_outbound_headers=False,
                                                        validate_inbound_headers=False))
        self.conn.initiate_connection()
        self.flush()
        self.streams: dict[int, dict] = {}
        self.terminated = None   # "eof" / "reset" once the socket is closed
        self.goaway = None       # (error code, last stream id) once GOAWAY arrived
        self._buf = b""

    @property
    def closing(self) -> bool:
        """GOAWAY received or socket closed."""
        return bool(self.terminated or self.goaway)

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def close(self):
        self.sock.close()

    def headers(self, path: str, extra=(), method="POST", content_type="application/grpc",
                te="trailers", end_stream=False, drop=()) -> int:
        sid = self.conn.get_next_available_stream_id()
        hdrs = [(":method", method), (":scheme", "http"), (":path", path),
                (":authority", "127.0.0.1"), ("content-type", content_type), ("te", te), *extra]
        hdrs = [(k, v) for k, v in hdrs if k not in drop and v is not None]
        self.conn.send_headers(sid, hdrs, end_stream=end_stream)
        self.flush()
        self.streams[sid] = {"headers": None, "data": b"", "trailers": None, "reset": None, "ended": False}
        return sid

    def data(self, sid: int, payload: bytes, end_stream=False, chunk: int | None = None,
             timeout: float = 20.0):
        """Sends payload in DATA frames of at most `chunk` bytes, within flow control."""
        deadline = time.monotonic() + timeout
        sent = 0
        while sent < len(payload):
            room = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size,
                       chunk or len(payload))
            if room <= 0:
                if time.monotonic() > deadline or self.terminated:
                    raise TimeoutError(f"flow-control window stayed closed ({sent}/{len(payload)} sent)")
                self._pump()
                continue
            piece = payload[sent:sent + room]
            sent += len(piece)
            self.conn.send_data(sid, piece, end_stream=end_stream and sent == len(payload))
            self.flush()
        if not payload and end_stream:
            self.conn.end_stream(sid)
        elif not payload:
            self.conn.send_data(sid, b"")
        self.flush()

    def reset(self, sid: int, code: int = 8):
        self.conn.reset_stream(sid, error_code=code)
        self.flush()

    def call(self, path: str, message: bytes | None, **kw) -> int:
        sid = self.headers(path, **kw)
        self.data(sid, grpc_frame(message) if message is not None else b"", end_stream=True)
        return sid

    def _events(self, chunk: bytes) -> list:
        """Feeds h2 one frame at a time. h2 treats a GOAWAY as the end of the
        connection; HTTP/2 lets streams up to its last-stream-id finish, so the
        state machine is put back to CLIENT_OPEN to keep reading their frames."""
        from h2.connection import ConnectionState
        self._buf += chunk
        events = []
        while True:
            if len(self._buf) < 9:
                break
            n = 9 + int.from_bytes(self._buf[:3], "big")
            if len(self._buf) < n:
                break
            frame_bytes, self._buf = self._buf[:n], self._buf[n:]
            evs = self.conn.receive_data(frame_bytes)
            if any(isinstance(e, ConnectionTerminated) for e in evs):
                self.conn.state_machine.state = ConnectionState.CLIENT_OPEN
            events.extend(evs)
        return events

    def _pump(self) -> None:
        """Reads what the server sent (up to 0.25 s) and records the events."""
        self.sock.settimeout(0.25)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return
        except ConnectionResetError:
            self.terminated = "reset"
            return
        if not chunk:
            self.terminated = "eof"
            return
        for ev in self._events(chunk):
            s = self.streams.get(getattr(ev, "stream_id", None))
            if isinstance(ev, ResponseReceived):
                s["headers"] = dict(ev.headers)
            elif isinstance(ev, DataReceived):
                s["data"] += ev.data
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, TrailersReceived):
                s["trailers"] = dict(ev.headers)
            elif isinstance(ev, StreamEnded):
                s["ended"] = True
            elif isinstance(ev, StreamReset):
                s["reset"] = ev.error_code
            elif isinstance(ev, ConnectionTerminated):
                self.goaway = (ev.error_code, ev.last_stream_id)
        self.flush()

    def wait(self, sid: int, timeout: float = 10.0) -> dict:
        """Reads until stream `sid` ends or is reset (or the connection is closed)."""
        st = self.streams[sid]
        deadline = time.monotonic() + timeout
        while not (st["ended"] or st["reset"] is not None or self.terminated) and time.monotonic() < deadline:
            self._pump()
        st["timed_out"] = not (st["ended"] or st["reset"] is not None or self.terminated)
        return st


def grpc_status(st: dict) -> int | None:
    """grpc-status from trailers (or from a trailers-only response)."""
    for block in (st.get("trailers"), st.get("headers")):
        if block and "grpc-status" in block:
            return int(block["grpc-status"])
    return None


def messages(st: dict) -> list[bytes]:
    out, data = [], st["data"]
    while len(data) >= 5:
        n = struct.unpack(">I", data[1:5])[0]
        out.append(data[5:5 + n])
        data = data[5 + n:]
    return out


@pytest.fixture
def h2c(server):
    c = RawH2(server.grpc_port)
    yield c
    c.close()


LIVE = f"/{SERVICE}/ServerLive"
INFER = f"/{SERVICE}/ModelInfer"
X = np.random.default_rng(4).standard_normal((2, 16)).astype(np.float32)


def answered(st: dict) -> bool:
    return not st["timed_out"]


def test_raw_client_sanity(h2c):
    st = h2c.wait(h2c.call(LIVE, b""))
    assert answered(st), st
    assert st["headers"][":status"] == "200"
    assert st["headers"]["content-type"].startswith("application/grpc")
    assert grpc_status(st) == GRPC_OK, st
    assert pb.ServerLiveResponse.FromString(messages(st)[0]).live is True


def test_body_in_one_byte_data_frames(h2c, zoo):
    req = make_request("dense", {"x": X}).SerializeToString()
    sid = h2c.headers(INFER)
    h2c.data(sid, grpc_frame(req), end_stream=True, chunk=1)
    st = h2c.wait(sid, timeout=30)
    assert grpc_status(st) == GRPC_OK, st
    from oip import decode_response, ort_run, assert_matches
    resp = pb.ModelInferResponse.FromString(messages(st)[0])
    assert_matches(decode_response(resp), ort_run(zoo.path("dense"), {"x": X}))


def test_header_split_and_empty_data_frames(h2c):
    sid = h2c.headers(LIVE)
    for _ in range(5):
        h2c.data(sid, b"")
    h2c.data(sid, grpc_frame(b"")[:2])
    h2c.data(sid, grpc_frame(b"")[2:], end_stream=True)
    st = h2c.wait(sid)
    assert grpc_status(st) == GRPC_OK, st


def test_several_streams_one_connection(h2c):
    sids = [h2c.call(LIVE, b"") for _ in range(50)]
    for sid in sids:
        assert grpc_status(h2c.wait(sid)) == GRPC_OK


BAD_STREAMS = {
    # name: (function(h2c) -> stream id, allowed grpc-status values or None for "any non-OK")
    "truncated_message": (lambda c: _send(c, INFER, grpc_frame(b"\x0a\x05dense", declared_len=100)), None),
    "compressed_flag_without_encoding": (lambda c: _send(c, LIVE, grpc_frame(b"", compressed=True)), None),
    "unknown_encoding": (lambda c: _send(c, LIVE, grpc_frame(b"\x00", compressed=True),
                                          extra=[("grpc-encoding", "snappy")]), {GRPC_UNIMPLEMENTED}),
    "gzip_encoding": (lambda c: _send(c, LIVE, grpc_frame(b"\x1f\x8b", compressed=True),
                                       extra=[("grpc-encoding", "gzip")]), {GRPC_UNIMPLEMENTED}),
    "json_content_type": (lambda c: _send(c, LIVE, grpc_frame(b""), content_type="application/json"), None),
    "get_method": (lambda c: _send(c, LIVE, grpc_frame(b""), method="GET"), None),
    "trailing_garbage_after_message": (lambda c: _send(c, LIVE, grpc_frame(b"") + b"\x00\x00"), None),
    "two_messages_in_unary": (lambda c: _send(c, LIVE, grpc_frame(b"") + grpc_frame(b"")), None),
    "no_message": (lambda c: _send(c, LIVE, b""), None),
    "message_length_4gb": (lambda c: _send(c, LIVE, struct.pack(">BI", 0, 0xFFFFFFFF) + b"\x00" * 10), None),
}


def _send(c: RawH2, path, body: bytes, **kw) -> int:
    sid = c.headers(path, **kw)
    c.data(sid, body, end_stream=True)
    return sid


@pytest.mark.parametrize("case", list(BAD_STREAMS))
def test_bad_stream_gets_an_answer(server, zoo, h2c, case):
    fn, allowed = BAD_STREAMS[case]
    sid = fn(h2c)
    st = h2c.wait(sid)
    assert answered(st), f"no answer on the stream within 10 s: {st}"
    if st["reset"] is None and not (h2c.goaway and st["headers"] is None) and not h2c.terminated:
        http_status = (st["headers"] or {}).get(":status")
        status = grpc_status(st)
        if allowed is None:
            assert http_status != "200" or (status is not None and status != GRPC_OK), \
                f"bad stream answered as a success: {st}"
        else:
            assert status in allowed, f"grpc-status {status}, expected {allowed}: {st}"
    elif allowed is not None:
        raise AssertionError(f"expected grpc-status {allowed}, stream was reset / connection closed: "
                             f"reset={st['reset']} goaway={h2c.goaway} terminated={h2c.terminated}")
    # the same connection (unless the server closed it) and others still work
    if not h2c.closing:
        assert grpc_status(h2c.wait(h2c.call(LIVE, b""))) == GRPC_OK
    good_call(server.stub(), zoo)


def test_missing_path_header(server, zoo, h2c):
    sid = h2c.headers(LIVE, drop=(":path",))
    h2c.data(sid, grpc_frame(b""), end_stream=True)
    st = h2c.wait(sid)
    assert answered(st), st
    assert st["reset"] is not None or h2c.closing or grpc_status(st) not in (None, GRPC_OK) \
        or (st["headers"] or {}).get(":status") != "200", st
    good_call(server.stub(), zoo)


def test_reset_mid_upload_keeps_connection(server, zoo, h2c):
    big = make_request("wide", {"x": np.zeros((200, 1024), np.float32)}).SerializeToString()
    sid = h2c.headers(INFER)
    h2c.data(sid, grpc_frame(big)[:30000])
    h2c.reset(sid)
    st = h2c.wait(h2c.call(LIVE, b""))
    assert grpc_status(st) == GRPC_OK, st
    assert not h2c.closing
    good_call(server.stub(), zoo)


def test_client_trailers_accepted(h2c):
    sid = h2c.headers(LIVE)
    h2c.data(sid, grpc_frame(b""))
    h2c.conn.send_headers(sid, [("x-trailer", "1")], end_stream=True)
    h2c.flush()
    st = h2c.wait(sid)
    assert answered(st), st
    assert grpc_status(st) == GRPC_OK or st["reset"] is not None, st


def test_large_custom_metadata(server, zoo, h2c):
    sid = h2c.headers(LIVE, extra=[("x-big", "v" * 60000)])
    h2c.data(sid, grpc_frame(b""), end_stream=True)
    st = h2c.wait(sid)
    assert answered(st) or h2c.closing, st
    good_call(server.stub(), zoo)


# ------------------------------------------------------------------ deadlines


def test_server_enforces_expired_grpc_timeout(h2c):
    """grpc-timeout already tiny on arrival: the server answers DEADLINE_EXCEEDED
    (this raw client enforces nothing itself)."""
    x = np.random.default_rng(6).standard_normal((64, 1024)).astype(np.float32)
    req = make_request("heavy", {"x": x}).SerializeToString()
    sid = h2c.call(INFER, req, extra=[("grpc-timeout", "1n")])
    st = h2c.wait(sid, timeout=30)
    assert answered(st), st
    assert grpc_status(st) == GRPC_DEADLINE_EXCEEDED, st


def test_server_enforces_grpc_timeout_during_compute(h2c):
    """8 heavy calls with a 1 ms grpc-timeout: none can finish in time, so every
    answer is DEADLINE_EXCEEDED (not a late OK), and promptly."""
    rng = np.random.default_rng(7)
    reqs = [make_request("heavy", {"x": rng.standard_normal((64, 1024)).astype(np.float32)}).SerializeToString()
            for _ in range(8)]  # distinct: no response cache or coalescing can help
    sids = [h2c.call(INFER, req, extra=[("grpc-timeout", "1m")]) for req in reqs]
    for sid in sids:
        st = h2c.wait(sid, timeout=30)
        assert answered(st), st
        assert grpc_status(st) == GRPC_DEADLINE_EXCEEDED, st


@pytest.mark.parametrize("value", ["abc", "1", "99999999999H", "-5S", "1000000000S"])
def test_odd_grpc_timeout_values(server, zoo, h2c, value):
    st = h2c.wait(h2c.call(LIVE, b"", extra=[("grpc-timeout", value)]))
    assert answered(st), st
    good_call(server.stub(), zoo)
