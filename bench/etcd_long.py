#!/usr/bin/env python3
"""The measuring half of bench/etcd_long.sh (which starts and stops etcd and tokenmgr).

One `lock_bench --cycles` run with N clients (default 50) for the whole time: continuous
contended locking on one tokenmgr on STORE=etcd, every grant a handoff to a waiting client.
At the end of every interval it reads:
  - tokenmgr's /metrics: tokenmgr_lock_grants_total (the interval's grants/s) and
    tokenmgr_etcd_compacted_revision (what it compacted etcd to);
  - etcd's status (POST /v3/maintenance/status on its client port: no raft write): the
    revision, the database file size (dbSize) and the part in use (dbSizeInUse);
  - VmRSS of tokenmgr and of etcd (/proc/PID/status).
Then it prints a Markdown table, one row per interval, and the verdicts: the median rate of the
second half / of the first half (the trend; target >= 0.9), last interval's rate / first
interval's rate (target >= 0.9), and the database size (file and in use), first row ->
last row, flat when the largest size of the second half is at most 1.2 x the largest of the
first half (the file grows to its high-water mark in the first minute or two, then stays).

  etcd_long.py --lock-bench=PATH --tm-port=P --tm-pid=PID --etcd-port=E --etcd-pid=EPID
               [--minutes=M] [--interval=S] [--clients=N] [--etcd-flags=TEXT]

Exit 1 when lock_bench fails, two clients ever held at once, or a server stops answering.
"""
import argparse
import json
import signal
import subprocess
import sys
import time
import urllib.request

MIB = 1024 * 1024


def http(url, body=None):
    req = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read().decode()


def metric(text, name):
    """The value of an unlabelled sample `name` in Prometheus text."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise RuntimeError(f"tokenmgr /metrics has no {name}")


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_jiffies():
    """(steal, total) jiffies of the whole machine, from /proc/stat's `cpu` line."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:9]]
    return fields[7], sum(fields)


def sample(a):
    tm = http(f"http://127.0.0.1:{a.tm_port}/metrics")
    st = json.loads(http(f"http://127.0.0.1:{a.etcd_port}/v3/maintenance/status", b"{}"))
    return {
        "t": time.monotonic(),
        "grants": metric(tm, "tokenmgr_lock_grants_total"),
        "compacted": metric(tm, "tokenmgr_etcd_compacted_revision"),
        "revision": int(st["header"]["revision"]),
        "db": int(st.get("dbSize", 0)),
        "db_in_use": int(st.get("dbSizeInUse", 0)),
        "tm_rss": rss_mib(a.tm_pid),
        "etcd_rss": rss_mib(a.etcd_pid),
        "cpu": cpu_jiffies(),
        "compactions": {r: metric_labelled(tm, "tokenmgr_etcd_compactions_total", r)
                        for r in ("ok", "error")},
    }


def metric_labelled(text, name, result):
    """tokenmgr_etcd_compactions_total{result="..."} (0 when absent)."""
    prefix = f'{name}{{result="{result}"}} '
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix):].split()[0])
    return 0.0


def median(values):
    v = sorted(values)
    return (v[(len(v) - 1) // 2] + v[len(v) // 2]) / 2 if v else 0.0


def verdict(ok):
    return "met" if ok else "**NOT met**"


def report(a, rows, bench_line):
    print(f"\netcd_long: one etcd member ({a.etcd_flags or 'etcd defaults'}), one tokenmgr on "
          f"STORE=etcd (defaults: ETCD_COMPACT=auto, interval 10 s), {a.clients} clients "
          f"locking continuously for {a.minutes} min, a row every {a.interval} s\n")
    print("| interval | end (min) | grants/s | etcd revision | history kept (revisions) "
          "| db file (MiB) | db in use (MiB) | tokenmgr RSS (MiB) | etcd RSS (MiB) "
          "| CPU stolen by the host (%) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for i, r in enumerate(rows):
        print(f"| {i + 1} | {r['end_min']:.1f} | {r['rate']:.0f} | {r['revision']:,} "
              f"| {r['revision'] - int(r['compacted']):,} | {r['db'] / MIB:.2f} "
              f"| {r['db_in_use'] / MIB:.2f} | {r['tm_rss']:.1f} | {r['etcd_rss']:.1f} "
              f"| {r['steal']:.0f} |")
    first, last = rows[0], rows[-1]
    rate_ratio = last["rate"] / first["rate"] if first["rate"] else 0.0
    # The database reaches its plateau within the first minute or two (one to two compaction
    # intervals of history; the file at its high-water mark), so "flat" compares halves: the
    # largest size of the second half against the largest of the first.
    half = max(1, len(rows) // 2)

    def halves(key):
        a = max(r[key] for r in rows[:half])
        b = max(r[key] for r in rows[half:]) if len(rows) > 1 else a
        return a, b, (b / a if a else 0.0)

    file1, file2, file_ratio = halves("db")
    use1, use2, use_ratio = halves("db_in_use")
    flat = file_ratio <= 1.2 and use_ratio <= 1.2
    rates = sorted(r["rate"] for r in rows)
    # A trend, not one minute against another: a single minute moves with the machine (host
    # steal), and the first one runs before etcd's first snapshot (every 100,000 raft entries,
    # after about 1.5 min here), which every later minute takes its share of.
    med1 = median(r["rate"] for r in rows[:half])
    med2 = median(r["rate"] for r in rows[half:]) if len(rows) > 1 else med1
    trend = med2 / med1 if med1 else 0.0
    print("\n| Measurement | value | target | verdict |")
    print("|---|---:|---|---|")
    print(f"| grants/s, median of the second half / of the first half ({med2:.0f} / {med1:.0f}) "
          f"| {trend:.2f} | >= 0.9 | {verdict(trend >= 0.9)} |")
    print(f"| grants/s, last interval / first interval ({last['rate']:.0f} / "
          f"{first['rate']:.0f}; min {rates[0]:.0f}, median {rates[len(rates) // 2]:.0f}, "
          f"max {rates[-1]:.0f}) | {rate_ratio:.2f} | >= 0.9 | {verdict(rate_ratio >= 0.9)} |")
    print(f"| etcd db file, largest in the second half / in the first half "
          f"({file1 / MIB:.2f} -> {file2 / MIB:.2f} MiB; first row {first['db'] / MIB:.2f}, "
          f"last {last['db'] / MIB:.2f}) | {file_ratio:.2f} | <= 1.2 (bounded) "
          f"| {verdict(file_ratio <= 1.2)} |")
    print(f"| etcd db in use, largest in the second half / in the first half "
          f"({use1 / MIB:.2f} -> {use2 / MIB:.2f} MiB; first row {first['db_in_use'] / MIB:.2f}, "
          f"last {last['db_in_use'] / MIB:.2f}) | {use_ratio:.2f} | <= 1.2 (bounded) "
          f"| {verdict(use_ratio <= 1.2)} |")
    for who in ("tm", "etcd"):
        print(f"| {'tokenmgr' if who == 'tm' else 'etcd'} RSS (MiB), first row -> last row "
              f"(largest {max(r[who + '_rss'] for r in rows):.1f}) | {first[who + '_rss']:.1f} -> "
              f"{last[who + '_rss']:.1f} | - | - |")
    comp = last["compactions"]
    print(f"| tokenmgr's compactions, ok / error | {comp['ok']:.0f} / {comp['error']:.0f} "
          f"| - | - |")
    print(f"| CPU stolen by the host (%), first interval / last (largest "
          f"{max(r['steal'] for r in rows):.0f}): a VM's neighbours, not this run; a rate "
          f"falling with it is the machine | {first['steal']:.0f} / {last['steal']:.0f} "
          f"| - | - |")
    print(f"| lock_bench over the whole run: {bench_line} | - | - | - |")
    print(f"\nVerdict: grants/s second half / first half (medians) {trend:.2f} (target >= 0.9: "
          f"{'met' if trend >= 0.9 else 'NOT met'}), last/first {rate_ratio:.2f} "
          f"({last['rate']:.0f} / {first['rate']:.0f}; target >= 0.9: "
          f"{'met' if rate_ratio >= 0.9 else 'NOT met'}); "
          f"etcd db file {first['db'] / MIB:.2f} -> {last['db'] / MIB:.2f} MiB first row -> last, "
          f"largest {file1 / MIB:.2f} / {file2 / MIB:.2f} MiB in the first / second half "
          f"(x{file_ratio:.2f}); in use {first['db_in_use'] / MIB:.2f} -> "
          f"{last['db_in_use'] / MIB:.2f} MiB, largest {use1 / MIB:.2f} / {use2 / MIB:.2f} MiB "
          f"(x{use_ratio:.2f}): {'flat (bounded)' if flat else 'NOT flat'}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lock-bench", required=True)
    ap.add_argument("--tm-port", type=int, required=True)
    ap.add_argument("--tm-pid", type=int, required=True)
    ap.add_argument("--etcd-port", type=int, required=True)
    ap.add_argument("--etcd-pid", type=int, required=True)
    ap.add_argument("--minutes", type=int, default=30)
    ap.add_argument("--interval", type=int, default=60)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--etcd-flags", default="")
    a = ap.parse_args()
    total = a.minutes * 60
    # SIGTERM (the script's cleanup) ends this like Ctrl-C: the finally below stops lock_bench.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    bench = subprocess.Popen(
        [a.lock_bench, "--cycles", f"--tm-port={a.tm_port}", f"--clients={a.clients}",
         "--warmup=0", f"--seconds={total}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    rows = []
    try:
        prev = sample(a)
        start = prev["t"]
        n = (total + a.interval - 1) // a.interval
        for i in range(n):
            deadline = start + min((i + 1) * a.interval, total)
            while time.monotonic() < deadline:
                if bench.poll() is not None:
                    raise RuntimeError(f"lock_bench ended early (exit {bench.returncode}): "
                                       f"{bench.stderr.read().strip()}")
                time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
            cur = sample(a)
            dt = cur["t"] - prev["t"]
            cur["rate"] = (cur["grants"] - prev["grants"]) / dt
            cur["end_min"] = (cur["t"] - start) / 60
            # A shared VM: time the hypervisor gave to others moves every rate here.
            d_steal = cur["cpu"][0] - prev["cpu"][0]
            d_total = cur["cpu"][1] - prev["cpu"][1]
            cur["steal"] = 100.0 * d_steal / d_total if d_total else 0.0
            rows.append(cur)
            print(f"etcd_long: {cur['end_min']:.1f} min: {cur['rate']:.0f} grants/s, revision "
                  f"{cur['revision']:,} (compacted to {int(cur['compacted']):,}), db "
                  f"{cur['db'] / MIB:.2f} MiB ({cur['db_in_use'] / MIB:.2f} in use), tokenmgr "
                  f"{cur['tm_rss']:.1f} MiB, etcd {cur['etcd_rss']:.1f} MiB, "
                  f"CPU stolen by the host {cur['steal']:.0f} %",
                  file=sys.stderr, flush=True)
            prev = cur
        out, err = bench.communicate(timeout=120)
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()
    if bench.returncode != 0:
        raise RuntimeError(f"lock_bench failed (exit {bench.returncode}): {err.strip()} "
                           f"{out.strip()}")
    report(a, rows, out.strip())
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        print(f"etcd_long: {e}", file=sys.stderr)
        sys.exit(1)
