"""Durability under SIGKILL: `swerve wal-stress` (example log) and `swerve publish`.

The log is read back here by an independent reader (zlib's CRC-32, struct), so the on-disk
format is checked by code that shares nothing with the Swift implementation:

    u32 length | u32 crc32(length bytes + sequence bytes + payload) | u64 sequence | payload

where the length field's top bit says more records of the same append follow: an append of
several records counts whole or not at all.
"""
from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import time
import zlib
from pathlib import Path

import pytest

import oip

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "Tests" / "SwerveInferenceTests" / "Fixtures" / "linear_regression.onnx"


def _has_command(name: str) -> bool:
    try:
        done = subprocess.run([oip.swerve_bin(), name, "--help"], capture_output=True, text=True, timeout=30)
    except (RuntimeError, OSError):
        return False
    # An unregistered subcommand with --help prints the root help and exits 0 too.
    return done.returncode == 0 and f"swerve {name}" in done.stdout


CONTINUES = 1 << 31


def read_log(directory: Path, suffix: str = ".wal") -> list[tuple[int, bytes]]:
    """Every valid record, stopping at the first torn or corrupt one (as recovery does); the
    records of an append whose last record is missing do not count. `suffix`: the segments'
    (".wal" for the example log, ".plog" for the server's prediction log, same framing)."""
    records: list[tuple[int, bytes]] = []
    segments = sorted(directory.glob(f"segment-*{suffix}"))
    expected = int(segments[0].name[len("segment-"):-len(suffix)]) if segments else 1
    for seg in segments:
        assert int(seg.name[len("segment-"):-len(suffix)]) == expected, f"{seg.name}: gap in sequence"
        data = seg.read_bytes()
        off = 0
        unit: list[tuple[int, bytes]] = []  # records of an append whose end is not read yet
        while off + 16 <= len(data):
            field, crc, seq = struct.unpack_from("<IIQ", data, off)
            length = field & ~CONTINUES
            end = off + 16 + length
            if end > len(data):
                break
            if zlib.crc32(data[off + 8:end], zlib.crc32(data[off:off + 4])) != crc or seq != expected:
                break
            unit.append((seq, data[off + 16:end]))
            if not field & CONTINUES:
                records += unit
                unit = []
            expected += 1
            off = end
        expected -= len(unit)  # an unfinished append is cut (only the last segment can hold one)
    return records


def run_until(args: list[str], stop, timeout: float = 60.0) -> list[str]:
    """Runs swerve, reads stdout lines until stop(lines), SIGKILLs it, returns all lines printed."""
    proc = subprocess.Popen([oip.swerve_bin(), *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.decode().rstrip("\n"))
            if stop(lines):
                os.kill(proc.pid, signal.SIGKILL)
                break
        else:
            pytest.fail(f"swerve {' '.join(args)} did not get there in {timeout}s")
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        rest, _ = proc.communicate(timeout=30)
    lines += [x for x in rest.decode().split("\n") if x]
    return lines


needs_wal = pytest.mark.skipif(not _has_command("wal-stress"), reason="swerve has no wal-stress command")
needs_publish = pytest.mark.skipif(not _has_command("publish"), reason="swerve has no publish command")


@needs_wal
def test_acknowledged_examples_survive_sigkill(tmp_path):
    log = tmp_path / "log"
    acked: dict[int, str] = {}
    for round_ in range(3):
        lines = run_until(["wal-stress", "--dir", str(log), "--count", "1000000", "--threads", "4",
                           "--segment-bytes", "32768"],
                          lambda ls: sum(x.startswith("ack ") for x in ls) >= 500)
        for line in lines:
            if line.startswith("ack "):
                _, seq, ident = line.split(" ")
                acked[int(seq)] = ident
        records = read_log(log)
        by_seq = {seq: json.loads(payload)["id"] for seq, payload in records}
        assert [s for s, _ in records] == list(range(1, len(records) + 1))
        lost = {s: i for s, i in acked.items() if by_seq.get(s) != i}
        assert not lost, f"round {round_}: {len(lost)} acknowledged examples lost, e.g. {list(lost.items())[:5]}"
        assert len(acked) >= 500 * (round_ + 1)
    # A clean reopen recovers exactly what this reader sees (and appends after it).
    done = subprocess.run([oip.swerve_bin(), "wal-stress", "--dir", str(log), "--count", "1"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    first = done.stdout.splitlines()[0]
    assert first.startswith(f"recovered {len(records)} "), first
    assert f"ack {len(records) + 1} " in done.stdout


@needs_wal
def test_appends_of_many_examples_are_all_or_nothing_across_sigkill(tmp_path):
    """Appends of 50 examples each from 4 threads, SIGKILLed mid-stream three times: every
    acknowledged example survives, and every append in the log is whole (all 50 ids of it) — the
    reader above cuts an unfinished one as recovery does, and the raw bytes after the last whole
    append hold at most one unfinished append's records, which the next open truncates."""
    log = tmp_path / "log"
    acked: dict[int, str] = {}
    for round_ in range(3):
        lines = run_until(["wal-stress", "--dir", str(log), "--count", "1000000", "--threads", "4",
                           "--batch", "50", "--segment-bytes", "65536"],
                          lambda ls: sum(x.startswith("ack ") for x in ls) >= 1000)
        for line in lines:
            if line.startswith("ack "):
                _, seq, ident = line.split(" ")
                acked[int(seq)] = ident
        records = read_log(log)
        ids = [json.loads(payload)["id"] for _, payload in records]
        assert [s for s, _ in records] == list(range(1, len(records) + 1))
        # Every append is 50 records in a row: the log is whole appends, one after another.
        assert len(ids) % 50 == 0, f"round {round_}: {len(ids)} records is not whole appends of 50"
        for j in range(0, len(ids), 50):
            unit = ids[j].split("/")[0]
            assert ids[j:j + 50] == [f"{unit}/{k}" for k in range(50)], f"round {round_}: append at {j + 1} is not whole"
        by_seq = dict(zip((s for s, _ in records), ids))
        lost = {s: i for s, i in acked.items() if by_seq.get(s) != i}
        assert not lost, f"round {round_}: {len(lost)} acknowledged examples lost, e.g. {list(lost.items())[:5]}"
    # A clean reopen recovers exactly what this reader sees.
    done = subprocess.run([oip.swerve_bin(), "wal-stress", "--dir", str(log), "--count", "1"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith(f"recovered {len(records)} "), done.stdout


@needs_publish
def test_publish_killed_before_rename_leaves_no_partial_version(tmp_path):
    repo = tmp_path / "repo"
    lines = run_until(["publish", str(FIXTURE), "--repository", str(repo), "--name", "lr",
                       "--pause-before-rename", "60"], lambda ls: any(x.startswith("staged ") for x in ls))
    assert any(x.startswith("staged ") for x in lines)
    model_dir = repo / "lr"
    entries = sorted(p.name for p in model_dir.iterdir())
    assert not [e for e in entries if e.isdigit()], f"a version folder appeared: {entries}"
    assert [e for e in entries if e.startswith(".tmp-")], entries

    done = subprocess.run([oip.swerve_bin(), "publish", str(FIXTURE), "--repository", str(repo), "--name", "lr",
                           "--metadata", "framework=sklearn"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "published lr version 1" in done.stdout
    meta = json.loads((model_dir / "1" / "metadata.json").read_text())
    assert meta["source"] == "external" and meta["extra"]["framework"] == "sklearn"
    assert meta["model_fingerprint"].startswith("sha256:")
    assert (model_dir / "1" / "model.onnx").read_bytes() == FIXTURE.read_bytes()
