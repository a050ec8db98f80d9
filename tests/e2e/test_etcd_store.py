"""STORE=etcd (issue 6): several tokenmgr replicas sharing one lock through a real etcd.

Each test uses its own key prefix on a shared one-member etcd, or its own etcd when it stops
members. Replicas are real tokenmgr processes on 127.0.0.1:0, stopped by PID.
"""
import json
import random
import signal
import socket
import threading
import time
import uuid

import pytest

import procs
from etcd_util import (EtcdCluster, etcd, eventually_status, lock, release, replicas,  # noqa: F401
                       status, wait_ready, wait_waiters)
from tokenmgr_util import UUID4


def test_lock_on_one_status_on_another_release_on_a_third(etcd, replicas):
    a, b, c = replicas(etcd)
    s, g = lock(a.port, holder="node-a", ttl=30)
    assert s == 200 and UUID4.match(g["id"]) and g["ttl"] == 30
    st = eventually_status(b.port, lambda st: st["held"], "status on b shows the holder")
    assert st["holder"] == "node-a" and st["token"] == g["token"]
    assert 0 < st["expires_in_ms"] <= 30000
    s, body = release(c.port, g["id"])
    assert (s, body) == (200, '"Released"')
    assert release(a.port, g["id"])[0] == 404
    eventually_status(b.port, lambda st: not st["held"], "status on b shows it free")


def test_busy_is_409_on_every_replica_and_wrong_id_is_404(etcd, replicas):
    reps = replicas(etcd)
    s, g = lock(reps[0].port, holder="h1", ttl=30)
    assert s == 200
    for t in reps:
        s, body = lock(t.port, 0)
        assert s == 409 and "h1" in body["Error"], body
        assert release(t.port, str(uuid.uuid4()))[0] == 404
        assert release(t.port, "not-a-uuid")[0] == 404
    assert release(reps[2].port, g["id"])[0] == 200


def test_renew_through_another_replica_keeps_the_token(etcd, replicas):
    a, b = replicas(etcd, 2)
    s, g = lock(a.port, ttl=5)
    assert s == 200
    s, _, body = procs.request(b.port, "POST", f"/api/token/renew/{g['id']}?ttl=60")
    r = json.loads(body)
    assert s == 200 and r["token"] == g["token"] and r["ttl"] == 60 and r["id"] == g["id"]
    st = eventually_status(a.port, lambda st: st["ttl"] == 60, "renewed ttl visible on a")
    assert st["expires_in_ms"] > 50000
    s, _, _ = procs.request(b.port, "POST", f"/api/token/renew/{uuid.uuid4()}?ttl=60")
    assert s == 404
    assert release(a.port, g["id"])[0] == 200
    s, _, _ = procs.request(b.port, "POST", f"/api/token/renew/{g['id']}?ttl=60")
    assert s == 404


def test_lease_expiry_frees_the_lock(etcd, replicas):
    a, b = replicas(etcd, 2)
    s, g = lock(a.port, ttl=2)
    assert s == 200
    t0 = time.monotonic()
    s, g2 = lock(b.port, 10, holder="next")
    assert s == 200 and g2["token"] > g["token"]
    assert time.monotonic() - t0 >= 1.0  # not before the lease could have run out
    assert release(a.port, g["id"])[0] == 404
    assert release(b.port, g2["id"])[0] == 200


def test_a_reused_lease_still_lasts_the_full_ttl(etcd, replicas):
    """A released lock's lease is reused by the next grant (refreshed in parallel with the grant
    txn): the new lock must still last its whole TTL, and then end."""
    a, b = replicas(etcd, 2)
    for _ in range(3):
        s, g = lock(a.port, ttl=4)
        assert s == 200 and release(a.port, g["id"])[0] == 200
    # Let the spare lease age (this is the point, not a synchronisation): 1.5 s of its 4 s are
    # gone, yet it is young enough (ETCD_TIMEOUT_MS 1 s + 1 s margin) for the parallel refresh.
    time.sleep(1.5)
    t0 = time.monotonic()
    s, g = lock(a.port, ttl=4)  # on the aged spare: without the refresh it would end in ~2.5 s
    assert s == 200
    s, g2 = lock(b.port, 10, holder="next")
    held = time.monotonic() - t0
    assert s == 200 and g2["token"] > g["token"]
    assert 3.9 <= held <= 4 + 2, f"the lock on a reused lease lasted {held:.1f}s for ttl=4"
    assert release(a.port, g["id"])[0] == 404


def test_a_spare_lease_reused_without_a_keepalive_still_lasts_the_ttl(etcd, replicas):
    """Lock leases are granted for TTL + 1 s; a spare refreshed moments ago is reused as it is
    (no etcd call): the lock must last at least its TTL and end by TTL + 1 s."""
    a, b = replicas(etcd, 2)
    for _ in range(3):
        s, g = lock(a.port, ttl=3)
        assert s == 200 and release(a.port, g["id"])[0] == 200
    t0 = time.monotonic()
    s, g = lock(a.port, ttl=3)  # on the spare just freed
    assert s == 200
    s, g2 = lock(b.port, 10, holder="next")
    held = time.monotonic() - t0
    assert s == 200 and g2["token"] > g["token"]
    assert 2.9 <= held <= 3 + 1 + 1, f"the lock on a reused lease lasted {held:.1f}s for ttl=3"
    assert release(a.port, g["id"])[0] == 404


def test_fifo_across_replicas(etcd, replicas):
    reps = replicas(etcd)
    s, g = lock(reps[0].port, holder="first", ttl=60)
    assert s == 200
    order, results = [], {}
    threads = []
    for i in range(6):
        port = reps[i % 3].port

        def wait(i=i, port=port):
            s, body = lock(port, 30, holder=f"w{i}", ttl=60)
            results[i] = (s, body)
            order.append(i)
            if s == 200:
                release(reps[(i + 1) % 3].port, body["id"])

        th = threading.Thread(target=wait)
        th.start()
        threads.append(th)
        wait_waiters(reps[(i + 2) % 3].port, i + 1)  # queued, seen from yet another replica
    assert release(reps[1].port, g["id"])[0] == 200
    for th in threads:
        th.join(60)
    assert order == list(range(6))
    tokens = [results[i][1]["token"] for i in range(6)]
    assert all(results[i][0] == 200 for i in range(6))
    assert tokens == sorted(tokens) and tokens[0] > g["token"]


def test_disconnected_waiter_leaves_the_queue_and_is_never_granted(etcd, replicas):
    a, b, c = replicas(etcd)
    s, g = lock(a.port, holder="holder", ttl=60)
    assert s == 200
    sock = socket.create_connection(("127.0.0.1", b.port))
    sock.sendall(b"GET /api/token/lock/30?holder=gone HTTP/1.1\r\nHost: x\r\n\r\n")
    wait_waiters(c.port, 1)
    sock.close()
    wait_waiters(c.port, 0)
    result = {}
    th = threading.Thread(target=lambda: result.update(r=lock(c.port, 30, holder="stays")))
    th.start()
    wait_waiters(a.port, 1)
    assert release(a.port, g["id"])[0] == 200
    th.join(30)
    s, g2 = result["r"]
    assert s == 200
    st = eventually_status(b.port, lambda st: st["held"], "new holder visible")
    assert st["holder"] == "stays"
    assert release(b.port, g2["id"])[0] == 200


# gRPC (the default) and the JSON gateway (ETCD_PROTOCOL=json) side by side, as during a rolling
# update from a tokenmgr that spoke only JSON: one lock, one order.
@pytest.mark.parametrize("protocols", [("grpc",) * 3, ("json",) * 3, ("grpc", "json", "grpc")],
                         ids=["grpc", "json", "mixed"])
def test_concurrent_clients_over_replicas_never_overlap(etcd, replicas, protocols):
    prefix = f"/tokenmgr-test/{uuid.uuid4()}/"
    reps = [replicas(etcd, n=1, prefix=prefix, extra_env={"ETCD_PROTOCOL": p})[0]
            for p in protocols]
    guard = threading.Lock()
    state = {"inside": None, "overlaps": 0, "grants": []}
    errors = []

    def client(n):
        rng = random.Random(n)
        for _ in range(6):
            port = rng.choice(reps).port
            try:
                s, g = lock(port, 30, holder=f"c{n}", ttl=10)
            except OSError as e:
                errors.append(repr(e))
                continue
            if s != 200:
                errors.append((s, g))
                continue
            with guard:  # the independent checker: nobody else may be inside now
                if state["inside"] is not None:
                    state["overlaps"] += 1
                state["inside"] = n
                state["grants"].append(g["token"])
            time.sleep(rng.uniform(0, 0.01))
            with guard:
                state["inside"] = None
            s, body = release(rng.choice(reps).port, g["id"])
            if s != 200:
                errors.append(("release", s, body))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(10)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert state["overlaps"] == 0
    assert not errors, errors[:5]
    assert len(state["grants"]) == 60
    assert state["grants"] == sorted(state["grants"])  # tokens follow grant order
    assert len(set(state["grants"])) == 60


def test_kill9_the_replica_a_holder_used_then_release_through_another(etcd, replicas):
    a, b = replicas(etcd, 2)
    s, g = lock(a.port, holder="h", ttl=60)
    assert s == 200
    a.stop(signal.SIGKILL)
    # b learns of a's grant through its watch: soon, not necessarily by this request.
    eventually_status(b.port, lambda st: st["held"] and st["token"] == g["token"],
                      "a's grant seen on b")
    assert release(b.port, g["id"]) == (200, '"Released"')
    s, g2 = lock(b.port)
    assert s == 200 and g2["token"] > g["token"]


def test_tokens_keep_increasing_across_restarts_of_every_replica(etcd, replicas):
    prefix = f"/tokenmgr-test/{uuid.uuid4()}/"
    first = replicas(etcd, 2, prefix)
    s, g1 = lock(first[0].port)
    assert s == 200 and release(first[1].port, g1["id"])[0] == 200
    for t in first:
        assert t.stop() == 0  # SIGTERM: clean exit
    second = replicas(etcd, 2, prefix)
    s, g2 = lock(second[1].port, ttl=30)
    assert s == 200 and g2["token"] > g1["token"]
    eventually_status(second[0].port, lambda st: st["token"] == g2["token"], "grant seen on [0]")


def test_bad_store_config_stops_start_up(tmp_path):
    for env, needle in [({"STORE": "etcd"}, "ETCD_ENDPOINTS"),
                        ({"STORE": "zookeeper"}, "STORE"),
                        ({"STORE": "etcd", "ETCD_ENDPOINTS": "https://e:2379,http://f:2379"},
                         "mixes"),
                        ({"STORE": "etcd", "ETCD_ENDPOINTS": "http://e:2379",
                          "ETCD_CACERT": "/x"}, "https://"),
                        ({"STORE": "etcd", "ETCD_ENDPOINTS": "https://e:2379",
                          "ETCD_CERT": "/x"}, "ETCD_CERT")]:
        t = procs.Tokenmgr(workdir=str(tmp_path), env=env, state_file=False)
        assert t.start(expect_fail=True) == 2
        t.close_log()
        assert needle in t.logs()


# ---------------------------------------------------------------------------------------------
# etcd failures


def test_etcd_down_is_503_and_not_ready_and_service_resumes(tmp_path, replicas):
    cluster = EtcdCluster(str(tmp_path / "etcd"), size=1).start()
    try:
        a, b = replicas(cluster, 2)
        s, g = lock(a.port, holder="h", ttl=120)
        assert s == 200
        cluster.members[0].stop(signal.SIGKILL)
        wait_ready(a.port, ready=False)
        wait_ready(b.port, ready=False)
        s, body = lock(b.port, 0)
        assert s == 503 and "etcd" in body["Error"]
        s, body = lock(b.port, 5)
        assert s == 503
        assert release(a.port, g["id"])[0] == 503
        s, _, _ = procs.request(a.port, "POST", f"/api/token/renew/{g['id']}")
        assert s == 503
        s, _, _ = procs.request(a.port, "GET", "/api/token/status")
        assert s == 503
        cluster.members[0].start()
        wait_ready(a.port, timeout=30)
        wait_ready(b.port, timeout=30)
        # The lease survived (etcd restarts lease timers on recovery), but the release answered
        # 503 above is sent again once etcd answers (issue 19): the lock ends then, not with
        # its 120 s lease.
        s, g2 = lock(a.port, 10)
        assert s == 200 and g2["token"] > g["token"]
        assert release(b.port, g["id"])[0] == 404
    finally:
        cluster.stop()


def test_three_member_etcd_one_down_continues_two_down_no_grants_back_resumes(tmp_path,
                                                                              replicas):
    cluster = EtcdCluster(str(tmp_path / "etcd"), size=3).start()
    try:
        reps = replicas(cluster, 3)
        m0, m1, m2 = cluster.members
        s, g = lock(reps[0].port, ttl=60)
        assert s == 200
        m0.stop(signal.SIGKILL)  # the first endpoint of every replica
        s, body = procs.request(reps[1].port, "POST", f"/api/token/release/{g['id']}")[0:3:2]
        if s == 503:  # the replica noticed on this call; it moves to the next endpoint
            wait_ready(reps[1].port, timeout=30)
            s, body = release(reps[1].port, g["id"])
            # A 503 says the outcome is unknown: the txn may have reached etcd, and its chase
            # (a resend, 500 ms later) may have ended the lock before this retry. Either way
            # the lock is free now: the grant below, which does not wait, shows it.
            if s == 404:
                assert "already released" in body, body
                s, body = 200, '"Released"'
        assert (s, body) == (200, '"Released"')
        for t in reps:
            wait_ready(t.port, timeout=30)
        s, g2 = lock(reps[2].port, ttl=60)
        assert s == 200 and g2["token"] > g["token"]
        assert release(reps[0].port, g2["id"])[0] == 200

        m1.stop(signal.SIGKILL)  # no quorum now
        for t in reps:
            wait_ready(t.port, ready=False, timeout=30)
        for t in reps:
            s, _ = lock(t.port, 0)
            assert s == 503
        m0.start()  # quorum is back (m0 + m2)
        for t in reps:
            wait_ready(t.port, timeout=60)
        s, g3 = lock(reps[1].port, ttl=30)
        assert s == 200 and g3["token"] > g2["token"]
        assert status(reps[1].port)["token"] == g3["token"]
        assert release(reps[2].port, g3["id"])[0] == 200
    finally:
        cluster.stop()


def test_restart_everything_tokens_increase_and_no_stale_lock_outlives_its_lease(tmp_path,
                                                                               replicas):
    """3 etcd members + 3 replicas, all killed -9 at once, then started again on the same data
    dirs: the lock held at the crash ends with its lease (etcd restarts lease timers when a leader
    is elected, so at most one TTL after etcd is back), tokens continue above the old ones, and
    every replica serves again."""
    cluster = EtcdCluster(str(tmp_path / "etcd"), size=3).start()
    try:
        prefix = f"/tokenmgr-test/{uuid.uuid4()}/"
        reps = replicas(cluster, 3, prefix)
        s, g0 = lock(reps[0].port, holder="before")
        assert s == 200 and release(reps[1].port, g0["id"])[0] == 200
        s, stale = lock(reps[2].port, holder="crashed", ttl=3)  # held across the crash
        assert s == 200 and stale["token"] > g0["token"]
        for t in reps:
            t.stop(signal.SIGKILL)
        for m in cluster.members:
            m.stop(signal.SIGKILL)

        for m in cluster.members:
            m.start()
        cluster.wait_healthy()
        back = time.monotonic()
        reps = replicas(cluster, 3, prefix)
        st = status(reps[0].port)
        if st["held"]:  # the crashed holder's lock, not yet expired
            assert st["holder"] == "crashed" and st["token"] == stale["token"]
        s, g = lock(reps[1].port, 15, holder="after", ttl=30)  # waits for the stale lease
        waited = time.monotonic() - back
        assert s == 200, g
        assert g["token"] > stale["token"] > g0["token"]
        assert waited <= 3 + 3, f"stale lock outlived its lease: granted {waited:.1f}s after"
        assert release(reps[0].port, stale["id"])[0] == 404
        eventually_status(reps[2].port, lambda st: st["holder"] == "after", "grant on every replica")
        assert release(reps[2].port, g["id"]) == (200, '"Released"')
        s, g2 = lock(reps[0].port)
        assert s == 200 and g2["token"] > g["token"]
    finally:
        cluster.stop()
