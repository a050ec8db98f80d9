"""End-to-end tests of license-holder's start-up configuration (issue 15 item 10): a bad
servers.conf group stops the agent at start-up with exit code 2 and an error naming the variable,
before it touches the pool; an IPv6 tokenmgr URL works; servers.conf is installed with mode 0640
as docs/security.md says."""
import os
import signal
import stat
import subprocess

import pytest

from procs import Holder, Tokenmgr, binary, make_pool, wait_for, wait_for_port_file

BAD_GROUPS = {
    "no entries": ({"GPUTYPES": "K80"}, "K80_1"),
    "case mismatch": ({"GPUTYPES": "K80", "k80_1": "10.0.0.1:56001"}, "k80_1"),
    "listed twice": ({"GPUTYPES": "K80 K80", "K80_1": "10.0.0.1:56001"}, "GPUTYPES"),
    "gap": ({"GPUTYPES": "K80", "K80_1": "10.0.0.1:56001", "K80_3": "10.0.0.3:56001"}, "K80_3"),
    "bare IPv6": ({"GPUTYPES": "K80", "K80_1": "fd00::1:56001"}, "K80_1"),
}


@pytest.mark.parametrize("case", sorted(BAD_GROUPS))
def test_bad_server_groups_stop_start_up_naming_the_variable(tmp_path, case):
    groups, name = BAD_GROUPS[case]
    pool = str(tmp_path / "pool")
    make_pool(pool, 1)
    # Nothing listens at this URL: the agent must stop before it talks to tokenmgr.
    h = Holder("node1", pool, str(tmp_path / "host"), "http://127.0.0.1:9/api/token", str(tmp_path))
    env = h.env()
    for var in [v for v in env if v.startswith(("K80", "v100", "k80"))]:
        del env[var]
    env.update(groups)
    r = subprocess.run([binary("license-holder")], env=env, capture_output=True, text=True,
                       timeout=30)
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert name in out, out
    assert os.listdir(str(tmp_path / "host")) == []
    assert os.listdir(os.path.join(pool, "license1")) == ["lic"]  # no claim written


def test_unbracketed_ipv6_tokenmgr_url_stops_start_up(tmp_path):
    pool = str(tmp_path / "pool")
    make_pool(pool, 1)
    h = Holder("node1", pool, str(tmp_path / "host"), "http://::1:8080/api/token", str(tmp_path))
    r = subprocess.run([binary("license-holder")], env=h.env(), capture_output=True, text=True,
                       timeout=30)
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert "TOKENMGR_URL" in out and "brackets" in out, out


def start_tokenmgr_on(address, workdir):
    """A real tokenmgr on <address>:0 (Tokenmgr in procs.py binds 127.0.0.1 only)."""
    port_file = os.path.join(workdir, "tokenmgr.port")
    log = open(os.path.join(workdir, "tokenmgr.log"), "ab")
    proc = subprocess.Popen([binary("tokenmgr"), "--bind-address", address, "--listen-port", "0",
                             "--port-file", port_file], stdout=log, stderr=subprocess.STDOUT)
    log.close()
    logs = lambda: open(os.path.join(workdir, "tokenmgr.log")).read()
    return proc, wait_for_port_file(proc, port_file, logs, "tokenmgr")


def test_holder_reaches_tokenmgr_on_an_ipv6_literal(tmp_path):
    pool = str(tmp_path / "pool")
    make_pool(pool, 1)
    proc, port = start_tokenmgr_on("::1", str(tmp_path))
    h = Holder("node1", pool, str(tmp_path / "host"), f"http://[::1]:{port}/api/token",
               str(tmp_path), extra_env={"GPUTYPES": "K80", "K80_1": "[fd00::1]:56001"})
    try:
        h.start()
        wait_for(h.ready, timeout=20, what="holder ready through tokenmgr on [::1]")
        assert h.installed() == "HOSTID-license1"
        with open(os.path.join(h.host_dir, "servers.conf")) as f:
            assert "### K80.conf\n[fd00::1]:56001\n" in f.read()
    finally:
        h.stop(signal.SIGKILL)
        proc.kill()
        proc.wait()


def test_servers_conf_is_installed_0640(tmp_path):
    tm = Tokenmgr(workdir=str(tmp_path))
    pool = str(tmp_path / "pool")
    make_pool(pool, 1)
    h = Holder("node1", pool, str(tmp_path / "host"), None, str(tmp_path))
    try:
        tm.start()
        h.url = tm.url("/api/token")
        h.start()
        wait_for(h.ready, timeout=20, what="holder ready")
        path = os.path.join(h.host_dir, "servers.conf")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    finally:
        h.stop(signal.SIGKILL)
        tm.stop(signal.SIGKILL)
