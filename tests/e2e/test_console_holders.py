"""The operator's console with real license-holders (issue 17): a waiting node shows within one
heartbeat, cordon moves a license to the waiting node, disable takes a license off its holder and
keeps it unclaimed, and the history and the usage report survive a tokenmgr restart. Real
processes on 127.0.0.1; every wait polls a condition with a deadline."""
import os
import signal
import tempfile
import time

import pytest

from procs import (Holder, Tokenmgr, free_port, get_json, make_pool, read_claim, request,
                   wait_for)

HEARTBEAT = 1
CLAIM_TTL = 4
SETTLE_MS = 200
# One heartbeat (the agent learns a directive from the answer to its next report) plus what a
# loaded CI box adds to a process's step.
ONE_BEAT = HEARTBEAT + 1.0


@pytest.fixture
def cluster():
    """tokenmgr with a state file, a pool with one license, and two holders: one holds it, the
    other waits."""
    work = tempfile.mkdtemp(prefix="console-holders-")
    pool = os.path.join(work, "pool")
    make_pool(pool, 1)
    tm = Tokenmgr(workdir=os.path.join(work, "tm"), env={"POOL_DIR": pool})
    os.makedirs(tm.workdir)
    tm.fixed_port = free_port()  # restarts come back on the same port, as behind a Service
    tm.start()
    holders = []

    def holder(name):
        h = Holder(name, pool, os.path.join(work, name, "etc"), tm.url("/api/token"), work,
                   heartbeat=HEARTBEAT, claim_ttl=CLAIM_TTL, settle_ms=SETTLE_MS)
        holders.append(h)
        return h.start()

    try:
        yield tm, pool, holder
    finally:
        for h in holders:
            h.kill()
        tm.kill()


def nodes(tm):
    status, body = get_json(tm.port, "/api/nodes")
    assert status == 200, body
    return {n["node"]: n for n in body["nodes"]}, body


def post(tm, path):
    status, _, body = request(tm.port, "POST", path)
    return status, body


def events(tm, after=0):
    status, body = get_json(tm.port, f"/api/events?after={after}&limit=1000")
    assert status == 200, body
    return body["events"]


def kinds(evs, node=None):
    return [(e["kind"], e.get("detail", "")) for e in evs if node is None or e["node"] == node]


def test_waiting_node_shows_first_and_cordon_moves_the_license(cluster):
    tm, pool, holder = cluster
    a = holder("node-a")
    wait_for(a.installed, timeout=10, what="node-a licensed")
    b = holder("node-b")
    started = time.monotonic()
    # The waiting node is listed within one heartbeat of its start, first.
    wait_for(lambda: nodes(tm)[0].get("node-b", {}).get("state") == "waiting",
             timeout=ONE_BEAT + 2, interval=0.05, what="node-b listed as waiting")
    assert time.monotonic() - started <= ONE_BEAT + 2
    listed, body = nodes(tm)
    assert body["nodes"][0]["node"] == "node-b", body
    assert listed["node-a"]["state"] == "held" and listed["node-a"]["license"] == "license1"
    assert body["totals"]["waiting"] == 1 and body["totals"]["held"] == 1

    # Cordon node-a: it withdraws and gives the claim back within one heartbeat, and node-b gets
    # the license within one heartbeat plus the settle (not after a claim TTL).
    status, text = post(tm, "/api/nodes/node-a/cordon")
    assert status == 200, text
    cordoned = time.monotonic()
    wait_for(lambda: a.installed() is None, timeout=ONE_BEAT + 2, interval=0.05,
             what="node-a withdrew")
    withdrew = time.monotonic() - cordoned
    wait_for(lambda: b.installed() == "HOSTID-license1", timeout=2 * ONE_BEAT + 2, interval=0.05,
             what="node-b got license1")
    moved = time.monotonic() - cordoned
    assert withdrew <= ONE_BEAT, f"withdrawn {withdrew:.2f}s after the cordon"
    assert moved <= 2 * ONE_BEAT + SETTLE_MS / 1000, f"moved in {moved:.2f}s"
    assert moved < CLAIM_TTL, "the claim was given back, not left to go stale"
    assert read_claim(pool, "license1")["node"] == "node-b"
    wait_for(lambda: nodes(tm)[0]["node-a"]["state"] == "cordoned", timeout=ONE_BEAT + 2,
             what="node-a listed as cordoned")

    # A cordoned node claims nothing, even with a license free.
    status, _ = post(tm, "/api/nodes/node-b/cordon")
    assert status == 200
    wait_for(lambda: b.installed() is None, timeout=ONE_BEAT + 2, what="node-b withdrew")
    time_free = time.monotonic()
    while time.monotonic() - time_free < 2 * HEARTBEAT + SETTLE_MS / 1000:
        assert a.installed() is None and b.installed() is None
        time.sleep(0.05)

    # Uncordon: the node claims again.
    assert post(tm, "/api/nodes/node-a/uncordon")[0] == 200
    wait_for(lambda: a.installed() == "HOSTID-license1", timeout=2 * ONE_BEAT + 2,
             what="node-a licensed again after uncordon")

    evs = events(tm)
    seqs = [e["seq"] for e in evs]
    assert seqs == sorted(set(seqs))
    admin = [(e["detail"], e["node"], e["actor"]) for e in evs if e["kind"] == "admin"]
    assert [d for d, _, _ in admin] == ["cordon", "cordon", "uncordon"]
    assert all(actor for _, _, actor in admin), admin
    a_kinds = kinds(evs, "node-a")
    assert ("withdraw", "cordoned") in a_kinds and ("release", "") in [
        (k, "") for k, _ in a_kinds], a_kinds
    assert ("claim", "") in [(k, "") for k, _ in kinds(evs, "node-b")]
    assert ("wait_start", "") in [(k, "") for k, _ in kinds(evs, "node-b")]


def test_disable_takes_the_license_away_and_nobody_claims_it(cluster):
    tm, pool, holder = cluster
    a = holder("node-a")
    b = holder("node-b")
    wait_for(lambda: a.installed() or b.installed(), timeout=10, what="one node licensed")
    owner, other = (a, b) if a.installed() else (b, a)
    assert post(tm, "/api/licenses/license1/disable")[0] == 200
    disabled = time.monotonic()
    wait_for(lambda: owner.installed() is None, timeout=ONE_BEAT + 2, interval=0.05,
             what="the holder withdrew the disabled license")
    assert time.monotonic() - disabled <= ONE_BEAT
    # Nobody claims it while disabled (a few heartbeats and past a claim TTL).
    deadline = time.monotonic() + CLAIM_TTL + HEARTBEAT
    while time.monotonic() < deadline:
        assert a.installed() is None and b.installed() is None
        time.sleep(0.1)
    assert read_claim(pool, "license1") is None, "the claim was not given back"
    status, body = get_json(tm.port, "/api/licenses")
    assert status == 200
    row = [r for r in body["licenses"] if r["name"] == "license1"][0]
    assert row.get("disabled") is True or row.get("state") == "disabled", row
    # The withdrawal is recorded with its reason.
    assert ("withdraw", "disabled") in kinds(events(tm), owner.node)
    assert post(tm, "/api/licenses/license1/enable")[0] == 200
    wait_for(lambda: a.installed() or b.installed(), timeout=2 * ONE_BEAT + 2,
             what="licensed again after enable")


def test_history_marks_and_usage_survive_a_tokenmgr_restart(cluster):
    tm, pool, holder = cluster
    a = holder("node-a")
    wait_for(a.installed, timeout=10, what="node-a licensed")
    assert post(tm, "/api/licenses/license1/disable")[0] == 200
    wait_for(lambda: a.installed() is None, timeout=ONE_BEAT + 2, what="withdrawn")
    before = events(tm)
    assert before
    for sig in (signal.SIGTERM, signal.SIGKILL):
        tm.stop(sig)
        tm.start()
        after = events(tm)
        assert [e["seq"] for e in after[:len(before)]] == [e["seq"] for e in before]
        # The mark survived: the license stays off every node.
        assert a.installed() is None
        # The table refills from the agents' reports within a heartbeat.
        wait_for(lambda: "node-a" in nodes(tm)[0], timeout=ONE_BEAT + 2,
                 what="node-a reported again")
    assert post(tm, "/api/licenses/license1/enable")[0] == 200
    wait_for(a.installed, timeout=2 * ONE_BEAT + 2, what="licensed after enable")
    new = events(tm)
    assert new[-1]["seq"] > before[-1]["seq"]
    status, usage = get_json(tm.port, "/api/usage?from=-1h&to=now")
    assert status == 200, usage
    status, _, csv = request(tm.port, "GET", "/api/usage?from=-1h&to=now&format=csv")
    assert status == 200 and "node-a" in csv, csv
