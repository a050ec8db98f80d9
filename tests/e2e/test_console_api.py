"""The operator's console (issue 17) on the real tokenmgr binary: the agents' reports, the node
table, the history, the admin actions, the usage report, their error codes, restarts, retention,
a flood of admin calls, and the `tokenmgr <command>` CLI against the real server."""
import json
import os
import signal
import subprocess
import time

import pytest

import procs
from tokenmgr_util import Client, metrics, run_binary, start_tm, tm  # noqa: F401

TOKEN = "s3cret-console-token"


def report(state="waiting", license="", pod="pod-1", events=(), version="1.0"):
    return json.dumps({"pod": pod, "state": state, "license": license, "version": version,
                       "events": list(events)})


def put(port, node, body, headers=None):
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    return procs.request(port, "PUT", f"/api/nodes/{node}", body=body, headers=h)


def post(port, path, headers=None):
    return procs.request(port, "POST", path, headers=headers or {})


def get(port, path):
    s, body = procs.get_json(port, path)
    assert s == 200, (path, body)
    return body


def events(port, after=0, limit=1000):
    return get(port, f"/api/events?after={after}&limit={limit}")


def error_of(body):
    return json.loads(body)["Error"]


def auth(token=TOKEN):
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def auth_tm(start_tm, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    return start_tm(env={"AUTH_TOKEN_FILE": str(token_file)})


# --- item 1: nodes, reports, directives ------------------------------------------------------

def test_a_report_shows_in_nodes_at_once_waiting_nodes_first(tm):
    s, _, body = put(tm.port, "gpu-a", report("held", "license1"))
    assert s == 200, body
    assert json.loads(body) == {"cordoned": False, "disabled": [], "acknowledged": 0}
    s, _, body = put(tm.port, "gpu-b", report("waiting", events=[{"kind": "wait_start"}]))
    assert s == 200 and json.loads(body)["acknowledged"] == 1
    nodes = get(tm.port, "/api/nodes")
    assert [n["node"] for n in nodes["nodes"]] == ["gpu-b", "gpu-a"]
    assert nodes["nodes"][0]["state"] == "waiting"
    assert nodes["nodes"][1]["license"] == "license1" and nodes["nodes"][1]["pod"] == "pod-1"
    assert nodes["totals"]["waiting"] == 1 and nodes["totals"]["held"] == 1
    e = events(tm.port)["events"]
    assert [(x["kind"], x["node"]) for x in e] == [("wait_start", "gpu-b")]


def test_cordon_shows_in_the_next_reports_directives(tm):
    assert put(tm.port, "gpu-c", report("held", "license2"))[0] == 200
    s, _, body = post(tm.port, "/api/nodes/gpu-c/cordon?by=alice")
    assert s == 200, body
    j = json.loads(body)
    assert j["ok"] is True and j["node"] == "gpu-c" and j["actor"] == "alice (127.0.0.1)"
    s, _, body = put(tm.port, "gpu-c", report("held", "license2"))
    assert json.loads(body)["cordoned"] is True
    assert post(tm.port, "/api/licenses/license5/disable")[0] == 200
    assert json.loads(put(tm.port, "gpu-c", report("released"))[2])["disabled"] == ["license5"]
    assert get(tm.port, "/api/nodes")["nodes"][0]["state"] == "cordoned"
    admin = [e for e in events(tm.port)["events"] if e["kind"] == "admin"]
    assert [(e["detail"], e["actor"]) for e in admin] == [("cordon", "alice (127.0.0.1)"),
                                                          ("disable", "127.0.0.1")]
    assert post(tm.port, "/api/nodes/gpu-c/uncordon")[0] == 200
    assert json.loads(put(tm.port, "gpu-c", report("waiting"))[2])["cordoned"] is False


HOSTILE_NAMES = ["%3Cscript%3E", "a%20b", "x%3Brm%20-rf", "%C3%A9t%C3%A9", "a" * 254, "%27%22",
                 "%0Aevil", "%E2%80%AE"]


def test_hostile_names_in_every_path_are_400(tm):
    assert put(tm.port, "gpu-ok", report())[0] == 200
    for name in HOSTILE_NAMES:
        for method, path in [("PUT", f"/api/nodes/{name}"),
                             ("POST", f"/api/nodes/{name}/cordon"),
                             ("POST", f"/api/nodes/{name}/uncordon"),
                             ("POST", f"/api/licenses/{name}/disable"),
                             ("POST", f"/api/licenses/{name}/enable")]:
            s, _, body = procs.request(tm.port, method, path, body=report())
            assert s == 400, (method, path, s, body)
    # An escape that decodes to '/' or NUL never reaches a route.
    assert procs.request(tm.port, "POST", "/api/nodes/a%2Fb/cordon")[0] == 400
    assert procs.request(tm.port, "POST", "/api/nodes/a%00b/cordon")[0] == 400
    assert [n["node"] for n in get(tm.port, "/api/nodes")["nodes"]] == ["gpu-ok"]
    assert events(tm.port)["last_seq"] == 0


def test_hostile_values_in_every_report_field_are_400(tm):
    bad_bodies = [
        "not json", "[]", "{}", json.dumps({"pod": "p", "state": "gone"}),
        json.dumps({"pod": "<img src=x>", "state": "waiting"}),
        json.dumps({"pod": "p", "state": "held", "license": "../../etc"}),
        json.dumps({"pod": "p", "state": "held", "license": "lic<b>"}),
        json.dumps({"pod": "p", "state": "waiting", "version": "v" * 100}),
        json.dumps({"pod": "p", "state": "<script>"}),
        json.dumps({"pod": 7, "state": "waiting"}),
        report(events=[{"kind": "evil"}]),
        report(events=[{"kind": "admin", "detail": "cordon"}]),
        report(events=[{"kind": "claim", "license": "a b"}]),
        report(events=[{"kind": "claim", "license": "l1", "detail": "d" * 300}]),
        report(events=[{"kind": "claim", "license": "l1", "token": -1}]),
        report(events=[{"kind": "claim", "license": "l1", "time_ms": "yesterday"}]),
        report(events=["claim"]),
        report(events=[{"kind": "wait_start"}] * 65),
    ]
    for body in bad_bodies:
        s, _, text = put(tm.port, "gpu-x", body)
        assert s == 400, (body[:80], s, text)
        assert "Error" in json.loads(text)
    assert events(tm.port)["last_seq"] == 0
    assert get(tm.port, "/api/nodes")["nodes"] == []
    # Escaped on the way out: a hostile detail in a stored event comes back as JSON text.
    detail = '</script><script>alert(1)</script>"\\'
    assert put(tm.port, "gpu-x", report(events=[{"kind": "withdraw", "license": "l1",
                                                 "detail": detail}]))[0] == 200
    assert events(tm.port)["events"][0]["detail"] == detail


def test_an_oversized_report_is_refused_and_tokenmgr_stays_healthy(tm):
    big = report(pod="p", events=[{"kind": "withdraw", "license": "l1", "detail": "x" * 250}] * 60)
    huge = big + " " * (70 * 1024 - len(big))
    s, _, _ = put(tm.port, "gpu-big", huge)
    assert s in (400, 413), s
    assert procs.request(tm.port, "GET", "/healthz")[0] == 200
    assert get(tm.port, "/api/nodes")["nodes"] == []


def test_unknown_node_or_license_is_404(tm, tmp_path):
    s, _, body = post(tm.port, "/api/nodes/nobody/cordon")
    assert s == 404 and "nobody" in error_of(body)
    pool = tmp_path / "pool"
    procs.make_pool(str(pool), 2)
    os.makedirs(tmp_path / "with-pool")
    t = procs.Tokenmgr(workdir=str(tmp_path / "with-pool"), args=["--pool-dir", str(pool)])
    try:
        t.start()
        s, _, body = post(t.port, "/api/licenses/license9/disable")
        assert s == 404 and "license9" in error_of(body), body
        assert post(t.port, "/api/licenses/.holders/disable")[0] in (400, 404)
        assert post(t.port, "/api/licenses/license1/disable")[0] == 200
        assert post(t.port, "/api/licenses/license1/enable")[0] == 200
    finally:
        t.kill()


def test_report_and_admin_need_the_token_when_auth_is_on(auth_tm):
    p = auth_tm.port
    for headers in ({}, auth("wrong-token"), {"Authorization": "Basic " + TOKEN}):
        s, h, _ = put(p, "gpu-a", report(), headers)
        assert s == 401 and h.get("www-authenticate") == "Bearer"
        assert post(p, "/api/licenses/license1/disable", headers)[0] == 401
    assert put(p, "gpu-a", report(), auth())[0] == 200
    assert post(p, "/api/nodes/gpu-a/cordon")[0] == 401
    s, _, body = post(p, "/api/nodes/gpu-a/cordon", {**auth(), "X-Actor": "bob"})
    assert s == 200 and json.loads(body)["actor"] == "bob (token)"
    assert post(p, "/api/nodes/gpu-a/cordon", {**auth(), "X-Actor": "b o b"})[0] == 400
    # Reading needs no token.
    assert get(p, "/api/nodes")["totals"]["cordoned"] == 1
    assert events(p)["events"][-1]["actor"] == "bob (token)"


# --- events and usage: paging and windows ----------------------------------------------------

def _fill_events(port, n):
    node = 0
    while n > 0:
        k = min(n, 64)
        body = report(events=[{"kind": "wait_start"}] * k)
        assert put(port, f"gpu-{node}", body)[0] == 200
        n -= k
        node += 1


def test_events_paging_clamps_large_limits_and_refuses_bad_values(tm):
    _fill_events(tm.port, 1100)
    page = get(tm.port, "/api/events?limit=99999999999999999999999")
    assert len(page["events"]) == 1000 and page["more"] is True and page["next"] == 1000
    assert len(get(tm.port, "/api/events")["events"]) == 100
    rest = get(tm.port, "/api/events?after=1000&limit=1000")
    assert len(rest["events"]) == 100 and rest["more"] is False
    past = get(tm.port, "/api/events?after=5000")
    assert past["events"] == [] and past["last_seq"] == 1100 and past["more"] is False
    none = get(tm.port, "/api/events?limit=0")
    assert none["events"] == [] and none["last_seq"] == 1100
    for query, word in [("after=-1", "after"), ("after=abc", "after"), ("after=1.5", "after"),
                        ("after=99999999999999999999", "after"), ("limit=-1", "limit"),
                        ("limit=ten", "limit"), ("limit=", "limit"), ("after=", "after"),
                        ("page=2", "page")]:
        s, _, body = procs.request(tm.port, "GET", f"/api/events?{query}")
        assert s == 400, (query, body)
        assert word in error_of(body), (query, body)


def test_usage_windows_and_formats(tm):
    now_ms = int(time.time() * 1000)
    evs = [{"kind": "claim", "license": "license1", "time_ms": now_ms - 60_000},
           {"kind": "release", "license": "license1", "time_ms": now_ms - 30_000}]
    assert put(tm.port, "gpu-u", report("released", events=evs))[0] == 200
    j = get(tm.port, "/api/usage?from=-1h")
    assert [(r["name"], round(r["held_seconds"])) for r in j["nodes"]] == [("gpu-u", 30)]
    assert [r["name"] for r in j["licenses"]] == ["license1"]
    s, h, body = procs.request(tm.port, "GET", "/api/usage?format=csv&from=-1h&to=now")
    assert s == 200 and h["content-type"].startswith("text/csv")
    lines = body.splitlines()
    assert lines[0] == "kind,name,held_seconds,holds"
    assert "node,gpu-u,30" in lines[1] and lines[2].startswith("license,license1,")
    for query, word in [("from=-1h&to=-2h", "before"), ("from=0", "days"),
                        ("from=-9999d", "days"), ("from=yesterday", "from"), ("to=soon", "to"),
                        ("from=2026-13-45T00:00:00Z", "from"), ("format=xml", "format"),
                        ("from=-1h&from=-2h", "")]:
        s, _, body = procs.request(tm.port, "GET", f"/api/usage?{query}")
        assert s == 400, (query, body)
        assert word in error_of(body), (query, body)


# --- durability, retention, journal failures --------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_events_and_marks_survive_a_restart(start_tm, sig):
    t = start_tm()
    assert put(t.port, "gpu-r", report(events=[{"kind": "wait_start"}]))[0] == 200
    assert post(t.port, "/api/nodes/gpu-r/cordon")[0] == 200
    assert post(t.port, "/api/licenses/license3/disable")[0] == 200
    before = events(t.port)
    assert before["last_seq"] == 3
    t.stop(sig)
    t2 = start_tm(workdir=t.workdir)
    after = events(t2.port)
    assert after["events"] == before["events"]
    # Marks are in force at once, before the node reports again.
    d = json.loads(put(t2.port, "gpu-r", report())[2])
    assert d["cordoned"] is True and d["disabled"] == ["license3"]
    # Numbering goes on above what was stored.
    assert post(t2.port, "/api/nodes/gpu-r/uncordon")[0] == 200
    assert events(t2.port)["last_seq"] == 4


def test_a_resent_event_is_stored_once_also_across_a_restart(start_tm):
    """An agent resends events whose acknowledgement it lost; numbered in its stream ("origin"
    and "n"), each is acknowledged again and stored once, also by a restarted tokenmgr (which
    reads the numbers back from its history file)."""
    t = start_tm()
    origin = "00c0ffee00c0ffee"
    first = [{"kind": "claim", "license": "license1", "token": 5, "n": 1}]
    both = first + [{"kind": "release", "license": "license1", "token": 5, "n": 2}]

    def send(port, evs):
        s, _, text = put(port, "gpu-d", json.dumps({"pod": "p", "state": "held",
                                                    "license": "license1", "origin": origin,
                                                    "events": evs}))
        assert s == 200, text
        return json.loads(text)["acknowledged"]

    assert send(t.port, first) == 1
    assert send(t.port, both) == 2
    assert [(e["kind"], e["origin"], e["origin_seq"]) for e in events(t.port)["events"]] == \
        [("claim", origin, 1), ("release", origin, 2)]
    t.stop(signal.SIGKILL)
    t2 = start_tm(workdir=t.workdir)
    assert send(t2.port, both) == 2
    assert events(t2.port)["last_seq"] == 2
    # Another stream of that node (a new spool) is stored.
    s, _, text = put(t2.port, "gpu-d", json.dumps({"pod": "p", "state": "held",
                                                   "origin": "00000000000000aa",
                                                   "events": first}))
    assert s == 200, text
    assert events(t2.port)["last_seq"] == 3
    # A malformed stream is refused, naming it.
    s, _, text = put(t2.port, "gpu-d", json.dumps({"pod": "p", "state": "held",
                                                   "origin": "<b>x</b>", "events": first}))
    assert s == 400 and "origin" in error_of(text), text


def test_retention_keeps_only_events_max(start_tm):
    t = start_tm(env={"EVENTS_MAX": "5"})
    _fill_events(t.port, 8)
    page = events(t.port)
    assert [e["seq"] for e in page["events"]] == [4, 5, 6, 7, 8]
    assert page["first_retained"] == 4 and page["last_seq"] == 8
    for _ in range(30):  # enough appends to make the journal compact its file
        assert put(t.port, "gpu-0", report(events=[{"kind": "wait_end"}]))[0] == 200
    t.stop()
    t2 = start_tm(workdir=t.workdir, env={"EVENTS_MAX": "5"})
    page = events(t2.port)
    assert [e["seq"] for e in page["events"]] == [34, 35, 36, 37, 38]


def test_bad_console_settings_stop_start_up_naming_the_variable():
    for env, word in [({"EVENTS_MAX": "0"}, "EVENTS_MAX"),
                      ({"EVENTS_MAX": "20000000"}, "EVENTS_MAX"),
                      ({"EVENTS_MAX_AGE": "30x"}, "EVENTS_MAX_AGE"),
                      ({"NODE_RETENTION": "5s"}, "NODE_RETENTION")]:
        rc, out = run_binary(["--listen-port", "0"], env)
        assert rc == 2 and word in out, (env, rc, out)


def test_an_unreadable_history_stops_start_up_with_the_message(tmp_path):
    (tmp_path / "console-admin.json").write_text("{not json")
    rc, out = run_binary(["--listen-port", "0", "--bind-address", "127.0.0.1",
                          "--state-file", str(tmp_path / "state.json")])
    assert rc == 1 and "console" in out and "admin" in out, out


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 256 KiB tmpfs (root only), unmounted at teardown."""
    mnt = tmp_path / "state"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
                       capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode(errors='replace')}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_journal_that_cannot_write_is_503_and_recovers(tmp_path, small_tmpfs):
    # A read-only directory does not stop root (nor an append to a file already open), so the
    # state directory is a small tmpfs that the test fills.
    os.makedirs(tmp_path / "run")
    t = procs.Tokenmgr(workdir=str(tmp_path / "run"))
    t.state_file = str(small_tmpfs / "state.json")
    try:
        t.start()
        assert put(t.port, "gpu-f", report())[0] == 200
        filler = small_tmpfs / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while os.write(fd, b"\0" * 4096) > 0:
                pass
        except OSError:
            pass  # ENOSPC: the directory is full
        finally:
            os.close(fd)
        s, _, body = post(t.port, "/api/nodes/gpu-f/cordon")
        assert s == 503, body
        assert "Error" in json.loads(body)
        s, _, body = put(t.port, "gpu-f", report(events=[{"kind": "wait_start"}]))
        assert s == 503, body
        assert json.loads(put(t.port, "gpu-f", report())[2])["cordoned"] is False
        assert events(t.port)["last_seq"] == 0
        assert procs.request(t.port, "GET", "/healthz")[0] == 200
        os.unlink(filler)
        assert post(t.port, "/api/nodes/gpu-f/cordon")[0] == 200
        s, _, body = put(t.port, "gpu-f", report(events=[{"kind": "wait_start"}]))
        assert s == 200 and json.loads(body) == {"cordoned": True, "disabled": [],
                                                 "acknowledged": 1}
        stored = events(t.port)
        assert [e["kind"] for e in stored["events"]] == ["admin", "wait_start"]
        # What was stored after the failed writes reads back whole.
        t.stop()
        t.start()
        assert events(t.port) == stored
    finally:
        t.kill()


def test_a_lease_expiry_is_an_event(tm):
    c = Client(tm.port)
    s, g = c.lock(0, holder="gpu-l", ttl=1)
    assert s == 200
    e = procs.wait_for(lambda: [x for x in events(tm.port)["events"]
                                if x["kind"] == "lease_expiry"], timeout=5,
                       what="a lease_expiry event")
    assert e[0]["node"] == "gpu-l" and e[0]["token"] == g["token"]
    assert e[0]["detail"] == "lease expired"
    c.close()


def test_console_metrics(tm):
    assert put(tm.port, "gpu-m", report(events=[{"kind": "wait_start"}]))[0] == 200
    assert put(tm.port, "gpu-n", report("held", "license1"))[0] == 200
    m = procs.wait_for(lambda: (lambda v: v if v["tokenmgr_longest_wait_seconds"] > 0 else None)(
        metrics(tm.port)), what="a wait longer than 0 s")
    assert m['tokenmgr_nodes{state="waiting"}'] == 1
    assert m['tokenmgr_nodes{state="held"}'] == 1
    assert m['tokenmgr_nodes{state="gone"}'] == 0
    assert m['tokenmgr_events_total{kind="wait_start"}'] == 1
    assert m['tokenmgr_events_total{kind="admin"}'] == 0


def test_a_flood_of_admin_calls_leaves_tokenmgr_healthy(tm):
    assert put(tm.port, "gpu-z", report("held", "license1"))[0] == 200
    c = Client(tm.port, timeout=10)
    start = time.monotonic()
    codes = {}
    for i in range(400):
        path = f"/api/nodes/gpu-z/{'cordon' if i % 2 == 0 else 'uncordon'}"
        s, _, _ = c.call("POST", path)
        codes[s] = codes.get(s, 0) + 1
        s, _, _ = c.call("POST", f"/api/nodes/nobody-{i}/cordon")
        codes[s] = codes.get(s, 0) + 1
    elapsed = time.monotonic() - start
    c.close()
    assert codes == {200: 400, 404: 400}, codes
    assert elapsed < 60, elapsed
    assert procs.request(tm.port, "GET", "/healthz")[0] == 200
    assert events(tm.port)["last_seq"] == 400
    assert json.loads(put(tm.port, "gpu-z", report("held", "license1"))[2])["cordoned"] is False


# --- the CLI against the real server -----------------------------------------------------------

def cli(args, env=None, timeout=15):
    return run_binary(args, env, timeout=timeout)


def test_cli_every_verb_against_the_real_server(tm):
    env = {"TOKENMGR_URL": tm.url("/api/token")}
    assert put(tm.port, "gpu-1", report("held", "license1"))[0] == 200
    assert put(tm.port, "gpu-2", report(events=[{"kind": "wait_start"}]))[0] == 200
    rc, out = cli(["nodes"], env)
    assert rc == 0 and out.splitlines()[0].split()[0] == "NODE", out
    assert out.index("gpu-2") < out.index("gpu-1"), out
    rc, out = cli(["nodes", "-o", "json"], env)
    assert rc == 0 and json.loads(out)["totals"]["waiting"] == 1, out
    rc, out = cli(["status"], env)
    assert rc == 0 and "lock" in out, out
    rc, out = cli(["licenses"], env)
    assert rc == 0, out
    rc, out = cli(["cordon", "gpu-1"], env)
    assert rc == 0 and "gpu-1" in out, out
    assert json.loads(put(tm.port, "gpu-1", report("held", "license1"))[2])["cordoned"] is True
    rc, out = cli(["uncordon", "gpu-1", "-o", "json"], env)
    assert rc == 0 and json.loads(out)["ok"] is True, out
    rc, out = cli(["disable", "license7"], env)
    assert rc == 0, out
    rc, out = cli(["enable", "license7"], env)
    assert rc == 0, out
    rc, out = cli(["events", "-o", "json"], env)
    assert rc == 0, out
    kinds = [json.loads(line)["kind"] for line in out.splitlines()]  # one JSON object a line
    assert kinds == ["wait_start", "admin", "admin", "admin", "admin"], out
    rc, out = cli(["events", "--after", "4"], env)
    assert rc == 0 and "disable" not in out and "enable" in out, out
    rc, out = cli(["usage", "-o", "csv"], env)
    assert rc == 0 and out.startswith("kind,name,held_seconds,holds"), out
    rc, out = cli(["usage", "-o", "json", "--from", "-2h"], env)
    assert rc == 0 and "nodes" in json.loads(out), out


def test_server_help_names_the_operator_commands():
    rc, out = cli(["--help"])
    assert rc == 0 and "tokenmgr status | licenses | nodes" in out and "cordon NODE" in out, out


def test_cli_exit_codes(tm, tmp_path):
    env = {"TOKENMGR_URL": tm.url()}
    assert cli(["nodes"], env)[0] == 0
    rc, out = cli(["cordon"], env)
    assert rc == 2 and "usage" in out.lower(), out
    rc, out = cli(["usage", "--from", "-1h", "--to", "-2h"], env)
    assert rc == 2, out
    rc, out = cli(["cordon", "no-such-node"], env)
    assert rc == 3 and "no-such-node" in out, out
    rc, out = cli(["disable", "bad name"], env)
    assert rc == 2, out
    port = procs.free_port()  # nothing listens there
    rc, out = cli(["nodes"], {"TOKENMGR_URL": f"http://127.0.0.1:{port}/api/token"})
    assert rc == 5 and f"127.0.0.1:{port}" in out and "TOKENMGR_URL" in out, out
    rc, out = cli(["nodes"], {"TOKENMGR_URL": "ftp://somewhere"})
    assert rc == 2 and "TOKENMGR_URL" in out, out
    rc, out = cli(["nodes"], {"TOKENMGR_URL": tm.url(), "AUTH_TOKEN_FILE": str(tmp_path / "no")})
    assert rc == 2 and str(tmp_path / "no") in out, out


def test_cli_url_forms_and_default(tm):
    for url in (tm.url(), tm.url("/"), tm.url("/api/token"), tm.url("/api/tokenmgr"),
                tm.url("/api")):
        rc, out = cli(["nodes", "-o", "json"], {"TOKENMGR_URL": url})
        assert rc == 0 and "nodes" in json.loads(out), (url, out)
    rc, out = cli(["nodes", "--url", tm.url("/api/token"), "-o", "json"],
                  {"TOKENMGR_URL": "http://127.0.0.1:1"})
    assert rc == 0, out  # the flag wins
    rc, out = cli(["nodes", "-o", "json"], {"LISTENPORT": str(tm.port)})
    assert rc == 0, out  # default: the local server on LISTENPORT


def test_cli_with_auth_token_file(auth_tm, tmp_path):
    assert put(auth_tm.port, "gpu-t", report(), auth())[0] == 200
    env = {"TOKENMGR_URL": auth_tm.url("/api/token")}
    rc, out = cli(["cordon", "gpu-t"], env)
    assert rc == 4 and "token" in out.lower(), out
    wrong = tmp_path / "wrong"
    wrong.write_text("nope\n")
    rc, out = cli(["cordon", "gpu-t"], {**env, "AUTH_TOKEN_FILE": str(wrong)})
    assert rc == 4, out
    right = tmp_path / "right"
    right.write_text(f"  {TOKEN}\n\n")
    rc, out = cli(["cordon", "gpu-t"], {**env, "AUTH_TOKEN_FILE": str(right)})
    assert rc == 0, out
    rc, out = cli(["uncordon", "gpu-t", "--token-file", str(right)], env)
    assert rc == 0, out
    rc, out = cli(["nodes"], env)  # reading needs no token
    assert rc == 0, out


def test_cli_events_follow_prints_new_events_as_they_are_stored(tm, tmp_path):
    out_path = tmp_path / "follow.out"
    env = {k: v for k, v in os.environ.items() if k not in ("TOKENMGR_URL", "AUTH_TOKEN_FILE")}
    env["TOKENMGR_URL"] = tm.url("/api/token")
    with open(out_path, "wb") as out:
        p = subprocess.Popen([procs.binary("tokenmgr"), "events", "-f", "-o", "json"], env=env,
                             stdout=out, stderr=subprocess.STDOUT)
    try:
        def lines():
            text = out_path.read_text()
            return [json.loads(x) for x in text.splitlines() if x.strip()]
        assert put(tm.port, "gpu-f1", report(events=[{"kind": "wait_start"}]))[0] == 200
        procs.wait_for(lambda: len(lines()) == 1, timeout=10, what="the first event")
        assert post(tm.port, "/api/nodes/gpu-f1/cordon")[0] == 200
        got = procs.wait_for(lambda: lines() if len(lines()) == 2 else None, timeout=10,
                             what="the cordon event")
        assert [e["kind"] for e in got] == ["wait_start", "admin"]
        assert p.poll() is None  # still following
    finally:
        procs.stop_pid(p, signal.SIGTERM)
