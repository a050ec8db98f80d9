#!/usr/bin/env python3
"""The measuring half of bench/etcd_run.sh (which starts and stops the servers).

Same run, same etcd: lock+release cycles through tokenmgr on STORE=etcd, through `etcdctl lock
<name> true` processes (each one a cycle: a new process, a session lease, the lock, `true`, the
unlock), and through tokenmgr on its embedded store as a reference. 1 and 50 clients each; rounds
alternate the three so they share the machine's noise; the median round (by rate) is reported.

  etcd_bench.py --lock-bench=PATH --etcd-tm-port=P --embedded-tm-port=P2 --etcdctl=PATH
                --etcd-endpoints=URL [--quick]

A sample is one cycle, timed from asking for the lock to the release being done; cycles/s counts
the cycles that started inside the measured window. Exit 1 when a run fails or overlaps.
"""
import argparse
import statistics
import subprocess
import sys
import threading
import time
import uuid


def percentile(samples, p):
    if not samples:
        return 0.0
    s = sorted(samples)
    return s[min(len(s) - 1, int(p * len(s)))]


def etcdctl_cycles(etcdctl, endpoints, clients, warmup, seconds):
    """`clients` threads, each running `etcdctl lock <name> true` back to back."""
    name = f"bench-{uuid.uuid4()}"
    cmd = [etcdctl, f"--endpoints={endpoints}", "--dial-timeout=5s", "lock", name, "true"]
    start = time.monotonic()
    measure_from, end = start + warmup, start + warmup + seconds
    samples, errors = [], []
    lock = threading.Lock()

    def client():
        while True:
            t0 = time.monotonic()
            if t0 >= end:
                return
            r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env={"PATH": "/usr/bin:/bin", "ETCDCTL_API": "3"}, timeout=60)
            took = time.monotonic() - t0
            with lock:
                if r.returncode != 0:
                    errors.append(r.stderr.decode(errors="replace")[:200])
                elif t0 >= measure_from:
                    samples.append(took * 1e6)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"etcdctl lock failed {len(errors)} time(s): {errors[0]}")
    return {"rate": len(samples) / seconds, "p50_us": percentile(samples, 0.5),
            "p99_us": percentile(samples, 0.99), "count": len(samples)}


def tokenmgr_cycles(lock_bench, port, clients, warmup, seconds):
    out = subprocess.run([lock_bench, "--cycles", f"--tm-port={port}", f"--clients={clients}",
                          f"--warmup={warmup}", f"--seconds={seconds}"],
                         capture_output=True, text=True, timeout=seconds + warmup + 120)
    if out.returncode != 0:
        raise RuntimeError(f"lock_bench --cycles on port {port}: {out.stderr.strip()}"
                           f" {out.stdout.strip()}")
    kv = dict(item.split("=") for item in out.stdout.split())
    return {"rate": float(kv["cycles_per_s"]), "p50_us": float(kv["p50_us"]),
            "p99_us": float(kv["p99_us"]), "count": int(kv["count"])}


def median(rounds):
    return sorted(rounds, key=lambda r: r["rate"])[len(rounds) // 2]


def cell(rounds):
    m = median(rounds)
    if len(rounds) == 1:
        return f"{m['rate']:.0f}"
    rates = [r["rate"] for r in rounds]
    return f"{m['rate']:.0f} ({min(rates):.0f}-{max(rates):.0f})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lock-bench", required=True)
    ap.add_argument("--etcd-tm-port", type=int, required=True)
    ap.add_argument("--embedded-tm-port", type=int, required=True)
    ap.add_argument("--etcdctl", required=True)
    ap.add_argument("--etcd-endpoints", required=True)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    rounds = 1 if a.quick else 3
    warmup, seconds = (0.2, 1.0) if a.quick else (0.5, 3.0)
    rows, ok = [], True
    for clients in (1, 50):
        runs = {"etcd": [], "etcdctl": [], "embedded": []}
        for r in range(rounds):
            runs["etcd"].append(tokenmgr_cycles(a.lock_bench, a.etcd_tm_port, clients, warmup,
                                                seconds))
            runs["etcdctl"].append(etcdctl_cycles(a.etcdctl, a.etcd_endpoints, clients, warmup,
                                                  seconds))
            runs["embedded"].append(tokenmgr_cycles(a.lock_bench, a.embedded_tm_port, clients,
                                                    warmup, seconds))
            print(f"{clients} client(s), round {r + 1}: " + ", ".join(
                f"{k} {v[-1]['rate']:.0f}/s p99 {v[-1]['p99_us'] / 1e3:.1f} ms"
                for k, v in runs.items()), file=sys.stderr, flush=True)
        t, c, e = (median(runs[k]) for k in ("etcd", "etcdctl", "embedded"))
        ratio = t["rate"] / c["rate"] if c["rate"] else float("inf")
        met = ratio >= 5
        ok = ok and t["count"] > 0 and c["count"] > 0
        n = f"{clients} client{'s' if clients > 1 else ''}"
        rows.append((f"{n}: lock+release cycles/s", cell(runs["etcd"]), cell(runs["etcdctl"]),
                     f"{ratio:.1f}", ">= 5.0", "met" if met else "**NOT met**",
                     cell(runs["embedded"]), f"{t['rate'] / e['rate']:.2f}"))
        rows.append((f"{n}: cycle p50 / p99 (ms)",
                     f"{t['p50_us'] / 1e3:.1f} / {t['p99_us'] / 1e3:.1f}",
                     f"{c['p50_us'] / 1e3:.1f} / {c['p99_us'] / 1e3:.1f}",
                     f"{t['p99_us'] / c['p99_us']:.2f} (p99)" if c["p99_us"] else "-", "-", "-",
                     f"{e['p50_us'] / 1e3:.1f} / {e['p99_us'] / 1e3:.1f}", "-"))
    print(f"\netcd_bench ({'quick' if a.quick else 'full'} mode, {rounds} round(s), "
          f"{seconds:g} s each, median round reported)\n")
    print("| Measurement | tokenmgr, STORE=etcd | `etcdctl lock` | ratio tokenmgr-etcd / etcdctl "
          "| target | verdict | tokenmgr, embedded store (reference) | ratio etcd / embedded |")
    print("|---|---:|---:|---:|---|---|---:|---:|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        print(f"etcd_bench: {e}", file=sys.stderr)
        sys.exit(1)
