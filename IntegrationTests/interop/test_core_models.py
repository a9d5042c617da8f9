"""The core benchmark's models (benchmarks/make_core_models.py: torch-style MLPs with Relu, Tanh,
Sigmoid, spelled-out GELU, LayerNorm and Softmax heads) served by Swerve, against onnxruntime on
the same files: every batch size the benchmark uses, and rows of extreme values."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import oip

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def core_server(tmp_path_factory):
    base = tmp_path_factory.mktemp("core_models")
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "make_core_models.py"), str(base / "files")],
                         check=True, capture_output=True, text=True, timeout=120)
    names = out.stdout.split()
    repo = base / "repository"
    for name in names:
        (repo / name / "1").mkdir(parents=True)
        (repo / name / "1" / "model.onnx").write_bytes((base / "files" / f"{name}.onnx").read_bytes())
        # Computed on every request (no cache), batches up to the benchmark's largest.
        (repo / name / "config.json").write_text(json.dumps({"max_batch_size": 256, "serving_mode": "dynamic"}))
    srv = oip.Server(repo, base / "swerve.log")
    srv.start()
    yield srv, names, base / "files"
    srv.stop()


def test_core_models_match_onnxruntime(core_server):
    srv, names, files = core_server
    assert len(names) >= 8, names
    stub = srv.stub(srv.channel())
    rng = np.random.default_rng(5)
    for name in names:
        width = oip.ort_session(str(files / f"{name}.onnx")).get_inputs()[0].shape[1]
        for batch in (1, 32, 256):
            x = (2 * rng.standard_normal((batch, width))).astype(np.float32)
            if batch >= 32:
                x[0, :] = 30.0   # saturates tanh/sigmoid/GELU, large logits
                x[1, :] = -30.0
                x[2, : width // 2] = 0.0
            got = oip.infer(stub, name, {"input": x}, timeout=30)
            want = oip.ort_run(files / f"{name}.onnx", {"input": x})
            oip.assert_matches(got, want, context=f"{name} batch {batch}: ")
