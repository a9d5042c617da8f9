#!/usr/bin/env python3
"""Offline cache replay for benchmarks/paths.sh: the exact input stream `swerve bench --inputs
zipf:S` sends, replayed against S3-FIFO and LRU caches of the same entry budget.

The server cannot switch its response cache to LRU from config.json, so the LRU baseline is
measured here, offline, on the same request stream (the stream is a pure function of the bench
seed: see IndexedInputs.index in Sources/swerve/BenchPaths.swift; the generators below are exact
ports of SplitMix64 in Sources/SwerveInference/SplitMix64.swift and ZipfGenerator in
Sources/swerve/BenchZipf.swift).
The S3-FIFO here mirrors CacheCore (small FIFO 10%, main CLOCK with 2-bit counters, ghost sized
like main, move to main when hit once in small) with unit costs (every entry of the benchmark
costs the same bytes), sharded as ShardedCache shards (by a hash of the index rather than XXH64
of the request bytes: a different but equally random assignment).

    paths_replay.py --exponent 1.1 --distinct 1000000 --seed 42 --requests 300000 \
        --entries-per-shard 1989 --shards 4 [--measured-from 20000]
prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import OrderedDict, deque

M64 = (1 << 64) - 1


class SplitMix64:
    """SplitMix64 (SwerveInference.SplitMix64), the generator behind `swerve bench`'s streams."""

    __slots__ = ("state",)

    def __init__(self, seed: int) -> None:
        self.state = seed & M64

    def next(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & M64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return z ^ (z >> 31)


def _helper1(x: float) -> float:
    return math.log1p(x) / x if abs(x) > 1e-8 else 1 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x))


def _helper2(x: float) -> float:
    return math.expm1(x) / x if abs(x) > 1e-8 else 1 + x * 0.5 * (1 + x * (1.0 / 3.0) * (1 + 0.25 * x))


class Zipf:
    """Rejection-inversion Zipf sampler (ZipfGenerator in Sources/swerve/BenchZipf.swift), ranks 0..<n."""

    def __init__(self, n: int, s: float) -> None:
        self.n, self.s = n, s
        self.x1 = self.H(1.5) - 1
        self.hn = self.H(n + 0.5)
        self.squeeze = 2 - self.Hinv(self.H(2.5) - self.h(2))

    def h(self, x: float) -> float:
        return math.exp(-self.s * math.log(x))

    def H(self, x: float) -> float:
        lx = math.log(x)
        return _helper2((1 - self.s) * lx) * lx

    def Hinv(self, x: float) -> float:
        t = x * (1 - self.s)
        if t < -1:
            t = -1
        return math.exp(_helper1(t) * x)

    def next(self, rng: SplitMix64) -> int:
        while True:
            unit = (rng.next() >> 11) * 2.0 ** -53
            u = self.hn + unit * (self.x1 - self.hn)
            x = self.Hinv(u)
            k = int(math.floor(x + 0.5))
            k = 1 if k < 1 else (self.n if k > self.n else k)
            if k - x <= self.squeeze or u >= self.H(k + 0.5) - self.h(k):
                return k - 1


def stream(exponent: float | None, distinct: int, seed: int, count: int):
    """Index of request n for n in 0..<count (uniform when exponent is None)."""
    z = Zipf(distinct, exponent) if exponent is not None else None
    for n in range(count):
        rng = SplitMix64(seed ^ ((n * 0xD1B54A32D192ED03) & M64))
        yield z.next(rng) if z is not None else rng.next() % distinct


class LRU:
    def __init__(self, capacity: int) -> None:
        self.capacity, self.d = capacity, OrderedDict()

    def access(self, k: int) -> bool:
        d = self.d
        if k in d:
            d.move_to_end(k)
            return True
        if self.capacity <= 0:
            return False
        if len(d) >= self.capacity:
            d.popitem(last=False)
        d[k] = None
        return False


class S3FIFO:
    """CacheCore's S3-FIFO with unit costs (see the module docstring)."""

    def __init__(self, capacity: int, small_fraction: float = 0.1) -> None:
        self.capacity = capacity
        self.small_cap = max(1, int(capacity * small_fraction))
        self.main_cap = max(0, capacity - self.small_cap)
        self.small: deque = deque()   # left = head (newest), right = tail
        self.main: deque = deque()
        self.freq: dict[int, int] = {}
        self.where: dict[int, int] = {}  # 0 small, 1 main
        self.ghost: deque = deque()
        self.ghost_live: dict[int, int] = {}
        self.seq = 0

    def _ghost_add(self, k: int) -> None:
        if self.main_cap < 1:
            return
        self.seq += 1
        self.ghost.append((k, self.seq))
        self.ghost_live[k] = self.seq
        while len(self.ghost) > self.main_cap:
            gk, gs = self.ghost.popleft()
            if self.ghost_live.get(gk) == gs:
                del self.ghost_live[gk]

    def _evict_small(self) -> None:
        while self.small:
            t = self.small.pop()
            if self.freq[t] >= 1:
                self.freq[t] = 0
                self.where[t] = 1
                self.main.appendleft(t)
            else:
                self._ghost_add(t)
                del self.freq[t], self.where[t]
                return

    def _evict_main(self) -> None:
        while self.main:
            t = self.main.pop()
            f = self.freq[t]
            if f > 0:
                self.freq[t] = min(f, 3) - 1
                self.main.appendleft(t)
            else:
                del self.freq[t], self.where[t]
                return

    def access(self, k: int) -> bool:
        if k in self.where:
            if self.freq[k] < 3:
                self.freq[k] += 1
            return True
        if self.capacity <= 0:
            return False
        while len(self.where) + 1 > self.capacity:
            if len(self.main) > self.main_cap or not self.small:
                self._evict_main()
            else:
                self._evict_small()
        to_main = self.ghost_live.pop(k, None) is not None
        self.freq[k] = 0
        self.where[k] = 1 if to_main else 0
        (self.main if to_main else self.small).appendleft(k)
        return False


def _shard(k: int, shards: int) -> int:
    # SplitMix64 finalizer of the index: a stable, well-spread shard choice.
    z = (k + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return (z ^ (z >> 31)) % shards


def replay(indices: list[int], entries_per_shard: int, shards: int, measured_from: int) -> dict:
    out = {}
    for name, make in (("s3fifo", S3FIFO), ("lru", LRU)):
        caches = [make(entries_per_shard) for _ in range(shards)]
        hits = mhits = 0
        for n, k in enumerate(indices):
            if caches[_shard(k, shards) if shards > 1 else 0].access(k):
                hits += 1
                if n >= measured_from:
                    mhits += 1
        measured = len(indices) - measured_from
        out[name] = {"hits": hits, "hit_ratio": hits / len(indices),
                     "measured_hits": mhits, "measured_hit_ratio": mhits / measured if measured > 0 else 0.0}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exponent", type=float, help="Zipf exponent (omit for uniform)")
    ap.add_argument("--distinct", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--requests", type=int, required=True, help="requests in the stream (n = 0..requests-1)")
    ap.add_argument("--entries-per-shard", type=int, required=True)
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--measured-from", type=int, default=0, help="first request number of the measured phase")
    ap.add_argument("--print-indices", type=int, default=0, help="print the first N indices and exit (port check)")
    a = ap.parse_args()
    if a.print_indices:
        print(json.dumps(list(stream(a.exponent, a.distinct, a.seed, a.print_indices))))
        return
    t0 = time.monotonic()
    indices = list(stream(a.exponent, a.distinct, a.seed, a.requests))
    t1 = time.monotonic()
    result = replay(indices, a.entries_per_shard, a.shards, a.measured_from)
    result.update({
        "requests": a.requests, "distinct_seen": len(set(indices)), "measured_from": a.measured_from,
        "entries_per_shard": a.entries_per_shard, "shards": a.shards, "exponent": a.exponent,
        "distinct": a.distinct, "seed": a.seed,
        "ideal_hit_ratio_upper_bound": 1 - len(set(indices)) / a.requests,
        "seconds": {"stream": round(t1 - t0, 2), "replay": round(time.monotonic() - t1, 2)},
    })
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
