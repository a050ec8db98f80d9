"""STORE=etcd key layout and handoff (issue 6): the lock is a grant key `<prefix>lock/<uuid>`; a
release on the replica that has the oldest waiter hands the lock over in the same etcd txn (one
revision); an old-layout `<prefix>lock` key is honoured; the fence keeps old replicas from
granting. Real etcd (one member per module), real tokenmgr processes on 127.0.0.1:0.
"""
import base64
import json
import threading
import uuid

import procs
from etcd_util import (etcd, eventually_status, lock, release, replicas,  # noqa: F401
                       status, wait_waiters)


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def prefix_end(p):
    return p[:-1] + chr(ord(p[-1]) + 1)


def gateway(cluster, path, body):
    r = cluster.members[0].call(path, body)
    assert r is not None, f"etcd {path} failed"
    return r


def revision(cluster):
    return int(gateway(cluster, "/v3/kv/range", {"key": b64("none")})["header"]["revision"])


def keys(cluster, prefix):
    """{key: kv} for every key under `prefix` (a linearizable read)."""
    r = gateway(cluster, "/v3/kv/range", {"key": b64(prefix), "range_end": b64(prefix_end(prefix))})
    return {base64.b64decode(kv["key"]).decode(): kv for kv in r.get("kvs", [])}


def epoch(cluster, p):
    """The token epoch under prefix `p`: a token is epoch + the grant key's create revision."""
    return int(base64.b64decode(keys(cluster, p + "epoch")[p + "epoch"]["value"]))


def lock_in_thread(port, timeout, **query):
    """Starts lock(port, timeout, ...) in a thread; returns (thread, result dict)."""
    out = {}
    th = threading.Thread(target=lambda: out.update(r=lock(port, timeout, **query)))
    th.start()
    return th, out


def new_prefix():
    return f"/tokenmgr-test/{uuid.uuid4()}/"


def test_etcd_compares_the_store_relies_on(etcd):
    """What the txns assume of etcd 3.4's gateway: an empty range compares as a zero key, a
    range compare holds only if it holds for every key in the range, and a nested txn's compares
    see the store as it was before the outer txn (so a txn can delete one grant key, create the
    next, and still check the waiters)."""
    p = new_prefix()
    empty = {"key": b64(p + "lock"), "range_end": b64(p + "lock0"), "target": "CREATE",
             "result": "EQUAL", "create_revision": "0"}
    assert gateway(etcd, "/v3/kv/txn", {"compare": [empty]}).get("succeeded")
    gateway(etcd, "/v3/kv/put", {"key": b64(p + "lock/a"), "value": b64("x")})
    assert not gateway(etcd, "/v3/kv/txn", {"compare": [empty]}).get("succeeded")
    nested = {"compare": [empty], "success": [{"request_put": {"key": b64(p + "nested"),
                                                               "value": b64("y")}}]}
    r = gateway(etcd, "/v3/kv/txn", {
        "success": [{"request_delete_range": {"key": b64(p + "lock/a")}},
                    {"request_txn": nested},
                    {"request_put": {"key": b64(p + "lock/b"), "value": b64("z")}}]})
    assert r.get("succeeded") and not r["responses"][1]["response_txn"].get("succeeded")
    assert set(keys(etcd, p)) == {p + "lock/b"}  # deleted and created at one revision


def test_a_handoff_to_a_waiter_on_the_releasing_replica_is_one_etcd_revision(etcd, replicas):
    p = new_prefix()
    a, b = replicas(etcd, 2, p)
    for _ in range(2):  # leave a warm spare lease, as in steady state
        s, g = lock(a.port, ttl=30)
        assert s == 200 and release(a.port, g["id"])[0] == 200
    s, g = lock(a.port, holder="first", ttl=30)
    assert s == 200
    th, out = lock_in_thread(a.port, 30, holder="second", ttl=30)
    wait_waiters(a.port, 1)
    before = revision(etcd)
    assert release(a.port, g["id"]) == (200, '"Released"')
    th.join(30)
    s, g2 = out["r"]
    assert s == 200
    # One write: old grant deleted, new grant created, waiter key deleted, all at `before + 1`.
    e = epoch(etcd, p)
    assert g2["token"] == e + before + 1 and revision(etcd) == before + 1
    ks = keys(etcd, p)
    grants = [k for k in ks if k.startswith(p + "lock/")]
    assert len(grants) == 1 and e + int(ks[grants[0]]["create_revision"]) == g2["token"]
    assert json.loads(base64.b64decode(ks[grants[0]]["value"]))["holder"] == "second"
    # No waiter key left; the fences and the token epoch.
    assert set(ks) == {grants[0], p + "waiters/", p + "waiters/\x01epoch", p + "epoch"}
    eventually_status(b.port, lambda st: st["token"] == g2["token"], "handoff visible on b")
    assert release(b.port, g2["id"])[0] == 200


def test_release_goes_to_the_oldest_waiter_even_on_another_replica(etcd, replicas):
    """The releasing replica has a waiter, but one on another replica queued first: that one is
    served first (the releasing replica only releases; the other grants)."""
    a, b = replicas(etcd, 2)
    s, g = lock(a.port, holder="holder", ttl=30)
    assert s == 200
    th1, out1 = lock_in_thread(b.port, 30, holder="on-b", ttl=30)
    wait_waiters(a.port, 1)
    th2, out2 = lock_in_thread(a.port, 30, holder="on-a", ttl=30)
    wait_waiters(a.port, 2)
    assert release(a.port, g["id"])[0] == 200
    th1.join(30)
    s, g1 = out1["r"]
    assert s == 200 and g1["token"] > g["token"]
    assert th2.is_alive()
    wait_waiters(a.port, 1)  # on-b's key went with its grant; on-a still queued
    assert th2.is_alive()
    assert release(b.port, g1["id"])[0] == 200  # b has no waiter: a grants its own
    th2.join(30)
    s, g2 = out2["r"]
    assert s == 200 and g2["token"] > g1["token"]
    assert release(a.port, g2["id"])[0] == 200


def test_release_racing_the_lease_expiry_never_grants_twice(etcd, replicas):
    """The holder's lease ends (revoked in etcd, as expiry does) while its release runs: either
    wins, and the waiter behind gets the lock exactly once."""
    p = new_prefix()
    a, = replicas(etcd, 1, p)
    for round_ in range(5):
        s, g = lock(a.port, holder="holder", ttl=30)
        assert s == 200
        th, out = lock_in_thread(a.port, 30, holder=f"next{round_}", ttl=30)
        wait_waiters(a.port, 1)
        grant = next(kv for k, kv in keys(etcd, p).items() if k.startswith(p + "lock/"))
        go = threading.Barrier(2)
        expiry = threading.Thread(target=lambda: (go.wait(), gateway(
            etcd, "/v3/lease/revoke", {"ID": grant["lease"]})))
        expiry.start()
        go.wait()
        s, body = release(a.port, g["id"])
        expiry.join(10)
        assert s in (200, 404), body
        th.join(30)
        s, g2 = out["r"]
        assert s == 200 and g2["token"] > g["token"]
        grants = [kv for k, kv in keys(etcd, p).items() if k.startswith(p + "lock/")]
        assert [epoch(etcd, p) + int(kv["create_revision"]) for kv in grants] == [g2["token"]]
        assert release(a.port, g2["id"])[0] == 200


def _legacy_lock(cluster, p, ttl, holder="old-version"):
    """Writes `<prefix>lock` the way tokenmgr did before grant keys; returns (id, token)."""
    lease = gateway(cluster, "/v3/lease/grant", {"TTL": str(ttl)})["ID"]
    lock_id = str(uuid.uuid4())
    value = json.dumps({"id": lock_id, "holder": holder, "ttl": ttl, "acquired_unix_ms": 1,
                        "expires_unix_ms": 2})
    r = gateway(cluster, "/v3/kv/put", {"key": b64(p + "lock"), "value": b64(value),
                                        "lease": lease})
    return lock_id, int(r["header"]["revision"])


def test_an_old_layout_lock_key_is_honoured_until_released(etcd, replicas):
    p = new_prefix()
    old_id, old_token = _legacy_lock(etcd, p, ttl=60)
    a, b = replicas(etcd, 2, p)
    st = status(a.port)
    assert st["held"] and st["holder"] == "old-version" and st["token"] == old_token
    s, body = lock(b.port, 0)
    assert s == 409 and "old-version" in body["Error"]
    th, out = lock_in_thread(a.port, 30, holder="new", ttl=30)
    wait_waiters(b.port, 1)
    assert release(b.port, old_id) == (200, '"Released"')
    th.join(30)
    s, g = out["r"]
    assert s == 200 and g["token"] > old_token
    assert p + "lock" not in keys(etcd, p)
    assert release(b.port, g["id"])[0] == 200


def test_an_old_layout_lock_key_ends_with_its_lease(etcd, replicas):
    p = new_prefix()
    old_id, old_token = _legacy_lock(etcd, p, ttl=2)
    a, = replicas(etcd, 1, p)
    s, g = lock(a.port, 15, holder="new", ttl=30)  # waits for the old lease to run out
    assert s == 200 and g["token"] > old_token
    assert release(a.port, old_id)[0] == 404
    assert release(a.port, g["id"])[0] == 200


def test_replicas_of_the_old_layout_are_fenced_out(etcd, replicas):
    """An older tokenmgr grants `<prefix>lock` when it is absent and no waiter key (any key under
    `<prefix>waiters/`) is older than its own: the fence key `<prefix>waiters/`, created with the
    first grant, fails both of its grant txns while a new-layout grant is held."""
    p = new_prefix()
    a, = replicas(etcd, 1, p)
    s, g = lock(a.port, ttl=30)
    assert s == 200 and p + "waiters/" in keys(etcd, p)
    absent = {"key": b64(p + "lock"), "target": "CREATE", "result": "EQUAL", "create_revision": "0"}
    put_lock = [{"request_put": {"key": b64(p + "lock"), "value": b64("{}")}}]
    waiters = {"key": b64(p + "waiters/"), "range_end": b64(p + "waiters0"), "target": "CREATE"}
    fast = {"compare": [absent, dict(waiters, result="EQUAL", create_revision="0")],
            "success": put_lock}
    assert not gateway(etcd, "/v3/kv/txn", fast).get("succeeded")
    mine = gateway(etcd, "/v3/kv/put", {"key": b64(p + "waiters/old"), "value": b64("{}")})
    rev = int(mine["header"]["revision"])
    queued = {"compare": [absent, dict(waiters, result="GREATER", create_revision=str(rev - 1))],
              "success": put_lock}
    assert not gateway(etcd, "/v3/kv/txn", queued).get("succeeded")
    gateway(etcd, "/v3/kv/deleterange", {"key": b64(p + "waiters/old")})
    assert release(a.port, g["id"])[0] == 200
    assert not gateway(etcd, "/v3/kv/txn", fast).get("succeeded")  # free, still fenced


def test_waiters_queued_together_are_served_one_at_a_time_in_queue_order(etcd, replicas):
    """Waiters that reach one replica within a few ms get their keys from one txn (the same
    create revision); they are still served one at a time, each once, and a waiter queued on
    another replica after them comes after them and before those queued after it."""
    p = new_prefix()
    a, b = replicas(etcd, 2, p)
    s, g = lock(a.port, holder="holder", ttl=30)
    assert s == 200
    order, guard, waiting = [], threading.Lock(), []

    def waiter(port, name, other_port):
        s, body = lock(port, 30, holder=name, ttl=30)
        with guard:
            order.append((name, s, body.get("token")))
        if s == 200:
            release(other_port, body["id"])

    def start(port, names, other_port):
        for n in names:
            th = threading.Thread(target=waiter, args=(port, n, other_port))
            th.start()
            waiting.append(th)

    start(a.port, ["a1", "a2", "a3", "a4"], b.port)
    wait_waiters(b.port, 4)
    start(b.port, ["b1"], a.port)
    wait_waiters(a.port, 5)
    start(a.port, ["a5", "a6"], b.port)
    wait_waiters(b.port, 7)
    revs = sorted(int(kv["create_revision"]) for k, kv in keys(etcd, p + "waiters/").items()
                  if k not in (p + "waiters/", p + "waiters/\x01epoch"))  # the fences
    assert len(revs) == 7
    assert release(a.port, g["id"])[0] == 200
    for th in waiting:
        th.join(60)
    names = [n for n, _, _ in order]
    assert all(s == 200 for _, s, _ in order), order
    assert sorted(names[:4]) == ["a1", "a2", "a3", "a4"] and names[4] == "b1"
    assert sorted(names[5:]) == ["a5", "a6"]
    tokens = [t for _, _, t in order]
    assert tokens == sorted(tokens) and len(set(tokens)) == 7 and tokens[0] > g["token"]


def _lease_of_the_grant(cluster, p):
    return next(kv["lease"] for k, kv in keys(cluster, p).items() if k.startswith(p + "lock/"))


def test_a_spare_lease_revoked_from_outside_costs_a_retry_not_a_503(etcd, replicas):
    """A released lock's lease is kept for the next grant; if someone revokes it meanwhile, etcd
    refuses the txn that names it (nothing applied): the grant, and a release handing over on
    it, retry with a new lease."""
    p = new_prefix()
    a, = replicas(etcd, 1, p)
    for ttl in (5, 7):  # a spare lease per TTL, both revoked
        s, g = lock(a.port, ttl=ttl)
        assert s == 200
        lease = _lease_of_the_grant(etcd, p)
        assert release(a.port, g["id"])[0] == 200
        gateway(etcd, "/v3/lease/revoke", {"ID": lease})
    s, g = lock(a.port, holder="fresh", ttl=5)  # would take the revoked 5 s spare
    assert s == 200, g
    th, out = lock_in_thread(a.port, 30, holder="next", ttl=7)
    wait_waiters(a.port, 1)
    assert release(a.port, g["id"]) == (200, '"Released"')  # handoff on the revoked 7 s spare
    th.join(30)
    s, g2 = out["r"]
    assert s == 200 and g2["token"] > g["token"]
    assert status(a.port)["holder"] == "next"
    assert release(a.port, g2["id"])[0] == 200
