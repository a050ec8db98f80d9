"""Fault injection for license-holder with the real binaries: a pool or host dir on a real
filesystem that fills up or turns read-only (small tmpfs mounts; needs root), and a tokenmgr
that stalls mid-response or cuts its answer short (a fake on 127.0.0.1:0 that then proxies to a
real tokenmgr). Whatever is visible in the host dir or the pool is always complete; the agent
stays up, says why it is not ready, and recovers by itself once the fault clears.
Heartbeat 1 s, claim TTL 4 s (so a claim that cannot be renewed is withdrawn after
claim TTL - 2 heartbeats = 2 s, well before another node could judge it stale)."""
import errno
import json
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from procs import (Holder, Tokenmgr, host_files, installed_license, make_pool, read_claim,
                   request, wait_for)

BIG = 32 * 1024  # the second license file: larger than what is left on the full host fs
FAKE_TOKEN = 999999999  # the fake tokenmgr's grant; must never reach a claim


# ----------------------------------------------------------------------------------------------
# helpers

@pytest.fixture
def tmpfs():
    """mount(path, size) -> path: a tmpfs mounted there; every mount is undone at teardown."""
    mounted = []

    def mount(path, size):
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root (CAP_SYS_ADMIN)")
        os.makedirs(path, exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", path],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"mount -t tmpfs not permitted here: {r.stderr.strip()}")
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", path], capture_output=True)
        if os.path.ismount(path):
            subprocess.run(["umount", "-l", path], capture_output=True)  # still busy: detach it


def remount(path, mode):
    subprocess.run(["mount", "-o", f"remount,{mode}", path], check=True, capture_output=True)


def fill(fs_root, leave=0):
    """Fills the filesystem at fs_root by appending to <fs_root>/filler: until ENOSPC, or until
    about `leave` bytes are left. Cheap to call again: it tops up whatever was freed meanwhile
    (a write the agent had in flight may free a page when its rename replaces the old file)."""
    want = None
    if leave:
        st = os.statvfs(fs_root)
        want = max(0, st.f_bavail * st.f_frsize - leave)
    with open(os.path.join(fs_root, "filler"), "ab", buffering=0) as f:
        chunk = b"\0" * 4096
        try:
            while want is None or want > 0:
                n = len(chunk) if want is None else min(len(chunk), want)
                written = f.write(chunk[:n])
                if want is not None:
                    want -= written
        except OSError as e:
            assert e.errno == errno.ENOSPC, e


def free(fs_root):
    os.unlink(os.path.join(fs_root, "filler"))


@pytest.fixture
def real_tm(tmp_path):
    tm = Tokenmgr(workdir=str(tmp_path / "tm"), state_file=False)
    os.makedirs(tm.workdir)
    holders = []
    try:
        tm.start()
        yield tm, holders
    finally:
        for h in holders:
            h.stop(signal.SIGKILL)
        tm.stop(signal.SIGKILL)


def readyz(h):
    return request(h.port, "GET", "/readyz", timeout=5)


class LeftoverWatch:
    """Samples a directory tree for temp names (staging, trash, atomic-write temps). One seen at
    two samples more than `grace` s apart outlived the write that made it: it was left behind."""

    def __init__(self, *roots, grace=2.5):
        self.roots = roots
        self.grace = grace
        self.first_seen = {}
        self.leftovers = set()

    def sample(self):
        now = time.monotonic()
        seen = set()
        for root in self.roots:
            for dirpath, dirnames, filenames in os.walk(root):
                for name in dirnames + filenames:
                    if name.startswith((".staging-", ".trash-")) or ".tmp." in name:
                        seen.add(os.path.join(dirpath, name))
        for path in seen:
            t0 = self.first_seen.setdefault(path, now)
            if now - t0 > self.grace:
                self.leftovers.add(path)
        self.first_seen = {p: t for p, t in self.first_seen.items() if p in seen}
        return seen


def license_tree(root):
    """{relative path: bytes} of every file below root."""
    out = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = f.read()
    return out


def assert_host_dir_consistent(host_dir, pool_license):
    """The host dir has no license, or the whole license (never part of it). A sample taken
    while `lic` was moved away or replaced (an install's or withdrawal's rename) proves nothing
    and is skipped; files vanishing from a `lic` that stays put are a partial license."""
    lic = os.path.join(host_dir, "lic")
    try:
        before = os.stat(lic)
    except FileNotFoundError:
        return
    try:
        tree = license_tree(lic)
    except FileNotFoundError:
        tree = None
    try:
        if os.stat(lic).st_ino != before.st_ino:
            return
    except FileNotFoundError:
        return
    assert tree == license_tree(os.path.join(pool_license, "lic")), \
        f"a partial license is visible in the host dir: {sorted(tree or {})}"


def assert_claim_intact(pool, name, node):
    """The claim file is absent or a whole JSON record by `node`."""
    path = os.path.join(pool, name, "lockedby")
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return None
    claim = json.loads(text)  # raises on a torn write
    assert claim["node"] == node and claim["token"] > 0, claim
    return claim


# ----------------------------------------------------------------------------------------------
# a filesystem that fills up or turns read-only

def test_full_host_dir_is_not_ready_leaves_nothing_partial_and_recovers(real_tm, tmp_path, tmpfs):
    tm, holders = real_tm
    pool = str(tmp_path / "pool")
    make_pool(pool, 1)
    with open(os.path.join(pool, "license1", "lic", "big.dat"), "wb") as f:
        f.write(os.urandom(BIG))
    hostfs = tmpfs(str(tmp_path / "hostfs"), "256k")
    host_dir = os.path.join(hostfs, "etc-bitfusionio")
    os.makedirs(host_dir)
    fill(hostfs, leave=8 * 1024)  # room for host_id and a part of big.dat, not all of it
    h = Holder("node-a", pool, host_dir, tm.url("/api/token"), str(tmp_path))
    holders.append(h)
    h.start()
    watch = LeftoverWatch(host_dir)

    def failing_for_space():
        watch.sample()
        assert_host_dir_consistent(host_dir, os.path.join(pool, "license1"))
        status, _, body = readyz(h)
        return status == 503 and "No space left on device" in body and body

    body = wait_for(failing_for_space, timeout=10, what="readyz reporting the full host dir")
    assert "install of 'license1'" in body
    # Keep retrying for a few heartbeats: still nothing partial, nothing left behind.
    retries_until = time.monotonic() + 3.5
    wait_for(lambda: failing_for_space() and time.monotonic() > retries_until, timeout=10,
             what="three more failed install attempts")
    assert h.alive()
    assert installed_license(host_dir) is None
    assert not os.path.exists(os.path.join(host_dir, "servers.conf"))
    assert watch.leftovers == set(), f"temp files left in the host dir: {watch.leftovers}"
    assert "No space left on device" in h.logs()
    assert "license_holder_degraded 1" in h.metrics()
    assert_claim_intact(pool, "license1", "node-a")

    free(hostfs)
    wait_for(h.ready, timeout=10, what="recovery after space was freed")
    assert_host_dir_consistent(host_dir, os.path.join(pool, "license1"))
    assert installed_license(host_dir) == "HOSTID-license1"
    assert watch.sample() == set()
    assert host_files(host_dir) == [".license-holder.json", "lic", "servers.conf"]


def test_pool_that_fills_up_or_turns_read_only_withdraws_intact_and_recovers(real_tm, tmp_path,
                                                                            tmpfs):
    tm, holders = real_tm
    poolfs = tmpfs(str(tmp_path / "poolfs"), "128k")
    pool = os.path.join(poolfs, "pool")
    make_pool(pool, 1)
    host_dir = str(tmp_path / "host")
    h = Holder("node-a", pool, host_dir, tm.url("/api/token"), str(tmp_path))
    holders.append(h)
    h.start()
    wait_for(h.ready, timeout=15, what="holder licensed")
    watch = LeftoverWatch(pool, host_dir)
    renewed = assert_claim_intact(pool, "license1", "node-a")["renewed_at_ms"]

    for fault, what in [("full", "No space left on device"), ("ro", "Read-only file system")]:
        if fault == "full":
            fill(poolfs)
        else:
            remount(poolfs, "ro")
        t0 = time.monotonic()
        withdrawals = h.logs().count("withdrawing license")

        def withdrawn():
            if fault == "full":
                fill(poolfs)
            watch.sample()
            assert_claim_intact(pool, "license1", "node-a")
            assert_host_dir_consistent(host_dir, os.path.join(pool, "license1"))
            return (h.logs().count("withdrawing license") > withdrawals
                    and installed_license(host_dir) is None)

        wait_for(withdrawn, timeout=10, what=f"withdrawal with the pool {fault}")
        # Unconfirmed for claim_ttl - 2 heartbeats = 2 s, then withdrawn: before the claim TTL
        # (4 s) after which another node may take the license over.
        assert time.monotonic() - t0 <= 3.5
        status, _, body = readyz(h)
        assert status == 503 and what in body, body
        assert h.alive() and "license_holder_degraded 1" in h.metrics()
        frozen = assert_claim_intact(pool, "license1", "node-a")
        assert frozen["renewed_at_ms"] >= renewed, "the last good claim is still there, whole"

        if fault == "full":
            free(poolfs)
        else:
            remount(poolfs, "rw")

        def recovered():
            watch.sample()
            assert_claim_intact(pool, "license1", "node-a")
            return h.ready()

        wait_for(recovered, timeout=15, what=f"recovery after the pool was {fault}")
        renewed = assert_claim_intact(pool, "license1", "node-a")["renewed_at_ms"]
        assert installed_license(host_dir) == "HOSTID-license1"
    assert watch.leftovers == set(), f"temp files left behind: {watch.leftovers}"
    assert "No space left on device" in h.logs() and "Read-only file system" in h.logs()


class ForgedClaim:
    """Another node's claim on `name`, rewritten every 0.3 s so it never goes stale."""

    def __init__(self, pool, name, token):
        self.path = os.path.join(pool, name, "lockedby")
        self.token = token
        self.stop = threading.Event()
        self.renewals = 0
        self.write()
        self.thread = threading.Thread(target=self.refresh, daemon=True)
        self.thread.start()

    def write(self):
        now = int(time.time() * 1000)
        record = {"v": 1, "node": "intruder", "pod": "flexdirect-intruder", "token": self.token,
                  "renewals": self.renewals, "claimed_at_ms": now, "renewed_at_ms": now}
        with open(self.path + ".forging", "w") as f:
            f.write(json.dumps(record) + "\n")
        os.rename(self.path + ".forging", self.path)
        self.renewals += 1

    def refresh(self):
        while not self.stop.wait(0.3):  # the forger's heartbeat, not synchronisation
            self.write()

    def close(self):
        self.stop.set()
        self.thread.join()


def test_withdrawal_blocked_by_read_only_host_dir_finishes_when_writable(real_tm, tmp_path, tmpfs):
    tm, holders = real_tm
    pool = str(tmp_path / "pool")
    make_pool(pool, 1)
    hostfs = tmpfs(str(tmp_path / "hostfs"), "256k")
    host_dir = os.path.join(hostfs, "etc-bitfusionio")
    os.makedirs(host_dir)
    h = Holder("node-a", pool, host_dir, tm.url("/api/token"), str(tmp_path))
    holders.append(h)
    h.start()
    wait_for(h.ready, timeout=15, what="holder licensed")
    remount(hostfs, "ro")
    # Another node takes the license over (higher token) and keeps its claim fresh, so this
    # node will not get it back: only finishing the withdrawal can clear the host dir.
    forged = ForgedClaim(pool, "license1", read_claim(pool, "license1")["token"] + 1000)
    try:
        wait_for(lambda: "withdraw failed" in h.logs(), timeout=10, what="withdrawal attempt")
        assert "Read-only file system" in h.logs()
        assert not h.ready() and h.alive()
        assert installed_license(host_dir) == "HOSTID-license1"  # nothing can remove it yet
        remount(hostfs, "rw")
        wait_for(lambda: installed_license(host_dir) is None, timeout=5,
                 what="withdrawal finished after the host dir became writable")
        # The files go first, the log line just after: await it rather than race it.
        wait_for(lambda: "withdrawal finished" in h.logs(), timeout=5,
                 what="'withdrawal finished' logged")
        assert host_files(host_dir) == ["servers.conf"]
        assert not h.ready() and read_claim(pool, "license1")["node"] == "intruder"
    finally:
        forged.close()


# ----------------------------------------------------------------------------------------------
# a tokenmgr that stalls mid-response

class StallingTokenmgr:
    """A fake tokenmgr on 127.0.0.1:0. Connection i gets script[i]; once the script is used up
    every connection is proxied to the real tokenmgr at `upstream` (port), if any.
      stall-headers   status line + part of the headers, then silence (socket kept open)
      stall-body      all headers + half of a grant's JSON body, then silence
      truncate-close  all headers + half of the body, then close
    `served` lists (behaviour, when served, when the client hung up or None) per connection.
    """

    GRANT = json.dumps({"id": "fake-grant-0000", "token": FAKE_TOKEN, "ttl": 10,
                        "expires_in_ms": 10000}).encode()

    def __init__(self, script, upstream=None):
        self.script = list(script)
        self.upstream = upstream
        self.served = []
        self.held = []
        self.changed = threading.Condition()
        self.lst = socket.socket()
        self.lst.bind(("127.0.0.1", 0))
        self.lst.listen(16)
        self.port = self.lst.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.lst.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _record(self, i, entry):
        with self.changed:
            self.served[i] = entry
            self.changed.notify_all()

    def wait(self, predicate, timeout):
        with self.changed:
            return self.changed.wait_for(lambda: predicate(self.served), timeout=timeout)

    def _serve(self, conn):
        req = b""
        while b"\r\n\r\n" not in req:
            chunk = conn.recv(4096)
            if not chunk:
                conn.close()
                return
            req += chunk
        if b"/lock/" not in req.split(b"\r\n", 1)[0]:
            # Releases and the agent's node reports (issue 17) are neither scripted nor listed.
            self._proxy(conn, req)
            return
        with self.changed:
            behaviour = self.script.pop(0) if self.script else "proxy"
            i = len(self.served)
            self.served.append((behaviour, None, None))
        head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: " + str(len(self.GRANT)).encode() + b"\r\n\r\n")
        half = self.GRANT[:len(self.GRANT) // 2]
        if behaviour in ("stall-headers", "stall-body"):
            conn.sendall(head[:30] if behaviour == "stall-headers" else head + half)
            self.held.append(conn)
            self._record(i, (behaviour, time.monotonic(), None))
            try:
                while conn.recv(4096):  # the client must give up and hang up by itself
                    pass
            except OSError:
                pass
            self._record(i, (behaviour, self.served[i][1], time.monotonic()))
            return
        if behaviour == "truncate-close":
            conn.sendall(head + half)
        else:
            self._proxy(conn, req)
        conn.close()
        self._record(i, (behaviour, time.monotonic(), time.monotonic()))

    def _proxy(self, conn, req):
        if self.upstream is None:  # no tokenmgr behind: answer as one without the route
            conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
                         b"Connection: close\r\n\r\n")
            conn.close()
            return
        # One request per proxied connection: ask tokenmgr to close after its answer, so the
        # copy loop ends (the agent keeps its connections alive; a reply with
        # "Connection: close" tells it to open a new one for its next call).
        head_part, _, rest = req.partition(b"\r\n\r\n")
        lines = [ln for ln in head_part.split(b"\r\n")
                 if not ln.lower().startswith(b"connection:")]
        req = b"\r\n".join(lines + [b"Connection: close"]) + b"\r\n\r\n" + rest
        with socket.create_connection(("127.0.0.1", self.upstream), timeout=30) as up:
            up.sendall(req)
            while chunk := up.recv(65536):
                conn.sendall(chunk)
        conn.close()

    def close(self):
        self.lst.close()
        for c in self.held:
            c.close()


def test_tokenmgr_stalling_or_truncating_a_grant_installs_nothing_and_recovers(real_tm, tmp_path):
    tm, holders = real_tm
    script = ["stall-headers", "stall-body", "truncate-close"]
    fake = StallingTokenmgr(script, upstream=tm.port)
    pool = str(tmp_path / "pool")
    make_pool(pool, 1)
    h = Holder("node-a", pool, str(tmp_path / "host"), f"http://127.0.0.1:{fake.port}/api/token",
               str(tmp_path))
    holders.append(h)
    try:
        h.start()
        for n, behaviour in enumerate(script):
            def misbehaved():
                # While a call hangs or after it broke: up, not ready, no claim, nothing installed.
                assert h.alive() and not h.ready()
                assert read_claim(pool, "license1") is None
                assert h.installed() is None
                assert request(h.port, "GET", "/healthz", timeout=5)[0] == 200
                return len(fake.served) > n and fake.served[n][2] is not None

            wait_for(misbehaved, timeout=15, what=f"{behaviour} answered and the client gone")
            _, served_at, hung_up_at = fake.served[n]
            if behaviour.startswith("stall"):
                # The client gave up by its own timeout: 5 s I/O + the 2 s long poll it asked for.
                assert 6.0 <= hung_up_at - served_at <= 9.0, hung_up_at - served_at
            status, _, body = readyz(h)
            assert status == 503 and "tokenmgr" in body, body
        wait_for(h.ready, timeout=15, what="licensed through the fake once it proxies")
        claim = read_claim(pool, "license1")
        _, _, metrics = request(tm.port, "GET", "/metrics")
        last = next(int(line.split()[1]) for line in metrics.splitlines()
                    if line.startswith("tokenmgr_lock_last_token "))
        assert claim["token"] == last != FAKE_TOKEN, (claim, last)  # the real grant, not the fake's
        assert h.installed() == "HOSTID-license1"
        assert [b for b, _, _ in fake.served[:3]] == script
    finally:
        fake.close()


def test_sigterm_while_tokenmgr_stalls_mid_response_exits_within_2s(tmp_path):
    fake = StallingTokenmgr(["stall-body"] * 10)
    pool = str(tmp_path / "pool")
    make_pool(pool, 1)
    h = Holder("node-a", pool, str(tmp_path / "host"), f"http://127.0.0.1:{fake.port}/api/token",
               str(tmp_path))
    try:
        h.start()
        assert fake.wait(lambda served: served and served[0][1], timeout=10), "no stalled call"
        t0 = time.monotonic()
        assert h.stop(signal.SIGTERM) == 0
        assert time.monotonic() - t0 < 2.0, "SIGTERM during a stalled response must exit in 2 s"
        assert read_claim(pool, "license1") is None and h.installed() is None
    finally:
        h.stop(signal.SIGKILL)
        fake.close()
