"""tokenmgr start-up, configuration, state file, restart and shutdown on the real binary."""
import json
import os
import shutil
import signal
import socket
import threading
import time

import pytest

import procs
from tokenmgr_util import (SLOT_BYTES, Client, metrics, read_state, run_binary,  # noqa: F401
                           start_tm, status, wait_waiters)


def _state_text(last_token=9, holder="h", token=9, ttl_s=60, acquired_ago_ms=0,
                expires_in_ms=60000):
    """A state file as tokenmgr writes it, with a lease relative to the wall clock now."""
    now_ms = int(time.time() * 1000)
    return json.dumps({
        "version": 1, "last_token": last_token,
        "lease": {"id": "0b7c5e0e-8f0e-4b47-9d5c-3c8c0f5c9a11", "holder": holder, "token": token,
                  "ttl_s": ttl_s, "acquired_unix_ms": now_ms - acquired_ago_ms,
                  "expires_unix_ms": now_ms + expires_in_ms}})


# ---------------------------------------------------------------------------------------------
# restart


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGKILL])
def test_restart_mid_lease_restores_holder_token_and_time(start_tm, stop_signal):
    t = start_tm()
    c = Client(t.port)
    s, g = c.lock(0, holder="node-7", ttl=30)
    assert s == 200
    before = c.status()
    c.close()
    rc = t.stop(stop_signal)
    assert rc == (0 if stop_signal == signal.SIGTERM else -signal.SIGKILL)

    t2 = start_tm(workdir=t.workdir)
    c2 = Client(t2.port)
    st = c2.status()
    assert st["held"] is True
    assert st["holder"] == "node-7"
    assert st["token"] == g["token"] == st["last_token"]
    assert st["ttl"] == 30
    assert st["acquired_at"] == before["acquired_at"]
    assert 20000 < st["expires_in_ms"] <= before["expires_in_ms"]
    s, body = c2.lock(0, holder="other")
    assert s == 409 and "node-7" in body["Error"]
    # The old id is still the capability to release (and to renew).
    assert c2.json("POST", f"/api/token/renew/{g['id']}?ttl=30")[0] == 200
    s, _, body = c2.release(g["id"])
    assert (s, body) == (200, '"Released"')
    s, g2 = c2.lock(0)
    assert s == 200 and g2["token"] > g["token"]


def test_tokens_keep_increasing_across_restarts(start_tm):
    t = start_tm()
    tokens = []
    for _ in range(3):
        c = Client(t.port)
        for _ in range(3):
            s, g = c.lock(0)
            assert s == 200
            tokens.append(g["token"])
            assert c.release(g["id"])[0] == 200
        c.close()
        assert t.stop() == 0
        t = start_tm(workdir=t.workdir)
    assert tokens == sorted(set(tokens)), tokens
    assert status(t.port)["last_token"] == tokens[-1]


def test_memory_only_tokens_still_increase_across_restarts(start_tm, tmp_path):
    tokens = []
    for i in range(2):
        t = start_tm(state_file=False, workdir=str(tmp_path / f"run{i}"))
        s, g = Client(t.port).lock(0)
        assert s == 200
        tokens.append(g["token"])
        assert t.stop() == 0
    assert tokens[1] > tokens[0]


def test_lease_that_ran_out_while_down_is_not_restored(start_tm, tmp_path):
    (tmp_path / "state.json").write_text(_state_text(
        last_token=41, holder="gone", token=41, ttl_s=10, acquired_ago_ms=20000,
        expires_in_ms=-10000))
    t = start_tm()
    st = status(t.port)
    assert st["held"] is False and st["last_token"] == 41
    s, g = Client(t.port).lock(0)
    assert s == 200 and g["token"] > 41  # at least the clock floor (docs/architecture.md)


def test_restored_lease_is_never_longer_than_its_ttl(start_tm, tmp_path):
    # A wall clock stepped backwards (or a hand-edited file) must not lengthen the lease.
    (tmp_path / "state.json").write_text(_state_text(
        last_token=5, token=5, ttl_s=10, expires_in_ms=3600 * 1000))
    t = start_tm()
    st = status(t.port)
    assert st["held"] is True and st["expires_in_ms"] <= 10000


def test_state_file_is_written_on_each_change(start_tm):
    t = start_tm()
    c = Client(t.port)
    _, g = c.lock(0, holder="w", ttl=9)
    st = read_state(t.state_file)
    assert st["lease"]["holder"] == "w" and st["lease"]["token"] == g["token"]
    assert st["lease"]["id"] == g["id"]
    assert oct(os.stat(t.state_file).st_mode & 0o777) == "0o600"
    c.release(g["id"])
    # Releases are batched (written within ~50 ms, or with the next grant, or at shutdown).
    procs.wait_for(lambda: read_state(t.state_file)["lease"] is None, timeout=5,
                   what="release persisted")
    st = read_state(t.state_file)
    assert st["last_token"] == g["token"]
    assert [f for f in os.listdir(t.workdir) if ".tmp" in f] == []
    # Format 2: updated in place (same inode, fixed size), one data flush per change.
    assert os.stat(t.state_file).st_size == 2 * SLOT_BYTES


def test_torn_newest_slot_restarts_from_the_previous_change(start_tm):
    # A crash while a slot is written leaves it torn; tokenmgr then starts from the other slot,
    # one change older. Here: the release's slot is torn, so the lease is restored (safe: the
    # lock stays held until its lease ends, never handed out twice).
    t = start_tm()
    c = Client(t.port)
    _, g = c.lock(0, holder="w", ttl=60)
    c.release(g["id"])
    c.close()
    assert t.stop(signal.SIGTERM) == 0
    raw = bytearray(open(t.state_file, "rb").read())
    newest = max(range(2), key=lambda i: raw[i * SLOT_BYTES:i * SLOT_BYTES + 33])
    raw[newest * SLOT_BYTES + 60] ^= 0x01  # inside its JSON
    open(t.state_file, "wb").write(bytes(raw))
    t2 = start_tm(workdir=t.workdir)
    st = status(t2.port)
    assert st["held"] is True and st["holder"] == "w" and st["token"] == g["token"]
    s, _, _ = Client(t2.port).release(g["id"])
    assert s == 200


def test_release_is_persisted_at_sigterm(start_tm):
    t = start_tm()
    c = Client(t.port)
    _, g = c.lock(0, holder="w", ttl=60)
    c.release(g["id"])
    assert t.stop(signal.SIGTERM) == 0
    assert read_state(t.state_file)["lease"] is None


# ---------------------------------------------------------------------------------------------
# corrupt state file


@pytest.mark.parametrize("content", [
    "", "{", "garbage", "[]", "null", _state_text()[:40],
    '{"version": 2, "last_token": 1, "lease": null}',
    '{"version": 1, "last_token": -1, "lease": null}',
    '{"version": 1, "lease": null}',
    _state_text(token=10),
    _state_text(holder="a b"),
    "\x00\x00\x00\x00",
])
def test_corrupt_state_file_stops_startup_and_is_kept(tmp_path, content):
    path = tmp_path / "state.json"
    path.write_bytes(content.encode())
    mtime = os.stat(path).st_mtime_ns
    rc, out = run_binary(["--bind-address", "127.0.0.1", "--listen-port", "0",
                          "--state-file", str(path)])
    assert rc not in (0, None), out
    assert str(path) in out, out
    assert path.read_bytes() == content.encode()
    assert os.stat(path).st_mtime_ns == mtime
    assert sorted(os.listdir(tmp_path)) == ["state.json"]


def test_state_file_in_missing_directory_stops_startup(tmp_path):
    path = tmp_path / "no" / "such" / "state.json"
    rc, out = run_binary(["--bind-address", "127.0.0.1", "--listen-port", "0",
                          "--state-file", str(path)])
    assert rc not in (0, None), out
    assert str(path.parent) in out, out


# ---------------------------------------------------------------------------------------------
# configuration errors -> exit 2 naming the variable or flag


@pytest.mark.parametrize("env,name", [
    ({"LISTENPORT": "abc"}, "LISTENPORT"),
    ({"LISTENPORT": "70000"}, "LISTENPORT"),
    ({"LISTENPORT": "-1"}, "LISTENPORT"),
    ({"LOCKDURATION": "-1"}, "LOCKDURATION"),
    ({"LOCKDURATION": "0"}, "LOCKDURATION"),
    ({"LOCKDURATION": "abc"}, "LOCKDURATION"),
    ({"LOCKDURATION": "100", "MAX_TTL": "50"}, "LOCKDURATION"),
    ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
    ({"LOG_LEVEL": "verbose"}, "LOG_LEVEL"),
    ({"MAX_TTL": "0"}, "MAX_TTL"),
    ({"MAX_TTL": "ten"}, "MAX_TTL"),
    ({"MAX_WAIT": "-5"}, "MAX_WAIT"),
    ({"MAX_CONNECTIONS": "0"}, "MAX_CONNECTIONS"),
    ({"IDLE_TIMEOUT": "0"}, "IDLE_TIMEOUT"),
    ({"READ_TIMEOUT": "x"}, "READ_TIMEOUT"),
    ({"BIND_ADDRESS": "not-an-ip"}, "BIND_ADDRESS"),
    ({"AUTH_TOKEN_FILE": "/nonexistent/token"}, "AUTH_TOKEN_FILE"),
])
def test_bad_env_value_exits_2_naming_variable(env, name):
    args = [] if "LISTENPORT" in env else ["--listen-port", "0"]
    if "BIND_ADDRESS" not in env:
        args += ["--bind-address", "127.0.0.1"]
    rc, out = run_binary(args, env_extra=env)
    assert rc == 2, out
    assert name in out, out


@pytest.mark.parametrize("args,name", [
    (["--listen-port", "abc"], "--listen-port"),
    (["--lock-duration", "-1"], "--lock-duration"),
    (["--max-ttl", "0"], "--max-ttl"),
    (["--log-format", "xml"], "--log-format"),
    (["--log-level", "loud"], "--log-level"),
    (["--max-wait", "1.5"], "--max-wait"),
    (["--bind-address", "256.1.1.1"], "--bind-address"),
    (["--no-such-flag"], "--no-such-flag"),
])
def test_bad_flag_value_exits_2_naming_flag(args, name):
    base = [] if "--bind-address" in args else ["--bind-address", "127.0.0.1"]
    base += [] if "--listen-port" in args else ["--listen-port", "0"]
    rc, out = run_binary(base + args)
    assert rc == 2, out
    assert name in out, out


def test_empty_auth_token_file_exits_2(tmp_path):
    f = tmp_path / "tok"
    f.write_text("\n")
    rc, out = run_binary(["--bind-address", "127.0.0.1", "--listen-port", "0",
                          "--auth-token-file", str(f)])
    assert rc == 2 and "--auth-token-file" in out, out


def test_flags_win_over_env(start_tm):
    t = start_tm(args=["--lock-duration", "4"], env={"LOCKDURATION": "9"})
    s, g = Client(t.port).lock(0)
    assert g["ttl"] == 4


def test_env_configures_lease_length(start_tm):
    t = start_tm(env={"LOCKDURATION": "9", "MAX_TTL": "20", "MAX_WAIT": "3"})
    c = Client(t.port)
    assert c.lock(0)[1]["ttl"] == 9
    assert c.lock(4)[0] == 400  # above MAX_WAIT
    assert c.json("GET", "/api/token/lock/0?ttl=21")[0] == 400  # above MAX_TTL


def test_seed_style_flags_are_accepted(start_tm):
    t = start_tm(args=["-lockduration", "6", "-tplpath", "/tmp", "-APIBASEURL", "http://x"])
    assert Client(t.port).lock(0)[1]["ttl"] == 6


def test_help_exits_0():
    rc, out = run_binary(["--help"])
    assert rc == 0 and "LOCKDURATION" in out


# ---------------------------------------------------------------------------------------------
# shutdown


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signal_answers_pending_waiter_and_exits_0_fast(start_tm, sig):
    t = start_tm()
    holder = Client(t.port)
    _, g = holder.lock(0, holder="h", ttl=30)
    result = {}

    def wait_for_lock():
        try:
            result["status"], result["body"] = Client(t.port).lock(30, holder="waiter")
        except Exception as e:  # noqa: BLE001 - recorded and asserted below
            result["error"] = e

    waiter = threading.Thread(target=wait_for_lock)
    waiter.start()
    try:
        wait_waiters(t.port, 1)
        idle = Client(t.port)
        idle.call("GET", "/healthz")  # an idle keep-alive connection must not delay exit
        started = time.monotonic()
        t.signal(sig)
        waiter.join(timeout=5)
        assert not waiter.is_alive()
        assert "error" not in result, result
        assert result["status"] == 503, result
        assert "Error" in result["body"]
        rc = t.proc.wait(timeout=5)
        elapsed = time.monotonic() - started
        assert rc == 0, t.logs()
        assert elapsed < 2.0, elapsed
        assert f"signal {int(sig)}: stopping" in t.logs(), t.logs()
    finally:
        waiter.join(timeout=10)
    # The lease survives the shutdown in the state file.
    st = read_state(t.state_file)
    assert st["lease"]["token"] == g["token"]


def test_signal_with_slow_client_mid_request_exits_fast(start_tm):
    import socket
    t = start_tm()
    s = socket.create_connection(("127.0.0.1", t.port))
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finished
        procs.wait_for(lambda: procs.request(t.port, "GET", "/healthz")[0] == 200)
        started = time.monotonic()
        t.signal(signal.SIGTERM)
        rc = t.proc.wait(timeout=5)
        assert rc == 0
        assert time.monotonic() - started < 2.0
    finally:
        s.close()


# ---------------------------------------------------------------------------------------------
# logs


def test_json_logs_parse(start_tm):
    t = start_tm(env={"LOG_FORMAT": "json"})
    c = Client(t.port)
    _, g = c.lock(0, holder="json-node", ttl=5)
    result = {}
    th = threading.Thread(target=lambda: result.update(r=Client(t.port).lock(10, holder="w")))
    th.start()
    wait_waiters(t.port, 1)
    c.release(g["id"])
    th.join(timeout=10)
    c.release("bogus\\\"id")
    c.call("GET", "/nope\"quote")
    assert t.stop() == 0
    lines = [ln for ln in t.logs().splitlines() if ln.strip()]
    assert len(lines) >= 3, lines
    for line in lines:
        rec = json.loads(line)
        assert {"ts", "level", "msg"} <= set(rec), line
    assert any("json-node" in json.loads(ln)["msg"] for ln in lines)


def test_lease_expiry_and_release_are_logged_naming_the_holder(start_tm):
    t = start_tm()
    c = Client(t.port)
    _, g = c.lock(0, holder="short-lived", ttl=1)
    procs.wait_for(lambda: status(t.port)["held"] is False, timeout=5, what="lease expiry")
    _, g2 = c.lock(0, holder="releaser", ttl=30)
    assert c.release(g2["id"])[0] == 200
    assert t.stop() == 0
    logs = t.logs()
    assert f"lease of 'short-lived' expired (token {g['token']}" in logs, logs
    assert f"lock released by 'releaser' token={g2['token']}" in logs, logs


def test_log_level_warn_hides_info_lines(start_tm):
    t = start_tm(env={"LOG_LEVEL": "warn"})
    c = Client(t.port)
    _, g = c.lock(0, holder="quiet", ttl=30)
    c.release(g["id"])
    assert t.stop() == 0
    logs = t.logs()
    assert "granted" not in logs and "listening" not in logs, logs


def test_log_level_debug_keeps_info_lines(start_tm):
    t = start_tm(env={"LOG_LEVEL": "debug"})
    assert t.stop() == 0
    assert "listening" in t.logs()


def _busy_port():
    """A socket listening on 127.0.0.1:<some port>; close it when done."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    return s


def test_busy_port_error_names_the_port_setting(tmp_path):
    with _busy_port() as s:
        port = s.getsockname()[1]
        rc, out = run_binary(["--bind-address", "127.0.0.1", "--listen-port", str(port)])
    assert rc not in (0, None), out
    assert f"cannot listen on 127.0.0.1:{port}" in out, out
    assert "LISTENPORT/--listen-port" in out, out


def test_busy_health_port_error_names_health_port(tmp_path):
    # The license-holder's health server is the same HTTP server; its error names its own
    # settings.
    with _busy_port() as s:
        port = s.getsockname()[1]
        h = _holder(tmp_path, extra_env={"HEALTH_PORT": str(port)})
        h.start(wait_port=False)
        try:
            rc = h.proc.wait(timeout=10)
        finally:
            h.stop(signal.SIGKILL)
    out = h.logs()
    assert rc != 0, out
    assert f"cannot listen on 127.0.0.1:{port}" in out, out
    assert "HEALTH_PORT/--health-port" in out, out


def _holder(tmp_path, **kw):
    os.makedirs(tmp_path / "pool", exist_ok=True)
    return procs.Holder("n1", str(tmp_path / "pool"), str(tmp_path / "host"), "http://127.0.0.1:1",
                        str(tmp_path), **kw)


def test_license_holder_metrics_have_build_info_and_start_time(tmp_path):
    h = _holder(tmp_path)
    h.start()
    try:
        body = h.metrics()
    finally:
        h.stop(signal.SIGKILL)
    assert 'license_holder_build_info{version="1.0.0"} 1\n' in body, body
    start = [ln for ln in body.splitlines() if ln.startswith("process_start_time_seconds ")]
    assert len(start) == 1 and 0 < time.time() - float(start[0].split()[1]) < 600, body


def test_license_holder_bad_log_level_exits_2_naming_it(tmp_path):
    h = _holder(tmp_path, extra_env={"LOG_LEVEL": "chatty"})
    h.start(wait_port=False)
    try:
        rc = h.proc.wait(timeout=10)
    finally:
        h.stop(signal.SIGKILL)
    assert rc == 2, h.logs()
    assert "LOG_LEVEL" in h.logs() and "chatty" in h.logs(), h.logs()


def test_startup_failure_log_is_json_too(tmp_path):
    path = tmp_path / "state.json"
    path.write_text("{")
    rc, out = run_binary(["--bind-address", "127.0.0.1", "--listen-port", "0",
                          "--state-file", str(path)], env_extra={"LOG_FORMAT": "json"})
    assert rc not in (0, None)
    for line in out.splitlines():
        if line.strip():
            assert str(path) in json.loads(line)["msg"]


def test_signal_right_after_port_file_appears_exits_0(start_tm, tmp_path):
    for i in range(5):
        t = start_tm(state_file=False, workdir=str(tmp_path / f"run{i}"))
        t.signal(signal.SIGTERM)
        assert t.proc.wait(timeout=5) == 0, t.logs()


def test_unwritable_port_file_stops_startup(tmp_path):
    path = tmp_path / "missing" / "port"
    rc, out = run_binary(["--bind-address", "127.0.0.1", "--listen-port", "0",
                          "--port-file", str(path)])
    assert rc not in (0, None), out
    assert str(path) in out, out


def test_grant_is_refused_when_state_cannot_be_written(start_tm, tmp_path):
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    t = start_tm(args=["--state-file", str(state_dir / "state.json")], state_file=False)
    c = Client(t.port)
    _, g = c.lock(0)
    assert c.release(g["id"])[0] == 200
    shutil.rmtree(state_dir)  # the next atomic write cannot create its temp file
    s, body = c.lock(0)
    assert s == 503, body
    assert "persist" in body["Error"]
    assert c.status()["held"] is False
    assert metrics(t.port)["tokenmgr_store_persist_failures_total"] >= 1
    state_dir.mkdir()
    s, g2 = c.lock(0)
    assert s == 200 and g2["token"] == g["token"] + 1  # the refused token was never handed out
    assert read_state(state_dir / "state.json")["lease"]["token"] == g2["token"]
