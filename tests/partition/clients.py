"""Lock clients for the partition test, run inside a namespace of the lab:

    python3 clients.py --replica t1=http://10.213.0.13:8080 --replica t2=... \
        --per-replica 4 --ttl 2 --wait 2 --out history.jsonl --stop-file STOP --max-seconds 200

Each client is a thread bound to one replica: lock (long poll) -> hold a few ms -> release, and
after an acknowledged release a renew of the released id, which must answer 404 (a "ghost"
check: a 200 means the release was not real). A poller records every replica's /readyz every
200 ms. Every event is one JSON line with CLOCK_MONOTONIC times (the same clock in every
namespace, so the test can line the history up with its phases). Stops at the stop file, after
--max-seconds, or after --max-ops lock calls per client, whichever comes first.

    python3 clients.py --etcd-lock-history http://10.213.0.10:2379 /tokenmgr/

prints etcd's own history of the lock range (see dump_lock_history) for the checker.
"""
import argparse
import base64
import http.client
import json
import os
import sys
import threading
import time
import urllib.parse


class History:
    def __init__(self, path):
        self.f = open(path, "a", buffering=1)
        self.mu = threading.Lock()

    def add(self, **event):
        line = json.dumps(event, separators=(",", ":"))
        with self.mu:
            self.f.write(line + "\n")


def call(base, method, path, timeout):
    """(status, body text); status 0 = no answer (refused, reset, timed out)."""
    u = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    except (OSError, http.client.HTTPException) as e:
        return 0, type(e).__name__
    finally:
        conn.close()


def client(args, name, replica, base, hist, stop):
    for _ in range(args.max_ops):
        if stop():
            return
        ask = time.monotonic()
        s, body = call(base, "GET", f"/api/token/lock/{args.wait}?holder={name}&ttl={args.ttl}",
                       timeout=args.wait + 8)
        ans = time.monotonic()
        grant = None
        if s == 200:
            try:
                grant = json.loads(body)
            except ValueError:
                s = -1
        hist.add(k="lock", c=name, r=replica, ask=ask, ans=ans, s=s,
                 id=grant and grant.get("id"), token=grant and grant.get("token"))
        if not grant:
            time.sleep(0.05)  # pacing after a refusal, not synchronisation
            continue
        time.sleep(args.hold_ms / 1000)  # the critical section
        sent = time.monotonic()
        s, _ = call(base, "POST", f"/api/token/release/{grant['id']}", timeout=8)
        hist.add(k="release", c=name, r=replica, id=grant["id"], token=grant["token"],
                 sent=sent, ack=time.monotonic(), s=s)
        if s == 200:
            g, _ = call(base, "POST", f"/api/token/renew/{grant['id']}?ttl={args.ttl}", timeout=8)
            hist.add(k="ghost", c=name, r=replica, id=grant["id"], t=time.monotonic(), s=g)
        else:
            time.sleep(0.05)


def poll_ready(args, replicas, hist, stop):
    while not stop():
        for name, base in replicas:
            t = time.monotonic()
            s, _ = call(base, "GET", "/readyz", timeout=1)
            hist.add(k="ready", r=name, t=t, s=s)
        time.sleep(0.2)


def b64(s):
    return base64.b64encode(s.encode()).decode()


def dump_lock_history(etcd_url, prefix, max_seconds=20):
    """Prints, as one JSON object, every event etcd still has for the lock range
    [<prefix>lock, <prefix>lock0): a watch from revision 1 on every key from <prefix>lock on,
    read until the marker key put just before (outside tokenmgr's prefix, after it) shows up."""
    u = urllib.parse.urlsplit(etcd_url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=max_seconds)
    marker = "~partition-test-end"  # sorts after any "/..." key
    conn.request("POST", "/v3/kv/put", body=json.dumps({"key": b64(marker), "value": b64("x")}))
    head = int(json.loads(conn.getresponse().read())["header"]["revision"])
    # Tokens are the token epoch (<prefix>epoch, a decimal) plus the grant key's create revision.
    conn.request("POST", "/v3/kv/range", body=json.dumps({"key": b64(prefix + "epoch")}))
    kvs = json.loads(conn.getresponse().read()).get("kvs", [])
    epoch = int(base64.b64decode(kvs[0]["value"]).decode()) if kvs else 0
    conn.request("POST", "/v3/watch", body=json.dumps({"create_request": {
        "key": b64(prefix + "lock"), "range_end": b64("\0"), "start_revision": "1"}}))
    resp = conn.getresponse()
    events, complete, deadline = [], False, time.monotonic() + max_seconds
    lo, hi = prefix + "lock", prefix + "lock0"
    while not complete and time.monotonic() < deadline:
        line = resp.readline()
        if not line:
            break
        for e in json.loads(line).get("result", {}).get("events", []):
            kv = e["kv"]
            key = base64.b64decode(kv["key"]).decode(errors="replace")
            rev = int(kv["mod_revision"])
            complete = complete or rev >= head
            if lo <= key < hi:
                events.append({"type": e.get("type", "PUT"), "key": key, "rev": rev,
                               "create": int(kv.get("create_revision", 0))})
    conn.close()
    print(json.dumps({"head": head, "epoch": epoch, "complete": complete, "events": events}))


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--etcd-lock-history":
        return dump_lock_history(sys.argv[2], sys.argv[3])
    p = argparse.ArgumentParser()
    p.add_argument("--replica", action="append", required=True, help="name=http://host:port")
    p.add_argument("--per-replica", type=int, default=4)
    p.add_argument("--ttl", type=int, default=2)
    p.add_argument("--wait", type=int, default=2)
    p.add_argument("--hold-ms", type=int, default=10)
    p.add_argument("--out", required=True)
    p.add_argument("--stop-file", required=True)
    p.add_argument("--max-seconds", type=float, default=300)
    p.add_argument("--max-ops", type=int, default=20000)
    args = p.parse_args()
    replicas = [tuple(r.split("=", 1)) for r in args.replica]
    hist = History(args.out)
    deadline = time.monotonic() + args.max_seconds

    def stop():
        return time.monotonic() > deadline or os.path.exists(args.stop_file)

    threads = [threading.Thread(target=poll_ready, args=(args, replicas, hist, stop))]
    for name, base in replicas:
        for i in range(args.per_replica):
            threads.append(threading.Thread(
                target=client, args=(args, f"{name}-c{i}", name, base, hist, stop)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
