"""The license-holder's reports to the operator's console (issue 17), against a stub tokenmgr in
this process that speaks the lock API and answers PUT /api/nodes/<node> as each test says: the
report's content, obeying a cordon, a tokenmgr without the console (404: asked once, quietly) and
a console that never answers (renewals go on at the heartbeat). Real license-holder processes on
127.0.0.1; every wait polls a condition with a deadline."""
import json
import os
import re
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from procs import Holder, make_pool, read_claim, request, wait_for

HEARTBEAT = 1
CLAIM_TTL = 4
ONE_BEAT = HEARTBEAT + 1.0  # one heartbeat plus what a loaded CI box adds to a step


class StubTokenmgr:
    """Grants every lock (strictly increasing tokens), accepts every release, and answers node
    reports with `mode`: "console" (directives from `cordoned`/`disabled`, all events
    acknowledged), "absent" (404, as a tokenmgr without the console), "unavailable" (503: its
    store is down, nothing stored) or "hang" (no answer)."""

    def __init__(self):
        self.mode = "console"
        self.cordoned = False
        self.disabled = []
        self.reports = []  # (node path, parsed body)
        self.lock = threading.Lock()
        self.token = 0
        self.release_hang = threading.Event()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def reply(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def body(self):
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def do_GET(self):
                if "/api/token/lock/" in self.path:
                    with stub.lock:
                        stub.token += 1
                        token = stub.token
                    return self.reply(200, {"id": f"g{token}", "token": token, "ttl": 10,
                                            "expires_in_ms": 10000})
                self.reply(404, {"Error": "no route"})

            def do_POST(self):
                self.body()
                if "/api/token/release/" in self.path:
                    return self.reply(200, {})
                self.reply(404, {"Error": "no route"})

            def do_PUT(self):
                raw = self.body()
                with stub.lock:
                    stub.reports.append((self.path, json.loads(raw)))
                    mode, cordoned, disabled = stub.mode, stub.cordoned, list(stub.disabled)
                if mode == "absent":
                    return self.reply(404, {"Error": "no route"})
                if mode == "unavailable":
                    return self.reply(503, {"Error": "console history: events not stored"})
                if mode == "hang":
                    stub.release_hang.wait(30)
                    return
                events = json.loads(raw).get("events", [])
                self.reply(200, {"cordoned": cordoned, "disabled": disabled,
                                 "acknowledged": len(events)})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/token"

    def sent(self):
        with self.lock:
            return list(self.reports)

    def events(self):
        return [e for _, body in self.sent() for e in body.get("events", [])]

    def close(self):
        self.release_hang.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def env():
    work = tempfile.mkdtemp(prefix="agent-report-")
    pool = os.path.join(work, "pool")
    make_pool(pool, 1)
    stub = StubTokenmgr()
    holders = []

    def holder(name):
        h = Holder(name, pool, os.path.join(work, name, "etc"), stub.url(), work,
                   heartbeat=HEARTBEAT, claim_ttl=CLAIM_TTL)
        holders.append(h)
        return h.start()

    try:
        yield stub, pool, holder
    finally:
        for h in holders:
            h.kill()
        stub.close()


def metric(holder, name):
    m = re.search(rf"^{name} (\S+)$", holder.metrics(), re.M)
    return float(m.group(1)) if m else None


def test_report_carries_the_state_and_the_claim_and_a_cordon_frees_the_license_at_once(env):
    stub, pool, holder = env
    a = holder("node-a")
    wait_for(lambda: any(body["state"] == "held" for _, body in stub.sent()), timeout=10,
             what="a report saying held")
    path, body = [r for r in stub.sent() if r[1]["state"] == "held"][0]
    assert path == "/api/nodes/node-a"
    assert body["pod"] == "flexdirect-node-a" and body["license"] == "license1"
    assert re.match(r"^\d+\.\d+\.\d+", body["version"]), body
    claim = [e for e in stub.events() if e["kind"] == "claim"]
    assert len(claim) == 1 and claim[0]["license"] == "license1" and claim[0]["token"] >= 1
    assert abs(claim[0]["time_ms"] / 1000 - time.time()) < 60

    stub.cordoned = True
    cordoned = time.monotonic()
    # The files go first, then the claim, in the same step: the license is free at once, not
    # after a claim TTL.
    wait_for(lambda: a.installed() is None and read_claim(pool, "license1") is None,
             timeout=ONE_BEAT + 2, interval=0.05, what="node-a withdrew and gave the claim back")
    assert time.monotonic() - cordoned <= ONE_BEAT
    wait_for(lambda: ("withdraw", "cordoned") in [(e["kind"], e["detail"]) for e in stub.events()],
             timeout=ONE_BEAT + 2, what="the withdraw event")
    assert "release" in [e["kind"] for e in stub.events()]
    wait_for(lambda: stub.sent()[-1][1]["state"] == "cordoned", timeout=ONE_BEAT + 2,
             what="a report saying cordoned")
    assert metric(a, "license_holder_cordoned") == 1
    status, _, text = request(a.port, "GET", "/readyz")
    assert status == 503 and "cordoned" in text, text
    # Nothing is claimed while cordoned, though the license is free.
    quiet_until = time.monotonic() + 2 * HEARTBEAT + 0.5
    while time.monotonic() < quiet_until:
        assert a.installed() is None and read_claim(pool, "license1") is None
        time.sleep(0.05)
    stub.cordoned = False
    wait_for(lambda: a.installed() == "HOSTID-license1", timeout=2 * ONE_BEAT + 2,
             what="licensed again after uncordon")


def test_tokenmgr_without_the_console_is_asked_once_and_the_license_kept(env):
    stub, pool, holder = env
    stub.mode = "absent"
    a = holder("node-a")
    wait_for(a.installed, timeout=10, what="node-a licensed")
    renewals = metric(a, "license_holder_renewals_total")
    wait_for(lambda: metric(a, "license_holder_renewals_total") >= renewals + 3, timeout=10,
             what="three more renewals")
    assert len(stub.sent()) == 1
    assert metric(a, "license_holder_report_failures_total") == 1
    lines = [l for l in a.logs().splitlines() if "operator's console" in l]
    assert len(lines) == 1, lines
    assert a.ready()


def test_a_console_that_never_answers_does_not_delay_renewals(env):
    stub, pool, holder = env
    stub.mode = "hang"
    a = holder("node-a")
    wait_for(a.installed, timeout=10, what="node-a licensed")
    start = metric(a, "license_holder_renewals_total")
    t0 = time.monotonic()
    wait_for(lambda: metric(a, "license_holder_renewals_total") >= start + 8, timeout=15,
             what="eight more renewals")
    # One renewal per heartbeat: a report that hangs for its whole timeout (a quarter heartbeat)
    # each time must not stretch the period (to 1.25 heartbeats: 10 s for these eight).
    assert time.monotonic() - t0 < 8 * HEARTBEAT + 0.8
    assert len(stub.sent()) >= 3
    assert metric(a, "license_holder_report_failures_total") >= 3
    assert a.ready()


def test_events_not_yet_stored_survive_a_kill_9_of_the_agent(env):
    """The claim event waits in HOST_DIR/.license-holder-events.json while tokenmgr cannot store
    it; the agent is killed; its next pod sends it, under the same stream and number (so a
    tokenmgr that did store it knows the resend)."""
    stub, pool, holder = env
    stub.mode = "unavailable"
    a = holder("node-a")
    wait_for(a.installed, timeout=10, what="node-a licensed")
    spool = os.path.join(a.host_dir, ".license-holder-events.json")
    wait_for(lambda: os.path.exists(spool) and "claim" in open(spool).read(), timeout=10,
             what="the claim event in the spool")
    assert os.stat(spool).st_mode & 0o777 == 0o600
    kept = json.load(open(spool))
    assert "claim" in [e["kind"] for e in kept["events"]], kept
    a.kill()
    with stub.lock:
        stub.reports.clear()  # sent and refused (503): nothing of it was stored
        stub.mode = "console"
    a.start()
    claims = wait_for(lambda: [(body.get("origin"), e) for _, body in stub.sent()
                               for e in body.get("events", []) if e["kind"] == "claim"],
                      timeout=10, what="the claim event from the next pod")
    sent = [e for e in kept["events"] if e["kind"] == "claim"][0]
    origin, e = claims[-1]
    assert origin == kept["origin"] and e["n"] == sent["origin_seq"], (claims, kept)
    assert e["license"] == "license1"
    wait_for(lambda: not os.path.exists(spool), timeout=10,
             what="the spool gone once tokenmgr stored its events")
