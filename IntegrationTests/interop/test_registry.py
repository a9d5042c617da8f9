"""Replicas that follow a registry over gRPC (`swerve registry`, `swerve serve --follow`).

  converge     two followers with their own folders reach the registry's versions, config.json
               and labels.json; a version published into the registry reaches both; a follower
               started later catches up.
  cut          the first connection of one follower goes through a TCP proxy that closes it
               after ~300 KB, halfway through a 1 MiB model: the transfer is retried, no
               version folder ever holds a short or wrong file, and the final files' SHA-256
               equal the registry's.
  token        every registry call needs the admin token: none gets UNAUTHENTICATED, a wrong one
               PERMISSION_DENIED; a follower with a wrong token stays not ready.
  grpcio       GetLabels / SetLabels / SetVersionStatus / GetVersionStatus from grpcio, a client nobody here wrote.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import signal
import socket
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
                        str(ROOT / "protos" / "swerve_registry.proto"), str(ROOT / "protos" / "swerve_training.proto")],
                       capture_output=True, text=True)
if _done.returncode != 0:
    raise RuntimeError(_done.stderr)

import swerve_registry_pb2 as rpb  # noqa: E402
import swerve_registry_pb2_grpc as rpb_grpc  # noqa: E402

TOKEN = "registry-interop-token-0123456789abcdef"
BIG_FLOATS = 262_144  # a 1 MiB initializer: the model spans several 256 KiB chunks
CUT_AFTER = 300_000   # bytes from the registry on the proxied follower's first connection


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_big_model(path: Path) -> None:
    """Y = X + B, X float [N, 262144], B a 1 MiB initializer of distinct values."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    bias = numpy_helper.from_array((np.arange(BIG_FLOATS, dtype=np.float32) * 1e-3), name="B")
    graph = helper.make_graph(
        [helper.make_node("Add", ["X", "B"], ["Y"])], "big",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, BIG_FLOATS])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, BIG_FLOATS])], [bias])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


class Registry:
    """A `swerve registry` child process."""

    def __init__(self, repository: Path, log_path: Path, token_file: Path, tls=None, extra_args=()):
        self.repository, self.log_path, self.token_file = repository, log_path, token_file
        self.port = oip.free_port()
        self.proc: subprocess.Popen | None = None
        self.extra_args = (["--tls-cert", str(tls.cert), "--tls-key", str(tls.key)] if tls else []) + list(extra_args)
        self.channel = (grpc.secure_channel(f"127.0.0.1:{self.port}", grpc.ssl_channel_credentials(root_certificates=tls.ca_cert.read_bytes()))
                        if tls else grpc.insecure_channel(f"127.0.0.1:{self.port}"))
        self.stub = rpb_grpc.RegistryStub(self.channel)
        self.auth = (("authorization", f"Bearer {TOKEN}"),)

    def start(self, timeout: float = 30) -> "Registry":
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [oip.swerve_bin(), "registry", "--repository", str(self.repository), "--host", "127.0.0.1",
                 "--port", str(self.port), "--admin-token-file", str(self.token_file), *self.extra_args],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"registry exited:\n{self.log_tail()}"
            try:
                self.stub.GetLabels(rpb.LabelsRequest(model_name="bc"), metadata=self.auth, timeout=1)
                return self
            except grpc.RpcError:
                time.sleep(0.1)
        raise TimeoutError(f"registry not up:\n{self.log_tail()}")

    def stop(self) -> int | None:
        self.channel.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode if self.proc else None

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


class CuttingProxy:
    """Forwards 127.0.0.1:port to the registry; closes its FIRST connection once `cut_after`
    bytes have come back from the registry. Later connections pass untouched."""

    def __init__(self, target_port: int, cut_after: int):
        self.target_port, self.cut_after = target_port, cut_after
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.cut = threading.Event()
        self.connections = 0
        self.sockets: list[socket.socket] = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            index = self.connections
            self.connections += 1
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            self.sockets += [client, upstream]
            limit = self.cut_after if index == 0 else None
            threading.Thread(target=self._pump, args=(client, upstream, None), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, limit), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, limit: int | None) -> None:
        sent = 0
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if limit is not None and sent + len(data) >= limit:
                    dst.sendall(data[: max(0, limit - sent)])
                    self.cut.set()
                    break
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self.closed = True
        self.listener.close()
        for s in self.sockets:
            try:
                s.close()
            except OSError:
                pass


class FolderGuard:
    """Watches a follower's local folder while it fetches: a visible version folder must never
    hold a model.onnx of another size than the registry's (stat every 10 ms)."""

    def __init__(self, local: Path, expected_sizes: dict[str, int]):
        self.local, self.expected = local, expected_sizes
        self.violations: list[str] = []
        self.observations = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.is_set():
            for rel, size in self.expected.items():
                p = self.local / rel
                try:
                    got = p.stat().st_size
                except OSError:
                    continue
                self.observations += 1
                if got != size:
                    self.violations.append(f"{rel}: {got} bytes, registry has {size}")
            time.sleep(0.01)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)


def index(server: oip.Server) -> list[tuple[str, str, str]]:
    resp = server.stub().RepositoryIndex(oip.pb.RepositoryIndexRequest(), timeout=10)
    return sorted((m.name, m.version, m.state) for m in resp.models)


def local_files(local: Path) -> dict[str, str]:
    """Every file under the local copy's version folders, with its SHA-256; and labels/config."""
    out = {}
    for p in sorted(local.rglob("*")):
        rel = p.relative_to(local)
        if p.is_file() and not any(part.startswith(".") for part in rel.parts):
            out[str(rel)] = sha256(p)
    return out


def registry_files(repo: Path, wanted: dict[str, list[int]]) -> dict[str, str]:
    out = {}
    for model, versions in wanted.items():
        for v in versions:
            for p in sorted((repo / model / str(v)).iterdir()):
                out[f"{model}/{v}/{p.name}"] = sha256(p)
        for name in ("config.json",):
            if (repo / model / name).exists():
                out[f"{model}/{name}"] = sha256(repo / model / name)
    return out


@pytest.fixture
def env(tmp_path):
    started: list = []
    yield tmp_path, started
    for p in reversed(started):
        p.stop() if not isinstance(p, CuttingProxy) else p.close()


def test_followers_converge_catch_up_and_survive_a_cut_transfer(env):
    tmp, started = env
    repo = tmp / "registry"
    shutil.copytree(ROOT / "examples" / "repository" / "breast_cancer_logreg", repo / "bc")
    write_big_model(repo / "big" / "1" / "model.onnx")
    token_file = tmp / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)

    registry = Registry(repo, tmp / "registry.log", token_file).start()
    started.append(registry)
    auth = registry.auth

    # grpcio sets the labels (compare-and-set from generation 0) and reads them back.
    labels = registry.stub.SetLabels(rpb.SetLabelsRequest(labels=rpb.ModelLabels(model_name="bc", stable=1, reason="interop")),
                                     metadata=auth, timeout=10)
    assert (labels.stable, labels.generation, labels.reason) == (1, 1, "interop")
    got = registry.stub.GetLabels(rpb.LabelsRequest(model_name="bc"), metadata=auth, timeout=10)
    assert (got.stable, got.canary, got.generation) == (1, 0, 1) and got.updated
    oip.expect_code(grpc.StatusCode.ABORTED, registry.stub.SetLabels,
                    rpb.SetLabelsRequest(labels=rpb.ModelLabels(model_name="bc", stable=1, generation=0)), metadata=auth, timeout=10)
    status = registry.stub.SetVersionStatus(rpb.SetVersionStatusRequest(model_name="bc", version=1, status="serving", reason="interop"),
                                            metadata=auth, timeout=10)
    assert status.status == "serving"
    assert json.loads((repo / "bc" / "1" / "metadata.json").read_text())["status"] == "serving"
    oip.expect_code(grpc.StatusCode.INVALID_ARGUMENT, registry.stub.SetVersionStatus,
                    rpb.SetVersionStatusRequest(model_name="bc", version=1, status="bogus"), metadata=auth, timeout=10)
    got = registry.stub.GetVersionStatus(rpb.FetchVersionRequest(model_name="bc", version=1), metadata=auth, timeout=10)
    assert (got.status, got.reason) == ("serving", "interop")
    oip.expect_code(grpc.StatusCode.NOT_FOUND, registry.stub.GetVersionStatus,
                    rpb.FetchVersionRequest(model_name="bc", version=99), metadata=auth, timeout=10)

    # The token: none → UNAUTHENTICATED, a wrong one → PERMISSION_DENIED, for reads too.
    oip.expect_code(grpc.StatusCode.UNAUTHENTICATED, registry.stub.GetLabels, rpb.LabelsRequest(model_name="bc"), timeout=10)
    oip.expect_code(grpc.StatusCode.PERMISSION_DENIED, registry.stub.GetLabels, rpb.LabelsRequest(model_name="bc"),
                    metadata=(("authorization", "Bearer wrong-token"),), timeout=10)
    with pytest.raises(grpc.RpcError) as e:
        next(iter(registry.stub.FetchVersion(rpb.FetchVersionRequest(model_name="big", version=1), timeout=10)))
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED

    # grpcio fetches a version: chunks of at most 256 KiB, trailers with size and SHA-256.
    data, trailer = bytearray(), None
    for chunk in registry.stub.FetchVersion(rpb.FetchVersionRequest(model_name="big", version=1), metadata=auth, timeout=30):
        assert len(chunk.data) <= 256 << 10
        if chunk.file == "model.onnx":
            assert chunk.offset == len(data)
            data += chunk.data
            if chunk.last:
                trailer = chunk
    assert trailer is not None and trailer.sha256 == hashlib.sha256(data).hexdigest() == sha256(repo / "big" / "1" / "model.onnx")

    proxy = CuttingProxy(registry.port, CUT_AFTER)
    started.append(proxy)
    follow = ["--follow-token-file", str(token_file)]
    local_a, local_b = tmp / "local-a", tmp / "local-b"
    guard = FolderGuard(local_a, {"big/1/model.onnx": (repo / "big" / "1" / "model.onnx").stat().st_size})
    a = oip.Server(local_a, tmp / "a.log", ["--follow", f"127.0.0.1:{proxy.port}", *follow])
    b = oip.Server(local_b, tmp / "b.log", ["--follow", f"127.0.0.1:{registry.port}", *follow])
    started += [a, b]
    a.start(timeout=60, wait_for=["bc", "big"])
    b.start(timeout=60, wait_for=["bc", "big"])
    guard.stop()

    # The proxied follower's first transfer was cut and retried; nothing short was ever visible.
    assert proxy.cut.is_set() and proxy.connections >= 2, (proxy.connections, a.log_tail())
    assert guard.violations == [], guard.violations
    samples = oip.parse_metrics(a.metrics())
    assert oip.metric_sum(samples, "swerve_registry_connected") == 1
    assert oip.metric_sum(samples, "swerve_registry_fetches_total", result="ok") >= 2
    assert oip.metric_sum(samples, "swerve_registry_fetch_bytes_total") >= BIG_FLOATS * 4

    want = registry_files(repo, {"bc": [1], "big": [1]})
    for local in (local_a, local_b):
        files = local_files(local)
        assert {k: v for k, v in files.items() if not k.endswith("labels.json")} == want
        assert json.loads((local / "bc" / "labels.json").read_text()) == json.loads((repo / "bc" / "labels.json").read_text())
        assert not [p for p in local.rglob(".tmp-*")], list(local.rglob(".tmp-*"))
    assert index(a) == index(b)

    # A version published into the registry (staged in a .tmp folder, renamed) reaches both.
    staged = repo / "bc" / ".tmp-interop"
    shutil.copytree(repo / "bc" / "1", staged)
    published = time.monotonic()
    staged.rename(repo / "bc" / "2")
    for s in (a, b):
        oip.wait_until(lambda: s.stub().ModelReady(oip.pb.ModelReadyRequest(name="bc", version="2"), timeout=5).ready,
                       30, lambda: f"bc v2 ready on {s.address}:\n{s.log_tail()}")
    print(f"publish to ready on both followers: {time.monotonic() - published:.2f} s (registry poll 300 ms, debug build)")
    # latest 1 wants v2; the stable label keeps v1.
    want = registry_files(repo, {"bc": [1, 2], "big": [1]})
    oip.wait_until(lambda: all({k: v for k, v in local_files(l).items() if not k.endswith("labels.json")} == want
                               for l in (local_a, local_b)), 20, "both local copies hold bc v1 and v2")
    assert index(a) == index(b)

    # A follower started later catches up.
    local_c = tmp / "local-c"
    c = oip.Server(local_c, tmp / "c.log", ["--follow", f"127.0.0.1:{registry.port}", *follow])
    started.append(c)
    c.start(timeout=60, wait_for=["bc", "big"])
    assert {k: v for k, v in local_files(local_c).items() if not k.endswith("labels.json")} == want
    assert index(c) == index(a)

    # A label change reaches every follower's labels.json.
    current = registry.stub.GetLabels(rpb.LabelsRequest(model_name="bc"), metadata=auth, timeout=10)
    registry.stub.SetLabels(rpb.SetLabelsRequest(labels=rpb.ModelLabels(
        model_name="bc", stable=1, canary=2, canary_percent=25, generation=current.generation, reason="canary")),
        metadata=auth, timeout=10)
    registry_labels = json.loads((repo / "bc" / "labels.json").read_text())
    for local in (local_a, local_b, local_c):
        oip.wait_until(lambda: (local / "bc" / "labels.json").exists()
                       and json.loads((local / "bc" / "labels.json").read_text()) == registry_labels,
                       20, f"the canary label in {local}")
    # Every follower acts on them: the labelled versions are loaded and the labels resolve.
    for s in (a, b, c):
        for version in ("1", "2", "stable", "canary"):
            oip.wait_until(lambda: s.stub().ModelReady(oip.pb.ModelReadyRequest(name="bc", version=version), timeout=5).ready,
                           20, lambda: f"bc {version} ready on {s.address}:\n{s.log_tail()}")

    # A follower with a wrong token is refused and never ready.
    bad_token = tmp / "bad-token"
    bad_token.write_text("not-the-registry-token-at-all\n")
    bad_token.chmod(0o600)
    d = oip.Server(tmp / "local-d", tmp / "d.log", ["--follow", f"127.0.0.1:{registry.port}", "--follow-token-file", str(bad_token)])
    started.append(d)
    d.start(timeout=60, require_server_ready=False)
    oip.wait_until(lambda: "PERMISSION_DENIED" in d.log_path.read_text(errors="replace") or "permissionDenied" in d.log_path.read_text(errors="replace"),
                   15, lambda: f"the refusal in the wrong-token follower's log:\n{d.log_tail()}")
    assert not d.stub().ServerReady(oip.pb.ServerReadyRequest(), timeout=5).ready
    assert not list((tmp / "local-d").rglob("model.onnx"))


def test_trainer_serves_the_registry_beside_the_trainer(env):
    tmp, started = env
    repo = tmp / "repository"
    shutil.copytree(ROOT / "examples" / "repository" / "breast_cancer_logreg", repo / "bc")
    token_file = tmp / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    port = oip.free_port()
    with open(tmp / "trainer.log", "ab") as log:
        proc = subprocess.Popen(
            [oip.swerve_bin(), "trainer", "--repository", str(repo), "--state-dir", str(tmp / "state"), "--host", "127.0.0.1",
             "--grpc-port", str(port), "--admin-token-file", str(token_file)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    class Proc:  # stopped by the fixture like the others
        def stop(self):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
    started.append(Proc())
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = rpb_grpc.RegistryStub(channel)
    auth = (("authorization", f"Bearer {TOKEN}"),)
    labels = oip.wait_until(lambda: _try(lambda: stub.GetLabels(rpb.LabelsRequest(model_name="bc"), metadata=auth, timeout=1)),
                            30, lambda: (tmp / "trainer.log").read_text(errors="replace"))
    assert labels.generation == 0 and labels.model_name == "bc"
    oip.expect_code(grpc.StatusCode.UNAUTHENTICATED, stub.GetLabels, rpb.LabelsRequest(model_name="bc"), timeout=10)
    # The Watch snapshot: bc with its one version and files, then the end-of-snapshot marker.
    watch = stub.Watch(rpb.RegistryWatchRequest(), metadata=auth, timeout=20)
    first, end = next(watch), next(watch)
    watch.cancel()
    assert first.model_name == "bc" and [v.version for v in first.versions] == [1]
    assert sorted(f.name for f in first.versions[0].files) == ["metadata.json", "model.onnx"]
    assert {f.name: f.sha256 for f in first.versions[0].files}["model.onnx"] == sha256(repo / "bc" / "1" / "model.onnx")
    assert first.config == (repo / "bc" / "config.json").read_bytes()
    assert end.end_of_snapshot and not end.model_name
    # The Trainer answers on the same port.
    import swerve_training_pb2 as tpb
    channel.unary_unary("/swerve.v1.Trainer/ListJobs", request_serializer=tpb.ListJobsRequest.SerializeToString,
                        response_deserializer=tpb.ListJobsResponse.FromString)(tpb.ListJobsRequest(), timeout=10)
    channel.close()


def _try(call):
    try:
        return call()
    except grpc.RpcError:
        return None


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_a_follower_reaches_a_registry_over_tls(env):
    from test_tls import PKI
    tmp, started = env
    pki = PKI(tmp)
    repo = tmp / "registry"
    shutil.copytree(ROOT / "examples" / "repository" / "breast_cancer_logreg", repo / "bc")
    token_file = tmp / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    registry = Registry(repo, tmp / "registry.log", token_file, tls=pki).start()
    started.append(registry)
    follow = ["--follow", f"127.0.0.1:{registry.port}", "--follow-token-file", str(token_file), "--follow-tls"]
    a = oip.Server(tmp / "local-a", tmp / "a.log", [*follow, "--follow-ca-cert", str(pki.ca_cert)])
    started.append(a)
    a.start(timeout=60, wait_for=["bc"])
    assert sha256(tmp / "local-a" / "bc" / "1" / "model.onnx") == sha256(repo / "bc" / "1" / "model.onnx")
    # Without the CA the registry's certificate is not trusted: never ready, nothing fetched.
    b = oip.Server(tmp / "local-b", tmp / "b.log", follow)
    started.append(b)
    b.start(timeout=60, require_server_ready=False)
    oip.wait_until(lambda: "registry follow interrupted" in b.log_path.read_text(errors="replace"), 15,
                   lambda: f"the TLS refusal in the follower's log:\n{b.log_tail()}")
    assert not b.stub().ServerReady(oip.pb.ServerReadyRequest(), timeout=5).ready
    assert not list((tmp / "local-b").rglob("model.onnx"))


def test_a_watch_whose_client_does_not_read_is_reset_and_the_registry_goes_on(env):
    """A hand-made HTTP/2 client opens a Watch with a zero flow-control window and never grants
    any: the snapshot cannot go out, and after --response-window-timeout the stream is reset
    (RST_STREAM ENHANCE_YOUR_CALM); the registry keeps answering others."""
    import hpack
    import struct
    tmp, started = env
    repo = tmp / "registry"
    shutil.copytree(ROOT / "examples" / "repository" / "breast_cancer_logreg", repo / "bc")
    token_file = tmp / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    registry = Registry(repo, tmp / "registry.log", token_file, extra_args=["--response-window-timeout", "1"]).start()
    started.append(registry)

    def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
        return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload

    sock = socket.create_connection(("127.0.0.1", registry.port), timeout=5)
    try:
        block = hpack.Encoder().encode([(":method", "POST"), (":scheme", "http"), (":path", "/swerve.v1.Registry/Watch"),
                                        (":authority", "127.0.0.1"), ("content-type", "application/grpc"), ("te", "trailers"),
                                        ("authorization", f"Bearer {TOKEN}")])
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(0x4, 0, 0, struct.pack(">HI", 0x4, 0))  # INITIAL_WINDOW_SIZE 0
                     + frame(0x1, 0x4, 1, block) + frame(0x0, 0x1, 1, b"\x00\x00\x00\x00\x00"))
        buf, reset, data_bytes = b"", None, 0
        deadline = time.monotonic() + 20
        while reset is None and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
            while len(buf) >= 9 and len(buf) >= 9 + int.from_bytes(buf[:3], "big"):
                length, kind, flags = int.from_bytes(buf[:3], "big"), buf[3], buf[4]
                sid = int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
                payload, buf = buf[9:9 + length], buf[9 + length:]
                if kind == 0x4 and not flags & 0x1:
                    sock.sendall(frame(0x4, 0x1, 0))  # SETTINGS ACK, never a WINDOW_UPDATE
                elif kind == 0x3 and sid == 1:
                    reset = struct.unpack(">I", payload)[0]
                elif kind == 0x0 and sid == 1:
                    data_bytes += len(payload)
        assert reset == 0xB, f"RST_STREAM code {reset} (expected ENHANCE_YOUR_CALM), log:\n{registry.log_tail()}"
        assert data_bytes == 0
    finally:
        sock.close()
    got = registry.stub.GetLabels(rpb.LabelsRequest(model_name="bc"), metadata=registry.auth, timeout=10)
    assert got.model_name == "bc"
