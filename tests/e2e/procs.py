"""Start and stop the real binaries for end-to-end tests.

Every server listens on 127.0.0.1 with port 0; the bound port is read back from --port-file.
Processes are stopped by PID. Nothing here sleeps for synchronisation: waits poll a condition
with a deadline.
"""
import http.client
import json
import os
import signal
import socket
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


def free_port():
    """A port the kernel just gave out on 127.0.0.1, for a server that cannot take port 0."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_pid(proc, sig=signal.SIGTERM, timeout=10):
    """Sends `sig` to a running process by PID (and SIGCONT, so a paused process sees it), waits
    for it, then SIGKILLs it if it is still there after `timeout` s. Returns its exit code."""
    if proc.poll() is None:
        os.kill(proc.pid, sig)
        if sig != signal.SIGKILL:
            os.kill(proc.pid, signal.SIGCONT)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        return proc.wait()


class Process:
    """A real process whose output goes to `log_path`; started by spawn(), stopped by PID."""

    def __init__(self, log_path):
        self.log_path = log_path
        self.proc = None
        self.log = None

    def spawn(self, cmd, env=None):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        return self.proc

    def logs(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.proc.pid, sig)

    def stop(self, sig=None, timeout=10):
        """Stops the process by PID (SIGTERM unless `sig`); returns its exit code, or None if it
        never started."""
        sig = signal.SIGTERM if sig is None else sig  # (in the class body `signal` is the method)
        if not self.proc:
            return None
        rc = stop_pid(self.proc, sig, timeout)
        self.close_log()
        return rc

    def close_log(self):
        if self.log:
            self.log.close()
            self.log = None

    def kill(self):
        """Teardown: SIGKILL by PID if still running; the log is closed either way."""
        if self.alive():
            self.stop(signal.SIGKILL)
        self.close_log()


def wait_for_port_file(proc, port_file, logs, name):
    """Waits until a started process has written its bound port; fails at once if it exited."""
    def port():
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited {proc.returncode}: {logs()}")
        try:
            with open(port_file) as f:
                text = f.read().strip()
            return int(text) if text else None
        except FileNotFoundError:
            return None
    return wait_for(port, what=f"{name} port file")


class Tokenmgr(Process):
    """A real tokenmgr process on 127.0.0.1:<port 0>."""

    def __init__(self, workdir=None, args=(), env=None, state_file=True):
        self.workdir = workdir or tempfile.mkdtemp(prefix="tokenmgr-")
        super().__init__(os.path.join(self.workdir, "tokenmgr.log"))
        self.port_file = os.path.join(self.workdir, "port")
        self.state_file = os.path.join(self.workdir, "state.json") if state_file else None
        self.args = list(args)
        self.env = env
        self.port = None
        self.fixed_port = 0  # 0 = let the kernel pick

    def start(self, expect_fail=False):
        if os.path.exists(self.port_file):
            os.unlink(self.port_file)
        cmd = [binary("tokenmgr"), "--bind-address", "127.0.0.1", "--listen-port", str(self.fixed_port),
               "--port-file", self.port_file] + self.args
        if self.state_file:
            cmd += ["--state-file", self.state_file]
        env = {k: v for k, v in os.environ.items()
               if k not in ("LISTENPORT", "LOCKDURATION", "STATE_FILE", "BIND_ADDRESS")}
        env.update(self.env or {})
        self.spawn(cmd, env)
        if expect_fail:
            return self.proc.wait(timeout=10)

        self.port = wait_for_port_file(self.proc, self.port_file, self.logs, "tokenmgr")
        return self

    def url(self, path=""):
        return f"http://127.0.0.1:{self.port}{path}"

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


def make_pool(root, count, prefix="license"):
    """A sample pool: <root>/<prefix><i>/lic/host_id with a distinct id each. Returns ids."""
    os.makedirs(root, exist_ok=True)
    ids = {}
    for i in range(1, count + 1):
        name = f"{prefix}{i}"
        lic = os.path.join(root, name, "lic")
        os.makedirs(lic, exist_ok=True)
        host_id = f"HOSTID-{name}"
        with open(os.path.join(lic, "host_id"), "w") as f:
            f.write(host_id + "\n")
        ids[host_id] = name
    return ids


def installed_license(host_dir):
    """The host_id installed in a host dir, or None."""
    try:
        with open(os.path.join(host_dir, "lic", "host_id")) as f:
            return f.read().strip() or None
    except (FileNotFoundError, NotADirectoryError):
        return None


EVENT_SPOOL = ".license-holder-events.json"


def host_files(host_dir):
    """The names in a host dir, sorted, without the agent's event spool (its events for
    tokenmgr's history not stored yet: there while tokenmgr has not acknowledged them) and
    without the temp file of a spool write in progress ("." + spool + ".tmp.<hex>")."""
    return sorted(n for n in os.listdir(host_dir)
                  if n != EVENT_SPOOL and not n.startswith("." + EVENT_SPOOL + ".tmp."))


def read_claim(pool, name):
    try:
        with open(os.path.join(pool, name, "lockedby")) as f:
            return json.loads(f.read())
    except (FileNotFoundError, ValueError):
        return None


class Holder(Process):
    """A real license-holder process for one simulated node."""

    def __init__(self, node, pool_dir, host_dir, tokenmgr_url, workdir, heartbeat=1, claim_ttl=4,
                 settle_ms=200, extra_env=None, args=()):
        super().__init__(os.path.join(workdir, f"{node}.log"))
        self.node = node
        self.pool_dir = pool_dir
        self.host_dir = host_dir
        self.url = tokenmgr_url
        self.workdir = workdir
        self.heartbeat = heartbeat
        self.claim_ttl = claim_ttl
        self.settle_ms = settle_ms
        self.extra_env = extra_env or {}
        self.args = list(args)
        self.port_file = os.path.join(workdir, f"{node}.port")
        self.port = None
        os.makedirs(host_dir, exist_ok=True)

    def env(self):
        env = {k: v for k, v in os.environ.items() if k not in (
            "NODE_NAME", "POD_NAME", "POOL_DIR", "HOST_DIR", "TOKENMGR_URL", "GPUTYPES")}
        env.update({
            "NODE_NAME": self.node, "POD_NAME": f"flexdirect-{self.node}",
            "POOL_DIR": self.pool_dir, "HOST_DIR": self.host_dir, "TOKENMGR_URL": self.url,
            "HEARTBEAT_SECONDS": str(self.heartbeat), "CLAIM_TTL_SECONDS": str(self.claim_ttl),
            "SETTLE_MS": str(self.settle_ms), "HEALTH_PORT": "0", "HEALTH_BIND": "127.0.0.1",
            "GPUTYPES": "K80_servers v100_servers",
            "K80_servers_1": "10.0.0.1:56001", "K80_servers_2": "10.0.0.2:56001",
            "v100_servers_1": "10.0.0.3:53334",
        })
        env.update(self.extra_env)
        return env

    def start(self, wait_port=True):
        if os.path.exists(self.port_file):
            os.unlink(self.port_file)
        self.spawn([binary("license-holder"), "--port-file", self.port_file] + self.args, self.env())
        if wait_port:
            self.port = wait_for_port_file(self.proc, self.port_file, self.logs, self.node)
        return self

    def release(self, timeout=30):
        """Runs `license-holder release` for this node; returns (exit code, output)."""
        r = subprocess.run([binary("license-holder"), "release"], env=self.env(),
                           capture_output=True, text=True, timeout=timeout)
        return r.returncode, r.stdout + r.stderr

    def ready(self):
        if not self.port or not self.proc or self.proc.poll() is not None:
            return False
        try:
            status, _, _ = request(self.port, "GET", "/readyz", timeout=2)
            return status == 200
        except OSError:
            return False

    def metrics(self):
        return request(self.port, "GET", "/metrics", timeout=5)[2]

    def installed(self):
        return installed_license(self.host_dir)


def kill9_takeover(victim, waiter, timeout=15):
    """kill -9 a licensed holder; waits until `waiter` holds that license. Returns the seconds
    from the kill until then (compare with claim TTL + heartbeat + settle)."""
    lic = victim.installed()
    assert lic, f"{victim.node} holds no license"
    victim.stop(signal.SIGKILL)
    killed = time.monotonic()
    wait_for(waiter.ready, timeout=timeout, what=f"takeover by {waiter.node}")
    took = time.monotonic() - killed
    assert waiter.installed() == lic
    return took
