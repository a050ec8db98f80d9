"""Helpers shared by the tokenmgr end-to-end tests (test_tokenmgr_*.py).

Every server is a real tokenmgr process on 127.0.0.1, port 0, in the test's own temp directory,
stopped by PID when the test ends. Waits poll a condition (procs.wait_for); nothing sleeps to
synchronise.
"""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import zlib

import pytest

import procs

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
PREFIXES = ["/api/token", "/api/tokenmgr"]


@pytest.fixture
def start_tm(tmp_path):
    """Factory: start_tm(args=(), env=None, state_file=True, workdir=None) -> running Tokenmgr.

    Every process it starts is killed by PID at teardown if still running."""
    started = []

    def start(args=(), env=None, state_file=True, workdir=None):
        wd = workdir or str(tmp_path)
        os.makedirs(wd, exist_ok=True)
        t = procs.Tokenmgr(workdir=wd, args=list(args), env=env, state_file=state_file)
        started.append(t)
        return t.start()

    yield start
    for t in started:
        t.kill()


@pytest.fixture
def tm(start_tm):
    """One tokenmgr with a state file and default options."""
    return start_tm()


class Client:
    """A keep-alive HTTP/1.1 connection to one tokenmgr."""

    def __init__(self, port, timeout=30, headers=None):
        self.port = port
        self.headers = dict(headers or {})
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def call(self, method, path, headers=None):
        h = dict(self.headers)
        h.update(headers or {})
        self.conn.request(method, path, headers=h)
        resp = self.conn.getresponse()
        body = resp.read().decode(errors="replace")
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body

    def json(self, method, path, headers=None):
        status, _, body = self.call(method, path, headers)
        return status, json.loads(body)

    def lock(self, timeout=0, prefix="/api/token", **query):
        q = "&".join(f"{k}={v}" for k, v in query.items())
        return self.json("GET", f"{prefix}/lock/{timeout}" + (f"?{q}" if q else ""))

    def release(self, lock_id, prefix="/api/token"):
        return self.call("POST", f"{prefix}/release/{lock_id}")

    def status(self, prefix="/api/token"):
        s, body = self.json("GET", f"{prefix}/status")
        assert s == 200, body
        return body

    def close(self):
        self.conn.close()


def status(port):
    s, body = procs.get_json(port, "/api/token/status")
    assert s == 200, body
    return body


def wait_waiters(port, n, timeout=10):
    """Waits until the server reports exactly n waiters."""
    return procs.wait_for(lambda: status(port)["waiters"] == n, timeout=timeout,
                          what=f"{n} waiters")


def metrics(port):
    s, _, body = procs.request(port, "GET", "/metrics")
    assert s == 200
    values = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def raw_exchange(port, data, timeout=5.0):
    """Sends raw bytes, then reads until the server closes or `timeout`. Returns the bytes read
    (b'' when the server closed without answering). A reset counts as closed."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except ConnectionResetError:
            pass
        return out
    finally:
        s.close()


def parse_raw_response(data):
    """(status, headers dict lower-case, body bytes) from one raw HTTP/1.1 response."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        n = int(headers["content-length"])
        assert len(body) == n, f"Content-Length {n} but {len(body)} body bytes: {body!r}"
    return status, headers, body


def run_binary(args, env_extra=None, timeout=10):
    """Runs tokenmgr to completion (for start-up failures). Returns (rc, stderr+stdout text).
    The process is killed by PID if it is still running at `timeout`."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("LISTENPORT", "LOCKDURATION", "STATE_FILE", "BIND_ADDRESS", "MAX_WAIT",
                        "MAX_TTL", "AUTH_TOKEN_FILE", "LOG_FORMAT", "MAX_CONNECTIONS")}
    env.update(env_extra or {})
    p = subprocess.Popen([procs.binary("tokenmgr")] + list(args), env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        return None, out.decode(errors="replace")
    return p.returncode, out.decode(errors="replace")


SLOT_BYTES = 4096
SLOT_HEADER = re.compile(rb"^lmstate2 seq=(\d{20}) len=(\d{5}) crc=([0-9a-f]{8})\n")


def read_state(path):
    """tokenmgr's state file as a dict, decoded independently of tokenmgr: format 2 (two 4 KiB
    slots, each `lmstate2 seq=... len=... crc=...` + JSON, the newest slot with a matching
    CRC-32 wins) or format 1 (one JSON object)."""
    with open(path, "rb") as f:
        raw = f.read()
    if not raw.startswith(b"lmstate2 ") and raw[SLOT_BYTES:SLOT_BYTES + 9] != b"lmstate2 ":
        return json.loads(raw)
    assert len(raw) == 2 * SLOT_BYTES, f"state file is {len(raw)} bytes"
    best = None
    for i in range(2):
        slot = raw[i * SLOT_BYTES:(i + 1) * SLOT_BYTES]
        m = SLOT_HEADER.match(slot)
        if not m:
            continue
        seq, length = int(m.group(1)), int(m.group(2))
        body = slot[m.end():m.end() + length]
        if zlib.crc32(slot[:43] + body) != int(m.group(3), 16):
            continue
        if best is None or seq > best[0]:
            best = (seq, json.loads(body))
    assert best is not None, "state file has no intact slot"
    return best[1]
