"""STORE=etcd with data tokenmgr did not write under its prefix (issue 15 item 3), and fencing
tokens after etcd lost its data (item 4). Real etcd, real tokenmgr replicas on 127.0.0.1:0."""
import shutil
import signal
import uuid

import procs
from etcd_util import (EtcdCluster, delete_prefix, etcd, lock, put_raw, release,  # noqa: F401
                       replicas, status, wait_ready)

FOREIGN_VALUES = [
    b'{"id":5}',  # the value that ended every replica (nlohmann type_error)
    b'{"id":"x","holder":7,"ttl":"10"}',
    b"not json at all",
    b"\xff\xfe\x00\x80 not utf-8",
    b"[1,2,3]",
    b"",
    b"[" * 5000,
    b'{"id":"' + b"a" * 200000 + b'"}',
]


def _metric(port, name):
    s, _, body = procs.request(port, "GET", "/metrics")
    assert s == 200
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def _readyz(port):
    s, _, body = procs.request(port, "GET", "/readyz")
    return s, body


def test_foreign_values_under_the_prefix_crash_no_replica_and_block_no_more_than_they_must(
        etcd, replicas):
    prefix = f"/tokenmgr-test/{uuid.uuid4()}/"
    reps = replicas(etcd, 2, prefix)
    s, g = lock(reps[0].port, holder="before")
    assert s == 200 and release(reps[0].port, g["id"])[0] == 200
    for i, value in enumerate(FOREIGN_VALUES):
        put_raw(etcd, f"{prefix}lock/x", value)
        # Each value is seen by every replica's watch; every replica lives on and says so.
        procs.wait_for(lambda: all(_metric(t.port, "tokenmgr_store_foreign_records") >= 1
                                   for t in reps), what=f"foreign value {i} counted")
        for t in reps:
            assert t.proc.poll() is None, t.logs()[-3000:]
            s, body = _readyz(t.port)
            assert s == 200 and "cannot use" in body and "lock/x" in body, body
        # Fail safe: it may be another version's grant, so nobody is granted while it is there.
        s, body = lock(reps[1].port, holder="n8")
        assert s == 409 and "foreign" in body["Error"], body
        assert status(reps[0].port)["held"] is True
    # Keys of odd shape and a waiter key that is not one of ours.
    put_raw(etcd, prefix.encode() + b"\xff\x00odd", b"\x01")
    put_raw(etcd, f"{prefix}waiters/zzz", b"{}")
    for t in reps:
        assert t.proc.poll() is None
    # Logged once per key and revision, not per read.
    for t in reps:
        lines = [ln for ln in t.logs().splitlines()
                 if "lock/x" in ln and "holds data tokenmgr cannot use" in ln]
        assert len(lines) == len(FOREIGN_VALUES), lines
    # Gone: the lock works again and the store is clean.
    delete_prefix(etcd, f"{prefix}lock/x")
    delete_prefix(etcd, f"{prefix}waiters/zzz")
    delete_prefix(etcd, prefix.encode() + b"\xff\x00odd")
    for t in reps:
        procs.wait_for(lambda: _metric(t.port, "tokenmgr_store_foreign_records") == 0,
                       what="foreign data gone")
        assert _readyz(t.port) == (200, '{"status": "ready"}')
    s, g2 = lock(reps[1].port, holder="after")
    assert s == 200 and g2["token"] > g["token"], g2


def test_a_restart_reads_the_foreign_value_again_and_still_serves(etcd, replicas):
    prefix = f"/tokenmgr-test/{uuid.uuid4()}/"
    put_raw(etcd, f"{prefix}lock/x", b'{"id":5}')
    reps = replicas(etcd, 1, prefix)  # waits for /readyz 200
    assert _metric(reps[0].port, "tokenmgr_store_foreign_records") == 1
    assert status(reps[0].port)["held"] is True


def test_a_wiped_etcd_starts_tokens_above_every_earlier_one(tmp_path, replicas):
    cluster = EtcdCluster(str(tmp_path / "etcd"), size=1).start()
    try:
        prefix = f"/tokenmgr-test/{uuid.uuid4()}/"
        reps = replicas(cluster, 2, prefix)
        last = 0
        for _ in range(5):
            s, g = lock(reps[0].port, holder="n6")
            assert s == 200 and release(reps[1].port, g["id"])[0] == 200
            last = g["token"]
        m = cluster.members[0]
        m.stop(signal.SIGKILL)
        shutil.rmtree(f"{m.workdir}/{m.name}.data")  # restore from nothing: revisions restart
        m.first_start = True
        m.start()
        cluster.wait_healthy()
        for t in reps:
            wait_ready(t.port, timeout=30)
        s, g = lock(reps[1].port, 10, holder="n8")
        assert s == 200 and g["token"] > last, (g, last)
        # A replica started only now agrees.
        late = replicas(cluster, 1, prefix)[0]
        assert release(late.port, g["id"])[0] == 200
        s, g2 = lock(late.port, holder="n9")
        assert s == 200 and g2["token"] > g["token"]
    finally:
        cluster.stop()


def test_an_expired_etcd_lease_is_logged_with_holder_and_token(etcd, replicas):
    prefix = f"/tokenmgr-test/{uuid.uuid4()}/"
    reps = replicas(etcd, 1, prefix)
    s, g = lock(reps[0].port, holder="n3", ttl=2)
    assert s == 200
    procs.wait_for(lambda: f"lease of 'n3' (token {g['token']}, ttl 2 s) expired" in reps[0].logs(),
                   timeout=15, what="expiry log line")
