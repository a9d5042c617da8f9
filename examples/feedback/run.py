#!/usr/bin/env python3
"""Label feedback end to end: the drifting ad-conversion stream of examples/drift, served by
`swerve serve`, its labels fed back, and the continuous job retraining on the served traffic.

    python3 examples/feedback/run.py                 # 1-2 minutes; --help for the knobs

On 127.0.0.1 (free ports), in a temporary work dir (or --workdir), it

  1. generates the stream with examples/drift/generate.py (one CSV per week),
  2. starts `swerve trainer` and `swerve serve --poll-interval 1 --feedback-trainer ...` on an
     empty repository whose ads/config.json asks for a prediction log (served requests kept
     by id for their labels) and a drift monitor,
  3. submits one continuous job for "ads" that trains on the model's write-ahead log and on CSV
     files dropped in a watched directory, and drops week 0 there: the job's first round
     publishes v1,
  4. then week by week sends the week's rows as one-row ModelInfer requests with ids (inputs
     laid out as ModelMetadata and the version's reference_stats.json say), reads the week's drift
     window (ServingInsights/Drift), feeds the true labels back (Feedback/AppendLabels, which
     appends the joined examples to the trainer's log), and reads the online accuracy
     (swerve_online_metric on /metrics); when enough labels are in the log (min_batch_rows),
     it waits for the job's round and for the server to serve what it published,
  5. prints one line per week and a summary, and stops every process it started.
"""
from __future__ import annotations

import argparse
import collections
import json
import math
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DRIFT = ROOT / "examples" / "drift"
MODEL = "ads"

sys.path.insert(0, str(HERE))
from client import Client, read_rows  # noqa: E402  (generates the stubs into ./gen on first use)

import grpc  # noqa: E402
import grpc_service_pb2 as ipb  # noqa: E402
import swerve_training_pb2 as tpb  # noqa: E402
import swerve_training_pb2_grpc as tpb_grpc  # noqa: E402

T0 = time.monotonic()


def say(line: str) -> None:
    print(f"[{time.monotonic() - T0:6.1f}s] {line}", flush=True)


def on_sigterm(signum, frame):  # SIGTERM as Ctrl-C: unwind through the finally that stops the processes
    raise KeyboardInterrupt(f"signal {signum}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Processes:
    """The processes this script starts, stopped by PID (SIGTERM, then SIGKILL) whatever happens."""

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen, object, Path]] = []

    def start(self, name: str, argv: list[str], log: Path) -> subprocess.Popen:
        f = open(log, "ab")
        p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.procs.append((name, p, f, log))
        say(f"started {name} (pid {p.pid}): {' '.join(argv[1:])}  [log: {log}]")
        return p

    def check(self) -> None:
        for name, p, _, log in self.procs:
            if p.poll() is not None:
                tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-10:])
                raise RuntimeError(f"{name} (pid {p.pid}) exited with status {p.returncode}; the end of {log}:\n{tail}")

    def stop_all(self) -> None:
        # A second Ctrl-C or SIGTERM must not cut the cleanup short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for name, p, f, _ in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=10)
                say(f"stopped {name} (pid {p.pid}, status {p.returncode})")
            else:
                say(f"{name} (pid {p.pid}) had exited (status {p.returncode})")
            f.close()
        self.procs.clear()


def wait_until(what: str, check, timeout: float, procs: Processes, every: float = 0.2, report: float = 5.0):
    """Polls check() until it returns something truthy; a progress line every `report` seconds;
    raises after `timeout` seconds."""
    start = time.monotonic()
    next_report = start + report
    while True:
        procs.check()
        value = check()
        if value:
            return value
        now = time.monotonic()
        if now - start > timeout:
            raise TimeoutError(f"gave up waiting for {what} after {timeout:.0f} s")
        if now >= next_report:
            say(f"  ... still waiting for {what} ({now - start:.0f} s)")
            next_report = now + report
        time.sleep(every)


# ----------------------------------------------------------------------------------------------
# /metrics


METRIC_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def scrape(port: int) -> list[tuple[str, dict, float]]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out = []
    for line in text.splitlines():
        m = METRIC_LINE.match(line)
        if m and not line.startswith("#"):
            out.append((m.group(1), dict(LABEL.findall(m.group(2) or "")), float(m.group(3))))
    return out


def metric(samples, name: str, **labels) -> float | None:
    for n, l, v in samples:
        if n == name and all(l.get(k) == str(x) for k, x in labels.items()):
            return v
    return None


# ----------------------------------------------------------------------------------------------
# Drift


def psi(reference: list[float], actual: list[float], epsilon: float = 1e-4) -> float:
    """The server's formula (populationStabilityIndex), for windows merged here."""
    total = 0.0
    for r, a in zip(reference, actual):
        r, a = max(r, epsilon), max(a, epsilon)
        total += (a - r) * math.log(a / r)
    return total


def week_drift(vd, start_ms: int, end_ms: int, rows_sent: int) -> dict:
    """The drift of the traffic sent in [start_ms, end_ms): the window that starts at start_ms
    when it holds it all (the server's PSI), else the windows it spans merged (PSI computed here
    from their bin counts against the same reference)."""
    idx = [k for k, w in enumerate(vd.windows) if w.start_ms + vd.window_seconds * 1000 > start_ms and w.start_ms < end_ms]
    rows = sum(vd.windows[k].rows for k in idx)
    per_feature = {}
    if len(idx) == 1:
        k = idx[0]
        for f in vd.features:
            per_feature[f.name] = f.windows[k].psi
        drifted = vd.windows[k].drifted
        source = "window"
    else:
        for f in vd.features:
            bins = [0] * len(f.reference_proportions)
            for k in idx:
                for b, c in enumerate(f.windows[k].bin_counts):
                    bins[b] += c
            n = sum(bins)
            per_feature[f.name] = psi(list(f.reference_proportions), [c / n for c in bins]) if n >= vd.min_samples else float("nan")
        drifted = sum(1 for v in per_feature.values() if v > vd.psi_threshold)
        source = f"{len(idx)} windows merged"
    finite = {k: v for k, v in per_feature.items() if not math.isnan(v)}
    top = max(finite, key=finite.get) if finite else None
    return {"rows": rows, "rows_sent": rows_sent, "psi": per_feature, "max_psi": finite.get(top, float("nan")) if top else float("nan"),
            "max_feature": top or "-", "drifted": drifted, "source": source, "threshold": vd.psi_threshold}


# ----------------------------------------------------------------------------------------------
# The trainer's job events


class JobWatcher(threading.Thread):
    """Follows WatchJob: prints the lines that matter and queues each round's outcome."""

    KEEP = ("round ", "progressive validation", "batch quarantined", "rejected by the gates", "published",
            "validation:", "warm start", "failed")

    def __init__(self, stub, job_id: str) -> None:
        super().__init__(daemon=True)
        self.stub, self.job_id = stub, job_id
        self.rounds: queue.Queue = queue.Queue()
        self.lines: list[str] = []
        self.call = None

    def run(self) -> None:
        try:
            self.call = self.stub.WatchJob(tpb.JobRef(job_id=self.job_id))
            for e in self.call:
                line = e.progress_line
                if line.startswith(self.KEEP) and not line.startswith("running"):
                    self.lines.append(line)
                    say(f"  trainer: {line}")
                if line.startswith("round "):
                    m = re.match(r"round (\w+): (.*)", line)
                    self.rounds.put((m.group(1), m.group(2), e.status.published_version))
        except grpc.RpcError:
            pass  # cancelled at the end, or the trainer stopped

    def stop(self) -> None:
        if self.call is not None:
            self.call.cancel()


# ----------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--swerve", default=os.environ.get("SWERVE_BIN") or str(ROOT / ".build" / "debug" / "swerve"),
                    help="the swerve binary (default: $SWERVE_BIN, else .build/debug/swerve)")
    ap.add_argument("--workdir", help="work directory (default: a temporary one, removed at the end unless --keep)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary work directory")
    ap.add_argument("--weeks", type=int, default=11, help="weeks in the stream; week 0 trains v1, the rest are served")
    ap.add_argument("--rows-per-week", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--retrain-weeks", type=int, default=7,
                    help="the continuous job's min_batch_rows is this many weeks of labels (default 7)")
    ap.add_argument("--min-batch-rows", type=int, help="set min_batch_rows directly instead")
    ap.add_argument("--poll-seconds", type=int, default=1, help="the continuous job's poll interval")
    ap.add_argument("--window-seconds", type=int, default=5, help="the drift monitor's window (a week of traffic fits in one)")
    ap.add_argument("--psi-threshold", type=float, default=0.1, help="the monitor's PSI above which a feature counts as drifted")
    ap.add_argument("--concurrency", type=int, default=32, help="ModelInfer calls in flight")
    ap.add_argument("--label-chunk", type=int, default=250, help="labels per AppendLabels call")
    ap.add_argument("--label-calls", type=int, default=1,
                    help="AppendLabels calls in flight (more is faster, but the order of the examples in the "
                         "trainer's log, so its splits and the models, then differ from run to run)")
    ap.add_argument("--max-seconds", type=float, default=900, help="give up after this long")
    ap.add_argument("--json", help="also write the summary as JSON here (always written to WORKDIR/summary.json)")
    args = ap.parse_args()
    if args.weeks < 2:
        ap.error("--weeks must be at least 2")
    if not os.access(args.swerve, os.X_OK):
        ap.error(f"no swerve binary at {args.swerve} (swift build, or --swerve PATH / SWERVE_BIN)")
    min_batch_rows = args.min_batch_rows or args.retrain_weeks * args.rows_per_week

    signal.signal(signal.SIGTERM, on_sigterm)
    temporary = args.workdir is None
    work = Path(tempfile.mkdtemp(prefix="swerve-feedback-")) if temporary else Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    procs = Processes()
    ok = False
    try:
        summary = run(args, work, procs, min_batch_rows)
        ok = summary["story"]["ok"]
        return 0 if ok else 2
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    finally:
        procs.stop_all()
        if temporary and ok and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            say(f"work directory kept: {work}")


def run(args, work: Path, procs: Processes, min_batch_rows: int) -> dict:
    deadline = time.monotonic() + args.max_seconds

    def left(cap: float) -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"the run took longer than --max-seconds {args.max_seconds:.0f}")
        return min(cap, remaining)

    # 1. The stream.
    data, repo, incoming = work / "data", work / "repository", work / "incoming"
    for d in (repo / MODEL, incoming):
        d.mkdir(parents=True, exist_ok=True)
    out = subprocess.run([sys.executable, str(DRIFT / "generate.py"), "--out", str(data), "--weeks", str(args.weeks),
                          "--rows-per-week", str(args.rows_per_week), "--seed", str(args.seed)],
                         check=True, capture_output=True, text=True)
    say(out.stdout.strip())
    weeks = []
    for w in range(args.weeks):
        weeks.append(read_rows(str(data / "batches" / f"week-{w:02d}.csv")))

    # 2. The model's config before any version exists: the trainer adds versions and keeps it.
    config = {
        "prediction_log": {"sample_rate": 1.0, "max_bytes": 256 << 20, "join_window_seconds": 3600},
        "monitoring": {"sample_rate": 1.0, "window_seconds": args.window_seconds, "windows": 100,
                       "min_samples": min(200, max(10, args.rows_per_week // 2)), "psi_threshold": args.psi_threshold},
    }
    (repo / MODEL / "config.json").write_text(json.dumps(config, indent=2) + "\n")

    grpc_port, metrics_port, trainer_port = free_port(), free_port(), free_port()
    procs.start("trainer", [args.swerve, "trainer", "--repository", str(repo), "--grpc-port", str(trainer_port)],
                work / "trainer.log")
    procs.start("server", [args.swerve, "serve", "--repository", str(repo), "--grpc-port", str(grpc_port),
                           "--metrics-port", str(metrics_port), "--poll-interval", "1", "--drain-seconds", "0",
                           "--feedback-trainer", f"127.0.0.1:{trainer_port}",
                           # One append at a time: the examples reach the trainer's log in label
                           # order, so every run trains the same v2 (README "Run to run").
                           "--feedback-concurrency", "1"], work / "serve.log")
    trainer = tpb_grpc.TrainerStub(grpc.insecure_channel(f"127.0.0.1:{trainer_port}"))
    client = Client(f"127.0.0.1:{grpc_port}", MODEL)
    infer = client.infer

    def up(call):
        try:
            call()
            return True
        except grpc.RpcError:
            return False
    wait_until("the trainer", lambda: up(lambda: trainer.ListJobs(tpb.ListJobsRequest(), timeout=2)), left(30), procs)
    wait_until("the server", lambda: up(lambda: infer.ServerLive(ipb.ServerLiveRequest(), timeout=2)), left(30), procs)

    # 3. One continuous job: the model's write-ahead log (filled by the fed-back labels) and a
    #    watched directory (week 0, the history the first model is trained on).
    schema = (data / "schema.json").read_text()
    job = trainer.SubmitJob(tpb.SubmitJobRequest(
        model_name=MODEL, model_kind="logistic", schema_json=schema, continuous=True, data_path=str(incoming),
        hyperparameters={"epochs": "10", "lr": "0.05", "patience": "0", "min_batch_rows": str(min_batch_rows)},
        slice_column="category", started_by="feedback-example", poll_seconds=args.poll_seconds), timeout=10)
    say(f"continuous job {job.job_id} for {MODEL}: min_batch_rows {min_batch_rows} "
        f"({min_batch_rows / args.rows_per_week:g} weeks of labels), polling every {args.poll_seconds} s")
    watcher = JobWatcher(trainer, job.job_id)
    watcher.start()

    def ready(version: int) -> bool:
        try:
            return (infer.ModelReady(ipb.ModelReadyRequest(name=MODEL, version=str(version)), timeout=5).ready
                    and client.versions() == [str(version)])
        except grpc.RpcError:
            return False

    def await_round(why: str):
        state, text, version = wait_until(f"the job's round ({why})", lambda: next_round(), left(300), procs, report=10)
        if state == "succeeded":
            wait_until(f"the server to serve v{version}", lambda: ready(version), left(60), procs)
            say(f"  server: v{version} is serving")
        return state, text, version

    def next_round():
        try:
            return watcher.rounds.get_nowait()
        except queue.Empty:
            return None

    tmp = incoming / ".week-00.csv.tmp"
    shutil.copyfile(data / "batches" / "week-00.csv", tmp)
    tmp.rename(incoming / "week-00.csv")
    say(f"dropped week 0 ({len(weeks[0])} rows) in the watched directory: the job's first round trains v1")
    state, text, v1 = await_round("v1 from week 0")
    if state != "succeeded":
        raise RuntimeError(f"the first round did not publish v1: {text}")

    # 4. How the model wants its inputs: ModelMetadata (names, datatypes, widths), and where each
    #    feature sits in them: the `features` list of the version's reference_stats.json, as the
    #    drift monitor resolved it (ServingInsights/Drift).
    say("inputs: " + client.layout())
    label_col = json.loads(schema)["label"]

    online_seen: dict[str, tuple[int, int]] = {}  # version -> (joined labels, correct) at the last reading

    def online(version: str):
        samples = scrape(metrics_port)
        n = metric(samples, "swerve_online_labels_total", model=MODEL, version=version, outcome="joined") or 0
        acc = metric(samples, "swerve_online_metric", model=MODEL, version=version, metric="accuracy")
        holdout = metric(samples, "swerve_holdout_metric", model=MODEL, version=version, metric="accuracy")
        correct = round(acc * n) if acc is not None else 0
        n0, c0 = online_seen.get(version, (0, 0))
        online_seen[version] = (int(n), correct)
        week_acc = (correct - c0) / (n - n0) if n > n0 else float("nan")
        return acc if acc is not None else float("nan"), week_acc, holdout if holdout is not None else float("nan")

    # 5. Week by week.
    print()
    header = f"{'week':>4}  {'served by':>9}  {'max PSI':>7}  {'feature':<8}  {'drifted':>7}  {'online acc':>10}  {'(version)':>9}  {'holdout':>7}  event"
    say("week by week (drift of the week's window, labels fed back after it):")
    print(header, flush=True)
    table = []
    pending_labels = 0
    since_week = 1  # the first week whose labels the job has not trained on yet
    for week in range(1, args.weeks):
        left(1)
        rows = weeks[week]
        # Start on a fresh monitor window, so the week's traffic is one window.
        wlen = args.window_seconds
        now = time.time()
        time.sleep(math.ceil(now / wlen) * wlen - now + 0.05)
        start_ms = int(time.time() * 1000)
        serving = client.versions()[0]

        def observed(version: str) -> int:
            d = client.drift(version)
            return d.samples_observed + d.samples_dropped if d else 0
        observed_before = observed(serving)
        ids = [f"w{week:02d}-{i:05d}" for i in range(len(rows))]
        labels = [r[label_col] for r in rows]
        t_send = time.monotonic()
        answers = client.send(ids, rows, args.concurrency)
        end_ms = int(time.time() * 1000) + 1
        send_s = time.monotonic() - t_send
        versions = collections.Counter(v for v, _ in answers)
        served = "/".join(f"v{v}" for v in sorted(versions, key=int))
        main_version = versions.most_common(1)[0][0]
        if main_version != serving:
            observed_before = 0
        # The monitor takes samples on its own thread: wait until it has them all.
        wait_until("the drift monitor to take the week's requests",
                   lambda: observed(main_version) >= observed_before + versions[main_version], left(20), procs, every=0.1)
        vd = client.drift(main_version)
        drift = week_drift(vd, start_ms, end_ms, len(rows))
        if vd.samples_dropped:
            say(f"  note: the monitor of v{main_version} dropped {vd.samples_dropped} samples (queue full)")

        # Feed the labels back: joined with the logged predictions, counted into the online
        # metrics, appended to the trainer's log for the model (durable when the call returns).
        t_labels = time.monotonic()
        outcomes, forwarded = client.feed(ids, labels, args.label_chunk, args.label_calls, timeout=left(300))
        pending_labels += forwarded
        labels_s = time.monotonic() - t_labels
        online_total, online_week, holdout = online(main_version)
        client_acc = sum(p == l for (_, p), l in zip(answers, labels)) / len(rows)
        say(f"  week {week:02d}: {len(rows)} requests in {send_s:.1f} s (answered by {served}); "
            f"labels in {labels_s:.1f} s: {dict(outcomes)}; in the job's log since its last round: "
            f"{pending_labels}/{min_batch_rows}")
        if not math.isnan(online_week) and abs(online_week - client_acc) > 1e-9 and len(versions) == 1:
            say(f"  note: online accuracy from /metrics ({online_week:.4f}) differs from the client's count ({client_acc:.4f})")

        event = ""
        published = None
        if pending_labels >= min_batch_rows:
            state, text, version = await_round(f"{pending_labels} new labelled examples")
            # A round consumes the log up to where it read, whether it publishes or not.
            weeks_text = f"week {since_week}" if since_week == week else f"weeks {since_week}-{week}"
            if state == "succeeded":
                published = version
                event = f"v{version} published, trained on {pending_labels} fed-back labels ({weeks_text})"
            else:
                reason = re.sub(r" \(report: [^)]*\)$", "", text)
                reason = reason[len(state) + 2:] if reason.startswith(state + ": ") else reason
                event = f"round {state} ({weeks_text}): {reason}"
            pending_labels = 0
            since_week = week + 1
        entry = {"week": week, "served_by": served, "version": main_version, "rows": len(rows), "drift": drift,
                 "online_accuracy_week": online_week, "online_accuracy_version": online_total,
                 "client_accuracy": client_acc, "holdout_accuracy": holdout, "labels": dict(outcomes),
                 "published": published, "event": event}
        table.append(entry)
        print(format_row(entry), flush=True)

    # 6. The versions, from the registry.
    listing = trainer.ListVersions(tpb.ModelRef(model_name=MODEL), timeout=10)
    versions_out = []
    for v in listing.versions:
        lineage = json.loads(v.lineage_json or "{}")
        extra = lineage.get("extra", {})
        rows = lineage.get("row_counts", {})
        versions_out.append({
            "version": v.version, "status": v.status,
            "source": extra.get("source.files", "").rsplit("/", 1)[-1] or (f"log {extra['source.log_range']}" if "source.log_range" in extra else "?"),
            "rows": sum(rows.values()) if isinstance(rows, dict) else None,
            "holdout_accuracy": lineage.get("metrics", {}).get("accuracy"),
            "progressive_accuracy": float(extra["progressive.accuracy"]) if "progressive.accuracy" in extra else None,
            "baseline": extra.get("baseline_metrics"),
        })
    quarantined = sorted(p.parent.name for p in (repo / ".quarantine" / MODEL).glob("*/report.json"))
    rejected = sorted(p.name for p in (repo / ".rejected" / MODEL).glob("*")) if (repo / ".rejected" / MODEL).exists() else []

    story = tell(table, versions_out)
    print()
    say("summary")
    print(header)
    for e in table:
        print(format_row(e))
    print()
    print(f"{'version':>7}  {'status':<9}  {'trained on':<22}  {'rows':>6}  {'holdout acc':>11}  {'progressive acc':>15}")
    for v in versions_out:
        prog = f"{v['progressive_accuracy']:.4f}" if v["progressive_accuracy"] is not None else "-"
        hold = f"{v['holdout_accuracy']:.4f}" if v["holdout_accuracy"] is not None else "-"
        print(f"{'v' + str(v['version']):>7}  {v['status']:<9}  {v['source']:<22}  {v['rows'] or '-':>6}  {hold:>11}  {prog:>15}")
    if quarantined or rejected:
        print(f"quarantined batches: {quarantined or 'none'}; rejected candidates: {rejected or 'none'}")
    print()
    for line in story["lines"]:
        print(line)
    summary = {"weeks": table, "versions": versions_out, "quarantined": quarantined, "rejected": rejected,
               "story": story, "settings": {"weeks": args.weeks, "rows_per_week": args.rows_per_week, "seed": args.seed,
                                            "min_batch_rows": min_batch_rows, "window_seconds": args.window_seconds,
                                            "psi_threshold": args.psi_threshold},
               "seconds": time.monotonic() - T0}
    text = json.dumps(summary, indent=2, default=lambda x: None)
    (work / "summary.json").write_text(text)
    if args.json:
        Path(args.json).write_text(text)
    watcher.stop()
    return summary


def fmt(x: float, spec: str = ".4f") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def format_row(e: dict) -> str:
    d = e["drift"]
    return (f"{e['week']:>4}  {e['served_by']:>9}  {fmt(d['max_psi'], '.3f'):>7}  {d['max_feature']:<8}  "
            f"{str(d['drifted']) + '/' + str(len(d['psi'])):>7}  {fmt(e['online_accuracy_week']):>10}  "
            f"{fmt(e['online_accuracy_version']):>9}  {fmt(e['holdout_accuracy']):>7}  {e['event']}")


def tell(table: list[dict], versions: list[dict]) -> dict:
    """What the run showed, in a few sentences, and whether it is the expected story: the drift
    rises while the first version serves, a later version is published from served traffic, and
    the drift of the week after it is lower than that of the week before it."""
    lines = []
    first = table[0]["version"] if table else None
    before = [e for e in table if e["version"] == first]
    pub = next((e for e in table if e["published"]), None)
    ok = True
    if before:
        a, b = before[0], before[-1]
        lines.append(f"while v{first} served (weeks {a['week']}-{b['week']}) the week's largest PSI went from "
                     f"{fmt(a['drift']['max_psi'], '.3f')} ({a['drift']['max_feature']}) to {fmt(b['drift']['max_psi'], '.3f')} "
                     f"({b['drift']['max_feature']}), features over the threshold from {a['drift']['drifted']} to {b['drift']['drifted']}; "
                     f"online accuracy from {fmt(a['online_accuracy_week'])} to {fmt(b['online_accuracy_week'])}")
        ok &= b["drift"]["max_psi"] > a["drift"]["max_psi"]
    if pub is None:
        lines.append("no new version was published from served traffic")
        ok = False
    else:
        after = next((e for e in table if e["week"] == pub["week"] + 1), None)
        v = next((x for x in versions if x["version"] == pub["published"]), {})
        lines.append(f"after week {pub['week']}'s labels the continuous job published v{pub['published']} from "
                     f"{v.get('rows', '?')} served, labelled examples ({v.get('source', '?')}); holdout accuracy "
                     f"{fmt(v.get('holdout_accuracy'))}, v{first} on the same examples before training: {fmt(v.get('progressive_accuracy'))}")
        if after is None:
            lines.append("(no week left to serve it: run more weeks to see the drift after it)")
            ok = False
        else:
            lines.append(f"week {after['week']}, served by {after['served_by']}: largest PSI {fmt(after['drift']['max_psi'], '.3f')} "
                         f"({after['drift']['max_feature']}) against {fmt(pub['drift']['max_psi'], '.3f')} the week before; "
                         f"online accuracy {fmt(after['online_accuracy_week'])} against {fmt(pub['online_accuracy_week'])}")
            ok &= after["drift"]["max_psi"] < pub["drift"]["max_psi"] and after["version"] == str(pub["published"])
    lines.append("story: " + ("drift rose, a new version was trained on served traffic, drift fell back" if ok
                              else "NOT the expected story (see above)"))
    return {"ok": ok, "lines": lines, "published_week": pub["week"] if pub else None,
            "published_version": pub["published"] if pub else None}


if __name__ == "__main__":
    sys.exit(main())
