"""A real etcd for the etcd-store tests (issue 6): Debian's `etcd` binary (package etcd-server),
one member or a cluster of three, on 127.0.0.1 ports picked by the kernel, each member with its
own data directory under the test's temp dir. Members are stopped by PID. With `tls` (see
make_pki) the client port is https and asks for client certificates signed by the test CA.
"""
import http.client
import json
import os
import shutil
import signal
import ssl
import subprocess
import types
import uuid

import pytest

import procs


free_port = procs.free_port


def etcd_binary():
    path = shutil.which("etcd") or "/usr/bin/etcd"
    if not os.path.exists(path):
        pytest.skip("etcd not installed (Debian package etcd-server)")
    return path


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _key_and_csr(d, name, cn):
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=d)


def _sign(d, name, ca, ext):
    with open(os.path.join(d, f"{name}.ext"), "w") as f:
        f.write(ext + "\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", "-extfile", f"{name}.ext",
             cwd=d)


def make_pki(d):
    """A throw-away PKI made with the openssl CLI in directory `d`: the test CA (`ca`), etcd's
    server certificate for IP 127.0.0.1 only (`server`), a client certificate (`client`), and
    from a second, unrelated CA (`other_ca`) a client certificate etcd must refuse (`rogue`).
    Returns a namespace of absolute paths: ca, server_cert, server_key, client_cert, client_key,
    other_ca, rogue_cert, rogue_key."""
    if not shutil.which("openssl"):
        pytest.skip("openssl not installed")
    os.makedirs(d, exist_ok=True)
    for ca in ("ca", "other_ca"):
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-keyout", f"{ca}.key", "-out", f"{ca}.pem", "-days", "2",
                 "-subj", f"/CN=tokenmgr test {ca}",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    _key_and_csr(d, "server", "etcd")
    _sign(d, "server", "ca", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth")
    for name, ca in (("client", "ca"), ("rogue", "other_ca")):
        _key_and_csr(d, name, "tokenmgr")
        _sign(d, name, ca, "extendedKeyUsage=clientAuth")
    p = lambda f: os.path.join(d, f)  # noqa: E731
    return types.SimpleNamespace(
        ca=p("ca.pem"), server_cert=p("server.pem"), server_key=p("server.key"),
        client_cert=p("client.pem"), client_key=p("client.key"), other_ca=p("other_ca.pem"),
        rogue_cert=p("rogue.pem"), rogue_key=p("rogue.key"))


class EtcdMember(procs.Process):
    def __init__(self, name, workdir, client_port, peer_port, initial_cluster, tls=None):
        super().__init__(os.path.join(workdir, f"{name}.log"))
        self.tls = tls
        self.name = name
        self.workdir = workdir
        self.client_port = client_port
        self.peer_port = peer_port
        self.initial_cluster = initial_cluster
        self.first_start = True
        self.extra_args = []  # more etcd flags, e.g. --quota-backend-bytes

    @property
    def url(self):
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.client_port}"

    def start(self):
        os.makedirs(self.workdir, exist_ok=True)
        cmd = [etcd_binary(), "--name", self.name,
               "--data-dir", os.path.join(self.workdir, f"{self.name}.data"),
               "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
               "--listen-peer-urls", f"http://127.0.0.1:{self.peer_port}",
               "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer_port}",
               "--initial-cluster", self.initial_cluster,
               "--initial-cluster-state", "new",
               "--initial-cluster-token", "tokenmgr-test",
               "--heartbeat-interval", "50", "--election-timeout", "500",
               "--log-level", "warn"] + list(self.extra_args)
        if self.tls:
            cmd += ["--cert-file", self.tls.server_cert, "--key-file", self.tls.server_key,
                    "--trusted-ca-file", self.tls.ca, "--client-cert-auth"]
        self.spawn(cmd, {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                         "ETCD_UNSUPPORTED_ARCH": os.environ.get("ETCD_UNSUPPORTED_ARCH", "")})
        return self

    def stop(self, sig=signal.SIGKILL, timeout=10):
        rc = super().stop(sig, timeout)
        self.proc = None
        return rc

    def call(self, path, body, timeout=2):
        """One gateway call; returns parsed JSON or None on any failure."""
        headers = {"Content-Type": "application/json"}
        try:
            if not self.tls:
                s, _, text = procs.request(self.client_port, "POST", path, body=json.dumps(body),
                                           headers=headers, timeout=timeout)
                return json.loads(text) if s == 200 else None
            ctx = ssl.create_default_context(cafile=self.tls.ca)
            ctx.load_cert_chain(self.tls.client_cert, self.tls.client_key)
            conn = http.client.HTTPSConnection("127.0.0.1", self.client_port, timeout=timeout,
                                               context=ctx)
            try:
                conn.request("POST", path, body=json.dumps(body), headers=headers)
                resp = conn.getresponse()
                text = resp.read()
                return json.loads(text) if resp.status == 200 else None
            finally:
                conn.close()
        except (OSError, ValueError):
            return None

    def healthy(self):
        """A linearizable read succeeds (needs a quorum)."""
        return self.call("/v3/kv/range", {"key": "aGVhbHRo"}) is not None


class EtcdCluster:
    def __init__(self, workdir, size=1, tls=None):
        peers = [(f"m{i}", free_port(), free_port()) for i in range(size)]
        initial = ",".join(f"{n}=http://127.0.0.1:{p}" for n, _, p in peers)
        self.members = [EtcdMember(n, workdir, c, p, initial, tls) for n, c, p in peers]

    def start(self):
        for m in self.members:
            m.start()
        self.wait_healthy()
        return self

    def wait_healthy(self, timeout=30):
        procs.wait_for(lambda: any(m.proc and m.healthy() for m in self.members),
                       timeout=timeout, interval=0.1, what="etcd quorum")

    @property
    def endpoints(self):
        return ",".join(m.url for m in self.members)

    def stop(self):
        for m in self.members:
            m.stop()


@pytest.fixture(scope="module")
def etcd(tmp_path_factory):
    """One etcd member for the module; each test uses its own key prefix."""
    cluster = EtcdCluster(str(tmp_path_factory.mktemp("etcd")), size=1).start()
    yield cluster
    cluster.stop()


def etcd_env(cluster, prefix=None, **extra):
    env = {"STORE": "etcd", "ETCD_ENDPOINTS": cluster.endpoints,
           "ETCD_PREFIX": prefix or f"/tokenmgr-test/{uuid.uuid4()}/", "ETCD_TIMEOUT_MS": "1000"}
    env.update(extra)
    return env


def kill_all(tokenmgrs):
    """Teardown: SIGKILL (by PID) every tokenmgr still running; close the others' logs."""
    for t in tokenmgrs:
        t.kill()


def wait_synced(tokenmgr, timeout=15):
    """Waits for the log line of the first etcd sync (unlike /readyz, not counted in /api/stats)."""
    return procs.wait_for(lambda: "etcd store in sync" in tokenmgr.logs(), timeout=timeout,
                          interval=0.02, what="etcd store in sync")


def lock(port, timeout=0, **query):
    """GET /api/token/lock/<timeout>?<query> on a fresh connection: (status, parsed body)."""
    q = "&".join(f"{k}={v}" for k, v in query.items())
    s, _, body = procs.request(port, "GET", f"/api/token/lock/{timeout}" + (f"?{q}" if q else ""),
                               timeout=timeout + 10)
    return s, json.loads(body)


def wait_ready(port, ready=True, timeout=15):
    def check():
        try:
            s, _, _ = procs.request(port, "GET", "/readyz", timeout=3)
        except OSError:
            return False
        return (s == 200) == ready
    return procs.wait_for(check, timeout=timeout, interval=0.05,
                          what=f"/readyz {'200' if ready else '503'}")


@pytest.fixture
def replicas(tmp_path):
    """Factory: replicas(cluster, n, prefix) -> [Tokenmgr]; all killed by PID at teardown."""
    started = []

    def start(cluster, n=3, prefix=None, extra_env=None):
        prefix = prefix or f"/tokenmgr-test/{uuid.uuid4()}/"
        out = []
        for _ in range(n):
            wd = str(tmp_path / f"tm{len(started)}")
            os.makedirs(wd, exist_ok=True)
            env = etcd_env(cluster, prefix, **(extra_env or {}))
            t = procs.Tokenmgr(workdir=wd, env=env, state_file=False)
            started.append(t)
            t.start()
            out.append(t)
        for t in out:
            wait_ready(t.port)
        return out

    yield start
    kill_all(started)


def release(port, lock_id):
    s, _, body = procs.request(port, "POST", f"/api/token/release/{lock_id}")
    return s, body


def status(port):
    s, body = procs.get_json(port, "/api/token/status")
    assert s == 200, body
    return body


def eventually_status(port, pred, what, timeout=5):
    """Status on another replica follows a write within the watch's delivery delay."""
    def check():
        st = status(port)
        return st if pred(st) else None
    return procs.wait_for(check, timeout=timeout, what=what)


def wait_waiters(port, n):
    procs.wait_for(lambda: status(port)["waiters"] == n, timeout=10, what=f"{n} waiters")


def _b64(data):
    import base64
    return base64.b64encode(data if isinstance(data, bytes) else data.encode()).decode()


def put_raw(cluster, key, value):
    """Writes `value` (bytes or str, any content) at `key` through the gateway, no lease, as an
    operator's `etcdctl put` would. Returns the revision it was written at."""
    r = cluster.members[0].call("/v3/kv/put", {"key": _b64(key), "value": _b64(value)}, timeout=10)
    assert r is not None, f"etcd put {key!r} failed"
    return int(r["header"]["revision"])


def delete_prefix(cluster, prefix):
    """Deletes every key under `prefix` (bytes or str), as `etcdctl del --prefix` would."""
    p = prefix if isinstance(prefix, bytes) else prefix.encode()
    end = p[:-1] + bytes([p[-1] + 1])
    r = cluster.members[0].call("/v3/kv/deleterange", {"key": _b64(p), "range_end": _b64(end)})
    assert r is not None, f"etcd delete {prefix!r} failed"
