#!/usr/bin/env python3
"""The measuring half of bench/etcd_run.sh (which starts and stops the servers).

Same run, same etcd, rounds alternating so every side shares the machine's noise:
  - tokenmgr on STORE=etcd: lock+release cycles/s with 1 client, and with 50 clients (each
    cycle a grant handed off to the next waiter: handoffs/s);
  - etcd's own put rate: 1 client putting its key through the JSON gateway on a keep-alive
    connection (lock_bench --etcd-put), the ceiling: a 1-client lock+release needs at least two
    raft writes (bound: put/2), a contended handoff at least one (bound: put);
  - with --etcdctl, in the first 3 rounds: `etcdctl lock <name> true` processes and tokenmgr on
    its embedded store, the older references.
Per round the ratio to the bound is taken within the round; the table reports the median round
and the last round against the first (a decline as etcd's history grows shows there).

  etcd_bench.py --lock-bench=PATH --etcd-tm-port=P --etcd-port=E --members=N
                [--rounds=R] [--seconds=S] [--etcdctl=PATH --etcd-endpoints=URL
                --embedded-tm-port=P2] [--quick]

Exit 1 when a run fails or two clients overlap.
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


def lock_bench(path, args, seconds, warmup, rate_key):
    out = subprocess.run([path] + args + [f"--warmup={warmup}", f"--seconds={seconds}"],
                         capture_output=True, text=True, timeout=seconds + warmup + 120)
    if out.returncode != 0:
        raise RuntimeError(f"lock_bench {' '.join(args)}: {out.stderr.strip()} "
                           f"{out.stdout.strip()}")
    kv = dict(item.split("=") for item in out.stdout.split())
    return {"rate": float(kv[rate_key]), "p50_us": float(kv["p50_us"]),
            "p99_us": float(kv["p99_us"]), "count": int(kv["count"])}


def tokenmgr_cycles(path, port, clients, warmup, seconds):
    return lock_bench(path, ["--cycles", f"--tm-port={port}", f"--clients={clients}"], seconds,
                      warmup, "cycles_per_s")


def etcd_puts(path, port, clients, warmup, seconds):
    return lock_bench(path, ["--etcd-put", f"--etcd-port={port}", f"--clients={clients}"],
                      seconds, warmup, "puts_per_s")


def med(values):
    return statistics.median(values) if values else 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lock-bench", required=True)
    ap.add_argument("--etcd-tm-port", type=int, required=True)
    ap.add_argument("--etcd-port", type=int, required=True,
                    help="client port of the member tokenmgr lists first")
    ap.add_argument("--members", type=int, required=True)
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--seconds", type=float)
    ap.add_argument("--etcdctl")
    ap.add_argument("--etcd-endpoints")
    ap.add_argument("--embedded-tm-port", type=int)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    rounds = a.rounds or (2 if a.quick else 10)
    seconds = a.seconds or (1.0 if a.quick else 3.0)
    warmup = 0.2 if a.quick else 0.5
    lb = a.lock_bench
    rows = []  # per round: tm1, put, tm50 (rates)
    older = {"etcdctl 1": [], "etcdctl 50": [], "embedded 1": [], "embedded 50": []}
    for r in range(rounds):
        measure = {
            "put": lambda: etcd_puts(lb, a.etcd_port, 1, warmup, seconds),
            "tm1": lambda: tokenmgr_cycles(lb, a.etcd_tm_port, 1, warmup, seconds),
            "tm50": lambda: tokenmgr_cycles(lb, a.etcd_tm_port, 50, warmup, seconds),
        }
        order = ["put", "tm1", "tm50"] if r % 2 == 0 else ["tm1", "tm50", "put"]
        got = {k: measure[k]() for k in order}
        rows.append(got)
        print(f"{a.members} member(s), round {r + 1}: tokenmgr 1 client "
              f"{got['tm1']['rate']:.0f}/s, 50 clients {got['tm50']['rate']:.0f}/s; "
              f"etcd put (1 client) {got['put']['rate']:.0f}/s", file=sys.stderr, flush=True)
        if a.etcdctl and r < 3:
            for c in (1, 50):
                older[f"etcdctl {c}"].append(
                    etcdctl_cycles(a.etcdctl, a.etcd_endpoints, c, warmup, seconds)["rate"])
                older[f"embedded {c}"].append(
                    tokenmgr_cycles(lb, a.embedded_tm_port, c, warmup, seconds)["rate"])

    one = [x["tm1"]["rate"] / (x["put"]["rate"] / 2) for x in rows]
    many = [x["tm50"]["rate"] / x["put"]["rate"] for x in rows]
    gated = a.members == 1 and not a.quick

    def verdict(ok):
        return ("met" if ok else "**NOT met**") if gated else "recorded"

    print(f"\netcd_bench: {a.members} etcd member(s), {rounds} rounds of {seconds:g} s, "
          f"{'quick' if a.quick else 'full'} mode\n")
    print("| round | tokenmgr 1 client cycles/s | etcd put/s (1 client) | ratio to put/2 "
          "| tokenmgr 50 clients handoffs/s | ratio to put |")
    print("|---:|---:|---:|---:|---:|---:|")
    for i, x in enumerate(rows):
        print(f"| {i + 1} | {x['tm1']['rate']:.0f} | {x['put']['rate']:.0f} | {one[i]:.2f} "
              f"| {x['tm50']['rate']:.0f} | {many[i]:.2f} |")
    print("\n| Measurement | value | target | verdict |")
    print("|---|---:|---|---|")
    rows_out = [
        ("1 client: cycles/s / (put/s / 2), median round", f"{med(one):.2f}", ">= 0.7",
         verdict(med(one) >= 0.7)),
        ("50 clients: handoffs/s / put/s, median round", f"{med(many):.2f}", ">= 0.7",
         verdict(med(many) >= 0.7)),
    ]
    if rounds >= 2:
        d1 = rows[-1]["tm1"]["rate"] / rows[0]["tm1"]["rate"]
        d50 = rows[-1]["tm50"]["rate"] / rows[0]["tm50"]["rate"]
        dput = rows[-1]["put"]["rate"] / rows[0]["put"]["rate"]
        rows_out += [
            ("1 client: last round / first round", f"{d1:.2f}", ">= 0.9", verdict(d1 >= 0.9)),
            ("50 clients: last round / first round", f"{d50:.2f}", ">= 0.9",
             verdict(d50 >= 0.9)),
            ("etcd put: last round / first round (the machine's drift)", f"{dput:.2f}", "-",
             "-"),
        ]
    p99_1 = med([x["tm1"]["p99_us"] for x in rows]) / 1e3
    p99_put = med([x["put"]["p99_us"] for x in rows]) / 1e3
    rows_out.append(("p99: tokenmgr 1-client cycle / etcd put (ms)",
                     f"{p99_1:.1f} / {p99_put:.1f}", "-", "-"))
    for k, v in older.items():
        if v:
            rows_out.append((f"older reference, {k} client(s): cycles/s (median of "
                             f"{len(v)} rounds)", f"{med(v):.0f}", "-", "-"))
    for row in rows_out:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        print(f"etcd_bench: {e}", file=sys.stderr)
        sys.exit(1)
