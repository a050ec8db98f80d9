"""The license-holder end-to-end behaviour with holders spread over several tokenmgr replicas on
one etcd (issue 6): real license-holder processes, each pointed (TOKENMGR_URL) at its own replica
of three, sharing one pool dir. Heartbeat 1 s, claim TTL 4 s, as in test_license_holder.py.

A holder talks only to the replica in its TOKENMGR_URL (in Kubernetes that URL is the Service, so
this pinning is the worst case). When that replica dies, its holders keep their installed license
and keep renewing their claims (claims live in the pool; renewing needs no mutex); only a holder
that still has to acquire waits until a tokenmgr answers again.
"""
import os
import signal
import uuid

import pytest

import procs
from etcd_util import etcd, etcd_env, kill_all, wait_ready  # noqa: F401 (fixture)
from procs import Holder, kill9_takeover, make_pool, read_claim, request, wait_for
from test_license_holder import SERVERS_CONF


@pytest.fixture
def spread(tmp_path, etcd):  # noqa: F811
    """3 etcd-backed replicas, a pool dir, and a factory for holders pinned to replica i % 3."""
    prefix = f"/tokenmgr-test/{uuid.uuid4()}/"
    replicas, holders = [], []
    pool = str(tmp_path / "pool")

    class Spread:
        pool_dir = pool

        def holder(self, i):
            tm = replicas[i % len(replicas)]
            h = Holder(f"node{i}", pool, str(tmp_path / f"node{i}" / "etc-bitfusionio"),
                       tm.url("/api/token"), str(tmp_path))
            h.replica = tm
            holders.append(h)
            return h.start()

    try:
        for i in range(3):
            wd = str(tmp_path / f"tm{i}")
            os.makedirs(wd)
            t = procs.Tokenmgr(workdir=wd, env=etcd_env(etcd, prefix), state_file=False)
            replicas.append(t)
            t.start()
        for t in replicas:
            wait_ready(t.port)
        s = Spread()
        s.replicas = replicas
        yield s
    finally:
        for h in holders:
            h.stop(signal.SIGKILL)
        kill_all(replicas)


def renewals(pool, ids, h):
    claim = read_claim(pool, ids[h.installed()])
    assert claim and claim["node"] == h.node, claim
    return claim["renewals"]


def test_holders_on_three_replicas_get_distinct_licenses_and_survive_a_replica_kill(spread):
    ids = make_pool(spread.pool_dir, 6)
    hs = [spread.holder(i) for i in range(7)]  # node i uses replica i % 3
    wait_for(lambda: sum(h.ready() for h in hs) == 6, timeout=30, what="six holders licensed")
    licensed = [h for h in hs if h.ready()]
    waiting = next(h for h in hs if not h.ready())
    got = [h.installed() for h in licensed]
    assert sorted(got) == sorted(ids), got
    assert waiting.installed() is None
    tokens = set()
    for h in licensed:
        with open(os.path.join(h.host_dir, "servers.conf")) as f:
            assert f.read() == SERVERS_CONF
        claim = read_claim(spread.pool_dir, ids[h.installed()])
        assert claim["node"] == h.node
        tokens.add(claim["token"])
    assert len(tokens) == 6  # fencing tokens from etcd, distinct across replicas

    # kill -9 a licensed holder whose replica differs from the waiter's: the waiter takes the
    # license over through its own replica within claim TTL + heartbeat (+ slack).
    victim = next(h for h in licensed if h.replica is not waiting.replica)
    lic = victim.installed()
    took = kill9_takeover(victim, waiting)
    assert took <= 4 + 1 + 1.5, f"takeover took {took:.1f}s"
    claim = read_claim(spread.pool_dir, ids[lic])
    assert claim["node"] == waiting.node and claim["token"] > max(tokens)

    # kill -9 a replica: its holders keep their license and keep renewing (no mutex needed),
    # for longer than a claim TTL; nobody else takes their licenses.
    alive = [h for h in hs if h.alive()]
    dead_tm = spread.replicas[0]
    pinned = [h for h in alive if h.replica is dead_tm]
    assert pinned
    before = {h.node: (h.installed(), renewals(spread.pool_dir, ids, h)) for h in pinned}
    dead_tm.stop(signal.SIGKILL)
    # Five renewals each (heartbeat 1 s) outlast a claim TTL (4 s) after the kill.
    wait_for(lambda: all(renewals(spread.pool_dir, ids, h) >= before[h.node][1] + 5
                         for h in pinned), timeout=15, what="renewals without the replica")
    for h in pinned:
        assert h.ready() and h.installed() == before[h.node][0], h.logs()[-2000:]
    assert sorted(h.installed() for h in alive) == sorted(ids)
    # The other replicas still serve the mutex.
    for t in spread.replicas[1:]:
        s, _, _ = request(t.port, "GET", "/api/token/status")
        assert s == 200
