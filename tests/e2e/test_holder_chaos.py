"""Chaos run of license-holder: many real holders on a pool with fewer licenses than holders, one
real tokenmgr with a state file, and a seeded driver that kills -9, SIGTERMs, pauses (SIGSTOP past
the claim TTL, then SIGCONT) and restarts holders, and restarts tokenmgr (SIGTERM and SIGKILL),
while a sampler checks safety from outside by reading every host dir every ~50 ms.

Checked:
- Safety: no license is installed on two *running* nodes for longer than one heartbeat plus
  TOLERANCE. A node is running from its process start and from SIGCONT; not while stopped, and not
  after it died (its host files stay behind, but nothing uses them: the node is down). Overlaps are
  measured per (license, pair of nodes) from the first sample that shows both to the first sample
  that no longer does, so a measurement can be up to one sample interval long; TOLERANCE (0.5 s)
  covers that, the install/withdraw latency and scheduling delays of ~22 processes on a small CI box.
- Unusable licenses (no host_id, an empty one, a symlink inside, a file in the pool; more are
  added during the run) are never claimed, and never installed anywhere.
- A duplicated node name: now and then a second holder is started with the NODE_NAME of a running
  node (its own pod name and host dir) for a few seconds. It counts as a running node in the
  safety check above, so if it installed the license its node name's first holder keeps, that is
  an overlap; it must install nothing while the other pod renews the claim.
- Admin actions (issue 17) at random through tokenmgr's API: cordon and later uncordon a node,
  disable and later enable a license. A cordoned node installs nothing, and a disabled license is
  installed nowhere, MARK_BOUND (one heartbeat + 2 x TOLERANCE: the directive's trip to the agent,
  then the sampling of the withdrawal) after the action was acknowledged, counted from when the
  node (and tokenmgr) last came up if that is later, and not while tokenmgr is down: a stopped
  node cannot act, and a node learns a directive only from tokenmgr. All marks are lifted when
  the chaos ends. tokenmgr's history is in order, holds every acknowledged admin action, and
  each agent event once (agents resend what a killed or restarted tokenmgr may have stored).
- At the end (chaos stopped, everything resumed, then settled for up to claim TTL + a few
  heartbeats): min(live nodes, licenses) live nodes have a license installed, all distinct, each
  confirmed by its claim in the pool and by /readyz; every holder process the driver did not kill
  is still alive, and every SIGTERMed one exited 0.

Env: CHAOS_SECONDS (default 60), CHAOS_HOLDERS (20), CHAOS_LICENSES (4/5 of the holders),
CHAOS_SEED (replay a run; the seed is printed), CHAOS_TOLERANCE (0.5 s), CHAOS_KEEP=1 (keep the
workdir even on success; on failure it is always kept and its path printed; every holder and
tokenmgr writes its log there).
"""
import collections
import json
import os
import random
import shutil
import signal
import statistics
import tempfile
import threading
import time
import urllib.error
import urllib.request

from procs import Holder, Tokenmgr, installed_license, make_pool, read_claim, wait_for

HEARTBEAT = 1
CLAIM_TTL = 4
SETTLE_MS = 200
CHAOS_SECONDS = float(os.environ.get("CHAOS_SECONDS", "60"))
N_HOLDERS = int(os.environ.get("CHAOS_HOLDERS", "20"))
N_LICENSES = int(os.environ.get("CHAOS_LICENSES", str(max(1, N_HOLDERS * 4 // 5))))
TOLERANCE = float(os.environ.get("CHAOS_TOLERANCE", "0.5"))
SAMPLE_INTERVAL = 0.05
UNUSABLE_ID = "HOSTID-unusable"
OVERLAP_BOUND = HEARTBEAT + TOLERANCE
# A directive reaches an agent in the answer to its next report (one heartbeat), then the
# withdrawal is sampled: one heartbeat plus TOLERANCE for each of the two hops.
MARK_BOUND = HEARTBEAT + 2 * TOLERANCE
MAX_DISRUPTED = max(1, N_HOLDERS // 4)        # at most ~25% of the holders disrupted at once
MAX_PERMANENT_DEATHS = max(1, N_HOLDERS // 10)  # killed and never restarted: live nodes shrink
TOKENMGR_RESTARTS = 3


class RestartableTokenmgr(Tokenmgr):
    """A Tokenmgr that restarts on the port it first bound (port 0 the first time), as behind a
    Service: the holders' TOKENMGR_URL stays valid across restarts."""

    def start(self):
        # The first start binds port 0; every restart asks for that same port again.
        self.fixed_port = self.port or 0
        return super().start()


class Node:
    """One simulated node: its Holder, and what the driver did to its current process."""

    def __init__(self, holder):
        self.h = holder
        self.state = "dead"      # running | stopped | terminating | dead; guarded by Chaos.lock
        self.busy = False        # a disruption is in progress
        self.killed = False      # the current process was killed by the driver (kill -9)
        self.permanent = False   # killed and not restarted
        self.exits = []          # (how, rc) of every finished process


class Chaos:
    def __init__(self, workdir, seed):
        self.workdir = workdir
        self.rng = random.Random(seed)
        self.rng_lock = threading.Lock()
        self.lock = threading.Lock()    # node states and the signals that change them
        self.stop = threading.Event()   # ends the chaos phase
        self.pool = os.path.join(workdir, "pool")
        make_pool(self.pool, N_LICENSES)
        self.tm = RestartableTokenmgr(workdir=os.path.join(workdir, "tokenmgr"))
        os.makedirs(self.tm.workdir, exist_ok=True)
        self.nodes = []
        self.counts = collections.Counter()
        self.unusable = []              # names of pool entries that are not licenses
        for _ in range(4):
            self.add_unusable()
        self.errors = []                # driver problems (crash at start-up, tokenmgr died...)
        # Sampler results.
        self.samples = 0
        self.max_gap = 0.0
        self.open = {}                  # (license, a, b) -> first sample time seen together
        self.overlaps = []              # (duration, license, a, b, start offset)
        self.max_overlap = 0.0
        self.violations = []
        # kill -9 of a licensed node: license -> (kill time, node name); resolved by the sampler.
        self.pending = {}
        self.dups = []                  # [label, Holder, state] of duplicated-node-name holders
        self.reassigned = []            # seconds until another running node had it installed
        self.readopted = []             # seconds until the restarted node held it again
        self.term_exit = []             # seconds from SIGTERM to exit
        # Admin marks in force: node/license -> when tokenmgr acknowledged them.
        self.cordoned = {}
        self.disabled = {}
        self.tm_up_since = 0.0
        self.running_since = {}         # node name -> when its process last started or resumed
        self.admin_flagged = set()      # (kind, name, acknowledged at) already reported
        self.mark_late = {}             # (kind, name, acknowledged at) -> longest still in use
        self.t0 = time.monotonic()
        self.wall0 = time.time()  # to match t= offsets with the holders' log timestamps

    def rand(self, fn, *args):
        with self.rng_lock:
            return getattr(self.rng, fn)(*args)

    def at(self, t):
        """A monotonic time as an offset and as wall-clock time (as in the holders' logs)."""
        wall = self.wall0 + (t - self.t0)
        return (f"t={t - self.t0:.2f}s ({time.strftime('%H:%M:%S', time.localtime(wall))}"
                f".{int(wall * 1000) % 1000:03d})")

    def log(self, msg):
        line = f"[{self.at(time.monotonic())}] {msg}"
        print(line, flush=True)
        with open(os.path.join(self.workdir, "chaos.log"), "a") as f:
            f.write(line + "\n")

    # ---- processes -------------------------------------------------------------------------


    def start_node(self, node):
        """Starts the node's holder. It counts as running from just before the process exists
        (stricter than from exec), so leftover files from a killed process count at once."""
        with self.lock:
            node.state = "running"
            node.killed = False
            self.running_since[node.h.node] = time.monotonic()
        try:
            node.h.start()  # waits for the health port; raises if the process exits
        except (RuntimeError, TimeoutError) as e:
            self.errors.append(f"{node.h.node} start-up: {e}")

    def reap(self, node, how, timeout=10):
        h = node.h
        try:
            rc = h.proc.wait(timeout=timeout)
        except Exception:  # noqa: BLE001 - a hung process: take it down, report it
            os.kill(h.proc.pid, signal.SIGKILL)
            rc = h.proc.wait()
            self.errors.append(f"{h.node}: did not exit {timeout}s after {how}")
        h.close_log()
        node.exits.append((how, rc))
        return rc

    # ---- disruptions (each in its own thread) ----------------------------------------------

    def add_unusable(self):
        """Adds a pool entry that is not a license (one of four shapes)."""
        k = len(self.unusable)
        name = f"unusable{k}"
        path = os.path.join(self.pool, name)
        kind = k % 4
        if kind == 3:
            with open(path, "w") as f:  # a plain file in the pool
                f.write("not a license\n")
        else:
            os.makedirs(os.path.join(path, "lic"))
            if kind == 1:
                open(os.path.join(path, "lic", "host_id"), "w").close()  # empty
            elif kind == 2:
                with open(os.path.join(path, "lic", "host_id"), "w") as f:
                    f.write(UNUSABLE_ID + "\n")
                os.symlink("/etc/passwd", os.path.join(path, "lic", "passwd"))
        self.unusable.append(name)
        self.counts["unusable license added"] += 1
        return name

    def duplicate(self, node, seconds):
        """Runs a second holder with `node`'s NODE_NAME (own pod name and host dir) for a while.
        `node` stays busy meanwhile, so its own holder keeps running and renewing."""
        label = f"{node.h.node}-dup{len(self.dups)}"
        h = Holder(label, self.pool, os.path.join(self.workdir, label, "etc-bitfusionio"),
                   node.h.url, self.workdir, heartbeat=HEARTBEAT, claim_ttl=CLAIM_TTL,
                   settle_ms=SETTLE_MS,
                   extra_env={"NODE_NAME": node.h.node, "POD_NAME": f"flexdirect-{label}"})
        entry = [label, h, "running"]
        with self.lock:
            self.dups.append(entry)
        try:
            h.start()
        except (RuntimeError, TimeoutError) as e:
            self.errors.append(f"{label} start-up: {e}")
            return
        self.counts["duplicated node name"] += 1
        self.log(f"duplicate of {node.h.node} started as {label} for {seconds:.1f}s")
        time.sleep(seconds)
        with self.lock:
            entry[2] = "terminating"
        rc = h.stop(signal.SIGTERM)
        with self.lock:
            entry[2] = "dead"
        if rc != 0:
            self.errors.append(f"{label}: exit code {rc} after SIGTERM")
        self.log(f"duplicate {label} stopped ({rc})")

    def kill9(self, node, restart_after):
        lic = None
        with self.lock:
            lic = installed_license(node.h.host_dir)
            os.kill(node.h.proc.pid, signal.SIGKILL)
            node.state = "dead"
            node.killed = True
            if lic:
                self.pending[lic] = [time.monotonic(), node.h.node, None, None]
        self.reap(node, "kill -9")
        self.counts["kill -9"] += 1
        if restart_after is None:
            node.permanent = True
            self.counts["kill -9, not restarted"] += 1
            self.log(f"kill -9 {node.h.node} (held {lic}); stays down")
            return
        self.log(f"kill -9 {node.h.node} (held {lic}); restart in {restart_after:.1f}s")
        time.sleep(restart_after)
        self.start_node(node)

    def term(self, node, restart_after):
        with self.lock:
            node.state = "terminating"  # still running until it has exited
            sent = time.monotonic()
            os.kill(node.h.proc.pid, signal.SIGTERM)
        rc = self.reap(node, "SIGTERM")
        took = time.monotonic() - sent
        with self.lock:
            node.state = "dead"
        self.term_exit.append(took)
        self.counts["SIGTERM"] += 1
        if rc != 0:
            self.errors.append(f"{node.h.node}: exit code {rc} after SIGTERM")
        self.log(f"SIGTERM {node.h.node}: exited {rc} in {took:.2f}s; restart in {restart_after:.1f}s")
        time.sleep(restart_after)
        self.start_node(node)

    def pause(self, node, seconds):
        with self.lock:
            node.state = "stopped"
            os.kill(node.h.proc.pid, signal.SIGSTOP)
        self.counts["SIGSTOP past TTL"] += 1
        self.log(f"SIGSTOP {node.h.node} for {seconds:.1f}s (TTL {CLAIM_TTL}s)")
        time.sleep(seconds)
        with self.lock:
            os.kill(node.h.proc.pid, signal.SIGCONT)
            node.state = "running"
            self.running_since[node.h.node] = time.monotonic()
        self.log(f"SIGCONT {node.h.node}")

    def restart_tokenmgr(self, sig, down_for):
        with self.lock:
            # Directives travel through tokenmgr: an admin mark's clock stops while it is down
            # and starts again when it is back up.
            self.tm_up_since = float("inf")
        rc = self.tm.stop(sig)
        expected = 0 if sig == signal.SIGTERM else -signal.SIGKILL
        if rc != expected:
            self.errors.append(f"tokenmgr exited {rc} on {sig.name}")
        self.counts[f"tokenmgr {sig.name} + restart"] += 1
        self.log(f"tokenmgr {sig.name} (exit {rc}); down for {down_for:.1f}s")
        time.sleep(down_for)
        try:
            self.tm.start()
        except (RuntimeError, TimeoutError) as e:
            self.errors.append(f"tokenmgr restart on port {self.tm.port} failed: {e}")
            raise
        with self.lock:
            self.tm_up_since = time.monotonic()

    def admin_call(self, path):
        """POSTs an admin action; True once tokenmgr acknowledged it (False: down, or refused)."""
        req = urllib.request.Request(self.tm.url(path), data=b"", method="POST")
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError) as e:
            self.counts["admin action refused (tokenmgr down)"] += 1
            self.log(f"admin {path}: {e}")
            return False

    def admin(self, node, seconds):
        """Cordons `node` or disables a random license for a while, then lifts it. Marks are
        recorded as in force from the acknowledgement on, lifted before the uncordon/enable is
        sent (from then on the agents may claim again)."""
        if self.counts["cordon"] <= self.counts["disable"]:  # both kinds, even in a short run
            kind, name, marks = "cordon", node.h.node, self.cordoned
            on, off = f"/api/nodes/{name}/cordon", f"/api/nodes/{name}/uncordon"
        else:
            name = f"license{self.rand('randint', 1, N_LICENSES)}"
            kind, marks = "disable", self.disabled
            on, off = f"/api/licenses/{name}/disable", f"/api/licenses/{name}/enable"
        with self.lock:
            if name in marks:
                return
        if not self.admin_call(on):
            return
        with self.lock:
            marks[name] = time.monotonic()
        self.counts[kind] += 1
        self.log(f"{kind} {name} for {seconds:.1f}s")
        time.sleep(seconds)
        self.lift(kind, name, off)

    def lift(self, kind, name, path):
        with self.lock:
            self.cordoned.pop(name, None) if kind == "cordon" else self.disabled.pop(name, None)
        deadline = time.monotonic() + 30
        while not self.admin_call(path):  # tokenmgr may be restarting
            if time.monotonic() > deadline:
                self.errors.append(f"could not lift {kind} of {name}")
                return
            time.sleep(0.5)
        self.log(f"un{kind if kind == 'cordon' else 'disable'} {name}")

    def run_disruption(self, node, fn, *args):
        try:
            fn(node, *args)
        except Exception as e:  # noqa: BLE001 - reported and failed on at the end
            self.errors.append(f"{fn.__name__} {node.h.node}: {e!r}")
        finally:
            with self.lock:
                node.busy = False

    def drive(self):
        """Picks and launches disruptions until the chaos phase ends; returns their threads."""
        threads = []
        deadline = self.t0_chaos + CHAOS_SECONDS
        tm_times = sorted(self.t0_chaos + self.rand("uniform", 0.1, 0.85) * CHAOS_SECONDS
                          for _ in range(TOKENMGR_RESTARTS))
        tm_sigs = [signal.SIGTERM, signal.SIGKILL] + [
            self.rand("choice", [signal.SIGTERM, signal.SIGKILL]) for _ in range(TOKENMGR_RESTARTS)]
        while not self.stop.wait(self.rand("uniform", 0.2, 1.2)):
            now = time.monotonic()
            if now >= deadline:
                break
            if tm_times and now >= tm_times[0]:
                tm_times.pop(0)
                self.restart_tokenmgr(tm_sigs.pop(0), self.rand("uniform", 0.2, 3.0))
                continue
            with self.lock:
                idle = [n for n in self.nodes if not n.busy and not n.permanent]
                busy = sum(1 for n in self.nodes if n.busy)
                if busy >= MAX_DISRUPTED or not idle:
                    continue
                node = self.rand("choice", idle)
                node.busy = True
            action = self.rand("choices", ["kill9", "term", "pause", "dup", "unusable", "admin"],
                               [4, 3, 3, 1, 1, 3])[0]
            if not self.dups:
                action = "dup"  # at least one duplicated node name, even in a short run
            permanent = sum(1 for n in self.nodes if n.permanent)
            if action == "kill9":
                # Sometimes back before the TTL (adoption), sometimes long after (takeover).
                if permanent < MAX_PERMANENT_DEATHS and self.rand("random") < 0.1:
                    node.permanent = True  # counted now, not when the thread gets to it
                    args = (self.kill9, None)
                else:
                    args = (self.kill9, self.rand("uniform", 0.5, 2 * CLAIM_TTL))
            elif action == "term":
                args = (self.term, self.rand("uniform", 0.2, 3.0))
            elif action == "dup":
                args = (self.duplicate, self.rand("uniform", 2, 2 * CLAIM_TTL))
            elif action == "admin":
                args = (self.admin, self.rand("uniform", 2 * HEARTBEAT, 3 * CLAIM_TTL))
            elif action == "unusable":
                self.add_unusable()
                with self.lock:
                    node.busy = False
                continue
            else:
                args = (self.pause, self.rand("uniform", CLAIM_TTL + 1, CLAIM_TTL + 3))
            t = threading.Thread(target=self.run_disruption, args=(node,) + args, daemon=True)
            t.start()
            threads.append(t)
            if self.tm.proc.poll() is not None:
                self.errors.append(f"tokenmgr died by itself: exit {self.tm.proc.returncode}")
                break
        return threads

    # ---- sampler ---------------------------------------------------------------------------

    def sample(self):
        with self.lock:
            now = time.monotonic()
            installed = {n.h.node: (installed_license(n.h.host_dir), n.state) for n in self.nodes}
            for label, h, state in self.dups:
                installed[label] = (installed_license(h.host_dir), state)
            self.samples += 1
            holders = collections.defaultdict(list)
            for name, (lic, state) in installed.items():
                if lic and state in ("running", "terminating"):
                    holders[lic].append(name)
            together = set()
            for lic, names in holders.items():
                names.sort()
                for i in range(len(names)):
                    for j in range(i + 1, len(names)):
                        together.add((lic, names[i], names[j]))
            self.check_marks(now, installed)
            for key in together:
                self.open.setdefault(key, now)
                self.max_overlap = max(self.max_overlap, now - self.open[key])
            for key in list(self.open):
                if key not in together:
                    self.close_overlap(key, now)
            # Re-licensing after kill -9: the license is installed on one running node (another
            # one, or the restarted victim) and stays there for two heartbeats or until that node
            # is itself disrupted. This rules out a restarted node's leftover files from before
            # it was killed (withdrawn at start-up when the claim is not its own any more). The
            # time counts to the first sample that showed it.
            for lic, entry in list(self.pending.items()):
                killed_at, victim, who, since = entry
                names = holders.get(lic, [])
                disrupted = who and installed[who][1] not in ("running", "terminating")
                if (who in names and now - since >= 2 * HEARTBEAT) or disrupted:
                    (self.reassigned if who != victim else self.readopted).append(
                        (since - killed_at, lic, victim, who, self.at(killed_at)))
                    del self.pending[lic]
                elif who not in names:
                    entry[2], entry[3] = (names[0], now) if names else (None, None)

    def check_marks(self, now, installed):
        """A cordoned node installs nothing, a disabled license is installed on no running node,
        one heartbeat + TOLERANCE after the mark, the node's (re)start and tokenmgr's restart."""
        ids = {f"HOSTID-{lic}": lic for lic in self.disabled}
        for name, (lic, state) in installed.items():
            if not lic or state != "running" or name not in self.running_since:
                continue  # duplicates are checked by the overlap rule
            since = max(self.tm_up_since, self.running_since[name])
            checks = []
            if name in self.cordoned:
                checks.append(("cordoned", name, self.cordoned[name]))
            if lic in ids:
                checks.append(("disabled", ids[lic], self.disabled[ids[lic]]))
            for kind, mark, at in checks:
                late = now - max(at, since)
                self.mark_late[(kind, mark, at)] = max(late, self.mark_late.get((kind, mark, at), 0))
                if late > MARK_BOUND and (kind, mark, at) not in self.admin_flagged:
                    self.admin_flagged.add((kind, mark, at))
                    self.violations.append(
                        f"{name} still has {lic} {late:.2f}s after {mark} was {kind} "
                        f"(at {self.at(at)}; bound {MARK_BOUND:.2f}s)")

    def close_overlap(self, key, now):
        start = self.open.pop(key)
        d = now - start
        self.max_overlap = max(self.max_overlap, d)
        lic, a, b = key
        self.overlaps.append((d, lic, a, b, self.at(start)))
        if d > OVERLAP_BOUND:
            self.violations.append(
                f"{lic} installed on running nodes {a} and {b} for {d:.2f}s "
                f"(from {self.at(start)}; bound {OVERLAP_BOUND:.2f}s)")

    def sampler(self, done):
        last = time.monotonic()
        while not done.wait(SAMPLE_INTERVAL):
            self.sample()
            now = time.monotonic()
            self.max_gap = max(self.max_gap, now - last)
            last = now
        now = time.monotonic()
        for key in list(self.open):
            self.close_overlap(key, now)

    # ---- end state -------------------------------------------------------------------------

    def end_state(self):
        """(ok, description) of the end condition."""
        live = [n for n in self.nodes if n.h.alive()]
        got = {n.h.node: n.h.installed() for n in live}
        licensed = {k: v for k, v in got.items() if v}
        want = min(len(live), N_LICENSES)
        distinct = len(set(licensed.values())) == len(licensed)
        desc = (f"{len(live)} live nodes, {len(licensed)} licensed (want {want}), "
                f"distinct={distinct}: {sorted(licensed.items())}")
        return len(licensed) == want and distinct, desc


def _summary(relicensed):
    if not relicensed:
        return "n=0"
    secs = sorted(r[0] for r in relicensed)
    slowest = max(relicensed)
    return (f"n={len(secs)} min {secs[0]:.2f}s median {statistics.median(secs):.2f}s max "
            f"{secs[-1]:.2f}s ({slowest[1]} of {slowest[2]} killed at {slowest[4]}, to {slowest[3]})")


def _node_name(i):
    return f"node{i:02d}"


def test_chaos(capsys):
    seed = int(os.environ.get("CHAOS_SEED", str(int.from_bytes(os.urandom(4), "big"))))
    workdir = tempfile.mkdtemp(prefix="holder-chaos-")
    with capsys.disabled():
        print(f"\nchaos: seed {seed} (replay with CHAOS_SEED={seed}), {N_HOLDERS} holders, "
              f"{N_LICENSES} licenses, {CHAOS_SECONDS:.0f}s, heartbeat {HEARTBEAT}s, claim TTL "
              f"{CLAIM_TTL}s, overlap bound {OVERLAP_BOUND:.2f}s, workdir {workdir}", flush=True)
    chaos = Chaos(workdir, seed)
    done = threading.Event()
    sampler = threading.Thread(target=chaos.sampler, args=(done,), daemon=True)
    passed = False
    report = ""
    try:
        chaos.tm.start()
        chaos.tm_up_since = time.monotonic()
        url = chaos.tm.url("/api/token")
        for i in range(1, N_HOLDERS + 1):
            name = _node_name(i)
            h = Holder(name, chaos.pool, os.path.join(workdir, name, "etc-bitfusionio"), url,
                       workdir, heartbeat=HEARTBEAT, claim_ttl=CLAIM_TTL, settle_ms=SETTLE_MS)
            chaos.nodes.append(Node(h))
        sampler.start()
        for node in chaos.nodes:
            chaos.start_node(node)
        assert not chaos.errors, chaos.errors
        wait_for(lambda: chaos.end_state()[0], timeout=30, interval=0.1,
                 what="every license installed before the chaos starts")
        chaos.log("all licenses installed; chaos starts")

        chaos.t0_chaos = time.monotonic()
        threads = chaos.drive()
        chaos.log("chaos over; waiting for the disruptions in flight (pauses end, restarts happen, "
                  "marks are lifted)")
        for t in threads:
            t.join(timeout=3 * CLAIM_TTL + 40)
        assert not any(t.is_alive() for t in threads), "a disruption thread hung"
        settle_from = time.monotonic()
        # Claim TTL + a few heartbeats, plus the tokenmgr lease (10 s) a holder killed -9 while
        # holding the mutex leaves behind; an ordinary end settles in about two heartbeats.
        settle_timeout = CLAIM_TTL + 10 + 4 * HEARTBEAT

        end_ok = False
        try:
            # Settled = the end condition holds for two heartbeats in a row.
            def settled():
                ok, _ = chaos.end_state()
                if not ok:
                    settled.since = None
                    return False
                settled.since = settled.since or time.monotonic()
                return time.monotonic() - settled.since >= 2 * HEARTBEAT
            settled.since = None
            wait_for(settled, timeout=settle_timeout, interval=0.1, what="settled end state")
            end_ok = True
        except TimeoutError:
            pass
        settle_took = time.monotonic() - settle_from
        _, end_desc = chaos.end_state()
        done.set()
        sampler.join()

        # Cross-checks of the end state: the pool's claims and /readyz agree with the host dirs.
        mismatches = []
        if end_ok:
            ids = {f"HOSTID-license{i}": f"license{i}" for i in range(1, N_LICENSES + 1)}
            for node in chaos.nodes:
                if not node.h.alive():
                    continue
                lic = node.h.installed()
                ready = node.h.ready()
                if lic:
                    claim = read_claim(chaos.pool, ids[lic]) or {}
                    if claim.get("node") != node.h.node:
                        mismatches.append(f"{node.h.node} has {lic} but the claim is {claim}")
                if bool(lic) != ready:
                    mismatches.append(f"{node.h.node}: installed {lic}, ready {ready}")
        # The history tokenmgr kept across its restarts: numbered without repeats, in order, and
        # holding every admin action acknowledged during the run.
        seqs, streamed, kinds, after = [], [], collections.Counter(), 0
        for _ in range(1000):
            with urllib.request.urlopen(chaos.tm.url(f"/api/events?after={after}&limit=1000"),
                                        timeout=10) as r:
                page = json.load(r)
            seqs += [e["seq"] for e in page["events"]]
            streamed += [(e["node"], e["origin"], e["origin_seq"]) for e in page["events"]
                         if "origin" in e]
            kinds.update(e["kind"] + ":" + e.get("detail", "") for e in page["events"])
            after = page["next"]
            if not page["more"]:
                break
        history_ok = seqs == sorted(set(seqs)) and len(seqs) > 0
        # Agents resend what tokenmgr may have stored (an answer lost to a restart or a kill):
        # each agent event is stored once all the same.
        stored_twice = [k for k, n in collections.Counter(streamed).items() if n > 1]
        admin_acked = chaos.counts["cordon"] + chaos.counts["disable"]
        admin_seen = kinds["admin:cordon"] + kinds["admin:disable"]
        crashed = [f"{n.h.node} exited {n.h.proc.returncode}" for n in chaos.nodes
                   if not n.h.alive() and not n.killed]
        claimed_unusable = [u for u in chaos.unusable
                            if os.path.exists(os.path.join(chaos.pool, u, "lockedby"))]
        installed_unusable = [n.h.node for n in chaos.nodes if n.h.installed() == UNUSABLE_ID]

        durations = sorted(d for d, *_ in chaos.overlaps)
        worst = sorted(chaos.overlaps, reverse=True)[:5]
        report = "\n".join([
            f"chaos report (seed {seed}):",
            "  disruptions: " + ", ".join(f"{k} {v}" for k, v in sorted(chaos.counts.items())),
            f"  samples {chaos.samples}, largest gap between samples {chaos.max_gap * 1000:.0f} ms",
            f"  overlaps on running nodes: {len(durations)}, max {chaos.max_overlap:.3f}s "
            f"(bound {OVERLAP_BOUND:.2f}s)"
            + (f", median {statistics.median(durations):.3f}s" if durations else ""),
            *(f"    {d:.3f}s {lic} on {a}+{b} from {t}" for d, lic, a, b, t in worst),
            "  re-license after kill -9: to another node " + _summary(chaos.reassigned)
            + "; kept by the restarted node " + _summary(chaos.readopted)
            + (f"; unresolved {sorted(chaos.pending)}" if chaos.pending else ""),
            "  SIGTERM to exit: " + (f"max {max(chaos.term_exit):.2f}s" if chaos.term_exit else "n/a"),
            f"  end state after {settle_took:.1f}s of settling: {end_desc}",
            f"  admin marks: {len(chaos.mark_late)} found in use after acknowledged, longest "
            f"{max(chaos.mark_late.values(), default=0):.2f}s (bound {MARK_BOUND:.2f}s)",
            f"  history: {len(seqs)} events ({len(streamed)} from agents, "
            f"{len(stored_twice)} stored twice), in order {history_ok}, admin actions recorded "
            f"{admin_seen} of {admin_acked} acknowledged; "
            + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())),
            *(f"  VIOLATION: {v}" for v in chaos.violations),
            *(f"  ERROR: {e}" for e in chaos.errors),
        ])
        with capsys.disabled():
            print(report, flush=True)
        chaos.log(report)

        assert not chaos.errors, chaos.errors
        assert not chaos.violations, chaos.violations
        assert not crashed, crashed
        assert not claimed_unusable, f"unusable licenses claimed: {claimed_unusable}"
        assert not installed_unusable, f"an unusable license installed on {installed_unusable}"
        assert end_ok, f"not settled within {settle_timeout}s: {end_desc}"
        assert not mismatches, mismatches
        assert history_ok, "event history out of order or empty"
        assert not stored_twice, f"agent events stored twice: {stored_twice[:5]}"
        assert admin_seen >= admin_acked, "an acknowledged admin action is missing from history"
        if chaos.term_exit:
            assert max(chaos.term_exit) < 3.0, "SIGTERM must stop a holder within ~2 s"
        passed = True
    finally:
        done.set()
        for node in chaos.nodes:
            node.h.kill()
        for _, h, _ in chaos.dups:
            h.kill()
        chaos.tm.kill()
        if sampler.is_alive():
            sampler.join(timeout=5)
        if passed and os.environ.get("CHAOS_KEEP") != "1":
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            with capsys.disabled():
                print(f"chaos: workdir kept: {workdir} (driver log chaos.log, holder logs node*.log, "
                      "tokenmgr/)", flush=True)
