"""deploy/kubernetes/: the manifests are valid Kubernetes objects (checked against the API schemas
that the `kubernetes-validate` package bundles, strictly: unknown fields fail), and what they tell
the replica to do works with this build of `swerve serve`: its arguments parse and start a ready
server, the probes point at the endpoints that answer, and the grace period covers the shutdown
order the arguments set (preStop sleep + --drain-seconds + the in-flight bound)."""
from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

import oip

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
# The oldest API the manifests claim: preStop's `sleep` action (PodLifecycleSleepAction) is on by
# default from Kubernetes 1.30.
KUBE_VERSIONS = ("1.30.0", "1.37.0")


def validator() -> str:
    path = Path(sys.executable).parent / "kubernetes-validate"
    if not path.exists():
        found = shutil.which("kubernetes-validate")
        assert found, "kubernetes-validate is not installed (IntegrationTests/interop/requirements.txt)"
        return found
    return str(path)


def validate(path: Path, version: str) -> subprocess.CompletedProcess:
    return subprocess.run([validator(), "--strict", "-k", version, str(path)],
                          capture_output=True, text=True, timeout=120)


def manifests() -> list[Path]:
    files = sorted(p for p in KUBE.glob("*.yaml") if p.name != "kustomization.yaml")
    assert files, "no manifests in deploy/kubernetes"
    return files


def deployment() -> dict:
    docs = [d for d in yaml.safe_load_all((KUBE / "deployment.yaml").read_text()) if d]
    (dep,) = [d for d in docs if d["kind"] == "Deployment"]
    return dep


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_every_manifest_validates_strictly(version):
    for path in manifests():
        done = validate(path, version)
        assert done.returncode == 0, f"{path.name} against {version}:\n{done.stdout}{done.stderr}"


def test_the_validator_rejects_a_broken_deployment(tmp_path):
    """The check above can fail: an unknown field and a mistyped value are both caught."""
    text = (KUBE / "deployment.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("minReadySeconds: 5", "minReadySeconds: 5\n  replicaz: 3"))
    assert validate(bad, KUBE_VERSIONS[0]).returncode != 0
    bad.write_text(text.replace("periodSeconds: 2", 'periodSeconds: "two"'))
    assert validate(bad, KUBE_VERSIONS[0]).returncode != 0


def test_kustomization_lists_every_applied_manifest():
    kust = yaml.safe_load((KUBE / "kustomization.yaml").read_text())
    listed = set(kust["resources"])
    for path in manifests():
        if path.name.endswith(".example.yaml"):
            assert path.name not in listed, f"{path.name} is an example and must not be applied"
        else:
            assert path.name in listed, f"{path.name} is not in kustomization.yaml"


def _flag(args: list[str], name: str) -> str | None:
    for a in args:
        if a.startswith(f"--{name}="):
            return a.split("=", 1)[1]
    return None


def test_deployment_rollout_and_shutdown_settings_agree():
    dep = deployment()
    spec = dep["spec"]
    assert spec["strategy"]["type"] == "RollingUpdate"
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = spec["template"]["spec"]
    (c,) = pod["containers"]
    args = c["args"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert int(_flag(args, "grpc-port")) == ports["grpc"]
    assert int(_flag(args, "metrics-port")) == ports["http-metrics"]
    assert c["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http-metrics"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http-metrics"}
    # The token file the arguments name is where the Secret is mounted.
    token = _flag(args, "admin-token-file")
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert token is not None and Path(token).parent == Path(mounts["admin-token"])
    secret = next(v for v in pod["volumes"] if v["name"] == "admin-token")["secret"]["secretName"]
    example = yaml.safe_load((KUBE / "admin-token-secret.example.yaml").read_text())
    assert example["metadata"]["name"] == secret and Path(token).name in example["stringData"]
    # Grace covers preStop + drain + the in-flight bound (the shutdown timeout's default unless set).
    pre_stop = c["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = float(_flag(args, "drain-seconds"))
    in_flight = float(_flag(args, "shutdown-timeout") or serve_default("shutdown-timeout"))
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + drain + in_flight, \
        (pod["terminationGracePeriodSeconds"], pre_stop, drain, in_flight)


def serve_default(flag: str) -> str:
    """The default `swerve serve --help` states for --flag."""
    text = subprocess.run([oip.swerve_bin(), "serve", "--help"], capture_output=True, text=True,
                          timeout=60).stdout
    text = re.sub(r"\s+", " ", text)
    m = re.search(rf"--{re.escape(flag)} <[^>]+>.*?\(default: ([0-9.]+)\)", text)
    assert m, f"--{flag} and its default not found in swerve serve --help"
    return m.group(1)


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, OSError):
        return 0  # not listening (yet)


def test_deployment_arguments_start_a_ready_replica_that_drains_and_exits_0(tmp_path):
    """The container's arguments, run by this build on loopback: the repository, ports and token
    path are moved to the test's own, everything else is as the manifest says."""
    (c,) = deployment()["spec"]["template"]["spec"]["containers"]
    token = tmp_path / "token"
    token.write_text("a-test-token\n")
    token.chmod(0o600)
    grpc_port, metrics_port = oip.free_port(), oip.free_port()
    replaced = {"repository": str(ROOT / "examples" / "repository"), "host": "127.0.0.1",
                "grpc-port": str(grpc_port), "metrics-port": str(metrics_port),
                "admin-token-file": str(token)}
    args = []
    for a in c["args"]:
        name = a[2:].split("=", 1)[0] if a.startswith("--") else None
        args.append(f"--{name}={replaced[name]}" if name in replaced else a)
    assert args[0] == "serve"
    log = open(tmp_path / "swerve.log", "wb")
    proc = subprocess.Popen([oip.swerve_bin(), *args], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{metrics_port}"
        oip.wait_until(lambda: proc.poll() is None and _get(base + "/v2/health/ready") == 200, 120,
                       "the replica to turn ready")
        assert _get(base + "/v2/health/live") == 200
        proc.send_signal(signal.SIGTERM)
        oip.wait_until(lambda: _get(base + "/v2/health/ready") == 503, 5, "readiness to turn 503 on SIGTERM")
        drain = float(next(a for a in args if a.startswith("--drain-seconds=")).split("=", 1)[1])
        assert proc.wait(timeout=drain + 30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=15)
        log.close()
