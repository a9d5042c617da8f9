#!/usr/bin/env python3
"""Prints the package's module graph from Package.swift (`swift package dump-package`): each
target with the targets of this package it may import, lowest first. Run from the repository
root: `python3 scripts/module-graph.py` (add --tests for the test targets too)."""
import json
import subprocess
import sys

dump = json.loads(subprocess.run(["swift", "package", "dump-package"], check=True,
                                 capture_output=True, text=True).stdout)
targets = {t["name"]: t for t in dump["targets"]}
with_tests = "--tests" in sys.argv


def local_deps(t):
    out = []
    for d in t.get("dependencies", []):
        for kind in ("byName", "target"):
            if kind in d:
                name = d[kind][0]
                if name in targets:
                    out.append(name)
    return out


deps = {n: local_deps(t) for n, t in targets.items() if with_tests or t["type"] != "test"}
depth = {}


def level(n):
    if n not in depth:
        depth[n] = 0 if not deps.get(n) else 1 + max(level(d) for d in deps[n])
    return depth[n]


for n in sorted(deps, key=lambda n: (level(n), n)):
    print(f"{n:22} -> {', '.join(sorted(deps[n], key=lambda d: (level(d), d))) or '(nothing)'}")
