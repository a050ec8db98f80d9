"""End-to-end tests of license-holder: real tokenmgr + real license-holder processes, each
simulated node with its own host dir, all sharing one pool dir. Heartbeat 1 s, claim TTL 4 s."""
import http.server
import os
import shutil
import signal
import socket
import stat
import threading
import time

import pytest

from procs import (Holder, Tokenmgr, free_port, installed_license, kill9_takeover, make_pool,
                   read_claim, request, wait_for)

SERVERS_CONF = ("### K80_servers.conf\n10.0.0.1:56001\n10.0.0.2:56001\n\n"
                "### v100_servers.conf\n10.0.0.3:53334\n\n")


@pytest.fixture
def cluster(tmp_path):
    """Yields a factory for holders on one tokenmgr and one pool; stops everything by PID."""
    tm = Tokenmgr(workdir=str(tmp_path))
    pool_path = str(tmp_path / "pool")
    holders = []

    class Cluster:
        tokenmgr = tm
        pool_dir = pool_path
        @property
        def url(self):
            return tm.url("/api/token")

        def pool(self, n, **kw):
            return make_pool(pool_path, n, **kw)

        def holder(self, node, start=True, **kw):
            h = Holder(node, pool_path, str(tmp_path / node / "etc-bitfusionio"), self.url,
                       str(tmp_path), **kw)
            holders.append(h)
            return h.start() if start else h

    try:
        tm.start()
        yield Cluster()
    finally:
        for h in holders:
            h.stop(signal.SIGKILL)
        tm.stop(signal.SIGKILL)


def wait_ready(holders, timeout=20):
    wait_for(lambda: all(h.ready() for h in holders), timeout=timeout, what="holders ready")


def test_each_node_gets_a_distinct_license_and_servers_conf(cluster):
    ids = cluster.pool(4)
    hs = [cluster.holder(f"node{i}") for i in range(4)]
    wait_ready(hs)
    got = [h.installed() for h in hs]
    assert sorted(got) == sorted(ids), got
    for h in hs:
        with open(os.path.join(h.host_dir, "servers.conf")) as f:
            assert f.read() == SERVERS_CONF
        assert not os.path.exists(os.path.join(h.host_dir, "lockedby"))
        claim = read_claim(cluster.pool_dir, ids[h.installed()])
        assert claim["node"] == h.node and claim["pod"] == f"flexdirect-{h.node}"
        assert claim["token"] > 0
        mode = os.stat(os.path.join(h.host_dir, "lic", "host_id")).st_mode
        assert not mode & stat.S_IROTH, "license file must not be world-readable"
    tokens = [read_claim(cluster.pool_dir, ids[h.installed()])["token"] for h in hs]
    assert len(set(tokens)) == 4


def test_extra_holders_stay_up_not_ready_and_get_a_freed_license(cluster):
    cluster.pool(2)
    hs = [cluster.holder(f"node{i}") for i in range(3)]
    wait_for(lambda: sum(h.ready() for h in hs) == 2, timeout=20, what="two ready")
    waiting = next(h for h in hs if not h.ready())
    status, _, body = request(waiting.port, "GET", "/readyz")
    assert status == 503 and "no license available" in body
    assert waiting.alive() and waiting.installed() is None
    metrics = waiting.metrics()
    assert "license_holder_license_held 0" in metrics
    donor = next(h for h in hs if h.ready())
    freed = donor.installed()
    rc, out = donor.release()
    assert rc == 0, out
    wait_for(waiting.ready, timeout=10, what="waiting node licensed")
    assert waiting.installed() == freed
    assert donor.installed() is None
    # The released node's agent notices the release within a heartbeat and then does not claim
    # again while it runs (phase "released" is final for the process).
    wait_for(lambda: "(released)" in request(donor.port, "GET", "/readyz")[2], timeout=5,
             what="donor's agent in phase released")
    assert not donor.ready() and donor.installed() is None


def test_kill_9_license_moves_to_waiter_within_ttl_plus_heartbeat(cluster):
    cluster.pool(1)
    a = cluster.holder("node-a")
    wait_ready([a])
    b = cluster.holder("node-b")
    wait_for(lambda: "no license available" in request(b.port, "GET", "/readyz")[2], timeout=10)
    took = kill9_takeover(a, b)
    # claim TTL 4 s + one heartbeat 1 s + settle, with slack for process scheduling.
    assert took <= 4 + 1 + 1.5, f"takeover took {took:.1f}s"


def test_sigterm_then_restart_keeps_license_and_host_files_untouched(cluster):
    cluster.pool(3)
    a = cluster.holder("node-a")
    wait_ready([a])
    lic = a.installed()
    host_file = os.path.join(a.host_dir, "lic", "host_id")
    before = os.stat(host_file)
    t0 = time.monotonic()
    assert a.stop(signal.SIGTERM) == 0
    assert time.monotonic() - t0 < 2.0, "SIGTERM must exit within 2 s"
    assert a.installed() == lic, "SIGTERM keeps the installed license by default"
    a.start()
    wait_ready([a])
    assert a.installed() == lic
    after = os.stat(host_file)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_release_subcommand_works_without_a_running_agent(cluster):
    ids = cluster.pool(2)
    a = cluster.holder("node-a")
    wait_ready([a])
    lic = ids[a.installed()]
    assert a.stop(signal.SIGTERM) == 0
    rc, out = a.release()
    assert rc == 0, out
    assert "released 1" in out
    assert read_claim(cluster.pool_dir, lic) is None
    assert a.installed() is None
    # Everything the agent installed goes, servers.conf too (issue 15, item 8).
    assert not os.path.exists(os.path.join(a.host_dir, "servers.conf"))


def test_release_on_exit_gives_license_back(cluster):
    ids = cluster.pool(1)
    a = cluster.holder("node-a", args=["--release-on-exit"])
    wait_ready([a])
    assert a.stop(signal.SIGTERM) == 0
    assert read_claim(cluster.pool_dir, "license1") is None
    assert a.installed() is None
    assert ids


def test_starts_before_tokenmgr_and_recovers_when_it_comes_up(tmp_path):
    pool = str(tmp_path / "pool")
    make_pool(pool, 1)
    # Reserve a port for tokenmgr so the holder can be pointed at it before it exists.
    port = free_port()
    h = Holder("node-a", pool, str(tmp_path / "host"), f"http://127.0.0.1:{port}/api/token",
               str(tmp_path))
    tm = Tokenmgr(workdir=str(tmp_path / "tm"), state_file=False)
    os.makedirs(tm.workdir)
    try:
        h.start()
        wait_for(lambda: "tokenmgr" in request(h.port, "GET", "/readyz")[2], timeout=10)
        assert h.alive() and not h.ready()
        tm.fixed_port = port
        tm.start()
        wait_for(h.ready, timeout=15, what="holder licensed after tokenmgr came up")
        assert h.installed() == "HOSTID-license1"
    finally:
        h.stop(signal.SIGKILL)
        tm.stop(signal.SIGKILL)


class _GarbageHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"<html>not json</html>" if self.server.mode == "garbage" else b'{"id":"x"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("mode", ["garbage", "no-token"])
def test_tokenmgr_answering_garbage_is_survived(tmp_path, mode):
    server = http.server.HTTPServer(("127.0.0.1", 0), _GarbageHandler)
    server.mode = mode
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    pool = str(tmp_path / "pool")
    make_pool(pool, 1)
    h = Holder("node-a", pool, str(tmp_path / "host"),
               f"http://127.0.0.1:{server.server_address[1]}/api/token", str(tmp_path))
    try:
        h.start()
        wait_for(lambda: "tokenmgr" in request(h.port, "GET", "/readyz")[2], timeout=10)
        assert h.alive() and not h.ready() and h.installed() is None
        assert read_claim(pool, "license1") is None, "no claim without a fenced grant"
    finally:
        h.stop(signal.SIGKILL)
        server.shutdown()


def test_slow_tokenmgr_that_never_answers_does_not_wedge_the_agent(tmp_path):
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(16)  # accepts into the backlog, never answers
    pool = str(tmp_path / "pool")
    make_pool(pool, 1)
    h = Holder("node-a", pool, str(tmp_path / "host"),
               f"http://127.0.0.1:{lst.getsockname()[1]}/api/token", str(tmp_path))
    try:
        h.start()
        status, _, _ = request(h.port, "GET", "/healthz")
        assert status == 200
        wait_for(lambda: "tokenmgr" in request(h.port, "GET", "/readyz")[2], timeout=20)
        t0 = time.monotonic()
        assert h.stop(signal.SIGTERM) == 0
        assert time.monotonic() - t0 < 2.0, "SIGTERM during a hung call must still exit in 2 s"
    finally:
        h.stop(signal.SIGKILL)
        lst.close()


def test_hostile_pool_entries_are_skipped_and_nothing_escapes(cluster, tmp_path):
    pool = cluster.pool_dir
    os.makedirs(pool)
    outside = tmp_path / "outside"
    (outside / "lic").mkdir(parents=True)
    (outside / "lic" / "host_id").write_text("OUTSIDE\n")
    os.symlink(str(outside), os.path.join(pool, "aaa-symlink-to-outside"))
    with open(os.path.join(pool, "aab-a-file"), "w") as f:
        f.write("not a dir")
    os.makedirs(os.path.join(pool, "aac-empty"))
    os.makedirs(os.path.join(pool, "aad-new\nline", "lic"))
    with open(os.path.join(pool, "aad-new\nline", "lic", "host_id"), "w") as f:
        f.write("NEWLINE\n")
    os.makedirs(os.path.join(pool, "aae-has-symlink", "lic"))
    os.symlink("/etc/passwd", os.path.join(pool, "aae-has-symlink", "lic", "host_id"))
    os.makedirs(os.path.join(pool, "aaf-huge", "lic"))
    with open(os.path.join(pool, "aaf-huge", "lic", "host_id"), "wb") as f:
        f.truncate(2 << 20)
    os.makedirs(os.path.join(pool, "aag-garbage-claim", "lic"))
    with open(os.path.join(pool, "aag-garbage-claim", "lic", "host_id"), "w") as f:
        f.write("GARBAGE-CLAIMED\n")
    with open(os.path.join(pool, "aag-garbage-claim", "lockedby"), "wb") as f:
        f.write(b"\x00\xff{{{")
    os.makedirs(os.path.join(pool, "with space", "lic"))
    with open(os.path.join(pool, "with space", "lic", "host_id"), "w") as f:
        f.write("SPACE\n")
    hs = [cluster.holder("node-a")]
    wait_ready(hs)
    assert hs[0].installed() == "SPACE"
    assert hs[0].alive()
    assert not os.path.exists(os.path.join(str(outside), "lockedby")), "never write through a symlink"
    with open(os.path.join(pool, "aag-garbage-claim", "lockedby"), "rb") as f:
        assert f.read() == b"\x00\xff{{{", "a garbage claim is held until stale, not overwritten at once"


def test_pool_that_does_not_exist_then_appears(cluster):
    h = cluster.holder("node-a")
    wait_for(lambda: cluster.pool_dir in request(h.port, "GET", "/readyz")[2], timeout=10)
    assert h.alive()
    cluster.pool(1)
    wait_for(h.ready, timeout=10)


def test_pool_vanishing_mid_run_withdraws_before_ttl(cluster):
    cluster.pool(1)
    h = cluster.holder("node-a")
    wait_ready([h])
    moved = cluster.pool_dir + ".gone"
    os.rename(cluster.pool_dir, moved)
    t0 = time.monotonic()
    wait_for(lambda: h.installed() is None, timeout=10, what="self-fencing")
    # Withdrawn no later than claim_ttl - heartbeat after the last confirmation.
    assert time.monotonic() - t0 <= 4 - 1 + 0.5
    assert h.alive()
    os.rename(moved, cluster.pool_dir)
    wait_for(h.ready, timeout=10, what="recovery after the pool returns")


def test_host_dir_that_is_a_symlink_is_refused(cluster, tmp_path):
    cluster.pool(1)
    real = tmp_path / "real-etc"
    real.mkdir()
    link = tmp_path / "link-etc"
    os.symlink(str(real), str(link))
    h = Holder("node-a", cluster.pool_dir, str(link), cluster.url, str(tmp_path))
    try:
        h.start()
        wait_for(lambda: "is a symlink" in request(h.port, "GET", "/readyz")[2], timeout=10)
        assert os.listdir(str(real)) == [], "nothing written through a symlinked host dir"
    finally:
        h.stop(signal.SIGKILL)


def test_seed_written_claim_is_understood(cluster):
    cluster.pool(1)
    with open(os.path.join(cluster.pool_dir, "license1", "lockedby"), "w") as f:
        f.write("flexdirect-abcde\n")
    h = cluster.holder("node-a")
    # Held by the seed's agent until it has not changed for a full claim TTL on our clock.
    wait_for(lambda: "no license available" in request(h.port, "GET", "/readyz")[2], timeout=5)
    wait_for(h.ready, timeout=10, what="stale seed claim taken over")
    assert read_claim(cluster.pool_dir, "license1")["node"] == "node-a"


@pytest.mark.parametrize("env,needle", [
    ({"NODE_NAME": ""}, "NODE_NAME"),
    ({"HEARTBEAT_SECONDS": "abc"}, "HEARTBEAT_SECONDS"),
    ({"CLAIM_TTL_SECONDS": "2"}, "CLAIM_TTL_SECONDS"),
    ({"TOKENMGR_URL": "https://x/api/token"}, "TOKENMGR_URL"),
    ({"HEALTH_PORT": "-1"}, "HEALTH_PORT"),
    ({"K80_servers_1": "not-a-server"}, "K80_servers_1"),
])
def test_bad_config_stops_startup_naming_the_variable(tmp_path, env, needle):
    h = Holder("node-a", str(tmp_path / "pool"), str(tmp_path / "host"), "http://127.0.0.1:1/api/token",
               str(tmp_path), extra_env=env)
    h.start(wait_port=False)
    rc = h.proc.wait(timeout=10)
    assert rc == 2
    assert needle in h.logs()


def test_metrics_and_json_logs(cluster):
    cluster.pool(1)
    h = cluster.holder("node-a", extra_env={"LOG_FORMAT": "json"})
    wait_ready([h])
    m = h.metrics()
    for family in ("license_holder_license_held 1", "license_holder_claim_age_seconds",
                   "license_holder_acquire_wait_seconds_count 1", "license_holder_withdrawals_total 0",
                   'license_holder_license_info{node="node-a",license="license1"} 1'):
        assert family in m
    import json
    lines = [line for line in h.logs().splitlines() if line.strip()]
    assert lines and all(json.loads(line)["msg"] for line in lines)
    if shutil.which("promtool"):
        import subprocess
        r = subprocess.run(["promtool", "check", "metrics"], input=m, capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
