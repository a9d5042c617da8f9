"""gRPC over TLS (`swerve serve --tls-cert F --tls-key F`), against the real binary.

A throwaway CA and a server certificate for localhost/127.0.0.1 are made with `openssl` when
the module runs (nothing private is committed). Clients nobody here wrote: grpcio's
`secure_channel` with the CA as root, Python's `ssl` for handshakes grpcio would never do,
h2load for load. The connection limits are checked again with TLS in front of HTTP/2 (the
outbound cap and the slow reader of test_hardening_connection, through a TLS socket).
"""
from __future__ import annotations

import json
import re
import select
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import grpc
import numpy as np
import pytest

import model_zoo
import oip
import test_hardening_connection as hc
from conftest import _RUNNING, good_call
from oip import HealthStatus, health_pb2, pb

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


# --------------------------------------------------------------------------------------------
# certificates


class PKI:
    """A CA and a server certificate it signed (localhost, 127.0.0.1), plus a second key."""

    def __init__(self, root: Path):
        self.root = root
        self.ca_cert = root / "ca.pem"
        self.cert = root / "server.pem"
        self.key = root / "server.key"
        self.other_key = root / "other.key"
        ca_key = root / "ca.key"
        self._openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                      "-keyout", ca_key, "-out", self.ca_cert, "-days", "2", "-subj", "/CN=swerve test CA")
        csr = root / "server.csr"
        self._openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                      "-keyout", self.key, "-out", csr, "-subj", "/CN=localhost")
        ext = root / "ext.cnf"
        ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                       "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n")
        self._openssl("x509", "-req", "-in", csr, "-CA", self.ca_cert, "-CAkey", ca_key, "-CAcreateserial",
                      "-out", self.cert, "-days", "2", "-extfile", ext)
        self._openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", self.other_key)

    @staticmethod
    def _openssl(*args):
        done = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"openssl {' '.join(map(str, args))}: {done.stderr}"

    def client_context(self, alpn=("h2",)) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca_cert))
        if alpn:
            ctx.set_alpn_protocols(list(alpn))
        return ctx


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> PKI:
    return PKI(tmp_path_factory.mktemp("pki"))


class TLSServer(oip.Server):
    """`swerve serve` with TLS on its gRPC port; its channels are grpcio secure channels."""

    def __init__(self, repository, log_path, pki: PKI, extra_args=()):
        super().__init__(repository, log_path, ["--tls-cert", str(pki.cert), "--tls-key", str(pki.key), *extra_args])
        self.pki = pki

    def channel(self, options=()) -> grpc.Channel:
        creds = grpc.ssl_channel_credentials(root_certificates=self.pki.ca_cert.read_bytes())
        opts = [("grpc.max_receive_message_length", 64 << 20), *options]
        ch = grpc.secure_channel(self.address, creds, options=opts)
        self._channels.append(ch)
        return ch


@pytest.fixture
def start_tls(tmp_path_factory, zoo, pki):
    """start_tls(models=["dense"], extra_args=()) -> TLSServer, stopped at teardown."""
    mine: list[TLSServer] = []

    def start(models=("dense",), extra_args=(), wait_for=()) -> TLSServer:
        base = tmp_path_factory.mktemp("tls")
        repo = model_zoo.make_repository(zoo, base / "repository", list(models))
        srv = TLSServer(repo, base / "swerve.log", pki, extra_args)
        mine.append(srv)
        _RUNNING.append(srv)
        srv.start(wait_for=wait_for)
        return srv

    yield start
    for srv in mine:
        srv.stop()
        _RUNNING.remove(srv)


def read_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, bool]:
    """Everything the peer sends until it closes (True) or `timeout` passes (False)."""
    got = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = sock.pending() if isinstance(sock, ssl.SSLSocket) else 0
        if not pending:
            ready, _, _ = select.select([sock], [], [], min(0.1, max(0.0, deadline - time.monotonic())))
            if not ready:
                continue
        try:
            chunk = sock.recv(65536)
        except (ssl.SSLWantReadError, BlockingIOError):
            continue
        except (ConnectionResetError, ssl.SSLError, OSError):
            return got, True
        if not chunk:
            return got, True
        got += chunk
    return got, False


def frames_of(data: bytes) -> list[tuple[int, int]]:
    """(type, flags) of each whole HTTP/2 frame in `data`."""
    out = []
    while len(data) >= 9:
        length = int.from_bytes(data[:3], "big")
        if len(data) < 9 + length:
            break
        out.append((data[3], data[4]))
        data = data[9 + length:]
    return out


# --------------------------------------------------------------------------------------------
# serving over TLS


def test_model_infer_and_health_over_tls(start_tls, zoo):
    server = start_tls()
    assert "(TLS, ALPN h2)" in server.log_path.read_text()
    channel = server.channel()
    stub = server.stub(channel)
    good_call(stub, zoo)
    assert stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready
    health = server.health_stub(channel)
    assert health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status == HealthStatus.SERVING
    # The negotiated protocol and version, as a client sees them.
    with socket.create_connection(("127.0.0.1", server.grpc_port), timeout=5) as raw, \
            server.pki.client_context().wrap_socket(raw, server_hostname="localhost") as tls:
        assert tls.selected_alpn_protocol() == "h2"
        assert tls.version() in ("TLSv1.3", "TLSv1.2")
        assert tls.version() == "TLSv1.3", "TLS 1.3 is preferred when the client offers it"


def test_a_client_that_does_not_trust_the_certificate_fails_and_others_are_served(start_tls, zoo):
    server = start_tls()
    untrusting = grpc.secure_channel(server.address, grpc.ssl_channel_credentials())  # system roots only
    try:
        code = oip.rpc_code(server.stub(untrusting).ServerLive, pb.ServerLiveRequest(), timeout=5)
    finally:
        untrusting.close()
    assert code == grpc.StatusCode.UNAVAILABLE
    good_call(server.stub(server.channel()), zoo)


def test_plaintext_clients_fail_cleanly_and_the_server_keeps_serving(start_tls, zoo):
    server = start_tls()
    served = server.stub(server.channel())
    good_call(served, zoo)
    plain = grpc.insecure_channel(server.address)
    try:
        code = oip.rpc_code(server.stub(plain).ServerLive, pb.ServerLiveRequest(), timeout=5)
    finally:
        plain.close()
    assert code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED), code
    # A raw cleartext HTTP/2 client: the server answers with no HTTP/2 at all (at most a TLS
    # alert) and closes.
    with socket.create_connection(("127.0.0.1", server.grpc_port), timeout=5) as raw:
        raw.sendall(hc.PREFACE + hc.settings() + hc.frame(hc.PING, 0, 0, b"12345678"))
        got, closed = read_until_closed(raw, 5)
    assert closed, "the server kept a cleartext connection open"
    assert b"PRI" not in got and (not got or got[0] == 0x15), f"expected nothing or a TLS alert, got {got[:20]!r}"
    oip.wait_until(lambda: "TLS handshake failed" in server.log_path.read_text(), 5, "a log line for the failed handshake")
    # The connection that was already open, and a new one, are served.
    good_call(served, zoo)
    good_call(server.stub(server.channel()), zoo)


@pytest.mark.parametrize("alpn", [None, ("http/1.1",)], ids=["no-alpn", "http1.1"])
def test_a_tls_client_without_alpn_h2_is_refused(start_tls, zoo, alpn):
    server = start_tls()
    ctx = server.pki.client_context(alpn=alpn)
    with socket.create_connection(("127.0.0.1", server.grpc_port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        assert tls.selected_alpn_protocol() is None
        # HTTP/2 sent anyway never reaches HTTP/2: no SETTINGS ACK, no PING ACK.
        try:
            tls.sendall(hc.PREFACE + hc.settings() + hc.frame(hc.PING, 0, 0, b"12345678"))
        except (ssl.SSLError, OSError):
            pass  # already closed
        got, closed = read_until_closed(tls, 5)
    assert closed, "a connection without ALPN h2 was kept open"
    acks = [(t, f) for t, f in frames_of(got) if f & hc.ACK and t in (hc.SETTINGS, hc.PING)]
    assert not acks, f"the server answered HTTP/2 on a connection without h2: {frames_of(got)}"
    oip.wait_until(lambda: "gRPC needs HTTP/2 (ALPN h2)" in server.log_path.read_text(), 5,
                   "a log line for the refused connection")
    good_call(server.stub(server.channel()), zoo)


@pytest.mark.parametrize("kind", ["silent", "half_client_hello", "tls_without_preface"])
def test_the_handshake_timeout_covers_tls_and_the_http2_preface(start_tls, zoo, kind):
    server = start_tls(extra_args=["--handshake-timeout", "1"])
    start = time.monotonic()
    raw = socket.create_connection(("127.0.0.1", server.grpc_port), timeout=5)
    sock = raw
    try:
        if kind == "half_client_hello":
            raw.sendall(bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]))  # a record header, one byte of 512
        elif kind == "tls_without_preface":
            sock = server.pki.client_context().wrap_socket(raw, server_hostname="localhost")
            assert sock.selected_alpn_protocol() == "h2"
        got, closed = read_until_closed(sock, 6)
        took = time.monotonic() - start
    finally:
        sock.close()
    # handshake-timeout is 1 s, checked every 0.2 s: 6 s is generous; closing a TLS
    # connection may wait for the client's close_notify, which this client never sends.
    assert closed, f"{kind}: the connection was still open after 6 s"
    assert took >= 0.9, f"{kind}: closed after {took:.2f} s, before the handshake timeout"
    good_call(server.stub(server.channel()), zoo)


def test_a_peer_that_reads_nothing_is_dropped_without_waiting_for_its_close_notify(start_tls, zoo):
    """The watchdog's closes go beneath TLS: TLS's own close would wait up to 5 s for the
    peer's close_notify, which a peer that reads nothing never sends."""
    server = start_tls(extra_args=["--handshake-timeout", "1"])
    open_now = lambda: oip.metric_sum(oip.parse_metrics(server.metrics()), "swerve_grpc_connections")  # noqa: E731
    before = open_now()  # the readiness check's channel
    with socket.create_connection(("127.0.0.1", server.grpc_port), timeout=5) as raw, \
            server.pki.client_context().wrap_socket(raw, server_hostname="localhost"):
        start = time.monotonic()
        oip.wait_until(lambda: open_now() == before + 1, 5, "the connection counted")
        # No HTTP/2 preface, and nothing read: the handshake timeout (1 s, ticked every 0.2 s)
        # closes it; with TLS's close it would stay open about 5 s longer.
        oip.wait_until(lambda: open_now() == before, 4.5, "the server dropped the connection")
        took = time.monotonic() - start
    assert took >= 0.9, f"closed after {took:.2f} s, before the handshake timeout"


def test_h2load_over_tls_completes_without_errors(start_tls, zoo, tmp_path):
    if shutil.which("h2load") is None:
        pytest.skip("needs h2load (apt-get install nghttp2-client)")
    server = start_tls()
    request = tmp_path / "request.bin"
    # The request as `swerve bench` makes it, from the model's metadata read over TLS.
    dumped = subprocess.run([oip.swerve_bin(), "bench", "--server", server.address, "--ca-cert", str(server.pki.ca_cert),
                             "--model", "dense", "--batch", "1", "--dump-request", str(request)],
                            capture_output=True, text=True, timeout=60)
    assert dumped.returncode == 0 and request.stat().st_size > 5, dumped.stdout + dumped.stderr
    n = 2000
    done = subprocess.run(
        ["h2load", "-n", str(n), "-c", "4", "-m", "8", "-t", "1", "-d", str(request),
         "-H", "content-type: application/grpc", "-H", "te: trailers",
         f"https://127.0.0.1:{server.grpc_port}/{oip.SERVICE}/ModelInfer"],
        capture_output=True, text=True, timeout=120)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert re.search(r"TLS Protocol: TLSv1\.[23]", out), out
    assert re.search(r"Application protocol: h2", out), out
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
    assert m, out
    assert (int(m[4]), int(m[5]), int(m[6])) == (n, 0, 0), out
    assert re.search(rf"status codes: {n} 2xx", out), out
    good_call(server.stub(server.channel()), zoo)


def swerve_client(*args, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run([oip.swerve_bin(), *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def test_swerve_clients_over_tls(start_tls, zoo):
    server = start_tls()
    ca = str(server.pki.ca_cert)
    for address in (server.address, f"localhost:{server.grpc_port}"):  # the IP SAN, the DNS SAN
        listed = swerve_client("models", "--server", address, "--ca-cert", ca)
        assert listed.returncode == 0, listed.stdout + listed.stderr
        assert re.search(r"^dense\s+1\s+READY", listed.stdout, re.M), listed.stdout
    x = zoo.cases["dense"].make_inputs(1)
    predicted = swerve_client("predict", "--server", server.address, "--ca-cert", ca, "--model", "dense",
                              "--input", "x=" + json.dumps(x.tolist()))
    assert predicted.returncode == 0, predicted.stdout + predicted.stderr
    # "NAME  DATATYPE  [shape]" then the values as a JSON array, per output.
    want = oip.ort_run(zoo.path("dense"), {"x": x})
    lines = predicted.stdout.splitlines()
    for name, value in want.items():
        at = next(i for i, line in enumerate(lines) if line.split()[:1] == [name])
        got = np.array(json.loads(lines[at + 1]), dtype=value.dtype)
        np.testing.assert_allclose(got, value, rtol=1e-4, atol=1e-5, err_msg=predicted.stdout)

    # Not trusted (system roots only), and cleartext against TLS: clear failures, nonzero exits.
    untrusted = swerve_client("models", "--server", server.address, "--tls")
    assert untrusted.returncode != 0 and "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr, untrusted.stderr
    plain = swerve_client("models", "--server", server.address)
    assert plain.returncode != 0 and "UNAVAILABLE" in plain.stderr, plain.stderr
    bad_ca = swerve_client("models", "--server", server.address, "--ca-cert", str(server.pki.key))
    assert bad_ca.returncode != 0 and f"--ca-cert) {server.pki.key}" in bad_ca.stderr, bad_ca.stderr


def test_a_tls_client_gives_up_on_a_server_that_never_answers_the_handshake():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        port = silent.getsockname()[1]
        start = time.monotonic()
        done = swerve_client("models", "--server", f"127.0.0.1:{port}", "--tls", "--timeout", "1", timeout=30)
        took = time.monotonic() - start
    assert done.returncode != 0 and "TLS handshake" in done.stderr and "took longer" in done.stderr, done.stderr
    assert took < 20, f"the client waited {took:.1f} s"


def test_the_trainer_serves_over_tls_too(pki, tmp_path):
    port = oip.free_port()
    (tmp_path / "repository").mkdir()
    with open(tmp_path / "trainer.log", "wb") as log:
        proc = subprocess.Popen(
            [oip.swerve_bin(), "trainer", "--repository", str(tmp_path / "repository"), "--host", "127.0.0.1",
             "--grpc-port", str(port), "--tls-cert", str(pki.cert), "--tls-key", str(pki.key)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    creds = grpc.ssl_channel_credentials(root_certificates=pki.ca_cert.read_bytes())
    channel = grpc.secure_channel(f"127.0.0.1:{port}", creds)
    list_jobs = channel.unary_unary("/swerve.v1.Trainer/ListJobs")  # bytes in, bytes out
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (tmp_path / "trainer.log").read_text()
            try:
                list_jobs(b"", timeout=2)  # an empty ListJobsRequest; any answer is an OK status
                break
            except grpc.RpcError as e:
                assert time.monotonic() < deadline, f"trainer not answering over TLS: {e}"
                time.sleep(0.1)
        plain = grpc.insecure_channel(f"127.0.0.1:{port}")
        try:
            code = oip.rpc_code(plain.unary_unary("/swerve.v1.Trainer/ListJobs"), b"", timeout=5)
        finally:
            plain.close()
        assert code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED), code
    finally:
        channel.close()
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


# --------------------------------------------------------------------------------------------
# the connection limits with TLS in front


def tls_raw_connection(pki: PKI):
    """test_hardening_connection's hand-made HTTP/2 client (whose send and pump also work on a
    TLS socket), over TLS."""

    class TLSRawConnection(hc.RawConnection):
        def __init__(self, port: int, window: int | None = None, handshake=True):
            super().__init__(port, handshake=False)
            self.sock = pki.client_context().wrap_socket(self.sock, server_hostname="localhost")
            if handshake:
                extra = hc.settings(initial_window_size=window) if window is not None else hc.settings()
                self.send(hc.PREFACE + extra)

    return TLSRawConnection


def test_outbound_cap_holds_with_tls(start_tls, zoo, monkeypatch):
    """test_zero_window_with_large_echoed_ids over TLS: responses that cannot be sent count
    against the outbound cap and end the connection with GOAWAY(ENHANCE_YOUR_CALM)."""
    server = start_tls(hc.MODELS, hc.limit_args(), wait_for=hc.MODELS)
    monkeypatch.setattr(hc, "RawConnection", tls_raw_connection(server.pki))
    out = hc.attack_zero_window(server, zoo, model="dense_workers")
    hc.assert_bounded(out, rss_bound=4 * hc.MiB + 8 * hc.MiB + hc.SLACK)
    assert out.goaway == hc.ENHANCE_YOUR_CALM, f"expected GOAWAY(ENHANCE_YOUR_CALM): {out.summary()}"
    assert out.closed_by_server, out.summary()
    pending = out.statuses.get(None, 0)
    assert pending * hc.MiB <= 4 * hc.MiB + 8 * hc.MiB, f"{pending} requests were taken and not refused: {out.summary()}"


def test_a_slow_reader_is_bounded_and_closed_with_tls(start_tls, zoo, monkeypatch):
    """test_slow_reader_with_large_window over TLS: the encrypted bytes the client does not
    read wait in the socket's buffer, where backpressure and the outbound cap see them."""
    server = start_tls(hc.MODELS, hc.limit_args(max_connection_request_bytes=2 * hc.MiB,
                                                max_receive_message_size=1 * hc.MiB), wait_for=hc.MODELS)
    monkeypatch.setattr(hc, "RawConnection", tls_raw_connection(server.pki))
    out = hc.attack_slow_reader(server, zoo)
    hc.assert_bounded(out, rss_bound=4 * hc.MiB + 2 * hc.MiB + 12 * hc.MiB + hc.SLACK)
    assert out.closed_by_server, f"the slow reader's connection was never closed: {out.summary()}"


# --------------------------------------------------------------------------------------------
# refusing to start


def run_serve(args, tmp_path, timeout=30) -> subprocess.CompletedProcess:
    """`swerve serve` that is expected to exit at once; killed (and failed) if it serves."""
    repo = tmp_path / "repository"
    repo.mkdir(exist_ok=True)
    argv = [oip.swerve_bin(), "serve", "--repository", str(repo), "--host", "127.0.0.1",
            "--grpc-port", str(oip.free_port()), "--metrics-port", str(oip.free_port()), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def test_bad_tls_settings_refuse_to_start_and_name_the_file(pki, tmp_path):
    empty = tmp_path / "empty.pem"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    cases = [
        (["--tls-cert", str(pki.cert)], "--tls-cert needs --tls-key"),
        (["--tls-key", str(pki.key)], "--tls-key needs --tls-cert"),
        (["--tls-cert", str(tmp_path / "missing.pem"), "--tls-key", str(pki.key)], f"{tmp_path / 'missing.pem'}"),
        (["--tls-cert", str(tmp_path), "--tls-key", str(pki.key)], "is not a regular file"),
        (["--tls-cert", str(empty), "--tls-key", str(pki.key)], f"{empty} is empty"),
        (["--tls-cert", str(garbage), "--tls-key", str(pki.key)], f"{garbage}"),
        (["--tls-cert", str(pki.key), "--tls-key", str(pki.key)], "holds no valid PEM certificate"),
        (["--tls-cert", str(pki.cert), "--tls-key", str(pki.cert)], "--tls-key"),
        (["--tls-cert", str(pki.cert), "--tls-key", str(pki.other_key)], "does not go with the certificate"),
    ]
    cases.append((["trainer-only", "--tls-key", str(pki.key)], "--tls-key needs --tls-cert"))
    for args, expected in cases:
        if args[0] == "trainer-only":
            done = subprocess.run([oip.swerve_bin(), "trainer", "--repository", str(tmp_path / "trainer"), *args[1:]],
                                  capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        else:
            done = run_serve(args, tmp_path)
        text = done.stdout + done.stderr
        assert done.returncode != 0, f"{args}: swerve started:\n{text}"
        assert expected in text, f"{args}: expected {expected!r} in:\n{text}"
        assert "listening" not in text, f"{args}: the listener was bound before the TLS files were checked:\n{text}"


def test_swerve_label_and_rollout_reach_replicas_over_tls(start_tls, zoo):
    """`--tls --ca-cert` reach the replicas (and a registry) of `swerve label` / `swerve rollout`."""
    server = start_tls()
    ca = str(server.pki.ca_cert)
    args = ["label", "--model", "dense", "stable=1", "--repository", str(server.repository),
            "--replicas", server.address]
    labelled = swerve_client(*args, "--ca-cert", ca)
    assert labelled.returncode == 0, labelled.stdout + labelled.stderr
    assert json.loads((server.repository / "dense" / "labels.json").read_text())["stable"] == 1
    # Cleartext against the TLS port: the replica cannot be asked, nothing is written.
    plain = swerve_client(*args[:3], "stable=1", "--force", *args[4:])
    assert plain.returncode == 2, plain.stdout + plain.stderr
    dry = swerve_client("rollout", "--model", "dense", "--version", "1", "--replicas", server.address,
                        "--repository", str(server.repository), "--ca-cert", ca, "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
