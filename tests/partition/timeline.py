#!/usr/bin/env python3
"""Grants per replica in short buckets through one phase of a partition run, with the nemesis's
cuts and heals marked: where a phase's rate went (a whole cut with no grant for anyone, one
replica alone, a long gap after a heal).

  python3 tests/partition/timeline.py WORKDIR [PHASE] [--bucket=0.2]

WORKDIR: a run's directory (keep it with `pytest --basetemp=DIR`: DIR/partition0); it holds
history.jsonl and nemesis.json. PHASE: default the flapping one.
"""
import argparse
import json
import os
import sys

import checker


def load(workdir):
    with open(os.path.join(workdir, "nemesis.json")) as f:
        nemesis = json.load(f)
    return nemesis, checker.read_history(os.path.join(workdir, "history.jsonl"))


def timeline(nemesis, events, phase, bucket):
    spans = {name: (start, end) for name, start, end in nemesis["phases"]}
    if phase not in spans:
        raise SystemExit(f"no phase {phase!r}; phases: {', '.join(spans)}")
    start, end = spans[phase]
    n = int((end - start) / bucket) + 1
    replicas = sorted({e["r"] for e in events if "r" in e})
    grants = {r: [0] * n for r in replicas}
    for e in events:
        if e.get("k") == "lock" and e.get("s") == 200 and start <= e["ans"] < end:
            grants[e["r"]][int((e["ans"] - start) / bucket)] += 1
    actions = [(t0, what) for name, what, t0, _ in nemesis["actions"] if name == phase]
    lines = [f"{'s':>6} " + " ".join(f"{r:>4}" for r in replicas) + "  (grants per "
             f"{bucket:g} s; # = {replicas[0]})"]
    for i in range(n):
        t = start + i * bucket
        marks = " ".join(what for t0, what in actions if t <= t0 < t + bucket)
        counts = " ".join(f"{grants[r][i]:>4}" for r in replicas)
        lines.append(f"{i * bucket:6.1f} {counts}  {'#' * grants[replicas[0]][i]} {marks}")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workdir")
    ap.add_argument("phase", nargs="?", default="flap-t2+e3")
    ap.add_argument("--bucket", type=float, default=0.2)
    a = ap.parse_args()
    if a.bucket <= 0:
        ap.error("--bucket must be above 0")
    try:
        nemesis, events = load(a.workdir)
    except (OSError, ValueError) as e:
        ap.error(f"{a.workdir} is not a partition run's directory (nemesis.json, history.jsonl): "
                 f"{e}")
    if not events:
        ap.error(f"{a.workdir}: no clients' history (history.jsonl missing or empty)")
    print(timeline(nemesis, events, a.phase, a.bucket))
    return 0


if __name__ == "__main__":
    sys.exit(main())
