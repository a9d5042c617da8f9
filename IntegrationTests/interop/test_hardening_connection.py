"""Attacks on one HTTP/2 connection (issue 9), each against the real `swerve serve` binary.

Every attack is bounded in bytes and time, runs against a server started with small limits
so it is quick, and asserts two things while it runs:
  * the server's resident memory (VmRSS from /proc/<pid>/status, sampled every 20 ms) grows
    by less than a stated bound, derived from the limits the server was given;
  * a well-behaved grpcio client on another connection keeps getting correct answers
    (checked against onnxruntime) within a generous latency bound.
Speed is never asserted.

The attack functions return what they measured, so the same attacks can be pointed at an
older binary to get "before" figures (see `measure_before` at the bottom).
"""
from __future__ import annotations

import errno
import select
import socket
import ssl
import struct
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import grpc
import hpack
import numpy as np
import pytest

from conftest import good_call
from oip import SERVICE, make_request, pb, wait_until

MiB = 1 << 20
INFER = f"/{SERVICE}/ModelInfer"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# HTTP/2 frame types, flags, settings and error codes used here.
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0x0, 0x1, 0x3, 0x4, 0x6, 0x7, 0x8
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1
SETTINGS_INITIAL_WINDOW_SIZE = 0x4
NO_ERROR, ENHANCE_YOUR_CALM = 0x0, 0xB
GRPC_DEADLINE_EXCEEDED, GRPC_RESOURCE_EXHAUSTED = 4, 8

# The limits the attacked servers run with (flags of `swerve serve`). Small, so that each
# attack reaches them in a second or two; the RSS bounds below are derived from them.
LIMIT_FLAGS = {
    "--max-connection-outbound-bytes": str(4 * MiB),
    "--max-connection-request-bytes": str(8 * MiB),
    "--max-server-request-bytes": str(16 * MiB),
    "--handshake-timeout": "1",
    "--idle-timeout": "60",
    "--request-body-timeout": "1.5",
    "--response-window-timeout": "2",
    "--keepalive-interval": "2",
    "--keepalive-timeout": "1",
}
MODELS = ["dense", "echo", "dense_workers", "dense_inline"]
# What the server may add besides the limits' worth while attacked: NIO's write buffer (1 MiB
# high water mark plus one 1 MiB drain), nghttp2's queues, allocator slack and fragmentation of
# a debug build, the good client's traffic. Each attack states its bound as limits + this.
SLACK = 32 * MiB
GOOD_LATENCY_BOUND = 5.0  # seconds, for one small ModelInfer on an otherwise idle 2-core box


def limit_args(**overrides) -> list[str]:
    flags = dict(LIMIT_FLAGS)
    for key, value in overrides.items():
        flags["--" + key.replace("_", "-")] = str(value)
    return [x for kv in flags.items() for x in kv]


# --------------------------------------------------------------------------------------------
# measuring


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


class RssSampler(threading.Thread):
    """Samples a process's RSS every 20 ms; `growth` is the peak above the first sample."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid = pid
        self.baseline = rss_bytes(pid)
        self.peak = self.baseline
        self._halt = threading.Event()

    def run(self):
        while not self._halt.wait(0.02):
            try:
                self.peak = max(self.peak, rss_bytes(self.pid))
            except (OSError, AssertionError):
                return

    def stop(self):
        self._halt.set()
        self.join(timeout=5)
        try:
            self.peak = max(self.peak, rss_bytes(self.pid))
        except (OSError, AssertionError):
            pass

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


class GoodClient(threading.Thread):
    """A grpcio client on its own connection, asking the dense model every 50 ms and checking
    each answer against onnxruntime."""

    def __init__(self, server, zoo):
        super().__init__(daemon=True)
        self.stub = server.stub(server.channel())
        self.zoo = zoo
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self._halt = threading.Event()
        good_call(self.stub, zoo)  # connected and warm before the attack starts

    def run(self):
        while not self._halt.is_set() and len(self.latencies) + len(self.failures) < 100_000:
            start = time.monotonic()
            try:
                good_call(self.stub, self.zoo)
                self.latencies.append(time.monotonic() - start)
            except Exception as e:  # noqa: BLE001 - any failure is what we report
                self.failures.append(f"{type(e).__name__}: {e}"[:300])
            self._halt.wait(0.05)

    def stop(self):
        self._halt.set()
        self.join(timeout=30)


@dataclass
class Outcome:
    """What an attack measured."""
    rss_growth: int = 0
    sent: int = 0
    seconds: float = 0.0
    closed_by_server: bool = False
    closed_after: float | None = None
    goaway: int | None = None
    statuses: dict = field(default_factory=dict)
    messages: list = field(default_factory=list)
    resets: dict = field(default_factory=dict)  # RST_STREAM error code -> streams
    good_calls: int = 0
    good_failures: list = field(default_factory=list)
    good_max_latency: float = 0.0

    def summary(self) -> str:
        return (f"rss +{self.rss_growth / MiB:.1f} MiB, sent {self.sent / MiB:.1f} MiB in {self.seconds:.1f} s, "
                f"closed_by_server={self.closed_by_server} after {self.closed_after}, goaway={self.goaway}, "
                f"statuses={self.statuses}, good calls {self.good_calls} (max {self.good_max_latency:.2f} s, "
                f"{len(self.good_failures)} failed)")


@contextmanager
def under_attack(server, zoo, outcome: Outcome):
    """Samples RSS and runs a good client while the body runs; fills `outcome`."""
    good = GoodClient(server, zoo)
    sampler = RssSampler(server.proc.pid)
    sampler.start()
    good.start()
    start = time.monotonic()
    try:
        yield
    finally:
        outcome.seconds = time.monotonic() - start
        # At least three good answers since the attack began (a short attack ends before the
        # good client's third call): the server still serves once the attack is over, too.
        wait_until(lambda: len(good.latencies) + len(good.failures) >= 3 or not good.is_alive(), 30,
                   "three calls of the good client")
        good.stop()
        sampler.stop()
        outcome.rss_growth = sampler.growth
        outcome.good_calls = len(good.latencies)
        outcome.good_failures = good.failures
        outcome.good_max_latency = max(good.latencies, default=0.0)


def assert_bounded(outcome: Outcome, rss_bound: int):
    print(f"bound {rss_bound / MiB:.0f} MiB: {outcome.summary()}")  # shown with pytest -rA
    assert outcome.rss_growth < rss_bound, (
        f"server RSS grew by {outcome.rss_growth / MiB:.1f} MiB, bound {rss_bound / MiB:.0f} MiB: {outcome.summary()}")
    assert not outcome.good_failures, f"the good client failed: {outcome.good_failures[:3]}"
    assert outcome.good_calls >= 3, f"the good client got only {outcome.good_calls} answers: {outcome.summary()}"
    assert outcome.good_max_latency < GOOD_LATENCY_BOUND, (
        f"a good call took {outcome.good_max_latency:.2f} s (bound {GOOD_LATENCY_BOUND} s): {outcome.summary()}")


# --------------------------------------------------------------------------------------------
# a hand-made HTTP/2 client: what no well-behaved client does


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def settings(**values) -> bytes:
    codes = {"initial_window_size": SETTINGS_INITIAL_WINDOW_SIZE}
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", codes[k], v) for k, v in values.items()))


def grpc_message(body: bytes, declared: int | None = None) -> bytes:
    return struct.pack(">BI", 0, len(body) if declared is None else declared) + body


class RawConnection:
    """A socket speaking HTTP/2 by hand: frames out, frames in (parsed, never acted on
    unless asked: no automatic SETTINGS ACK or WINDOW_UPDATE)."""

    def __init__(self, port: int, window: int | None = None, handshake=True):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.next_stream = 1
        self.buf = b""
        self.eof = False
        self.goaway: int | None = None
        self.streams: dict[int, dict] = {}
        self.send_window = 65535            # the server's connection window for our DATA
        self.stream_windows: dict[int, int] = {}
        self.initial_stream_window = 65535  # from the server's SETTINGS
        self.data_sent = 0                  # DATA payload bytes sent
        self.ping_acks = 0
        if handshake:
            extra = settings(initial_window_size=window) if window is not None else settings()
            self.send(PREFACE + extra)

    def close(self):
        self.sock.close()

    def send(self, data: bytes, timeout: float = 5.0) -> bool:
        """Sends all of `data` within `timeout`; False when the server stopped reading (the
        socket stayed full) or closed the connection."""
        self.sock.setblocking(False)
        deadline = time.monotonic() + timeout
        view = memoryview(data)
        try:
            while view:
                try:
                    n = self.sock.send(view)
                    view = view[n:]
                except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    select.select([], [self.sock], [], min(left, 0.05))
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.eof = True
            return False
        finally:
            self.sock.settimeout(5)
        return True

    def headers(self, path=INFER, end_stream=False) -> int:
        sid = self.next_stream
        self.next_stream += 2
        block = self.encoder.encode([(":method", "POST"), (":scheme", "http"), (":path", path),
                                     (":authority", "127.0.0.1"), ("content-type", "application/grpc"),
                                     ("te", "trailers")])
        self.streams[sid] = {"headers": None, "trailers": None, "reset": None, "data": 0}
        self.stream_windows[sid] = self.initial_stream_window
        self.send(frame(HEADERS, END_HEADERS | (END_STREAM if end_stream else 0), sid, block))
        return sid

    def data(self, sid: int, payload: bytes, end_stream=False, timeout=10.0) -> bool:
        """Sends payload within the server's flow-control windows (reading WINDOW_UPDATEs as
        needed); False if the stream was answered/reset meanwhile or time ran out."""
        deadline = time.monotonic() + timeout
        sent = 0
        while sent < len(payload) or (end_stream and not payload and sent == 0):
            st = self.streams[sid]
            if st["reset"] is not None or st["trailers"] is not None or self.eof or self.goaway is not None:
                return False
            room = min(16384, self.send_window, self.stream_windows[sid], len(payload) - sent)
            if room <= 0 and payload:
                if time.monotonic() > deadline:
                    return False
                self.pump(0.05)
                continue
            piece = payload[sent:sent + room]
            last = end_stream and sent + len(piece) == len(payload)
            if not self.send(frame(DATA, END_STREAM if last else 0, sid, piece)):
                return False
            sent += len(piece)
            self.data_sent += len(piece)
            self.send_window -= len(piece)
            self.stream_windows[sid] -= len(piece)
            if not payload:
                break
        return True

    def pump(self, timeout: float) -> None:
        """Reads and parses what arrives within `timeout` (also over TLS: a TLS socket may hold
        decrypted bytes select cannot see, and may need more records before it has any)."""
        pending = getattr(self.sock, "pending", None)
        if not (pending and pending()):
            ready, _, _ = select.select([self.sock], [], [], timeout)
            if not ready:
                return
        try:
            chunk = self.sock.recv(1 << 20)
        except ssl.SSLWantReadError:
            return
        except (ConnectionResetError, BlockingIOError, socket.timeout, ssl.SSLError):
            chunk = b""
        if not chunk:
            self.eof = True
            return
        self.buf += chunk
        while len(self.buf) >= 9:
            length = int.from_bytes(self.buf[:3], "big")
            if len(self.buf) < 9 + length:
                break
            kind, flags = self.buf[3], self.buf[4]
            sid = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
            payload = self.buf[9:9 + length]
            self.buf = self.buf[9 + length:]
            self._frame(kind, flags, sid, payload)

    def _frame(self, kind, flags, sid, payload):
        st = self.streams.get(sid)
        if kind == SETTINGS and not flags & ACK:
            for i in range(0, len(payload), 6):
                key, value = struct.unpack(">HI", payload[i:i + 6])
                if key == SETTINGS_INITIAL_WINDOW_SIZE:
                    delta = value - self.initial_stream_window
                    self.initial_stream_window = value
                    for s in self.stream_windows:
                        self.stream_windows[s] += delta
            self.send(frame(SETTINGS, ACK, 0))
        elif kind == WINDOW_UPDATE:
            inc = struct.unpack(">I", payload)[0] & 0x7FFFFFFF
            if sid == 0:
                self.send_window += inc
            elif sid in self.stream_windows:
                self.stream_windows[sid] += inc
        elif kind == GOAWAY:
            self.goaway = struct.unpack(">I", payload[4:8])[0]
        elif kind == PING and flags & ACK:
            self.ping_acks += 1
        elif kind == HEADERS and st is not None:
            fields = dict(self.decoder.decode(payload))  # END_HEADERS always set by nghttp2 here
            key = "headers" if st["headers"] is None and ":status" in fields else "trailers"
            if "grpc-status" in fields and key == "headers":
                st["trailers"] = fields  # trailers-only
            st[key] = fields
        elif kind == HEADERS:
            self.decoder.decode(payload)
        elif kind == RST_STREAM and st is not None:
            st["reset"] = struct.unpack(">I", payload)[0]
        elif kind == DATA and st is not None:
            st["data"] += len(payload)

    def sync(self, timeout: float = 5.0) -> bool:
        """Sends a PING and reads until its ACK: the server has processed everything sent before."""
        acks = self.ping_acks
        if not self.send(frame(PING, 0, 0, b"syncsync")):
            return False
        deadline = time.monotonic() + timeout
        while self.ping_acks == acks and not self.eof and time.monotonic() < deadline:
            self.pump(0.05)
        return self.ping_acks > acks

    def wait_closed(self, timeout: float) -> float | None:
        """Reads until the server closes the connection; seconds it took, None if it did not."""
        start = time.monotonic()
        while not self.eof and time.monotonic() - start < timeout:
            self.pump(0.05)
        return time.monotonic() - start if self.eof else None


def status_of(st: dict) -> int | None:
    trailers = st.get("trailers") or {}
    return int(trailers["grpc-status"]) if "grpc-status" in trailers else None


def message_of(st: dict) -> str:
    from urllib.parse import unquote
    return unquote((st.get("trailers") or {}).get("grpc-message", ""))


def infer_bytes(model: str, x: np.ndarray, request_id: str = "") -> bytes:
    return make_request(model, {"x": x}, request_id=request_id).SerializeToString()


# --------------------------------------------------------------------------------------------
# the attacks


def attack_ping_flood(server, zoo, seconds: float = 12.0, max_bytes: int = 64 * MiB) -> Outcome:
    """A client that floods PINGs (500 every 2 ms) and never reads. Before: the PING ACKs
    piled up in the server's write buffer without bound. Now: once the socket is full the
    server stops writing and reading; the connection's keepalive PING then goes unanswered and
    the connection is closed (or nghttp2's flood limit closes it first)."""
    out = Outcome()
    conn = RawConnection(server.grpc_port)
    batch = b"".join(frame(PING, 0, 0, struct.pack(">Q", i)) for i in range(500))
    with under_attack(server, zoo, out):
        start = time.monotonic()
        while time.monotonic() - start < seconds and out.sent < max_bytes:
            if not conn.send(batch, timeout=0.5):
                if conn.eof:
                    out.closed_by_server = True
                    out.closed_after = time.monotonic() - start
                    break
                continue  # the server is not reading: keep pushing until time is up
            out.sent += len(batch)
            time.sleep(0.002)
        if not out.closed_by_server:
            # Nothing more is sent; a server that closed the connection shows it now.
            took = conn.wait_closed(5.0)
            if took is not None:
                out.closed_by_server = True
                out.closed_after = time.monotonic() - start
    conn.close()
    return out


def attack_slow_reader(server, zoo, seconds: float = 10.0, max_bytes: int = 64 * MiB) -> Outcome:
    """Small ModelInfer requests (echo model: 16 KiB in, 32 KiB out) as fast as the server
    takes them, with a 2 GiB window, never reading. Before: every response was pushed into the
    write buffer (15x amplification measured in the issue). Now: the server stops reading when
    it cannot write, and queued responses count against the outbound cap."""
    out = Outcome()
    conn = RawConnection(server.grpc_port, window=(1 << 31) - 1)
    conn.send(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", (1 << 31) - 1 - 65535)))
    body = grpc_message(infer_bytes("echo", np.ones((4, 1024), np.float32)))
    with under_attack(server, zoo, out):
        start = time.monotonic()
        while time.monotonic() - start < seconds and out.sent < max_bytes and conn.next_stream < 2 * 5000:
            sid = conn.next_stream
            conn.next_stream += 2
            block = conn.encoder.encode([(":method", "POST"), (":scheme", "http"), (":path", INFER),
                                         (":authority", "127.0.0.1"), ("content-type", "application/grpc"),
                                         ("te", "trailers")])
            # Within the server's windows: it sends WINDOW_UPDATEs as it consumes what we send
            # (4 MiB per stream, 16 MiB per connection), which we never read.
            req = frame(HEADERS, END_HEADERS, sid, block) + frame(DATA, END_STREAM, sid, body[:16384]) \
                if len(body) <= 16384 else \
                frame(HEADERS, END_HEADERS, sid, block) + b"".join(
                    frame(DATA, END_STREAM if i + 16384 >= len(body) else 0, sid, body[i:i + 16384])
                    for i in range(0, len(body), 16384))
            if not conn.send(req, timeout=1.0):
                if conn.eof:
                    out.closed_by_server = True
                    out.closed_after = time.monotonic() - start
                    break
                continue
            out.sent += len(req)
        if not out.closed_by_server:
            took = conn.wait_closed(6.0)
            if took is not None:
                out.closed_by_server = True
                out.closed_after = time.monotonic() - start
    conn.close()
    return out


def attack_zero_window(server, zoo, requests: int = 40, seconds: float = 20.0, model: str = "dense_workers") -> Outcome:
    """Requests whose `id` is 1 MiB (ModelInfer echoes the id), with a stream window of 0 so
    no response can be sent. Before: every response waited in the server (+462 MiB in the
    issue). Now: responses queued count against the outbound cap (GOAWAY ENHANCE_YOUR_CALM
    past it), requests against the request budget (RESOURCE_EXHAUSTED past it)."""
    out = Outcome()
    conn = RawConnection(server.grpc_port, window=0)
    x = np.random.default_rng(5).standard_normal((1, 16)).astype(np.float32)
    with under_attack(server, zoo, out):
        start = time.monotonic()
        for i in range(requests):
            if time.monotonic() - start > seconds or conn.eof or conn.goaway is not None:
                break
            body = grpc_message(infer_bytes(model, x, request_id=f"{i:08d}" + "i" * (MiB - 8)))
            sid = conn.headers()
            if conn.data(sid, body, end_stream=True, timeout=5):
                out.sent += len(body)
            conn.pump(0.01)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not conn.eof:
            conn.pump(0.05)
        out.goaway = conn.goaway
        out.closed_by_server = conn.eof
    tally(out, conn)
    conn.close()
    return out


def tally(out: Outcome, conn: RawConnection):
    """Counts the streams' statuses (None: no trailers), messages and resets into `out`."""
    for st in conn.streams.values():
        code = status_of(st)
        out.statuses[code] = out.statuses.get(code, 0) + 1
        if code is not None and code != 0:
            out.messages.append(message_of(st))
        if st["reset"] is not None:
            out.resets[st["reset"]] = out.resets.get(st["reset"], 0) + 1


def attack_header_amplification(server, zoo, streams: int = 8, refs: int = 12000) -> Outcome:
    """Request header blocks amplified through HPACK: one 4,000-byte field enters the dynamic
    table, then `refs` one-byte references to it; each 16 KiB HEADERS frame names ~48 MB of
    headers. No END_STREAM, so a server that kept the fields would hold them until the
    request-body timeout. Now: the server counts the list as it arrives, keeps nothing past
    --max-header-list-bytes and refuses the stream RESOURCE_EXHAUSTED."""
    out = Outcome()
    conn = RawConnection(server.grpc_port)
    pad = ("x-pad", "a" * 4000)
    with under_attack(server, zoo, out):
        for _ in range(streams):
            if conn.eof or conn.goaway is not None:
                break
            sid = conn.next_stream
            conn.next_stream += 2
            block = conn.encoder.encode([(":method", "POST"), (":scheme", "http"), (":path", INFER),
                                         (":authority", "127.0.0.1"), ("content-type", "application/grpc"),
                                         ("te", "trailers"), pad] + [pad] * refs)
            assert len(block) <= 16384, len(block)
            conn.streams[sid] = {"headers": None, "trailers": None, "reset": None, "data": 0}
            conn.stream_windows[sid] = conn.initial_stream_window
            conn.send(frame(HEADERS, END_HEADERS, sid, block))
            out.sent += len(block)
            conn.pump(0.05)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(st["trailers"] is None for st in conn.streams.values()):
            conn.pump(0.05)
    tally(out, conn)
    conn.close()
    return out


def attack_unfinished_uploads(server, zoo, streams: int = 40, seconds: float = 40.0) -> Outcome:
    """One connection opening `streams` streams that each send a 4 MiB message one byte short
    (declared 4 MiB, 4 MiB - 1 sent, never ended). Before: every byte stayed (+1,000 MiB for
    250 streams in the issue). Now: the connection's request budget holds; streams past it
    are refused RESOURCE_EXHAUSTED and their bytes released."""
    out = Outcome()
    conn = RawConnection(server.grpc_port)
    declared = 4 * MiB
    body = grpc_message(b"\x00" * (declared - 1), declared=declared)
    with under_attack(server, zoo, out):
        start = time.monotonic()
        for _ in range(streams):
            if time.monotonic() - start > seconds or conn.eof or conn.goaway is not None:
                break
            sid = conn.headers()
            conn.data(sid, body, end_stream=False, timeout=10)
            conn.pump(0.001)
        conn.pump(0.2)
        out.sent = conn.data_sent
    for st in conn.streams.values():
        code = status_of(st)
        out.statuses[code] = out.statuses.get(code, 0) + 1
        if code is not None:
            out.messages.append(message_of(st))
    conn.close()
    return out


# --------------------------------------------------------------------------------------------
# tests


def start(start_server, **overrides):
    return start_server(MODELS, extra_args=limit_args(**overrides), name="hardening", wait_for=MODELS)


def test_paced_ping_flood_from_a_client_that_never_reads(start_server, zoo):
    server = start(start_server)
    out = attack_ping_flood(server, zoo)
    # Bound: nothing the flood makes the server hold grows with it; NIO's write buffer is
    # capped at its 1 MiB high water mark (+ one 1 MiB drain), nghttp2's queue at its
    # flood limit (1,000 ACKs). Everything else is SLACK.
    assert_bounded(out, rss_bound=SLACK)
    # Closed: by the keepalive (PING after 2 s of no reads, 1 s to answer) or the flood limit,
    # long before the attack's 12 s are up.
    assert out.closed_by_server, f"the flooding connection was never closed: {out.summary()}"


def test_slow_reader_with_large_window(start_server, zoo):
    # (A message must fit the request budget: swerve refuses to start otherwise.)
    server = start(start_server, max_connection_request_bytes=2 * MiB, max_receive_message_size=1 * MiB)
    out = attack_slow_reader(server, zoo)
    # Bound: the 4 MiB outbound cap + NIO's 2 MiB + the work in flight: at most 2 MiB of
    # requests (the request budget; a message stays charged until its stream closes), each
    # held about six times over while computed (request, decoded tensor, batch, two outputs
    # of the echo model, their serialized response) = 12 MiB; + SLACK.
    assert_bounded(out, rss_bound=4 * MiB + 2 * MiB + 12 * MiB + SLACK)
    assert out.closed_by_server, f"the slow reader's connection was never closed: {out.summary()}"


def test_zero_window_with_large_echoed_ids(start_server, zoo):
    # Computed on the workers: answers arrive after the read that dispatched their calls, so
    # the queue can pass the cap (the soft limit stops only later dispatches) and the cap ends it.
    server = start(start_server)
    out = attack_zero_window(server, zoo, model="dense_workers")
    # Bound: 4 MiB of queued responses (the outbound cap) + 8 MiB of requests (the
    # connection's request budget) + SLACK.
    assert_bounded(out, rss_bound=4 * MiB + 8 * MiB + SLACK)
    assert out.goaway == ENHANCE_YOUR_CALM, f"expected GOAWAY(ENHANCE_YOUR_CALM): {out.summary()}"
    assert out.closed_by_server, out.summary()
    # Above half the outbound cap the server hands out no new call: later requests wait (and
    # past the 8 MiB request budget are refused), so at most cap + budget worth of answers
    # was ever pending.
    pending = out.statuses.get(None, 0)
    assert pending * MiB <= 4 * MiB + 8 * MiB, f"{pending} requests were taken and not refused: {out.summary()}"


def test_zero_window_with_answers_made_on_the_read_path(start_server, zoo):
    # Computed inline (on the event loop, inside the read that completed the request): each
    # answer is queued before the next call is handed out, so the soft limit (half the cap)
    # stops dispatch with at most one answer more than it: the queue never reaches the cap
    # (no GOAWAY(ENHANCE_YOUR_CALM) is needed), later requests wait within the request budget
    # or are refused, and the connection still ends (the response-window timeout resets what
    # waits, the keepalive closes a client that answers no PING).
    server = start(start_server)
    out = attack_zero_window(server, zoo, model="dense_inline")
    assert_bounded(out, rss_bound=4 * MiB + 8 * MiB + SLACK)
    assert out.closed_by_server, out.summary()
    assert out.goaway != ENHANCE_YOUR_CALM, f"the inline answers passed the outbound cap: {out.summary()}"
    answered_or_waiting = sum(n for status, n in out.statuses.items() if status != GRPC_RESOURCE_EXHAUSTED)
    assert answered_or_waiting * MiB <= 4 * MiB + 8 * MiB, f"{answered_or_waiting} requests taken: {out.summary()}"
    assert out.statuses.get(GRPC_RESOURCE_EXHAUSTED, 0) > 0, f"the request budget never refused one: {out.summary()}"


def test_zero_window_answers_release_the_request_budget_and_are_reset(start_server, zoo):
    # Outbound cap above what the attack queues (16 x 1 MiB): answered requests no longer
    # hold the 8 MiB request budget (none is refused), and the responses the zero window
    # never lets through are reset after --response-window-timeout (2 s here).
    server = start(start_server, max_connection_outbound_bytes=64 * MiB)
    out = attack_zero_window(server, zoo, requests=16)
    assert_bounded(out, rss_bound=16 * MiB + 8 * MiB + SLACK)
    assert out.statuses.get(GRPC_RESOURCE_EXHAUSTED, 0) == 0, (
        f"answered requests must not stay charged to the request budget: {out.summary()} {out.messages[:2]}")
    assert out.resets.get(ENHANCE_YOUR_CALM, 0) == 16, (
        f"expected every blocked response reset ENHANCE_YOUR_CALM: {out.resets} {out.summary()}")
    # (The connection itself is later closed by the keepalive: this client answers no PING.)
    assert out.goaway != ENHANCE_YOUR_CALM, f"the outbound cap was not what stopped it: {out.summary()}"


def test_hpack_amplified_headers_are_refused_without_being_kept(start_server, zoo):
    server = start(start_server)
    out = attack_header_amplification(server, zoo)
    # 8 streams x ~48 MB of decoded headers sent; the server keeps at most 16 KiB of each.
    assert_bounded(out, rss_bound=SLACK)
    assert out.statuses.get(GRPC_RESOURCE_EXHAUSTED, 0) == 8, out.summary()
    assert all("max-header-list-bytes" in m and "16 KiB" in m for m in out.messages), out.messages[:2]


def test_unfinished_uploads_hit_the_request_budget(start_server, zoo):
    server = start(start_server)
    out = attack_unfinished_uploads(server, zoo)
    # Bound: the 8 MiB per-connection request budget + SLACK (40 streams x 4 MiB = 160 MiB
    # were sent).
    assert_bounded(out, rss_bound=8 * MiB + SLACK)
    refused = out.statuses.get(GRPC_RESOURCE_EXHAUSTED, 0)
    held = out.statuses.get(None, 0)
    assert held <= 2, f"more streams hold 4 MiB than the 8 MiB budget allows: {out.summary()}"
    assert refused >= 38, out.summary()
    assert any("memory budget of 8 MiB" in m for m in out.messages), out.messages[:3]


def test_server_wide_request_budget_spans_connections(start_server, zoo):
    # Each connection's budget (8 MiB) allows one almost-complete 4 MiB message; the server's
    # (10 MiB) only two of them across three connections.
    server = start(start_server, max_server_request_bytes=10 * MiB)
    declared = 4 * MiB
    body = grpc_message(b"\x00" * (declared - 1), declared=declared)
    conns = [RawConnection(server.grpc_port) for _ in range(3)]
    try:
        sids = []
        for c in conns:
            sid = c.headers()
            c.data(sid, body, timeout=10)
            # One upload after the other: the whole upload fits the socket buffers and the
            # server's windows, so without waiting the server would read the three interleaved
            # on its two event loops, and which of them it refuses (possibly two, each refused
            # while the other still held its part) would be a race.
            assert c.sync(), "the server did not answer a PING"
            sids.append(sid)
        wait_until(lambda: (conns[2].pump(0.05), status_of(conns[2].streams[sids[2]]))[1], 5,
                   lambda: f"an answer to the third connection's upload: {conns[2].streams[sids[2]]}")
        for c in conns[:2]:
            c.pump(0.2)
        codes = [status_of(c.streams[s]) for c, s in zip(conns, sids)]
        assert codes == [None, None, GRPC_RESOURCE_EXHAUSTED], codes
        msg = message_of(conns[2].streams[sids[2]])
        assert "max-server-request-bytes" in msg and "10 MiB" in msg, msg
        # Bytes go back to the server's budget when their connection goes: once a holder
        # leaves, a new upload is accepted (a few tries: the server sees the close a moment later).
        conns[0].close()
        c = RawConnection(server.grpc_port)
        conns.append(c)
        accepted = False
        for _ in range(5):
            sid = c.headers()
            c.data(sid, body, timeout=10)
            c.pump(0.2)
            if status_of(c.streams[sid]) is None:
                accepted = True
                break
        assert accepted, [status_of(st) for st in c.streams.values()]
        good_call(server.stub(server.channel()), zoo)
    finally:
        for c in conns:
            c.close()


@pytest.mark.parametrize("kind", ["silent", "half_preface"])
def test_connections_without_a_handshake_are_closed(start_server, zoo, kind):
    server = start(start_server)
    payload = {"silent": b"", "half_preface": PREFACE[:12]}[kind]
    out = Outcome()
    conns = []
    with under_attack(server, zoo, out):
        for _ in range(100):
            c = RawConnection(server.grpc_port, handshake=False)
            if payload:
                c.send(payload)
            conns.append(c)
        start_t = time.monotonic()
        # handshake-timeout is 1 s; the watchdog ticks every 0.2 s: 5 s is generous.
        for c in conns:
            c.wait_closed(max(0.1, 5 - (time.monotonic() - start_t)))
        out.closed_after = time.monotonic() - start_t
    open_ones = sum(not c.eof for c in conns)
    for c in conns:
        c.close()
    assert open_ones == 0, f"{open_ones} of 100 {kind} connections still open after 5 s"
    # Bound: 100 connections' buffers and handler state + SLACK.
    assert_bounded(out, rss_bound=SLACK)


def test_idle_connection_gets_goaway_then_closed(start_server, zoo):
    server = start(start_server, idle_timeout=2, keepalive_interval=600)
    out = Outcome()
    conns = []
    with under_attack(server, zoo, out):
        conns = [RawConnection(server.grpc_port) for _ in range(100)]  # preface + SETTINGS, then nothing
        start_t = time.monotonic()
        for c in conns:
            c.wait_closed(max(0.1, 8 - (time.monotonic() - start_t)))
        out.closed_after = time.monotonic() - start_t
    try:
        assert all(c.eof for c in conns), f"{sum(not c.eof for c in conns)} idle connections still open after 8 s"
        assert all(c.goaway == NO_ERROR for c in conns), [c.goaway for c in conns][:5]
        assert out.closed_after >= 1.5, f"closed after {out.closed_after:.2f} s, before the 2 s idle timeout"
        assert_bounded(out, rss_bound=SLACK)
    finally:
        for c in conns:
            c.close()


def test_grpcio_client_survives_idle_goaway(start_server, zoo):
    # A grpcio channel left idle past the idle timeout is sent GOAWAY; its next call must
    # still succeed (grpcio reconnects), so the timeout costs a well-behaved client nothing.
    server = start(start_server, idle_timeout=1, keepalive_interval=600)
    stub = server.stub(server.channel())
    good_call(stub, zoo)
    time.sleep(2.0)  # the scenario: staying idle past the timeout
    good_call(stub, zoo)


def test_stalled_request_body_is_answered_and_the_connection_then_idles_out(start_server, zoo):
    server = start(start_server, idle_timeout=3, keepalive_interval=600)
    out = Outcome()
    with under_attack(server, zoo, out):
        conns = [RawConnection(server.grpc_port) for _ in range(50)]
        sids = []
        for i, c in enumerate(conns):
            sid = c.headers()
            if i % 2:  # half send part of a message, half nothing after the headers
                c.data(sid, grpc_message(b"\x00" * 100, declared=1000))
            sids.append(sid)
        start_t = time.monotonic()
        for c, sid in zip(conns, sids):
            wait_until(lambda: (c.pump(0.05), status_of(c.streams[sid]) is not None)[1], 6,
                       lambda: f"an answer to the stalled stream: {c.streams[sid]}")
        answered = time.monotonic() - start_t
        for c in conns:
            c.wait_closed(max(0.1, 12 - (time.monotonic() - start_t)))
    try:
        for c, sid in zip(conns, sids):
            st = c.streams[sid]
            assert status_of(st) == GRPC_DEADLINE_EXCEEDED, st
            assert "request body stalled" in message_of(st) and "request-body-timeout" in message_of(st), st
        assert answered >= 1.0, f"answered after {answered:.2f} s, before the 1.5 s request-body timeout"
        assert all(c.eof for c in conns), "connections with only a stalled stream were not closed by the idle timeout"
        assert_bounded(out, rss_bound=SLACK)
    finally:
        for c in conns:
            c.close()


def test_a_trickled_request_body_is_answered_after_the_total_limit(start_server, zoo):
    # One byte every 0.5 s keeps the 1.5 s stall limit from firing; the total limit (3 s
    # here) does. 20 streams on 5 connections.
    server = start(start_server, max_request_body_duration=3, keepalive_interval=600)
    out = Outcome()
    with under_attack(server, zoo, out):
        conns = [RawConnection(server.grpc_port) for _ in range(5)]
        streams = [(c, c.headers()) for c in conns for _ in range(4)]
        for c, sid in streams:
            c.data(sid, grpc_message(b"", declared=1000)[:5])
        start_t = time.monotonic()
        while time.monotonic() - start_t < 10 and any(status_of(c.streams[sid]) is None for c, sid in streams):
            for c, sid in streams:
                if status_of(c.streams[sid]) is None and c.streams[sid]["reset"] is None:
                    c.send(frame(DATA, 0, sid, b"\x00"))
            for c in conns:
                c.pump(0.1)
            time.sleep(0.4)
        answered = time.monotonic() - start_t
    try:
        for c, sid in streams:
            st = c.streams[sid]
            assert status_of(st) == GRPC_DEADLINE_EXCEEDED, st
            assert "too slow" in message_of(st) and "max-request-body-duration" in message_of(st), st
        assert answered >= 2.0, f"answered after {answered:.2f} s, before the 3 s limit"
        assert_bounded(out, rss_bound=SLACK)
    finally:
        for c in conns:
            c.close()


def test_keepalive_closes_a_peer_that_never_answers_pings(start_server, zoo):
    server = start(start_server, keepalive_interval=1, keepalive_timeout=1)
    # A grpcio client answers the server's PINGs: its connection survives several intervals.
    stub = server.stub(server.channel())
    good_call(stub, zoo)
    conn = RawConnection(server.grpc_port)  # handshake, then never reads
    took = conn.wait_closed(6)  # wait_closed reads, but the client never sends a PING ACK
    conn.close()
    assert took is not None, "a peer that never answers PINGs was not closed"
    assert took >= 1.5, f"closed after {took:.2f} s: before keepalive interval + timeout"
    time.sleep(1.5)  # the scenario: idle past a keepalive interval
    good_call(stub, zoo)


# --------------------------------------------------------------------------------------------
# before/after figures: python -c 'import test_hardening_connection as t; t.measure_before()'


def measure_before(only=()):  # pragma: no cover - a measuring aid, not a test
    """Runs every attack (or those named in `only`) against $SWERVE_BIN started without the
    new flags (an older binary does not know them) and prints what each did to it."""
    import tempfile
    from pathlib import Path

    import model_zoo
    import oip

    root = Path(tempfile.mkdtemp(prefix="h9-before-"))
    zoo = model_zoo.build_zoo(root / "zoo")
    for name, attack in [("ping_flood", attack_ping_flood), ("slow_reader", attack_slow_reader),
                         ("zero_window", attack_zero_window), ("unfinished_uploads", attack_unfinished_uploads)]:
        if only and name not in only:
            continue
        repo = model_zoo.make_repository(zoo, root / name / "repository", MODELS)
        server = oip.Server(repo, root / name / "swerve.log")
        server.start(wait_for=MODELS)
        try:
            print(name, attack(server, zoo).summary(), flush=True)
        finally:
            server.stop()
