#!/usr/bin/env python3
"""The console's cost at scale (issue 17), run by bench/console_run.sh.

One tokenmgr with a pool of NODES licenses, EVENTS events of history (written as its journal
file before it starts, as a long-running tokenmgr would have left it) and NODES nodes that
report. Measured in the same run:
  - p50/p99 latency of GET /api/nodes, /api/events (a page of 100 from the middle, and the
    newest page), /api/usage (a 24 h window, JSON) against GET /api/licenses on the same pool:
    the reference;
  - tokenmgr's resident memory: before the history is loaded (an empty tokenmgr), with it, and
    with the nodes' reports;
  - what the agents' status reports cost: REPORT_RATE reports/s (NODES nodes every heartbeat)
    for a fixed time, tokenmgr's CPU seconds per second of it and the journal bytes written.
Prints a Markdown table. Every loop is bounded in count and time.
"""
import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def write_pool(root, count):
    for i in range(count):
        d = os.path.join(root, f"license{i:05d}", "lic")
        os.makedirs(d)
        with open(os.path.join(d, "host_id"), "w") as f:
            f.write(f"host-{i}\n")


def write_history(state_dir, events, nodes, now_ms):
    """A journal file as FileJournal writes it: one JSON event per line, oldest first, the
    whole history within the last 20 hours (so a 24 h usage window covers all of it)."""
    span_ms = 20 * 3600 * 1000
    kinds = ["claim", "release", "wait_start", "wait_end"]
    with open(os.path.join(state_dir, "console-events.jsonl"), "w") as f:
        for seq in range(1, events + 1):
            n = seq % nodes
            t = now_ms - span_ms + (span_ms * seq) // events
            f.write(json.dumps({"seq": seq, "time_ms": t, "kind": kinds[seq % 4],
                                "license": f"license{n:05d}", "node": f"gpu-node-{n:05d}",
                                "token": seq, "actor": "", "detail": ""},
                               separators=(",", ":")) + "\n")


class Client:
    def __init__(self, port):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call(self, method, path, body=None):
        headers = {"Content-Type": "application/json"} if body is not None else {}
        self.conn.request(method, path, body=body, headers=headers)
        r = self.conn.getresponse()
        data = r.read()
        return r.status, data


def report_body(n, held):
    return json.dumps({"pod": f"holder-{n:05d}", "state": "held" if held else "waiting",
                       "license": f"license{n:05d}" if held else "", "version": "bench",
                       "events": []})


def latency(client, path, count, deadline):
    times = []
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        t0 = time.perf_counter()
        status, _ = client.call("GET", path)
        times.append(time.perf_counter() - t0)
        if status != 200:
            sys.exit(f"console bench: GET {path} answered {status}")
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    return statistics.median(times) * 1000, p99 * 1000, len(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenmgr", required=True)
    ap.add_argument("--nodes", type=int, default=5000)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--report-seconds", type=float, default=20)
    ap.add_argument("--heartbeat", type=float, default=10)
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="lm-console-bench.")
    pool = os.path.join(work, "pool")
    state = os.path.join(work, "state")
    os.makedirs(pool)
    os.makedirs(state)
    write_pool(pool, args.nodes)
    now_ms = int(time.time() * 1000)
    t0 = time.monotonic()
    write_history(state, args.events, args.nodes, now_ms)
    journal = os.path.join(state, "console-events.jsonl")
    print(f"# history written: {args.events} events, {os.path.getsize(journal) / 1e6:.0f} MB "
          f"in {time.monotonic() - t0:.1f} s", file=sys.stderr)

    def start(with_history):
        port_file = os.path.join(work, "port")
        if os.path.exists(port_file):
            os.unlink(port_file)
        env = dict(os.environ, POOL_DIR=pool, EVENTS_MAX=str(max(args.events, 1)),
                   EVENTS_MAX_AGE="30d", LOG_LEVEL="warn")
        if with_history:
            env["STATE_FILE"] = os.path.join(state, "state.json")
        log = open(os.path.join(work, "tokenmgr.log"), "a")
        p = subprocess.Popen([args.tokenmgr, "--bind-address", "127.0.0.1", "--listen-port", "0",
                              "--port-file", port_file], env=env, stdout=log, stderr=log)
        procs.append(p)
        deadline = time.monotonic() + 300
        while not (os.path.exists(port_file) and open(port_file).read().strip()):
            if p.poll() is not None or time.monotonic() > deadline:
                sys.exit("console bench: tokenmgr did not start; see " + log.name)
            time.sleep(0.05)
        return p, int(open(port_file).read())

    def stop(p):
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    rows = []
    procs = []
    try:
        p, port = start(with_history=False)
        c = Client(port)
        c.call("GET", "/api/licenses")
        rss_empty = rss_kib(p.pid)
        stop(p)

        t0 = time.monotonic()
        p, port = start(with_history=True)
        load_s = time.monotonic() - t0
        rss_history = rss_kib(p.pid)
        c = Client(port)
        deadline = time.monotonic() + 120
        for n in range(args.nodes):
            status, body = c.call("PUT", f"/api/nodes/gpu-node-{n:05d}",
                                  report_body(n, held=n % 10 != 0))
            if status != 200:
                sys.exit(f"console bench: report answered {status}: {body[:200]!r}")
            if time.monotonic() > deadline:
                sys.exit("console bench: reports too slow")
        rss_nodes = rss_kib(p.pid)

        deadline = time.monotonic() + 600
        mid = args.events // 2
        for name, path in [("GET /api/licenses (reference)", "/api/licenses"),
                           ("GET /api/nodes", "/api/nodes"),
                           (f"GET /api/events?after={mid}&limit=100",
                            f"/api/events?after={mid}&limit=100"),
                           ("GET /api/events (newest page)",
                            f"/api/events?after={max(args.events - 100, 0)}&limit=100"),
                           ("GET /api/usage (24 h, JSON)", "/api/usage?from=-24h&to=now")]:
            p50, p99, n = latency(c, path, args.requests, deadline)
            rows.append((name, p50, p99, n))

        # The agents' reports: NODES nodes every heartbeat, spread over 4 connections.
        rate = args.nodes / args.heartbeat
        size0 = os.path.getsize(journal)
        cpu0 = cpu_seconds(p.pid)
        sent = [0]
        errors = [0]
        start_t = time.monotonic()
        end_t = start_t + args.report_seconds

        def reporter(k):
            cl = Client(port)
            i = k
            while time.monotonic() < end_t:
                due = start_t + sent[0] / rate
                if due > time.monotonic():
                    time.sleep(min(due - time.monotonic(), 0.05))
                    continue
                n = i % args.nodes
                i += 4
                status, _ = cl.call("PUT", f"/api/nodes/gpu-node-{n:05d}",
                                    report_body(n, held=n % 10 != 0))
                sent[0] += 1
                if status != 200:
                    errors[0] += 1

        threads = [threading.Thread(target=reporter, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=args.report_seconds + 60)
        elapsed = time.monotonic() - start_t
        cpu = cpu_seconds(p.pid) - cpu0
        grown = os.path.getsize(journal) - size0
        stop(p)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        subprocess.run(["rm", "-rf", work])

    ref = rows[0][2]
    print(f"| request ({args.nodes} nodes, {args.events} events) | p50 ms | p99 ms | "
          f"p99 / reference | requests |")
    print("|---|---|---|---|---|")
    for name, p50, p99, n in rows:
        print(f"| {name} | {p50:.2f} | {p99:.2f} | {p99 / ref:.1f}x | {n} |")
    print()
    print("| tokenmgr memory | RSS MiB |")
    print("|---|---|")
    print(f"| empty (no history, no nodes) | {rss_empty / 1024:.0f} |")
    print(f"| {args.events} events loaded (in {load_s:.1f} s) | {rss_history / 1024:.0f} |")
    print(f"| and {args.nodes} nodes reported | {rss_nodes / 1024:.0f} |")
    print()
    print(f"| agents' reports: {args.nodes} nodes every {args.heartbeat:g} s | value |")
    print("|---|---|")
    print(f"| reports sent (errors) | {sent[0]} in {elapsed:.1f} s ({errors[0]}) |")
    print(f"| rate | {sent[0] / elapsed:.0f} /s (target {rate:.0f} /s) |")
    print(f"| tokenmgr CPU | {100 * cpu / elapsed:.1f} % of one core |")
    print(f"| journal bytes written (steady state: no events) | {grown} |")
    print(f"| pool volume bytes written by reports | 0 (reports go to tokenmgr only) |")


if __name__ == "__main__":
    main()
