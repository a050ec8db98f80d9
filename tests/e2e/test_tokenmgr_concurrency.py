"""tokenmgr under concurrent clients: mutual exclusion, FIFO waiters, abandoned waiters, lease
expiry, connection limits and slow clients, on the real binary."""
import json
import os
import select
import socket
import subprocess
import threading
import time

import pytest

import procs
from tokenmgr_util import (Client, metrics, parse_raw_response, raw_exchange, start_tm,  # noqa
                           status, wait_waiters)


def _run_threads(threads, timeout):
    for th in threads:
        th.start()
    deadline = time.monotonic() + timeout
    for th in threads:
        th.join(timeout=max(0.1, deadline - time.monotonic()))
    stuck = [th.name for th in threads if th.is_alive()]
    assert not stuck, f"{len(stuck)} client threads still running"


# ---------------------------------------------------------------------------------------------
# mutual exclusion


@pytest.mark.parametrize("clients,cycles,state_file", [(200, 2, False), (20, 3, True)])
def test_no_two_holders_ever_overlap(start_tm, clients, cycles, state_file):
    t = start_tm(state_file=state_file)
    mu = threading.Lock()
    in_section = [0]
    overlaps = []
    grant_order = []  # tokens, in the order the critical section was entered
    errors = []
    barrier = threading.Barrier(clients)

    def worker(i):
        try:
            c = Client(t.port, timeout=60)
            barrier.wait(timeout=30)
            for k in range(cycles):
                s, g = c.lock(60, holder=f"c{i}", ttl=60)
                if s != 200:
                    errors.append((i, k, s, g))
                    return
                with mu:
                    in_section[0] += 1
                    if in_section[0] != 1:
                        overlaps.append(("enter", i, g["token"], in_section[0]))
                    grant_order.append(g["token"])
                with mu:
                    if in_section[0] != 1:
                        overlaps.append(("leave", i, g["token"], in_section[0]))
                    in_section[0] -= 1
                s, _, body = c.release(g["id"])
                if (s, body) != (200, '"Released"'):
                    errors.append((i, k, "release", s, body))
                    return
            c.close()
        except Exception as e:  # noqa: BLE001 - reported by the assertion below
            errors.append((i, repr(e)))

    threads = [threading.Thread(target=worker, args=(i,), name=f"c{i}") for i in range(clients)]
    _run_threads(threads, timeout=45)
    assert errors == [], errors[:5]
    assert overlaps == [], overlaps[:5]
    assert len(grant_order) == clients * cycles
    assert len(set(grant_order)) == len(grant_order), "a token was granted twice"
    assert grant_order == sorted(grant_order), "tokens are not increasing in grant order"
    st = status(t.port)
    assert st["held"] is False and st["waiters"] == 0
    assert st["last_token"] == grant_order[-1]
    m = metrics(t.port)
    assert m["tokenmgr_lock_grants_total"] == clients * cycles
    assert m["tokenmgr_lock_releases_total"] == clients * cycles
    assert m["tokenmgr_lock_expiries_total"] == 0


def test_mixed_try_lock_waiters_and_quitters_never_overlap(start_tm):
    """Try-locks (409s), waiters and waiters that hang up, all at once; the checker still sees
    one holder at a time, and no waiter that hung up is ever granted the lock."""
    t = start_tm(state_file=False)
    anchor = Client(t.port)
    _, ga = anchor.lock(0, holder="anchor", ttl=30)  # everyone queues behind it at first
    released = threading.Event()
    mu = threading.Lock()
    in_section = [0]
    overlaps, errors, tokens = [], [], []
    n_each = 20

    def hold(c, g, i):
        with mu:
            in_section[0] += 1
            if in_section[0] != 1:
                overlaps.append((i, g["token"]))
            tokens.append(g["token"])
            in_section[0] -= 1
        if c.release(g["id"])[0] != 200:
            errors.append((i, "release"))

    def quitter(i):  # asks to wait, then hangs up before being served
        s = socket.create_connection(("127.0.0.1", t.port))
        s.sendall(f"GET /api/token/lock/30?holder=q{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        s.close()

    def worker(i, try_only):
        try:
            c = Client(t.port, timeout=60)
            if try_only:
                released.wait(timeout=20)
            for _ in range(3):
                s, g = c.lock(0 if try_only else 30, holder=f"m{i}", ttl=30)
                if s == 200:
                    hold(c, g, i)
                elif not (try_only and s == 409):
                    errors.append((i, s, g))
            c.close()
        except Exception as e:  # noqa: BLE001
            errors.append((i, repr(e)))

    quitters = [threading.Thread(target=quitter, args=(i,)) for i in range(n_each)]
    workers = [threading.Thread(target=worker, args=(i, i % 2 == 0)) for i in range(2 * n_each)]
    for th in quitters + workers:
        th.start()
    try:
        for th in quitters:
            th.join(timeout=10)
        # Every quitter was seen to leave; the waiting workers are all queued.
        procs.wait_for(lambda: metrics(t.port)["tokenmgr_lock_wait_cancels_total"] == n_each,
                       what="all quitters cancelled")
        wait_waiters(t.port, n_each)
        assert anchor.release(ga["id"])[0] == 200
    finally:
        released.set()
    for th in workers:
        th.join(timeout=30)
    assert not any(th.is_alive() for th in workers)
    assert errors == [] and overlaps == [], (errors[:5], overlaps[:5])
    assert tokens == sorted(set(tokens)) and tokens[0] > ga["token"]
    st = status(t.port)
    assert st["held"] is False and st["waiters"] == 0
    assert metrics(t.port)["tokenmgr_lock_grants_total"] == 1 + len(tokens)


# ---------------------------------------------------------------------------------------------
# waiters


def test_waiters_are_served_in_arrival_order(start_tm):
    t = start_tm(state_file=False)
    holder = Client(t.port)
    _, g = holder.lock(0, holder="first", ttl=30)
    mu = threading.Lock()
    order, errors = [], []

    def waiter(name):
        c = Client(t.port)
        s, gr = c.lock(20, holder=name, ttl=30)
        if s != 200:
            errors.append((name, s, gr))
            return
        with mu:
            order.append((name, gr["token"]))
        c.release(gr["id"])

    names = [f"w{i}" for i in range(8)]
    threads = []
    for i, name in enumerate(names):
        th = threading.Thread(target=waiter, args=(name,))
        th.start()
        threads.append(th)
        wait_waiters(t.port, i + 1)  # w<i> is queued before w<i+1> asks
    assert status(t.port)["holder"] == "first"
    holder.release(g["id"])
    for th in threads:
        th.join(timeout=20)
    assert errors == []
    assert [n for n, _ in order] == names
    tokens = [tok for _, tok in order]
    assert tokens == sorted(tokens) and tokens[0] > g["token"]


def _held_with_raw_waiter(start_tm):
    """A server whose lock is held, with one waiter on a raw socket the test can hang up."""
    t = start_tm(state_file=False)
    holder = Client(t.port)
    _, g = holder.lock(0, holder="h", ttl=30)
    quitter = socket.create_connection(("127.0.0.1", t.port))
    quitter.sendall(b"GET /api/token/lock/20?holder=quitter HTTP/1.1\r\nHost: x\r\n\r\n")
    wait_waiters(t.port, 1)
    return t, holder, g, quitter


def test_waiter_whose_client_disconnects_is_removed_and_never_granted(start_tm):
    t, holder, g, quitter = _held_with_raw_waiter(start_tm)
    result = {}
    th = threading.Thread(target=lambda: result.update(r=Client(t.port).lock(20, holder="stayer")))
    th.start()
    try:
        wait_waiters(t.port, 2)
        quitter.close()
        wait_waiters(t.port, 1)
        holder.release(g["id"])
        th.join(timeout=10)
        s, g2 = result["r"]
        assert s == 200, g2
        st = status(t.port)
        assert st["holder"] == "stayer" and st["token"] == g2["token"] == g["token"] + 1
        m = metrics(t.port)
        assert m["tokenmgr_lock_wait_cancels_total"] == 1
        assert m["tokenmgr_lock_grants_total"] == 2
    finally:
        quitter.close()
        th.join(timeout=10)


def test_only_waiter_disconnecting_leaves_lock_free_after_release(start_tm):
    t, holder, g, quitter = _held_with_raw_waiter(start_tm)
    quitter.close()
    wait_waiters(t.port, 0)
    assert holder.release(g["id"])[0] == 200
    st = status(t.port)
    assert st["held"] is False and st["last_token"] == g["token"]


def test_full_waiter_queue_is_503_at_once(start_tm):
    t = start_tm(args=["--max-waiters", "2"], state_file=False)
    holder = Client(t.port)
    _, g = holder.lock(0, holder="h", ttl=30)
    results = []

    def wait_then_release():
        c = Client(t.port)
        s, g = c.lock(10)
        results.append(s)
        if s == 200:
            c.release(g["id"])

    threads = [threading.Thread(target=wait_then_release) for _ in range(2)]
    try:
        for i, th in enumerate(threads):
            th.start()
            wait_waiters(t.port, i + 1)
        started = time.monotonic()
        s, body = Client(t.port).lock(10, holder="third")
        assert s == 503 and "Error" in body, body
        assert time.monotonic() - started < 1.0
        assert status(t.port)["waiters"] == 2
        holder.release(g["id"])
    finally:
        for th in threads:
            th.join(timeout=15)
    assert results == [200, 200]


# ---------------------------------------------------------------------------------------------
# lease expiry (the seed's bugs)


def test_early_release_then_new_holder_survives_old_lease_expiry(start_tm):
    t = start_tm(state_file=False)
    a, b = Client(t.port), Client(t.port)
    a_granted = time.monotonic()
    _, ga = a.lock(0, holder="a", ttl=1)
    assert a.release(ga["id"])[0] == 200
    _, gb = b.lock(0, holder="b", ttl=5)
    # Let a's original lease end (1 s) with margin; b must hold throughout and afterwards.
    while time.monotonic() - a_granted < 1.6:
        st = status(t.port)
        assert st["held"] and st["holder"] == "b" and st["token"] == gb["token"], st
        time.sleep(0.05)  # polling interval of a time-based check, not synchronisation
    assert metrics(t.port)["tokenmgr_lock_expiries_total"] == 0
    assert b.release(gb["id"])[0] == 200


def test_expiry_hands_lock_to_waiter_and_old_id_is_dead(start_tm):
    t = start_tm(state_file=False)
    a, b = Client(t.port), Client(t.port)
    _, ga = a.lock(0, holder="a", ttl=1)
    started = time.monotonic()
    s, gb = b.lock(5, holder="b", ttl=10)
    waited = time.monotonic() - started
    assert s == 200 and gb["token"] == ga["token"] + 1
    assert 0.5 < waited < 2.5, waited
    assert a.release(ga["id"])[0] == 404
    assert a.json("POST", f"/api/token/renew/{ga['id']}?ttl=5")[0] == 404
    st = status(t.port)
    assert st["holder"] == "b" and st["token"] == gb["token"]
    assert metrics(t.port)["tokenmgr_lock_expiries_total"] == 1


# ---------------------------------------------------------------------------------------------
# connections: limits, idle and slow clients


def test_too_many_connections_503_or_close_then_recovers(start_tm):
    t = start_tm(args=["--max-connections", "4"], state_file=False)
    conns = [Client(t.port) for _ in range(4)]
    try:
        for c in conns:
            assert c.call("GET", "/healthz")[0] == 200  # each is now an open session
        s = socket.create_connection(("127.0.0.1", t.port), timeout=5)
        try:
            out = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                out += chunk
        except ConnectionResetError:
            pass
        finally:
            s.close()
        if out:
            code, headers, body = parse_raw_response(out)
            assert code == 503
            assert "Error" in json.loads(body)
    finally:
        for c in conns:
            c.close()
    procs.wait_for(lambda: _healthz_ok(t.port), what="server answers again")
    m = metrics(t.port)
    assert m["tokenmgr_http_rejected_connections_total"] >= 1


def _healthz_ok(port):
    try:
        return procs.request(port, "GET", "/healthz", timeout=2)[0] == 200
    except (ConnectionError, OSError):
        return False


def _closed_within(sock, seconds):
    """True if the server closes `sock` within `seconds` (reads and discards any data)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        r, _, _ = select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
        if r:
            try:
                if not sock.recv(65536):
                    return True
            except ConnectionResetError:
                return True
    return False


@pytest.fixture
def strict_tm(start_tm):
    return start_tm(args=["--idle-timeout", "1", "--read-timeout", "1"], state_file=False)


def test_idle_connection_is_closed_and_does_not_block_others(strict_tm):
    idle = [socket.create_connection(("127.0.0.1", strict_tm.port)) for _ in range(20)]
    try:
        started = time.monotonic()
        assert procs.request(strict_tm.port, "GET", "/healthz", timeout=2)[0] == 200
        assert time.monotonic() - started < 0.9  # well before the 1 s idle timeout frees anything
        for s in idle:
            assert _closed_within(s, 4.0)
    finally:
        for s in idle:
            s.close()


def test_keep_alive_connection_idle_after_request_is_closed(strict_tm):
    s = socket.create_connection(("127.0.0.1", strict_tm.port), timeout=5)
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(4096)
        assert data.startswith(b"HTTP/1.1 200")
        assert _closed_within(s, 4.0)
    finally:
        s.close()


def test_slow_loris_is_closed_and_does_not_block_others(strict_tm):
    loris = [socket.create_connection(("127.0.0.1", strict_tm.port)) for _ in range(20)]
    try:
        for s in loris:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        closed = set()
        while len(closed) < len(loris) and time.monotonic() - started < 6:
            for i, s in enumerate(loris):
                if i in closed:
                    continue
                try:
                    s.sendall(b"X-A: b\r\n")  # a header line now and then, never the end
                except (BrokenPipeError, ConnectionResetError):
                    closed.add(i)
                    continue
                r, _, _ = select.select([s], [], [], 0)
                if r:
                    try:
                        data = s.recv(65536)
                    except ConnectionResetError:
                        data = b""
                    if not data:
                        closed.add(i)
            t0 = time.monotonic()
            assert procs.request(strict_tm.port, "GET", "/healthz", timeout=2)[0] == 200
            assert time.monotonic() - t0 < 0.9  # others are answered before any timeout fires
            time.sleep(0.1)  # pacing of the slow client, not synchronisation
        assert len(closed) == len(loris), f"{len(loris) - len(closed)} slow clients still open"
        assert time.monotonic() - started < 5.0
        assert metrics(strict_tm.port)["tokenmgr_http_timeouts_total"] >= len(loris)
    finally:
        for s in loris:
            s.close()


def test_long_poll_outlives_idle_and_read_timeouts(strict_tm):
    holder = Client(strict_tm.port)
    _, g = holder.lock(0, holder="h", ttl=30)
    result = {}
    th = threading.Thread(target=lambda: result.update(r=Client(strict_tm.port).lock(5)))
    th.start()
    try:
        wait_waiters(strict_tm.port, 1)
        started = time.monotonic()
        # Wait past both 1 s timeouts; the waiter must still be queued, not cut off.
        procs.wait_for(lambda: time.monotonic() - started > 1.5 and status(strict_tm.port),
                       what="1.5 s to pass")
        assert status(strict_tm.port)["waiters"] == 1
        # (a fresh connection: the holder's keep-alive one has been closed as idle by now)
        assert procs.request(strict_tm.port, "POST", f"/api/token/release/{g['id']}")[0] == 200
        th.join(timeout=10)
        assert result["r"][0] == 200, result
    finally:
        th.join(timeout=10)


def test_waiter_that_pipelined_a_request_then_hangs_up_is_removed(start_tm):
    """A client may pipeline its next request behind a long poll; hanging up afterwards must
    still take its waiter out of the queue."""
    t, holder, g, quitter = _held_with_raw_waiter(start_tm)
    try:
        quitter.sendall(b"GET /api/token/status HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_waiters(t.port, 1)
        quitter.close()
        wait_waiters(t.port, 0)
        assert holder.release(g["id"])[0] == 200
        assert status(t.port)["held"] is False
    finally:
        quitter.close()


def test_pipelined_request_after_long_poll_is_answered_in_order(start_tm):
    t, holder, g, waiter = _held_with_raw_waiter(start_tm)
    try:
        waiter.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_waiters(t.port, 1)
        assert holder.release(g["id"])[0] == 200
        waiter.settimeout(5)
        data = b""
        while data.count(b"HTTP/1.1 ") < 2 or not data.endswith(b"}"):
            chunk = waiter.recv(65536)
            assert chunk, data
            data += chunk
        first, second = data.split(b"HTTP/1.1 ")[1:3]
        assert first.startswith(b"200") and b'"token"' in first
        assert second.startswith(b"200") and b'"ok"' in second
    finally:
        waiter.close()


# ---------------------------------------------------------------------------------------------
# clients that are always ready with their next request


def test_stream_of_pipelined_requests_is_answered_in_order_and_server_stays_up(start_tm):
    """20,000 requests written back to back on one connection, without waiting for answers:
    each is answered, in order, and the server stays responsive (the next request is read in a
    loop or a fresh handler, never by recursion)."""
    t = start_tm()
    n = 20000
    s = socket.create_connection(("127.0.0.1", t.port), timeout=10)
    got = bytearray()

    def reader():
        while got.count(b"HTTP/1.1 200 OK") < n:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            got.extend(chunk)

    th = threading.Thread(target=reader)
    th.start()
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    for _ in range(n // 1000):
        s.sendall(request * 1000)
    th.join(timeout=60)
    s.close()
    assert not th.is_alive()
    assert got.count(b"HTTP/1.1 200 OK") == n
    assert got.count(b'{"status": "ok"}') == n
    assert status(t.port)["held"] is False  # still answering


def _lock_bench():
    """The C++ load driver: it is only a client, so the release build's serves every preset
    (sanitizer presets do not build bench/)."""
    for build in (os.path.join(procs.ROOT, "build", "release"), procs.BUILD_DIR):
        path = os.path.join(build, "bench", "lock_bench")
        if os.path.exists(path):
            return path
    return None


@pytest.mark.skipif(_lock_bench() is None, reason="lock_bench is not built (release preset)")
def test_fast_clients_releasing_right_after_their_grant_never_overlap(start_tm):
    """50 C++ clients on keep-alive connections doing long-poll lock + release back to back.
    A grant is sent from another request's handler; its client answers with the release at
    once, often before that handler returned. That release must wait for a fresh handler (the
    lock table is never entered again while it runs): no overlap, no dropped connection."""
    t = start_tm()
    driver = _lock_bench()
    out = subprocess.run([driver, "--cycles", f"--tm-port={t.port}", "--clients=50",
                          "--seconds=2", "--warmup=0.2"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    fields = dict(kv.split("=") for kv in out.stdout.split())
    assert int(fields["overlaps"]) == 0
    assert int(fields["count"]) > 100, out.stdout
