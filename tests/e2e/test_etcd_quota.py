"""STORE=etcd and etcd's upkeep (issue 20): the space quota alarm (NOSPACE) is reported and
tokenmgr recovers by itself once an operator clears it; with ETCD_COMPACT=auto etcd's history
stays bounded however many grants are made.

Each test runs its own one-member etcd (the quota and compactions are etcd-wide) and real
tokenmgr processes on 127.0.0.1:0, stopped by PID. Waits poll a condition with a deadline.
"""
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time

import procs
from etcd_util import (EtcdCluster, eventually_status, lock, release, replicas,  # noqa: F401
                       wait_ready)
from tokenmgr_util import Client

NOSPACE_MESSAGE = ("etcd is out of space (quota alarm NOSPACE): compact and defragment etcd, "
                   "then `etcdctl alarm disarm`")


def b64(text):
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def etcdctl(cluster, *args):
    out = subprocess.run(["etcdctl", "--endpoints", cluster.endpoints, *args],
                         env={**os.environ, "ETCDCTL_API": "3"}, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, f"etcdctl {' '.join(args)}: {out.stderr}"
    return out.stdout


def endpoint_status(cluster):
    return json.loads(etcdctl(cluster, "endpoint", "status", "-w", "json"))[0]["Status"]


def gateway(cluster, path, body):
    """(HTTP status, parsed body) of one etcd gateway call."""
    s, _, text = procs.request(cluster.members[0].client_port, "POST", path,
                               body=json.dumps(body), headers={"Content-Type": "application/json"},
                               timeout=30)
    return s, json.loads(text) if text.strip().startswith("{") else text


def metric(port, line_prefix):
    s, _, text = procs.request(port, "GET", "/metrics")
    assert s == 200
    for line in text.splitlines():
        if line.startswith(line_prefix + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{line_prefix} not in /metrics")


def readyz(port):
    s, _, body = procs.request(port, "GET", "/readyz", timeout=5)
    return s, body


def fill_until_nospace(cluster):
    """Writes 1 MiB values under /filler/ until etcd refuses with its quota alarm."""
    value = b64(os.urandom(1 << 20))
    for i in range(200):
        s, body = gateway(cluster, "/v3/kv/put", {"key": b64(f"/filler/{i}"), "value": value})
        if s != 200:
            assert "database space exceeded" in json.dumps(body), body
            return
    raise AssertionError("etcd never ran out of space")


def test_quota_alarm_is_reported_and_cleared_by_itself(tmp_path, replicas):
    cluster = EtcdCluster(str(tmp_path / "etcd"), size=1)
    cluster.members[0].extra_args = ["--quota-backend-bytes", str(16 << 20)]
    cluster.start()
    try:
        (t,) = replicas(cluster, 1)
        assert metric(t.port, 'tokenmgr_store_alarm{alarm="nospace"}') == 0
        s, held = lock(t.port, holder="before", ttl=60)
        assert s == 200
        waiter = {}
        waiting = threading.Thread(target=lambda: waiter.update(r=lock(t.port, 60, holder="w")))
        waiting.start()
        procs.wait_for(lambda: procs.get_json(t.port, "/api/token/status")[1]["waiters"] == 1,
                       timeout=10, what="a queued waiter")

        fill_until_nospace(cluster)

        # Reported: not ready (with the reason), the metric, and a 503 that says what to do.
        procs.wait_for(lambda: readyz(t.port)[0] == 503, timeout=10, what="/readyz 503")
        s, body = readyz(t.port)
        assert json.loads(body)["Error"] == "not ready: " + NOSPACE_MESSAGE, body
        assert metric(t.port, 'tokenmgr_store_alarm{alarm="nospace"}') == 1
        waiting.join(timeout=10)  # answered at once, not at the end of its 60 s
        assert not waiting.is_alive()
        assert (waiter["r"][0], waiter["r"][1]["Error"]) == (503, NOSPACE_MESSAGE), waiter
        s, body = lock(t.port, holder="during")
        assert (s, body["Error"]) == (503, NOSPACE_MESSAGE), body
        s, _, text = procs.request(t.port, "POST", f"/api/token/renew/{held['id']}?ttl=60")
        assert (s, json.loads(text)["Error"]) == (503, NOSPACE_MESSAGE), text
        # The status page still reads etcd; and a release is only a delete (nobody waits now),
        # which etcd allows.
        s, st = procs.get_json(t.port, "/api/token/status")
        assert s == 200 and st["holder"] == "before", st
        assert release(t.port, held["id"])[0] == 200
        # The log sink writes its lines in batches: await them rather than read once.
        procs.wait_for(lambda: "quota alarm NOSPACE" in t.logs(), timeout=10, what="alarm logged")

        # The operator's cure (docs/operations.md): delete, compact, defragment, disarm.
        etcdctl(cluster, "del", "--prefix", "/filler/")
        etcdctl(cluster, "compact", str(endpoint_status(cluster)["header"]["revision"]))
        etcdctl(cluster, "defrag")
        etcdctl(cluster, "alarm", "disarm")

        wait_ready(t.port, timeout=10)
        assert metric(t.port, 'tokenmgr_store_alarm{alarm="nospace"}') == 0
        s, g = lock(t.port, holder="after", ttl=30)
        assert s == 200, g
        assert release(t.port, g["id"])[0] == 200
        procs.wait_for(lambda: "NOSPACE cleared" in t.logs(), timeout=10, what="clear logged")
    finally:
        cluster.stop()


def compacted_revision(cluster):
    """The revision etcd's history starts at: a read at an older revision is refused."""
    s, body = gateway(cluster, "/v3/kv/range", {"key": b64("/none"), "revision": "1"})
    if s == 200:
        return 0
    m = re.search(r"compacted", json.dumps(body))
    assert m, body
    # etcd does not say where; find it by bisection over reads at old revisions.
    lo, hi = 1, endpoint_status(cluster)["header"]["revision"]
    while lo < hi:
        mid = (lo + hi) // 2
        s, _ = gateway(cluster, "/v3/kv/range", {"key": b64("/none"), "revision": str(mid)})
        lo, hi = (lo, mid) if s == 200 else (mid + 1, hi)
    return lo


def test_history_stays_bounded_with_compaction_on(tmp_path, replicas):
    cluster = EtcdCluster(str(tmp_path / "etcd"), size=1).start()
    try:
        a, b = replicas(cluster, 2, extra_env={"ETCD_COMPACT": "auto",
                                               "ETCD_COMPACT_INTERVAL": "5"})
        client = Client(a.port)
        start = time.monotonic()
        mid_revision = None
        for i in range(2000):
            s, g = client.lock(holder="cycle", ttl=10)
            assert s == 200, g
            s, _, _ = client.release(g["id"])
            assert s == 200
            if i == 999:
                mid_revision = endpoint_status(cluster)["header"]["revision"]
        end_revision = endpoint_status(cluster)["header"]["revision"]
        assert end_revision - mid_revision >= 2000  # each cycle writes at least 2 revisions
        # Within two intervals of the run's end, history before its middle is gone (the run's
        # first half ended at least one interval before that, or the run was quicker and the
        # compaction at its end covers it).
        procs.wait_for(lambda: compacted_revision(cluster) > mid_revision, timeout=15,
                       what="etcd compacted past the middle of the run")
        assert time.monotonic() - start < 120
        assert metric(a.port, "tokenmgr_etcd_compacted_revision") > mid_revision or \
            metric(b.port, "tokenmgr_etcd_compacted_revision") > mid_revision
        # What etcd keeps is the last interval or two, not 2,000 grants.
        in_use = endpoint_status(cluster)["dbSizeInUse"]
        assert in_use < 4 << 20, in_use
        # Both replicas still agree and serve.
        s, g = lock(b.port, holder="after", ttl=30)
        assert s == 200 and release(a.port, g["id"])[0] == 200
        if shutil.which("promtool"):  # the etcd store's series are valid exposition text
            s, _, text = procs.request(a.port, "GET", "/metrics")
            p = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                               capture_output=True, timeout=30)
            assert p.returncode == 0, p.stdout.decode() + p.stderr.decode()
    finally:
        cluster.stop()


def test_history_is_left_alone_with_compaction_off(tmp_path, replicas):
    cluster = EtcdCluster(str(tmp_path / "etcd"), size=1).start()
    try:
        (a,) = replicas(cluster, 1, extra_env={"ETCD_COMPACT": "off",
                                               "ETCD_COMPACT_INTERVAL": "5"})
        client = Client(a.port)
        for _ in range(50):
            s, g = client.lock(holder="cycle", ttl=10)
            assert s == 200 and client.release(g["id"])[0] == 200
        # Three intervals later nothing has been compacted (every revision still readable).
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline:
            assert compacted_revision(cluster) == 0
            time.sleep(1)  # sampling a condition that must stay false, not synchronising
        assert metric(a.port, 'tokenmgr_etcd_compactions_total{result="ok"}') == 0
    finally:
        cluster.stop()


def test_a_replica_stopped_across_compactions_catches_up(tmp_path, replicas):
    """A replica stopped (SIGSTOP) while the other grants and compacts past everything it had
    seen: once it runs again it must show the current holder and serve. (On loopback the watch
    stream's buffers usually still hold the events, so this does not force etcd's compacted-watch
    cancel; that answer, 'created' then 'canceled' with compact_revision, was checked by hand on
    etcd 3.4 and EtcdLockService::OnWatch resyncs on it.)"""
    cluster = EtcdCluster(str(tmp_path / "etcd"), size=1).start()
    try:
        a, b = replicas(cluster, 2, extra_env={"ETCD_COMPACT_INTERVAL": "5"})
        s, g = lock(a.port, holder="first", ttl=30)
        assert s == 200
        eventually_status(b.port, lambda st: st["holder"] == "first", "b sees the first holder")
        assert release(a.port, g["id"])[0] == 200
        stopped_at = endpoint_status(cluster)["header"]["revision"]
        b.signal(signal.SIGSTOP)
        try:
            client = Client(a.port)

            def cycle_until_compacted():
                for _ in range(20):
                    s, g = client.lock(holder="cycle", ttl=10)
                    assert s == 200 and client.release(g["id"])[0] == 200
                return metric(a.port, "tokenmgr_etcd_compacted_revision") > stopped_at + 100
            procs.wait_for(cycle_until_compacted, timeout=40, interval=0,
                           what="a compaction past b's last revision")
            s, final = lock(a.port, holder="final", ttl=60)
            assert s == 200
        finally:
            b.signal(signal.SIGCONT)
        st = eventually_status(b.port, lambda st: st["holder"] == "final", "b shows 'final'",
                               timeout=15)
        assert st["token"] == final["token"]
        assert release(b.port, final["id"])[0] == 200
        s, g = lock(b.port, holder="b", ttl=10)
        assert s == 200 and release(a.port, g["id"])[0] == 200
    finally:
        cluster.stop()
