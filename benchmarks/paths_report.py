#!/usr/bin/env python3
"""The report of benchmarks/paths.sh: reads the `swerve bench --json` files of one run, replays
the Zipf stream offline against S3-FIFO and LRU (paths_replay.py), prints the table (each figure
beside its baseline and the ratio) and writes benchmarks/results/paths.json."""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path


def load(runs: Path, name: str, reps: int) -> list[dict]:
    out = []
    for rep in range(1, reps + 1):
        with open(runs / f"{name}_{rep}.json") as f:
            out.append(json.load(f))
    return out


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def figures(runs: list[dict]) -> dict:
    """Medians over repetitions of what one configuration measured."""
    def paths(r, part):
        p = r.get("path_statistics") or {}
        return p.get(part) or {}
    out = {
        "throughput_rps": med([r["throughput_rps"] for r in runs]),
        "p50_us": med([r["latency_micros"]["p50"] for r in runs]),
        "p99_us": med([r["latency_micros"]["p99"] for r in runs]),
        "errors": sum(r["errors"] for r in runs),
        "requests": [r["requests"] for r in runs],
        "per_rep_throughput_rps": [round(r["throughput_rps"], 1) for r in runs],
        "per_rep_p99_us": [r["latency_micros"]["p99"] for r in runs],
        "inputs": runs[0]["inputs"],
        "mode": paths(runs[0], "total").get("mode"),
        "active_path": [paths(r, "total").get("active_path") for r in runs],
    }
    measured = [paths(r, "measured") for r in runs]
    if any(m.get("cache_hits", 0) + m.get("cache_misses", 0) > 0 for m in measured):
        out["hit_ratio"] = med([m.get("hit_ratio") for m in measured])
        out["per_rep_hit_ratio"] = [round(m.get("hit_ratio", 0), 4) for m in measured]
        out["coalesced"] = [m.get("coalesced") for m in measured]
        out["cache_evictions"] = [m.get("cache_evictions") for m in measured]
    totals = [paths(r, "total") for r in runs]
    if any(t.get("cache_capacity_bytes") for t in totals):
        out["cache_capacity_bytes"] = totals[0].get("cache_capacity_bytes")
        out["cache_entries"] = [t.get("cache_entries") for t in totals]
        out["cache_bytes"] = [t.get("cache_bytes") for t in totals]
    if any(t.get("table_cells") for t in totals):
        out["table_cells"] = totals[0].get("table_cells")
        out["table_bytes"] = totals[0].get("table_bytes")
        out["table_build_ms"] = med([t.get("table_build_ms") for t in totals])
        out["table_lookups"] = [m.get("table_lookups") for m in measured]
        out["table_fallbacks"] = [m.get("table_fallbacks") for m in measured]
    if totals[0].get("mode") == "auto":
        out["cardinality"] = [t.get("cardinality") for t in totals]
        out["peakedness"] = [round(t.get("peakedness", 0), 4) for t in totals]
        out["path_switches"] = [t.get("path_switches") for t in totals]
        out["batcher_requests"] = [m.get("batcher_requests") for m in measured]
    return out


def shard_count(capacity: int) -> int:
    """ShardedCache's default: as many shards as keep each at >= 1 MiB, up to 16, a power of two."""
    wanted = max(1, min(min(16, capacity // (1 << 20)), 1 << 12))
    n = 1
    while n * 2 <= wanted:
        n *= 2
    return n


def replay(args, cached_runs: list[dict]) -> dict | None:
    """S3-FIFO vs LRU on each cached repetition's exact stream (probe + warm-up + measured)."""
    results = []
    for r in cached_runs:
        total = (r.get("path_statistics") or {}).get("total") or {}
        entries, used, capacity = total.get("cache_entries"), total.get("cache_bytes"), total.get("cache_capacity_bytes")
        if not entries or not capacity:
            return None
        cost = used // entries  # every entry of this stream costs the same bytes
        shards = shard_count(capacity)
        per_shard = (capacity // shards) // cost
        warm = r.get("warmup_requests") or 0
        count = 1 + warm + r["requests"]
        cmd = [sys.executable, args.replay, "--exponent", str(args.zipf), "--distinct", str(args.distinct),
               "--seed", str(r.get("seed", args.seed)), "--requests", str(count),
               "--entries-per-shard", str(per_shard), "--shards", str(shards), "--measured-from", str(1 + warm)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        out = json.loads(done.stdout)
        out["entry_cost_bytes"] = cost
        results.append(out)
    return {
        "s3fifo_hit_ratio": med([x["s3fifo"]["measured_hit_ratio"] for x in results]),
        "lru_hit_ratio": med([x["lru"]["measured_hit_ratio"] for x in results]),
        "entries": results[0]["entries_per_shard"] * results[0]["shards"],
        "shards": results[0]["shards"],
        "entry_cost_bytes": results[0]["entry_cost_bytes"],
        "per_rep": results,
    }


def ratio(a, b):
    return None if a is None or b in (None, 0) else a / b


def fmt(v, unit=""):
    if v is None:
        return "-"
    if isinstance(v, float):
        if unit == "ratio":
            return f"{v:.4f}"
        return f"{v:,.1f}" if v < 1e5 else f"{v:,.0f}"
    return f"{v:,}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=Path, required=True)
    ap.add_argument("--reps", type=int, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--replay", required=True)
    ap.add_argument("--zipf", type=float, required=True)
    ap.add_argument("--distinct", type=int, required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--cache-bytes", type=int, required=True)
    ap.add_argument("--concurrency", type=int, required=True)
    ap.add_argument("--duration", type=float, required=True)
    a = ap.parse_args()

    zc_runs = load(a.runs, "zipf_cached", a.reps)
    zc, zd = figures(zc_runs), figures(load(a.runs, "zipf_dynamic", a.reps))
    ua, ud = figures(load(a.runs, "uniform_auto", a.reps)), figures(load(a.runs, "uniform_dynamic", a.reps))
    st, sd = figures(load(a.runs, "ad_static", a.reps)), figures(load(a.runs, "ad_dynamic", a.reps))
    t0 = time.monotonic()
    rp = replay(a, zc_runs)
    replay_seconds = time.monotonic() - t0

    def paired(x, y, key):
        """Median of the per-repetition ratios (each pair ran back to back, so slow drifts in the
        machine's load cancel better than in the ratio of medians)."""
        return med([ratio(p, q) for p, q in zip(x[key], y[key])])

    tp, p99 = "per_rep_throughput_rps", "per_rep_p99_us"
    rows = [
        # (section, figure, value, baseline label, baseline value, paired ratio)
        ("a", "zipf throughput req/s", zc["throughput_rps"], "dynamic", zd["throughput_rps"], paired(zc, zd, tp)),
        ("a", "zipf p99 µs", zc["p99_us"], "dynamic", zd["p99_us"], paired(zc, zd, p99)),
        ("a", "zipf p50 µs", zc["p50_us"], "dynamic", zd["p50_us"], None),
        ("a", "server hit ratio (measured)", zc.get("hit_ratio"), "replayed S3-FIFO", rp and rp["s3fifo_hit_ratio"], None),
        ("a", "S3-FIFO hit ratio (replay)", rp and rp["s3fifo_hit_ratio"], "LRU (replay)", rp and rp["lru_hit_ratio"], None),
        ("b", "uniform throughput req/s", ua["throughput_rps"], "dynamic", ud["throughput_rps"], paired(ua, ud, tp)),
        ("b", "uniform p99 µs", ua["p99_us"], "dynamic", ud["p99_us"], paired(ua, ud, p99)),
        ("c", "ad throughput req/s", st["throughput_rps"], "dynamic", sd["throughput_rps"], paired(st, sd, tp)),
        ("c", "ad p99 µs", st["p99_us"], "dynamic", sd["p99_us"], paired(st, sd, p99)),
        ("c", "ad p50 µs", st["p50_us"], "dynamic", sd["p50_us"], None),
    ]
    mode = {"a": "cached", "b": "auto", "c": "static"}
    print()
    print(f"Serving paths: closed loop, concurrency {a.concurrency}, {a.duration:g} s per run, median of {a.reps} "
          f"repetitions (interleaved), one row per request; client and server share {platform.node()}'s cores.")
    print()
    header = ("", "figure", "value", "baseline", "baseline value", "ratio", "paired ratio")
    table = [header]
    for sec, name, v, blabel, bv, pr in rows:
        unit = "ratio" if "ratio" in name else ""
        table.append((sec, f"{name} [{mode[sec]}]" if "replay" not in name else name, fmt(v, unit), blabel,
                      fmt(bv, unit), fmt(ratio(v, bv), "ratio"), fmt(pr, "ratio")))
    widths = [max(len(str(r[i])) for r in table) for i in range(len(header))]
    for i, r in enumerate(table):
        print("  ".join(str(c).ljust(widths[j]) if j < 2 or j == 3 else str(c).rjust(widths[j]) for j, c in enumerate(r)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print("ratio = value / baseline (medians): above 1 is better for throughput and hit ratios, below 1 for")
    print("latency. paired ratio = median over repetitions of (run / the baseline run right after it).")
    print()
    if rp:
        print(f"a) cache: {a.cache_bytes:,} bytes = {rp['shards']} shards x {rp['entries'] // rp['shards']:,} entries "
              f"of {rp['entry_cost_bytes']} bytes; Zipf({a.zipf}) over {a.distinct:,}; stream of "
              f"{rp['per_rep'][0]['requests']:,} requests ({rp['per_rep'][0]['distinct_seen']:,} distinct; "
              f"no cache can beat {rp['per_rep'][0]['ideal_hit_ratio_upper_bound']:.4f} on the whole stream). "
              f"LRU measured offline only (replay {replay_seconds:.1f} s).")
        print(f"   server hit ratio per repetition {zc.get('per_rep_hit_ratio')}, coalesced {zc.get('coalesced')}, "
              f"evictions {zc.get('cache_evictions')}")
    print(f"b) auto: active path {ua['active_path']}, peakedness {ua.get('peakedness')}, cardinality "
          f"{ua.get('cardinality')}, switches {ua.get('path_switches')}; throughput ratio "
          f"{fmt(ratio(ua['throughput_rps'], ud['throughput_rps']), 'ratio')}, paired {fmt(paired(ua, ud, tp), 'ratio')} (target >= 0.95) per rep auto "
          f"{ua['per_rep_throughput_rps']} vs dynamic {ud['per_rep_throughput_rps']}")
    print(f"c) static table: {st.get('table_cells')} cells, {st.get('table_bytes')} bytes, built in "
          f"{st.get('table_build_ms')} ms; lookups {st.get('table_lookups')}, fallbacks {st.get('table_fallbacks')}")
    errors = sum(f["errors"] for f in (zc, zd, ua, ud, st, sd))
    if errors:
        print(f"WARNING: {errors} requests failed across the runs (see paths-runs/*.json)")

    report = {
        "kind": "paths",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": platform.node(),
        "concurrency": a.concurrency, "duration_seconds": a.duration, "repetitions": a.reps,
        "a_zipf_cached_vs_dynamic": {
            "zipf_exponent": a.zipf, "distinct": a.distinct, "cache_bytes": a.cache_bytes,
            "cached": zc, "dynamic": zd,
            "throughput_ratio": ratio(zc["throughput_rps"], zd["throughput_rps"]),
            "paired_throughput_ratio": paired(zc, zd, tp), "paired_p99_ratio": paired(zc, zd, p99),
            "p99_ratio": ratio(zc["p99_us"], zd["p99_us"]),
            "server_hit_ratio": zc.get("hit_ratio"),
            "replay": rp,
            "s3fifo_over_lru_hit_ratio": rp and ratio(rp["s3fifo_hit_ratio"], rp["lru_hit_ratio"]),
        },
        "b_uniform_auto_vs_dynamic": {
            "distinct": a.distinct, "auto": ua, "dynamic": ud,
            "throughput_ratio": ratio(ua["throughput_rps"], ud["throughput_rps"]),
            "paired_throughput_ratio": paired(ua, ud, tp), "paired_p99_ratio": paired(ua, ud, p99),
            "p99_ratio": ratio(ua["p99_us"], ud["p99_us"]),
            "target_ratio": 0.95,
        },
        "c_ad_static_vs_dynamic": {
            "static": st, "dynamic": sd,
            "throughput_ratio": ratio(st["throughput_rps"], sd["throughput_rps"]),
            "paired_throughput_ratio": paired(st, sd, tp), "paired_p99_ratio": paired(st, sd, p99),
            "p99_ratio": ratio(st["p99_us"], sd["p99_us"]),
            "table_cells": st.get("table_cells"), "table_bytes": st.get("table_bytes"),
            "table_build_ms": st.get("table_build_ms"),
        },
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(report, f, indent=2, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
