#!/usr/bin/env python3
"""etcd alone: how fast does it run the txns tokenmgr needs, against its plain put rate? (issue 20;
not run in CI)

issue 20 measures tokenmgr against etcd's 1-client put rate. A safe FIFO handoff is not a put: it
is one txn that deletes the old grant key (compare on its mod revision) and, nested, grants the
lock to the oldest waiter (compares: its waiter key's create revision, no older key in the waiter
range, the token epoch's value; ops: put the new grant key on a lease, delete the waiter key, the
fence), and writes the key of a waiter that queued meanwhile (etcd_lock_service.h). This script
sends exactly that txn from one keep-alive client on etcd's JSON gateway, with 50 waiter keys
queued (this replica's own: the FIFO compare reads none of them; --full-range-compare: the whole
range, as before 2026-12-07), and alternates rounds with plain puts on the same connection, with
etcd's CPU per txn and per put: the ratio is the ceiling
of tokenmgr's 50-client handoffs against put/s, with tokenmgr's own cost taken away. With
--shape=cycle it does the 1-client cycle instead (fast-path grant txn, then the release txn), whose
ceiling is against put/2. Starts one etcd member on 127.0.0.1 and stops it by PID.

  bench/etcd_txn_ceiling.py [--shape handoff|cycle] [--rounds 4] [--seconds 2]
                            [--full-range-compare]
"""
import argparse
import base64
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
from procs import free_port  # noqa: E402

P = "/bench/ceiling/"
EPOCH = "1796631505933920"
OWN = P + "waiters/\x02r/" + str(uuid.uuid4()) + "/"  # this "replica"'s waiter keys


def b64(s):
    return base64.b64encode(s.encode()).decode()


def prefix_end(p):
    return p[:-1] + chr(ord(p[-1]) + 1)


class Gateway:
    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def call(self, path, body):
        self.conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        return json.loads(self.conn.getresponse().read())


def grant_value():
    return b64(json.dumps({"acquired_unix_ms": 1796631510126, "epoch": int(EPOCH),
                           "expires_unix_ms": 1796631515126, "holder": "c49",
                           "id": str(uuid.uuid4()), "ttl": 5}))


def waiter_put(key, session):
    return {"request_put": {"key": b64(key), "value": b64('{"holder":"c1"}'),
                            "lease": str(session)}}


def fence_txn():
    return {"request_txn": {
        "compare": [{"key": b64(P + "waiters/"), "result": "EQUAL", "target": "CREATE",
                     "create_revision": "0"}],
        "success": [{"request_put": {"key": b64(P + "waiters/"), "value": ""}}]}}


class Lock:
    """The lock's keys as tokenmgr writes them, driven by hand."""

    def __init__(self, gw, full_range_compare):
        self.gw = gw
        self.full_range_compare = full_range_compare
        self.lease = int(gw.call("/v3/lease/grant", {"TTL": 600})["ID"])
        self.session = int(gw.call("/v3/lease/grant", {"TTL": 600})["ID"])
        gw.call("/v3/kv/put", {"key": b64(P + "epoch"), "value": b64(EPOCH)})
        gw.call("/v3/kv/put", {"key": b64(P + "waiters/"), "value": ""})
        self.waiters = []  # (key, create revision), oldest first
        self.grant = None  # (key, mod revision)

    def no_older_waiter(self, rev):
        """The FIFO compares of a grant to this replica's waiter created at `rev`."""
        begin, end = P + "waiters/\x02", prefix_end(P + "waiters/")
        if self.full_range_compare:  # tokenmgr before 2026-12-07: the whole waiter range
            return [{"key": b64(begin), "range_end": b64(end), "create_revision": str(int(rev) - 1),
                     "result": "GREATER", "target": "CREATE"}]
        # Now: the range minus this replica's own keys (all the queued ones here), empty.
        return [{"key": b64(b), "range_end": b64(e), "create_revision": "0", "result": "EQUAL",
                 "target": "CREATE"} for b, e in ((begin, OWN), (prefix_end(OWN), end))]

    def queue(self, n):
        for _ in range(n):
            key = OWN + str(uuid.uuid4())
            r = self.gw.call("/v3/kv/txn", {"success": [waiter_put(key, self.session)]})
            self.waiters.append((key, r["header"]["revision"]))

    def fast_grant(self):
        key = P + "lock/" + str(uuid.uuid4())
        r = self.gw.call("/v3/kv/txn", {
            "compare": [
                {"key": b64(P + "lock"), "range_end": b64(prefix_end(P + "lock/")),
                 "result": "EQUAL", "target": "CREATE", "create_revision": "0"},
                {"key": b64(P + "epoch"), "result": "EQUAL", "target": "VALUE",
                 "value": b64(EPOCH)},
                {"key": b64(P + "waiters/\x02"), "range_end": b64(prefix_end(P + "waiters/")),
                 "result": "EQUAL", "target": "CREATE", "create_revision": "0"}],
            "success": [{"request_put": {"key": b64(key), "value": grant_value(),
                                         "lease": str(self.lease)}}, fence_txn()],
            "failure": [{"request_range": {"key": b64(P + "lock"),
                                           "range_end": b64(prefix_end(P + "lock/"))}}]})
        if not r.get("succeeded"):
            sys.exit(f"etcd_txn_ceiling: grant refused: {r}")
        self.grant = (key, r["header"]["revision"])

    def release(self):
        key, rev = self.grant
        r = self.gw.call("/v3/kv/txn", {
            "compare": [{"key": b64(key), "mod_revision": rev, "result": "EQUAL",
                         "target": "MOD"}],
            "success": [{"request_delete_range": {"key": b64(key)}}]})
        if not r.get("succeeded"):
            sys.exit(f"etcd_txn_ceiling: release refused: {r}")

    def handoff(self):
        old_key, old_rev = self.grant
        waiter, waiter_rev = self.waiters.pop(0)
        key = P + "lock/" + str(uuid.uuid4())
        requeued = OWN + str(uuid.uuid4())
        r = self.gw.call("/v3/kv/txn", {
            "compare": [{"key": b64(old_key), "mod_revision": old_rev, "result": "EQUAL",
                         "target": "MOD"}],
            "success": [
                {"request_delete_range": {"key": b64(old_key)}},
                {"request_txn": {
                    "compare": [
                        {"key": b64(waiter), "create_revision": waiter_rev, "result": "EQUAL",
                         "target": "CREATE"},
                        {"key": b64(P + "epoch"), "result": "EQUAL", "target": "VALUE",
                         "value": b64(EPOCH)}] + self.no_older_waiter(waiter_rev),
                    "success": [{"request_put": {"key": b64(key), "value": grant_value(),
                                                 "lease": str(self.lease)}},
                                {"request_delete_range": {"key": b64(waiter)}}, fence_txn()]}},
                waiter_put(requeued, self.session)],
            "failure": [waiter_put(requeued, self.session)]})
        if not (r.get("succeeded") and r["responses"][1]["response_txn"].get("succeeded")):
            sys.exit(f"etcd_txn_ceiling: handoff refused: {r}")
        rev = r["header"]["revision"]
        self.grant = (key, rev)
        self.waiters.append((requeued, rev))


def cpu_ms(pid):
    """CPU time (user + system) of a process so far, in ms."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def rate(f, seconds):
    n, start = 0, time.monotonic()
    while time.monotonic() - start < seconds:
        f()
        n += 1
    return n / (time.monotonic() - start)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", choices=["handoff", "cycle"], default="handoff")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=2)
    ap.add_argument("--full-range-compare", action="store_true",
                    help="the FIFO compare over the whole waiter range, as before 2026-12-07")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="etcd-ceiling-")
    etcd = None
    try:
        cport, pport = free_port(), free_port()
        url = f"http://127.0.0.1:{cport}"
        etcd = subprocess.Popen(
            ["etcd", "--name", "c", "--data-dir", f"{work}/data", "--listen-client-urls", url,
             "--advertise-client-urls", url, "--listen-peer-urls", f"http://127.0.0.1:{pport}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{pport}",
             "--initial-cluster", f"c=http://127.0.0.1:{pport}", "--log-level", "warn"],
            stdout=open(f"{work}/etcd.log", "wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                gw = Gateway(cport)
                gw.call("/v3/kv/range", {"key": b64("health")})
                break
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit("etcd_txn_ceiling: etcd did not start")
                time.sleep(0.05)
        lock = Lock(gw, args.full_range_compare)
        if args.shape == "handoff":
            lock.queue(50)
            # The first grant (the queue is not empty, so not a fast-path txn): a plain put.
            key = P + "lock/" + str(uuid.uuid4())
            r = gw.call("/v3/kv/put", {"key": b64(key), "value": grant_value(),
                                       "lease": str(lock.lease)})
            lock.grant = (key, r["header"]["revision"])
            step, bound, unit = lock.handoff, 1.0, "handoff txns/s"
        else:
            step, bound, unit = (lambda: (lock.fast_grant(), lock.release())), 0.5, "cycles/s"
        plain = P + "put/" + str(uuid.uuid4())
        put = lambda: gw.call("/v3/kv/put", {"key": b64(plain), "value": grant_value()})
        print(f"etcd_txn_ceiling: shape={args.shape}, {args.rounds} rounds of {args.seconds} s, "
              f"load {' '.join(open('/proc/loadavg').read().split()[:3])}")
        ratios = []
        for i in range(1, args.rounds + 1):
            c0 = cpu_ms(etcd.pid)
            tx = rate(step, args.seconds)
            c1 = cpu_ms(etcd.pid)
            puts = rate(put, args.seconds)
            c2 = cpu_ms(etcd.pid)
            ratios.append(tx / (puts * bound))
            print(f"round {i}: {unit} {tx:.0f}, puts/s {puts:.0f}, ratio to put"
                  f"{'/2' if bound < 1 else ''} {ratios[-1]:.2f}; etcd CPU ms per "
                  f"{unit.split('/')[0][:-1]} {(c1 - c0) / (tx * args.seconds):.2f}, per put "
                  f"{(c2 - c1) / (puts * args.seconds):.2f}", flush=True)
        print(f"median ratio {statistics.median(ratios):.2f}")
    finally:
        if etcd:
            etcd.kill()
            etcd.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
