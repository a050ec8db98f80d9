"""End-to-end regression tests for the license-holder defects of issue 15 (items 1, 2, 4-9, 12,
13): real tokenmgr + real license-holder processes on 127.0.0.1, heartbeat 1 s, claim TTL 4 s."""
import contextlib
import json
import os
import re
import signal
import subprocess
import time

import pytest

from procs import (Holder, Tokenmgr, get_json, host_files, make_pool, read_claim, request,
                   wait_for)
from test_license_holder import cluster  # noqa: F401  (the fixture)


def readyz(h):
    return request(h.port, "GET", "/readyz", timeout=5)


def metric(text, name):
    """The value of one series (exact name with labels), or None if absent."""
    m = re.search(r"^" + re.escape(name) + r" (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def tokenmgr_grants(tm):
    return metric(request(tm.port, "GET", "/metrics")[2], "tokenmgr_lock_grants_total")


def add_broken_licenses(pool):
    """Three licenses that cannot be installed: no host_id, host_id over 1 MiB, a symlink inside."""
    os.makedirs(os.path.join(pool, "broken", "lic"))
    os.makedirs(os.path.join(pool, "huge", "lic"))
    with open(os.path.join(pool, "huge", "lic", "host_id"), "w") as f:
        f.write("x" * (1024 * 1024 + 1))
    os.makedirs(os.path.join(pool, "linked", "lic"))
    with open(os.path.join(pool, "linked", "lic", "host_id"), "w") as f:
        f.write("id\n")
    os.symlink("/etc/passwd", os.path.join(pool, "linked", "lic", "passwd"))


# ---- item 1: unusable licenses -------------------------------------------------------------------

def test_unusable_licenses_are_shown_and_never_make_waiting_agents_spin(cluster):  # noqa: F811
    cluster.pool(1)
    add_broken_licenses(cluster.pool_dir)
    a = cluster.holder("node-a")
    wait_for(a.ready, timeout=20, what="node-a ready")
    waiters = [cluster.holder("node-b"), cluster.holder("node-c")]
    for w in waiters:
        wait_for(lambda: (metric(w.metrics(), "license_holder_acquire_attempts_total") or 0) >= 1,
                 timeout=10, what="waiting")
    g0, t0 = tokenmgr_grants(cluster.tokenmgr), time.monotonic()
    time.sleep(4)  # a measurement window, not synchronisation
    grants, elapsed = tokenmgr_grants(cluster.tokenmgr) - g0, time.monotonic() - t0
    # At most one mutex request per heartbeat (1 s) per waiting agent; the defect made ~90/s.
    assert grants <= len(waiters) * (elapsed + 1), f"{grants} grants in {elapsed:.1f}s"
    for name in ("broken", "huge", "linked"):
        assert not os.path.exists(os.path.join(cluster.pool_dir, name, "lockedby")), name
    for w in waiters:
        assert w.installed() is None
        assert "no license available" in readyz(w)[2] and "3 unusable" in readyz(w)[2]
        # The reason is logged once per license, not per attempt.
        for name in ("broken", "huge", "linked"):
            n = w.logs().count(f"license '{name}' in")
            assert n == 1, (name, n, w.logs()[-2000:])
        m = w.metrics()
        assert metric(m, 'license_holder_pool_licenses{state="unusable"}') == 3


def test_unusable_licenses_in_the_pool_view_and_metrics(tmp_path):
    pool = str(tmp_path / "pool")
    make_pool(pool, 1)
    add_broken_licenses(pool)
    with open(os.path.join(pool, "README"), "w") as f:
        f.write("not a license\n")
    tm = Tokenmgr(workdir=str(tmp_path), env={"POOL_DIR": pool})
    with tm:
        status, body = get_json(tm.port, "/api/licenses")
        assert status == 200, body
        rows = {r["name"]: r for r in body["licenses"]}
        assert body["totals"]["free"] == 1
        assert body["totals"]["unusable"] == 4
        for name in ("broken", "huge", "linked", "README"):
            assert rows[name]["state"] == "unusable", rows[name]
            assert rows[name]["error"], rows[name]
        assert "lic/host_id" in rows["broken"]["error"]
        assert "symlink" in rows["linked"]["error"]
        page = request(tm.port, "GET", "/html/tmpl/index")[2]
        assert 'id="t-unusable">4<' in page
        assert "badge unusable" in page


# ---- item 2: license shape, POOL_DIR one level too high -----------------------------------------

def test_pool_dir_one_level_too_high_claims_nothing_and_names_the_right_one(cluster, tmp_path):  # noqa: F811
    root = str(tmp_path / "mnt")
    make_pool(os.path.join(root, "bitfusionio"), 2)
    os.makedirs(os.path.join(root, "docs"))
    with open(os.path.join(root, "docs", "README"), "w") as f:
        f.write("x\n")
    h = Holder("node-a", root, str(tmp_path / "host"), cluster.url, str(tmp_path)).start()
    try:
        want = "POOL_DIR=" + os.path.join(root, "bitfusionio")
        wait_for(lambda: want in readyz(h)[2], timeout=10, what="readyz names the POOL_DIR")
        assert readyz(h)[0] == 503
        assert want in h.logs()
        assert h.installed() is None
        assert host_files(h.host_dir) in ([], [".release-requested"])
        for d in ("bitfusionio", "docs"):
            assert not os.path.exists(os.path.join(root, d, "lockedby")), d
    finally:
        h.stop(signal.SIGKILL)


# ---- item 4: a grant below a token already in the pool ------------------------------------------

def test_agent_never_writes_with_a_token_below_one_in_the_pool(cluster):  # noqa: F811
    cluster.pool(1)
    # A claim from before tokenmgr's store was reset: its token is above anything handed out now.
    high = 9 * 10**18
    claim = {"v": 1, "node": "old-node", "pod": "old-pod", "token": high, "renewals": 3,
             "claimed_at_ms": 1, "renewed_at_ms": 2}
    with open(os.path.join(cluster.pool_dir, "license1", "lockedby"), "w") as f:
        f.write(json.dumps(claim) + "\n")
    h = cluster.holder("node-a")
    # The claim goes stale after 4 s; the agent then tries to take it over under the mutex.
    wait_for(lambda: (metric(h.metrics(), "license_holder_token_regressions_total") or 0) >= 1,
             timeout=15, what="token regression counted")
    assert read_claim(cluster.pool_dir, "license1")["token"] == high
    assert not h.ready() and h.installed() is None
    line = next(l for l in h.logs().splitlines() if "went backwards" in l)
    assert str(high) in line and "restart tokenmgr" in line, line


# ---- item 5: two agents with the same NODE_NAME -------------------------------------------------

def test_second_agent_with_the_same_node_name_refuses_and_the_first_keeps_the_license(cluster):  # noqa: F811
    ids = cluster.pool(2)
    a = cluster.holder("node-x")
    wait_for(a.ready, timeout=20, what="first ready")
    lic = ids[a.installed()]
    b = cluster.holder("node-x-dup", start=False, extra_env={"NODE_NAME": "node-x",
                                                              "POD_NAME": "flexdirect-dup"})
    b.start()
    wait_for(lambda: "same NODE_NAME" in readyz(b)[2], timeout=15, what="duplicate refused")
    body = readyz(b)[2]
    assert "flexdirect-node-x" in body and "flexdirect-dup" in body, body
    for _ in range(5):  # a few heartbeats: nothing flips
        assert read_claim(cluster.pool_dir, lic)["pod"] == "flexdirect-node-x"
        assert b.installed() is None and not b.ready()
        assert a.ready()
        wait_for(lambda c=read_claim(cluster.pool_dir, lic)["renewals"]:
                 read_claim(cluster.pool_dir, lic)["renewals"] > c, timeout=5, what="renewal")
    assert "same NODE_NAME" in b.logs()
    # The first pod goes away for good (a rolling update): the second takes the claim over.
    a.stop(signal.SIGKILL)
    wait_for(b.ready, timeout=15, what="second adopts the gone pod's claim")
    assert ids[b.installed()] == lic
    assert read_claim(cluster.pool_dir, lic)["pod"] == "flexdirect-dup"


def second_pod(cluster, first, pod):
    """Another pod of the first one's node: same NODE_NAME, same host dir, started."""
    p = Holder(first.node, cluster.pool_dir, first.host_dir, cluster.url, first.workdir,
               extra_env={"POD_NAME": pod})
    p.port_file += "." + pod
    p.log_path += "." + pod
    return p.start()


def test_second_agent_on_the_same_host_dir_leaves_it_alone_then_takes_over(cluster):  # noqa: F811
    # As on a real node: both pods mount the node's /etc/bitfusionio (a copied manifest, or a
    # rolling update with maxSurge). The second refuses, keeps its events in memory (the host
    # dir's lock is the first agent's) and changes no file there until the first is gone.
    ids = cluster.pool(2)
    a = cluster.holder("node-x")
    wait_for(a.ready, timeout=20, what="first ready")
    lic = ids[a.installed()]
    before = {n: os.stat(os.path.join(a.host_dir, n)).st_ino for n in host_files(a.host_dir)}
    b = second_pod(cluster, a, "flexdirect-dup")
    try:
        wait_for(lambda: "same NODE_NAME" in readyz(b)[2], timeout=15, what="duplicate refused")
        wait_for(lambda: "in use by another license-holder" in b.logs(), timeout=5,
                 what="spool left to the first agent")
        assert a.host_dir in next(l for l in b.logs().splitlines() if "in use by another" in l)
        for _ in range(3):  # a few heartbeats: the first keeps everything
            c = read_claim(cluster.pool_dir, lic)
            assert c["pod"] == "flexdirect-node-x" and a.ready() and not b.ready()
            wait_for(lambda c=c: read_claim(cluster.pool_dir, lic)["renewals"] > c["renewals"],
                     timeout=5, what="renewal")
        after = {n: os.stat(os.path.join(a.host_dir, n)).st_ino for n in host_files(a.host_dir)}
        assert after == before
        a.stop(signal.SIGKILL)  # gone for good: the second adopts the claim and its files
        wait_for(b.ready, timeout=15, what="second takes over")
        assert ids[b.installed()] == lic
        assert read_claim(cluster.pool_dir, lic)["pod"] == "flexdirect-dup"
    finally:
        b.stop(signal.SIGKILL)


def test_rolling_update_new_pod_takes_over_at_once_after_sigterm(cluster):  # noqa: F811
    ids = cluster.pool(1)
    a = cluster.holder("node-x")
    wait_for(a.ready, timeout=20, what="old pod ready")
    host_file = os.path.join(a.host_dir, "lic", "host_id")
    before = os.stat(host_file)
    assert a.stop(signal.SIGTERM) == 0
    assert read_claim(cluster.pool_dir, "license1")["exiting"] is True
    new = second_pod(cluster, a, "flexdirect-new")
    try:
        t0 = time.monotonic()
        wait_for(new.ready, timeout=10, what="new pod ready")
        assert time.monotonic() - t0 < 2.5  # no watching for three heartbeats
        assert ids[new.installed()] == "license1"
        after = os.stat(host_file)
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
        assert read_claim(cluster.pool_dir, "license1")["pod"] == "flexdirect-new"
    finally:
        new.stop(signal.SIGKILL)


# ---- item 6: SIGHUP -------------------------------------------------------------------------------

def test_sighup_stops_gracefully_like_sigterm(cluster):  # noqa: F811
    cluster.pool(1)
    h = cluster.holder("node-a")
    wait_for(h.ready, timeout=20, what="ready")
    lic = h.installed()
    assert h.stop(signal.SIGHUP) == 0
    assert "stopping" in h.logs() and "license-holder stopped" in h.logs()
    assert h.installed() == lic  # like SIGTERM: the license stays for the restarted pod


# ---- item 7: HOST_DIR missing -------------------------------------------------------------------

def test_missing_host_dir_is_created(cluster):  # noqa: F811
    cluster.pool(1)
    h = cluster.holder("node-a", start=False)
    os.rmdir(h.host_dir)
    h.start()
    wait_for(h.ready, timeout=20, what="ready")
    assert os.path.isdir(h.host_dir) and h.installed()


def test_host_dir_that_cannot_be_created_costs_no_license(cluster, tmp_path):  # noqa: F811
    cluster.pool(1)
    bad = str(tmp_path / "no-such-parent" / "etc-bitfusionio")
    h = cluster.holder("node-a", start=False, extra_env={"HOST_DIR": bad})
    os.rmdir(h.host_dir)
    h.start()
    wait_for(lambda: "HOST_DIR " + bad in readyz(h)[2], timeout=10, what="readyz names HOST_DIR")
    assert "symlinks are refused" not in readyz(h)[2]
    assert read_claim(cluster.pool_dir, "license1") is None  # the license stays in the pool
    other = cluster.holder("node-b")
    wait_for(other.ready, timeout=20, what="another node gets the license")


@contextlib.contextmanager
def read_only(path):
    """Makes a directory unwritable even for root (chattr +i), or skips the test."""
    r = subprocess.run(["chattr", "+i", path], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"chattr +i not available here: {r.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", path], check=False)


def test_read_only_host_dir_claims_nothing(cluster):  # noqa: F811
    cluster.pool(1)
    h = cluster.holder("node-a", start=False)
    with read_only(h.host_dir):
        h.start()
        wait_for(lambda: "cannot be written" in readyz(h)[2], timeout=10, what="readyz says why")
        assert "HOST_DIR " + h.host_dir in readyz(h)[2]
        assert read_claim(cluster.pool_dir, "license1") is None
        other = cluster.holder("node-b")
        wait_for(other.ready, timeout=20, what="another node gets the license")


def test_installs_failing_after_the_claim_give_the_license_back(cluster):  # noqa: F811
    cluster.pool(1)
    a = cluster.holder("node-a")
    wait_for(a.ready, timeout=20, what="ready")
    b = cluster.holder("node-b")
    with read_only(a.host_dir), read_only(os.path.join(a.host_dir, "lic")):
        # The license changes in the pool: node-a must reinstall, and cannot.
        with open(os.path.join(cluster.pool_dir, "license1", "lic", "host_id"), "w") as f:
            f.write("HOSTID-renewed\n")
        wait_for(lambda: (metric(a.metrics(), "license_holder_install_giveups_total") or 0) >= 1,
                 timeout=10, what="node-a gives the license back")
        wait_for(b.ready, timeout=20, what="node-b gets it")
        assert read_claim(cluster.pool_dir, "license1")["node"] == "node-b"
        assert b.installed() == "HOSTID-renewed"


# ---- item 8: release ----------------------------------------------------------------------------

def test_release_says_when_nothing_happened_and_removes_everything(cluster, tmp_path):  # noqa: F811
    cluster.pool(1)
    h = cluster.holder("node-a")
    wait_for(h.ready, timeout=20, what="ready")
    unknown = Holder("node-unknown", cluster.pool_dir, str(tmp_path / "unknown-host"), cluster.url,
                     str(tmp_path))
    rc, out = unknown.release()
    assert rc == 3 and "no claim" in out and "node-unknown" in out, (rc, out)
    rc, out = h.release()
    assert rc == 0 and "license1" in out, (rc, out)
    assert not os.path.exists(os.path.join(h.host_dir, "servers.conf"))
    assert h.installed() is None
    wait_for(lambda: "license-holder release" in readyz(h)[2], timeout=10, what="released reason")
    rc, out = h.release()
    assert rc == 3 and "no claim" in out, (rc, out)
    gone = Holder("node-a", cluster.pool_dir, str(tmp_path / "gone"), cluster.url, str(tmp_path))
    os.rmdir(gone.host_dir)
    rc, out = gone.release()
    assert rc == 1 and "HOST_DIR" in out and str(tmp_path / "gone") in out, (rc, out)


# ---- items 9, 12: the holder's metrics ----------------------------------------------------------

def test_holder_metrics_hold_only_what_it_knows(cluster):  # noqa: F811
    cluster.pool(1)
    a = cluster.holder("node-a")
    wait_for(a.ready, timeout=20, what="ready")
    m = a.metrics()
    assert "license_holder_pool_licenses" not in m  # it never scanned the whole pool
    assert metric(m, "license_holder_claim_age_seconds") is not None
    assert metric(m, 'license_holder_license_info{node="node-a",license="license1"}') == 1
    b = cluster.holder("node-b")
    wait_for(lambda: "no license available" in readyz(b)[2], timeout=10, what="waiting")
    m = b.metrics()
    assert "license_holder_claim_age_seconds" not in m  # no -1 sentinel
    assert "license_holder_license_info" not in m
    assert metric(m, 'license_holder_pool_licenses{state="held"}') == 1


# ---- item 13: 401 from tokenmgr -----------------------------------------------------------------

def test_wrong_auth_token_is_reported_as_401_naming_the_variable(tmp_path):
    pool = str(tmp_path / "pool")
    make_pool(pool, 1)
    (tmp_path / "tm-token").write_text("right-token-0123456789\n")
    (tmp_path / "holder-token").write_text("wrong-token-0123456789\n")
    tm = Tokenmgr(workdir=str(tmp_path), args=["--auth-token-file", str(tmp_path / "tm-token")])
    with tm:
        h = Holder("node-a", pool, str(tmp_path / "host"), tm.url("/api/token"), str(tmp_path),
                   extra_env={"TOKENMGR_AUTH_TOKEN_FILE": str(tmp_path / "holder-token")}).start()
        try:
            wait_for(lambda: "401" in readyz(h)[2], timeout=10, what="401 in readyz")
            assert "TOKENMGR_AUTH_TOKEN_FILE" in readyz(h)[2]
            assert "401" in h.logs()
        finally:
            h.stop(signal.SIGKILL)
