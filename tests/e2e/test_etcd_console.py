"""The operator's console on STORE=etcd (issue 17): tokenmgr replicas on one real etcd share the
event history (one numbering), the cordons and the disabled licenses, across restarts of every
replica; etcd keeps only EVENTS_MAX events. Replicas are real processes on 127.0.0.1:0.
"""
import json
import signal
import uuid

import procs
from etcd_util import _b64, etcd, replicas  # noqa: F401


def report(port, node, events=(), state="held", license="license1"):
    body = {"pod": f"holder-{node}", "state": state, "license": license, "version": "test",
            "events": [dict(e) for e in events]}
    s, _, text = procs.request(port, "PUT", f"/api/nodes/{node}", body=json.dumps(body))
    return s, (json.loads(text) if text else None)


def claim(detail, license="license1"):
    return {"kind": "claim", "license": license, "token": 0, "detail": detail}


def events(port, limit=1000):
    s, body = procs.get_json(port, f"/api/events?after=0&limit={limit}")
    assert s == 200, body
    return body


def history(port):
    return [(e["seq"], e["node"], e["kind"], e["detail"]) for e in events(port)["events"]]


def admin(port, path):
    s, _, text = procs.request(port, "POST", path)
    return s, text


def etcd_count(cluster, prefix):
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    r = cluster.members[0].call("/v3/kv/range", {"key": _b64(prefix), "range_end": _b64(end),
                                                 "count_only": True}, timeout=10)
    assert r is not None
    return int(r.get("count", 0))


def etcd_get(cluster, key):
    import base64
    r = cluster.members[0].call("/v3/kv/range", {"key": _b64(key)}, timeout=10)
    kvs = (r or {}).get("kvs", [])
    return base64.b64decode(kvs[0]["value"]).decode() if kvs else None


def same_history_on(ports, n):
    """Waits until every replica lists the same n events; returns that list."""
    def check():
        views = [history(p) for p in ports]
        return views[0] if len(views[0]) == n and all(v == views[0] for v in views) else None
    return procs.wait_for(check, timeout=10, what=f"the same {n} events on every replica")


def test_events_reported_to_either_replica_share_one_numbering(etcd, replicas):
    a, b = replicas(etcd, 2)
    s, d = report(a.port, "n1", [claim("a-1"), claim("a-2")])
    assert s == 200 and d["acknowledged"] == 2, d
    s, d = report(b.port, "n2", [claim("b-1")])
    assert s == 200 and d["acknowledged"] == 1, d
    s, d = report(a.port, "n1", [claim("a-3")])
    assert s == 200 and d["acknowledged"] == 1, d
    h = same_history_on([a.port, b.port], 4)
    assert [e[0] for e in h] == [1, 2, 3, 4]
    assert [e[3] for e in h] == ["a-1", "a-2", "b-1", "a-3"]
    assert events(b.port)["last_seq"] == 4


def test_a_cordon_or_disable_on_one_replica_is_in_the_directives_from_the_other(etcd, replicas):
    a, b = replicas(etcd, 2)
    assert report(a.port, "n1")[0] == 200
    s, text = admin(a.port, "/api/nodes/n1/cordon")
    assert s == 200, text
    s, text = admin(b.port, "/api/licenses/license2/disable")
    assert s == 200, text

    def directives(port):
        s, d = report(port, "n1")
        assert s == 200, d
        return d
    procs.wait_for(lambda: directives(b.port)["cordoned"], timeout=10, what="cordon seen on b")
    procs.wait_for(lambda: directives(a.port)["disabled"] == ["license2"], timeout=10,
                   what="disable seen on a")
    h = same_history_on([a.port, b.port], 2)
    assert sorted(e[3] for e in h) == ["cordon", "disable"]
    s, text = admin(b.port, "/api/nodes/n1/uncordon")
    assert s == 200, text
    procs.wait_for(lambda: not directives(a.port)["cordoned"], timeout=10,
                   what="uncordon seen on a")


def test_history_and_marks_survive_restarting_every_replica(etcd, replicas):
    prefix = f"/tokenmgr-test/{uuid.uuid4()}/"
    a, b = replicas(etcd, 2, prefix=prefix)
    assert report(a.port, "n1", [claim("before-1")])[0] == 200
    assert report(b.port, "n2", [claim("before-2")])[0] == 200
    assert admin(a.port, "/api/nodes/n1/cordon")[0] == 200
    before = same_history_on([a.port, b.port], 3)
    for t in (a, b):
        assert t.stop(signal.SIGTERM) == 0, t.logs()
    c, d = replicas(etcd, 2, prefix=prefix)
    assert same_history_on([c.port, d.port], 3) == before
    s, dirs = report(d.port, "n1", [claim("after")])
    assert s == 200 and dirs["cordoned"] and dirs["acknowledged"] == 1, dirs
    h = same_history_on([c.port, d.port], 4)
    assert h[-1][0] == 4 and h[-1][3] == "after"


def test_etcd_keeps_only_events_max_events(etcd, replicas):
    prefix = f"/tokenmgr-test/{uuid.uuid4()}/"
    a, b = replicas(etcd, 2, prefix=prefix, extra_env={"EVENTS_MAX": "5"})
    for i in range(3):
        s, d = report((a, b)[i % 2].port, f"n{i}", [claim(f"{i}-{k}") for k in range(50)])
        assert s == 200 and d["acknowledged"] == 50, d
    assert etcd_get(etcd, prefix + "console/seq") == "150"
    procs.wait_for(lambda: etcd_count(etcd, prefix + "console/events/") == 5, timeout=10,
                   what="etcd holding 5 events")
    h = same_history_on([a.port, b.port], 5)
    assert [e[0] for e in h] == [146, 147, 148, 149, 150]
    # The counter is never deleted: a restarted replica numbers on.
    a.stop(signal.SIGTERM)
    (c,) = replicas(etcd, 1, prefix=prefix, extra_env={"EVENTS_MAX": "5"})
    assert report(c.port, "n9", [claim("next")])[0] == 200
    procs.wait_for(lambda: history(c.port)[-1][0] == 151, timeout=10, what="seq 151 on c")


def test_a_node_reporting_to_one_replica_is_listed_and_cordonable_on_the_other(etcd, replicas):
    a, b = replicas(etcd, 2)
    assert report(a.port, "n1", state="waiting", license="")[0] == 200

    def listed():
        s, body = procs.get_json(b.port, "/api/nodes")
        assert s == 200, body
        return [(n["node"], n["state"]) for n in body["nodes"]]
    procs.wait_for(lambda: listed() == [("n1", "waiting")], timeout=10, what="n1 listed on b")
    s, text = admin(b.port, "/api/nodes/n1/cordon")
    assert s == 200, text
    procs.wait_for(lambda: report(a.port, "n1", state="waiting", license="")[1]["cordoned"],
                   timeout=10, what="the cordon made on b in n1's directives from a")


def test_a_lease_expiry_is_one_event_and_a_release_none(etcd, replicas):
    a, b = replicas(etcd, 2)
    s, _, text = procs.request(a.port, "GET", "/api/token/lock/0?ttl=1&holder=gpu-x")
    assert s == 200, text
    expired = json.loads(text)
    # Released through the other replica: a release, not an expiry.
    s, _, text = procs.request(b.port, "GET", "/api/token/lock/5?ttl=30&holder=gpu-y")
    assert s == 200, text
    s, _, text = procs.request(a.port, "POST", f"/api/token/release/{json.loads(text)['id']}")
    assert s == 200, text
    # The first grant's lease ran out (before gpu-y got the lock); every replica's watch saw
    # the key go, and only the replica that granted it recorded it.
    h = same_history_on([a.port, b.port], 1)
    assert h[0][1:] == ("gpu-x", "lease_expiry", "lease expired"), h
    assert events(b.port)["events"][0]["token"] == expired["token"]
    # The release made no event, even once its lease is gone too.
    s, _, text = procs.request(b.port, "GET", "/api/token/lock/0?ttl=1&holder=gpu-z")
    assert s == 200, text
    assert len(same_history_on([a.port, b.port], 2)) == 2
    assert [e[1] for e in history(a.port)] == ["gpu-x", "gpu-z"]


def test_an_event_resent_to_the_other_replica_is_stored_once(etcd, replicas):
    a, b = replicas(etcd, 2)
    origin = "00000000feedbeef"

    def send(port):
        body = {"pod": "holder-n1", "state": "held", "license": "license1", "version": "test",
                "origin": origin, "events": [dict(claim("once"), n=1)]}
        s, _, text = procs.request(port, "PUT", "/api/nodes/n1", body=json.dumps(body))
        assert s == 200, text
        return json.loads(text)["acknowledged"]

    assert send(a.port) == 1
    same_history_on([a.port, b.port], 1)  # b has seen it through its watch
    assert send(b.port) == 1  # the acknowledgement a sent was lost; the agent asks b
    assert events(b.port)["last_seq"] == 1
    assert [e[3] for e in same_history_on([a.port, b.port], 1)] == ["once"]
