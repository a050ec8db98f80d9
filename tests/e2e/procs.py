"""Start and stop the real binaries for end-to-end tests.

Every server listens on 127.0.0.1 with port 0; the bound port is read back from --port-file.
Processes are stopped by PID. Nothing here sleeps for synchronisation: waits poll a condition
with a deadline.
"""
import http.client
import json
import os
import signal
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD_DIR = os.environ.get("LM_BUILD_DIR", os.path.join(ROOT, "build", "release"))


def binary(name):
    path = os.path.join(BUILD_DIR, "src", "bin", name)
    if not os.path.exists(path):
        raise RuntimeError(f"{path} not built; set LM_BUILD_DIR or build the release preset")
    return path


def wait_for(condition, timeout=10.0, interval=0.01, what="condition"):
    """Polls condition() until it returns a truthy value; returns it, or raises on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Tokenmgr:
    """A real tokenmgr process on 127.0.0.1:<port 0>."""

    def __init__(self, workdir=None, args=(), env=None, state_file=True):
        self.workdir = workdir or tempfile.mkdtemp(prefix="tokenmgr-")
        self.port_file = os.path.join(self.workdir, "port")
        self.state_file = os.path.join(self.workdir, "state.json") if state_file else None
        self.log_path = os.path.join(self.workdir, "tokenmgr.log")
        self.args = list(args)
        self.env = env
        self.proc = None
        self.port = None

    def start(self, expect_fail=False):
        if os.path.exists(self.port_file):
            os.unlink(self.port_file)
        cmd = [binary("tokenmgr"), "--bind-address", "127.0.0.1", "--listen-port", "0",
               "--port-file", self.port_file] + self.args
        if self.state_file:
            cmd += ["--state-file", self.state_file]
        env = {k: v for k, v in os.environ.items()
               if k not in ("LISTENPORT", "LOCKDURATION", "STATE_FILE", "BIND_ADDRESS")}
        env.update(self.env or {})
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        if expect_fail:
            return self.proc.wait(timeout=10)

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"tokenmgr exited {self.proc.returncode}: {self.logs()}")
            try:
                with open(self.port_file) as f:
                    text = f.read().strip()
                return int(text) if text else None
            except FileNotFoundError:
                return None
        self.port = wait_for(ready, what="tokenmgr port file")
        return self

    def url(self, path=""):
        return f"http://127.0.0.1:{self.port}{path}"

    def logs(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def signal(self, sig):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def stop(self, sig=None, timeout=10):
        """Stops the process by PID (SIGTERM unless `sig`); returns its exit code."""
        # (The default cannot be written as signal.SIGTERM: in the class body, `signal` is the
        # method above.)
        sig = signal.SIGTERM if sig is None else sig
        if not self.proc:
            return None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            rc = self.proc.wait()
        self.log.close()
        return rc

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop(signal.SIGKILL)


def request(port, method, path, body=None, headers=None, timeout=30):
    """One HTTP request on a fresh connection; returns (status, headers dict, body text)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read().decode(errors="replace")
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def get_json(port, path, **kw):
    status, _, body = request(port, "GET", path, **kw)
    return status, json.loads(body) if body else None
