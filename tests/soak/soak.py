"""Soak test: a real tokenmgr under hostile load while well-behaved clients lock and release.

One process (this one) starts tokenmgr on 127.0.0.1 (port 0, port file), then a second process
(this script with --hostile) that drives the hostile load from one selector loop:

  idle      N keep-alive connections, each sending GET /api/token/status every 1-8 s
  loris     slow-loris clients: a request header dribbled one byte every 0.3 s, never finished
  garbage   random bytes (raw, HTTP-looking, or a huge header line), then wait for close
  half      a complete or partial request, then shutdown(SHUT_WR), then wait for the answer/close

Meanwhile well-behaved threads in this process loop on lock (long poll) -> hold a few ms ->
release, and record each hold as [grant received, release sent] on the monotonic clock with its
fencing token. An independent checker (it never asks tokenmgr) verifies that no two holds
overlap and that tokens increase in grant order. A probe thread sends GET /healthz every 50 ms.

The report: requests served, outcomes and errors by kind, overlaps, latency percentiles of the
well-behaved clients, tokenmgr RSS after warm-up and at the end. Exit status 1 on any violation.
"""
import argparse
import heapq
import http.client
import json
import os
import random
import resource
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "e2e"))
import procs  # noqa: E402  (tests/e2e/procs.py: Tokenmgr, wait_for)

READ_TIMEOUT = 5       # tokenmgr --read-timeout for the soak (default 10): loris are cut sooner
IDLE_TIMEOUT = 30      # tokenmgr --idle-timeout; idle clients talk more often than this
CLOSE_SLACK = 5.0      # a stuck client must be closed within READ_TIMEOUT + this


def percentile(values, p):
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]


# ----------------------------------------------------------------------------------------------
# Overlap checker: only the clients' own observations, never tokenmgr's view.

def check_holds(holds):
    """holds: [(grant_received, release_sent, token, client)]. Returns a list of violations."""
    problems = []
    ordered = sorted(holds)
    latest_end, latest = float("-inf"), None
    prev_token = 0
    for h in ordered:
        start, end, token, client = h
        if start < latest_end:
            problems.append(f"overlap: {client} got token {token} at {start:.6f} while "
                            f"{latest[3]} (token {latest[2]}) held until {latest_end:.6f}")
        if token <= prev_token:
            problems.append(f"fencing token went from {prev_token} to {token} ({client})")
        prev_token = max(prev_token, token)
        if end > latest_end:
            latest_end, latest = end, h
    return problems


def checker_self_test():
    """The checker must catch an overlap and a token that does not increase, or it checks nothing."""
    ok = [(1.0, 2.0, 5, "a"), (2.5, 3.0, 6, "b")]
    overlap = [(1.0, 2.0, 5, "a"), (1.5, 3.0, 6, "b")]
    nested = [(1.0, 5.0, 5, "a"), (2.0, 2.5, 6, "b"), (3.0, 3.5, 7, "c")]
    backwards = [(1.0, 2.0, 6, "a"), (2.5, 3.0, 6, "b")]
    assert check_holds(ok) == []
    assert len(check_holds(overlap)) == 1
    assert len(check_holds(nested)) == 2
    assert len(check_holds(backwards)) == 1


# ----------------------------------------------------------------------------------------------
# Hostile load (runs in its own process: python3 soak.py --hostile ...)

class Hostile:
    def __init__(self, port, n_idle, n_loris, n_garbage, n_half):
        self.port = port
        self.sel = selectors.DefaultSelector()
        self.timers = []  # heap of (when, seq, callback)
        self.seq = 0
        self.counts = Counter()
        self.violations = []
        self.stopping = False
        self.n = {"idle": n_idle, "loris": n_loris, "garbage": n_garbage, "half": n_half}
        self.rng = random.Random(os.getpid())

    # -- plumbing
    def later(self, delay, fn):
        self.seq += 1
        heapq.heappush(self.timers, (time.monotonic() + delay, self.seq, fn))

    def connect(self, first_bytes=b""):
        """A non-blocking connection; first_bytes are sent while it is still blocking."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        if first_bytes:
            s.sendall(first_bytes)
        s.setblocking(False)
        return s

    def watch(self, s, on_read):
        self.sel.register(s, selectors.EVENT_READ, on_read)

    def drop(self, s):
        try:
            self.sel.unregister(s)
        except (KeyError, ValueError):
            pass
        s.close()

    @staticmethod
    def recv(s):
        """Bytes read, b"" on close/reset, None if nothing to read yet."""
        try:
            return s.recv(65536)
        except (BlockingIOError, InterruptedError):
            return None
        except (ConnectionResetError, OSError):
            return b""

    @staticmethod
    def response_complete(buf):
        """(status, remaining bytes) once one whole response is in buf, else None."""
        head_end = buf.find(b"\r\n\r\n")
        if head_end < 0:
            return None
        head = buf[:head_end].decode("latin-1")
        length = 0
        for line in head.split("\r\n")[1:]:
            k, _, v = line.partition(":")
            if k.strip().lower() == "content-length":
                length = int(v.strip())
        if len(buf) < head_end + 4 + length:
            return None
        status = head.split(" ", 2)[1] if " " in head else "?"
        return status, buf[head_end + 4 + length:]

    # -- idle keep-alive clients
    def start_idle(self, first=False):
        try:
            s = self.connect()
        except OSError as e:
            self.counts[f"idle-connect-error {type(e).__name__}"] += 1
            self.later(0.5, self.start_idle)
            return
        state = {"buf": b"", "pending": False}

        def send():
            if s.fileno() < 0 or self.stopping:
                return
            try:
                s.send(b"GET /api/token/status HTTP/1.1\r\nHost: soak\r\n\r\n")
                state["pending"] = True
            except OSError:
                pass  # the read side reports the close

        def on_read():
            data = self.recv(s)
            if data is None:
                return
            if not data:
                self.counts["idle-closed-by-server"] += 1
                self.drop(s)
                if not self.stopping:
                    self.later(0.1, self.start_idle)
                return
            state["buf"] += data
            while (r := self.response_complete(state["buf"])) is not None:
                status, state["buf"] = r
                state["pending"] = False
                self.counts[f"idle-{status}"] += 1
                self.later(self.rng.uniform(1.0, 8.0), send)

        self.watch(s, on_read)
        # Spread the first requests so 1,000 clients do not fire in lockstep.
        self.later(self.rng.uniform(0, 1.0) if first else 0, send)

    # -- slow loris
    def start_loris(self):
        try:
            s = self.connect()
        except OSError as e:
            self.counts[f"loris-connect-error {type(e).__name__}"] += 1
            self.later(0.5, self.start_loris)
            return
        header = b"GET /api/token/status HTTP/1.1\r\nHost: soak\r\nX-Slow: " + b"a" * 4096
        opened = time.monotonic()
        pos = [0]
        closed = [False]

        def dribble():
            if closed[0] or self.stopping:
                return
            if time.monotonic() - opened > READ_TIMEOUT + CLOSE_SLACK:
                self.violations.append(f"slow-loris client still open after "
                                       f"{READ_TIMEOUT + CLOSE_SLACK:.0f}s")
                self.counts["loris-not-closed"] += 1
                closed[0] = True
                self.drop(s)
                self.later(0.1, self.start_loris)
                return
            try:
                s.send(header[pos[0]:pos[0] + 1])
                pos[0] += 1
            except OSError:
                pass
            self.later(0.3, dribble)

        def on_read():
            data = self.recv(s)
            if data is None:
                return
            if data:
                self.counts[f"loris-answered {data[:12].decode('latin-1').strip()}"] += 1
                return
            closed[0] = True
            self.counts["loris-closed-by-server"] += 1
            self.drop(s)
            if not self.stopping:
                self.later(0.1, self.start_loris)

        self.watch(s, on_read)
        self.later(0, dribble)

    # -- fire-and-wait clients (garbage, half-closed): send, then expect an answer and/or close
    def one_shot(self, kind, payload, shut_wr, restart):
        opened = time.monotonic()
        try:
            s = self.connect(payload)
            if shut_wr:
                s.shutdown(socket.SHUT_WR)
        except OSError as e:
            self.counts[f"{kind}-connect/send-error {type(e).__name__}"] += 1
            self.later(0.5, restart)
            return
        state = {"buf": b"", "done": False}

        def finish(outcome):
            if state["done"]:
                return
            state["done"] = True
            self.counts[f"{kind}-{outcome}"] += 1
            self.drop(s)
            if not self.stopping:
                self.later(self.rng.uniform(0.05, 0.3), restart)

        def on_read():
            data = self.recv(s)
            if data is None:
                return
            if data:
                state["buf"] += data
                r = self.response_complete(state["buf"])
                head = state["buf"].split(b"\r\n\r\n", 1)[0].lower()
                if (r is not None and r[0] != "?" and b"connection: close" not in head
                        and not shut_wr):
                    # A well-formed request with bad content gets its error on a connection
                    # that stays usable (keep-alive); that is an answer, not a hang. (After
                    # shutdown(SHUT_WR) the server must see the end and close, so wait for it.)
                    finish(f"answered {r[0]}, kept alive")
                return
            buf = state["buf"]
            finish(f"answered {buf[9:12].decode('latin-1')} then closed" if buf.startswith(b"HTTP/")
                   else "closed without answer")

        def deadline():
            if state["done"] or self.stopping:
                return
            self.violations.append(f"{kind} client not closed {READ_TIMEOUT + CLOSE_SLACK:.0f}s "
                                   f"after sending {payload[:40]!r}")
            finish("not closed")

        self.watch(s, on_read)
        self.later(READ_TIMEOUT + CLOSE_SLACK - (time.monotonic() - opened), deadline)

    def start_garbage(self):
        r = self.rng
        choice = r.randrange(4)
        if choice == 0:
            payload = r.randbytes(r.randint(1, 2048))
        elif choice == 1:  # looks like HTTP, then garbage, then the end of a header block ("x":
            # never a valid wait time, so a garbage writer is never granted the lock)
            payload = b"GET /api/token/lock/x" + r.randbytes(r.randint(1, 64)) + b" HTTP/1.1\r\n\r\n"
        elif choice == 2:  # an oversized header line
            payload = b"GET / HTTP/1.1\r\nX-Big: " + b"b" * r.randint(9000, 40000) + b"\r\n\r\n"
        else:  # garbage method and headers, complete
            payload = (r.choice([b"BREW", b"\x00\x01", b"GET\tGET", b"POST"]) + b" /" +
                       r.randbytes(8).hex().encode() + b" HTTP/1.1\r\nContent-Length: -5\r\n\r\n")
        self.one_shot("garbage", payload, False, self.start_garbage)

    def start_half(self):
        complete = self.rng.random() < 0.5
        payload = (b"GET /api/token/status HTTP/1.1\r\nHost: soak\r\n\r\n" if complete
                   else b"GET /api/token/status HTTP/1.1\r\nHost: so")
        self.one_shot("half-closed-" + ("complete" if complete else "partial"), payload, True,
                      self.start_half)

    # -- main loop
    def run(self, seconds):
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stopping", True))
        for _ in range(self.n["idle"]):
            self.start_idle(first=True)
        for _ in range(self.n["loris"]):
            self.start_loris()
        for _ in range(self.n["garbage"]):
            self.start_garbage()
        for _ in range(self.n["half"]):
            self.start_half()
        print(json.dumps({"ready": True}), flush=True)
        end = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < end:
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now:
                _, _, fn = heapq.heappop(self.timers)
                fn()
            timeout = max(0.0, min(0.2, self.timers[0][0] - now)) if self.timers else 0.2
            for key, _ in self.sel.select(timeout):
                key.data()
        self.stopping = True
        open_now = len(self.sel.get_map())
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()
        print(json.dumps({"counts": self.counts, "violations": self.violations,
                          "open_at_end": open_now}), flush=True)


# ----------------------------------------------------------------------------------------------
# Well-behaved clients and the probe

class WellBehaved(threading.Thread):
    def __init__(self, name, port, stop, holds, stats, max_hold_ms):
        super().__init__(name=name, daemon=True)
        self.port, self.stop, self.holds, self.stats = port, stop, holds, stats
        self.max_hold = max_hold_ms / 1000.0
        self.rng = random.Random(name)

    def call(self, conn, method, path):
        conn.request(method, path, headers={"Host": "soak"})
        resp = conn.getresponse()
        return resp.status, resp.read()

    def run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        while not self.stop.is_set():
            try:
                t0 = time.monotonic()
                status, body = self.call(conn, "GET", f"/api/token/lock/10?ttl=30&holder={self.name}")
                granted = time.monotonic()
                if status != 200:
                    self.stats.error(f"well-behaved lock -> {status} {body[:80]!r}")
                    continue
                grant = json.loads(body)
                time.sleep(self.rng.uniform(0, self.max_hold))  # the work done under the lock
                released = time.monotonic()
                self.holds.append((granted, released, grant["token"], self.name))
                status, body = self.call(conn, "POST", f"/api/token/release/{grant['id']}")
                done = time.monotonic()
                if status != 200 or body != b'"Released"':
                    self.stats.error(f"well-behaved release -> {status} {body[:80]!r}")
                    continue
                self.stats.observe("lock", granted - t0)
                self.stats.observe("release", done - released)
            except (OSError, http.client.HTTPException, ValueError) as e:
                self.stats.error(f"well-behaved {type(e).__name__}: {e}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        conn.close()


class Probe(threading.Thread):
    def __init__(self, port, stop, stats):
        super().__init__(name="probe", daemon=True)
        self.port, self.stop, self.stats = port, stop, stats

    def run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        while not self.stop.wait(0.05):  # the probe's rate, not synchronisation
            try:
                t0 = time.monotonic()
                conn.request("GET", "/healthz")
                resp = conn.getresponse()
                resp.read()
                if resp.status != 200:
                    self.stats.error(f"probe /healthz -> {resp.status}")
                else:
                    self.stats.observe("healthz", time.monotonic() - t0)
            except (OSError, http.client.HTTPException) as e:
                self.stats.error(f"probe {type(e).__name__}: {e}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        conn.close()


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.latency = {"lock": [], "release": [], "healthz": []}
        self.errors = Counter()
        self.recording = True

    def observe(self, kind, seconds):
        with self.lock:
            self.latency[kind].append(seconds)

    def error(self, what):
        with self.lock:
            self.errors[what[:120]] += 1


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def metrics(port):
    """tokenmgr's /metrics as {name: value}; labelled series are also summed under their name."""
    _, _, text = procs.request(port, "GET", "/metrics", timeout=10)
    out = Counter()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            out[series] = float(value)
            if "{" in series:
                out[series.split("{")[0]] += float(value)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=300, help="measured run after warm-up (300)")
    ap.add_argument("--warmup", type=float, default=5, help="seconds before the start RSS sample (5)")
    ap.add_argument("--idle", type=int, default=1000, help="keep-alive connections (1000)")
    ap.add_argument("--loris", type=int, default=20)
    ap.add_argument("--garbage", type=int, default=8)
    ap.add_argument("--half", type=int, default=8)
    ap.add_argument("--clients", type=int, default=4, help="well-behaved lock clients (4)")
    ap.add_argument("--max-hold-ms", type=float, default=3.0)
    ap.add_argument("--max-p99-ms", type=float, default=1000,
                    help="violation if release or /healthz p99 exceeds this (1000)")
    ap.add_argument("--rss-tolerance-kib", type=int, default=1024,
                    help="violation if end RSS > start RSS * 1.02 + this (1024); see docs/testing.md")
    ap.add_argument("--no-state-file", action="store_true", help="memory-only tokenmgr")
    ap.add_argument("--hostile", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.hostile:
        Hostile(args.hostile, args.idle, args.loris, args.garbage, args.half).run(args.seconds)
        return 0

    checker_self_test()
    conns = args.idle + args.loris + args.garbage + args.half + args.clients + 1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = conns + 200
    if hard != resource.RLIM_INFINITY and hard < want:
        print(f"soak: RLIMIT_NOFILE hard limit {hard} < {want} needed", file=sys.stderr)
        return 2
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))  # tokenmgr inherits it

    max_conn = conns + 200
    tm_args = ["--max-connections", str(max_conn), "--read-timeout", str(READ_TIMEOUT),
               "--idle-timeout", str(IDLE_TIMEOUT), "--lock-duration", "30"]
    tm = procs.Tokenmgr(args=tm_args, state_file=not args.no_state_file)
    hostile = None
    stop = threading.Event()
    stats = Stats()
    holds = []
    violations = []
    t_start = time.monotonic()
    try:
        tm.start()
        print(f"soak: tokenmgr pid {tm.proc.pid} on 127.0.0.1:{tm.port} {' '.join(tm_args)}"
              f"{' (memory only)' if args.no_state_file else ' --state-file'}; workdir {tm.workdir}",
              flush=True)
        total = args.warmup + args.seconds
        hostile = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--hostile", str(tm.port),
             "--seconds", str(total + 60), "--idle", str(args.idle), "--loris", str(args.loris),
             "--garbage", str(args.garbage), "--half", str(args.half)],
            stdout=subprocess.PIPE, text=True)
        line = hostile.stdout.readline()  # blocks until every hostile connection is set up
        if not line or not json.loads(line).get("ready"):
            raise RuntimeError(f"hostile load failed to start: {line!r}")
        procs.wait_for(lambda: metrics(tm.port).get("tokenmgr_http_open_connections", 0) >= args.idle,
                       timeout=30, interval=0.2, what=f"{args.idle} open connections")
        m0 = metrics(tm.port)
        print(f"soak: hostile load running ({int(m0['tokenmgr_http_open_connections'])} connections "
              f"open); well-behaved clients start", flush=True)
        threads = [WellBehaved(f"wb-{i}", tm.port, stop, holds, stats, args.max_hold_ms)
                   for i in range(args.clients)] + [Probe(tm.port, stop, stats)]
        for t in threads:
            t.start()

        stop.wait(args.warmup)  # warm-up length: the load runs, nothing to wait for
        rss_start = rss_kib(tm.proc.pid)
        samples = [rss_start]
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            if tm.proc.poll() is not None:
                raise RuntimeError(f"tokenmgr exited {tm.proc.returncode}")
            if hostile.poll() is not None:
                raise RuntimeError(f"hostile load exited {hostile.returncode}")
            stop.wait(min(1.0, max(0.0, end - time.monotonic())))  # RSS sampling period
            samples.append(rss_kib(tm.proc.pid))
        m1 = metrics(tm.port)
        rss_end = rss_kib(tm.proc.pid)  # same load as at the start: 1,000 connections open
        stop.set()
        for t in threads:
            t.join(timeout=20)
            if t.is_alive():
                violations.append(f"{t.name} did not finish within 20 s (hung request?)")

        hostile.send_signal(signal.SIGTERM)
        out, _ = hostile.communicate(timeout=30)
        hostile_report = json.loads(out.strip().splitlines()[-1])
        # Every hostile connection is closed now: tokenmgr must let go of all of them.
        try:
            procs.wait_for(lambda: metrics(tm.port)["tokenmgr_http_open_connections"] <= 1,
                           timeout=READ_TIMEOUT + CLOSE_SLACK, interval=0.2,
                           what="open connections back to 0")
        except TimeoutError:
            violations.append(f"tokenmgr still reports {metrics(tm.port)['tokenmgr_http_open_connections']:.0f} "
                              f"open connections after every client closed")
        m2 = metrics(tm.port)
        if tm.proc.poll() is not None:
            violations.append(f"tokenmgr exited {tm.proc.returncode}")
        rc = tm.stop(signal.SIGTERM)
        if rc != 0:
            violations.append(f"tokenmgr exit status {rc} on SIGTERM")
    finally:
        stop.set()
        if hostile and hostile.poll() is None:
            hostile.kill()
            hostile.wait()
        if tm.proc and tm.proc.poll() is None:
            tm.stop(signal.SIGKILL)

    # ---- report
    overlaps = check_holds(holds)
    violations += overlaps
    violations += hostile_report["violations"]
    if stats.errors:
        violations.append(f"{sum(stats.errors.values())} well-behaved request errors")
    if not holds:
        violations.append("no lock cycle completed")
    p = {k: (percentile(v, 50) * 1000, percentile(v, 99) * 1000, max(v, default=float("nan")) * 1000)
         for k, v in stats.latency.items()}
    for kind in ("release", "healthz"):
        if not p[kind][1] <= args.max_p99_ms:
            violations.append(f"{kind} p99 {p[kind][1]:.1f} ms > {args.max_p99_ms:.0f} ms")
    rss_limit = rss_start * 1.02 + args.rss_tolerance_kib
    if rss_end > rss_limit:
        violations.append(f"RSS grew from {rss_start} KiB to {rss_end} KiB (limit {rss_limit:.0f} KiB)")
    if m1.get("tokenmgr_http_rejected_connections_total", 0) > 0:
        violations.append("tokenmgr rejected connections below its --max-connections")

    served = m2["tokenmgr_http_requests_total"] - m0["tokenmgr_http_requests_total"]
    elapsed = time.monotonic() - t_start
    print()
    print(f"== soak report: {args.seconds:.0f} s measured after {args.warmup:.0f} s warm-up "
          f"({elapsed:.0f} s wall) ==")
    print(f"load: {args.idle} keep-alive, {args.loris} slow-loris, {args.garbage} garbage, "
          f"{args.half} half-close, {args.clients} well-behaved + 1 probe")
    print(f"requests served by tokenmgr (http_requests_total delta): {served:.0f} "
          f"({served / max(elapsed, 1):.0f}/s); bad requests {m2['tokenmgr_http_bad_requests_total']:.0f}, "
          f"timeouts {m2['tokenmgr_http_timeouts_total']:.0f}, rejected connections "
          f"{m2['tokenmgr_http_rejected_connections_total']:.0f}")
    by_code = Counter()
    for series, v in m2.items():
        if series.startswith("tokenmgr_http_requests_total{"):
            by_code[series.split('code="')[1].split('"')[0]] += v - m0.get(series, 0)
    print("  by HTTP status: " + ", ".join(f"{c}: {n:.0f}" for c, n in sorted(by_code.items())))
    print(f"lock cycles: {len(holds)} holds, grants {m2['tokenmgr_lock_grants_total']:.0f}, "
          f"last token {m2['tokenmgr_lock_last_token']:.0f}")
    print(f"overlaps: {sum('overlap' in o for o in overlaps)}; token order violations: "
          f"{sum('token' in o for o in overlaps)}")
    for kind in ("lock", "release", "healthz"):
        p50, p99, mx = p[kind]
        print(f"latency {kind:8s} n={len(stats.latency[kind]):7d}  p50 {p50:8.2f} ms  "
              f"p99 {p99:8.2f} ms  max {mx:8.2f} ms")
    print(f"tokenmgr RSS: start {rss_start} KiB (after warm-up), end {rss_end} KiB, "
          f"min {min(samples)} / max {max(samples)} KiB over {len(samples)} samples; "
          f"limit {rss_limit:.0f} KiB")
    print("hostile outcomes:")
    for k, v in sorted(hostile_report["counts"].items()):
        print(f"  {k:45s} {v}")
    print("well-behaved errors:" + ("" if stats.errors else " none"))
    for k, v in sorted(stats.errors.items()):
        print(f"  {k:45s} {v}")
    if violations:
        print(f"\nSOAK FAILED: {len(violations)} violation(s); tokenmgr's log: {tm.log_path}")
        for v in violations[:20]:
            print(f"  {v}")
        return 1
    print("\nsoak passed")
    shutil.rmtree(tm.workdir, ignore_errors=True)  # kept on failure: tokenmgr.log is in it
    return 0


if __name__ == "__main__":
    sys.exit(main())
