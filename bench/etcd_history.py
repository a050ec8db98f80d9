#!/usr/bin/env python3
"""Does tokenmgr on STORE=etcd slow down as etcd's history grows? (issue 20; not run in CI)

Starts one etcd member and one tokenmgr (ETCD_COMPACT as given) on 127.0.0.1, then runs rounds of
1-client lock+release cycles (bench/lock_bench --cycles) back to back, printing per round the
cycles/s, etcd's revision and database size (in use / file). Stops everything by PID.

  LM_BUILD_DIR=build/release bench/etcd_history.py --compact off --rounds 8 --seconds 10
  LM_BUILD_DIR=build/release bench/etcd_history.py --compact auto --interval 10
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
from procs import free_port  # noqa: E402


def wait(cond, what, timeout=30):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            sys.exit(f"etcd_history: timed out waiting for {what}")
        time.sleep(0.05)


def etcd_status(port):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v3/maintenance/status", data=b"{}",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)


def ok(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--compact", choices=["auto", "off"], default="auto")
    ap.add_argument("--interval", type=int, default=60, help="ETCD_COMPACT_INTERVAL, seconds")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--seconds", type=int, default=10)
    args = ap.parse_args()
    build = os.environ.get("LM_BUILD_DIR", "build/release")
    tokenmgr = os.path.join(build, "src/bin/tokenmgr")
    lock_bench = os.path.join(build, "bench/lock_bench")
    work = tempfile.mkdtemp(prefix="etcd-history-")
    procs = []
    try:
        cport, pport = free_port(), free_port()
        url = f"http://127.0.0.1:{cport}"
        procs.append(subprocess.Popen(
            ["etcd", "--name", "h", "--data-dir", f"{work}/data", "--listen-client-urls", url,
             "--advertise-client-urls", url, "--listen-peer-urls", f"http://127.0.0.1:{pport}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{pport}",
             "--initial-cluster", f"h=http://127.0.0.1:{pport}", "--log-level", "warn"],
            stdout=open(f"{work}/etcd.log", "wb"), stderr=subprocess.STDOUT))
        wait(lambda: ok(f"{url}/health"), "etcd")
        env = dict(os.environ, STORE="etcd", ETCD_ENDPOINTS=url, ETCD_COMPACT=args.compact,
                   ETCD_COMPACT_INTERVAL=str(args.interval), LOG_LEVEL="warn")
        procs.append(subprocess.Popen([tokenmgr, "--listen-port", "0", "--bind-address",
                                       "127.0.0.1", "--port-file", f"{work}/port"], env=env,
                                      stdout=open(f"{work}/tm.log", "wb"),
                                      stderr=subprocess.STDOUT))
        wait(lambda: os.path.exists(f"{work}/port") and open(f"{work}/port").read().strip(),
             "tokenmgr port")
        port = int(open(f"{work}/port").read())
        wait(lambda: ok(f"http://127.0.0.1:{port}/readyz"), "tokenmgr ready")
        print(f"compact={args.compact} interval={args.interval}s rounds of {args.seconds}s")
        print("round | cycles/s | revision | db in use / file (KiB)")
        for r in range(1, args.rounds + 1):
            out = subprocess.run([lock_bench, "--cycles", f"--tm-port={port}", "--clients=1",
                                  f"--seconds={args.seconds}", "--warmup=0"],
                                 capture_output=True, text=True, timeout=args.seconds + 60)
            kv = dict(p.split("=", 1) for p in out.stdout.split() if "=" in p)
            st = etcd_status(cport)
            print(f"{r} | {float(kv.get('cycles_per_s', 0)):.0f} | {st['header']['revision']} | "
                  f"{int(st['dbSizeInUse']) // 1024} / {int(st['dbSize']) // 1024}", flush=True)
    finally:
        for p in reversed(procs):
            p.kill()
            p.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
