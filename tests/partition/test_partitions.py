"""HA under network partitions (issue 19): three etcd members, two tokenmgr replicas (STORE=etcd),
eight lock clients and two license-holders, each in a network namespace of its own (netlab.py),
through phases of cuts and heals made with iptables. The checker (checker.py) reads the clients'
history: safety and the availability targets of the issue are asserted in every run.

Run as root: LM_BUILD_DIR=build/debug python3 -m pytest -q -rxs tests/partition
PARTITION_PHASE_SECONDS (default 8) sets each phase's length; PARTITION_REPORT=<file> appends
the per-phase table to that file.
"""
import base64
import json
import os
import re
import subprocess
import sys
import time

import pytest

import checker
import netlab

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "e2e"))
import procs  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PHASE_S = float(os.environ.get("PARTITION_PHASE_SECONDS", "8"))
TTL = 2           # lock TTL the clients ask for (s)
PORT = 8080       # tokenmgr's port inside its namespace
ETCD = ("e1", "e2", "e3")
# Each replica lists its own member first: t1 talks to e1, t2 to e2, until they fail over.
ENDPOINT_ORDER = {"t1": ("e1", "e2", "e3"), "t2": ("e2", "e3", "e1")}
HOLDER_CUT = ("split", "heal-1", "isolate-t2-member")  # phases in which h1 cannot reach tokenmgr
POOL_CUT = ("heal-2", "oneway-member>t1")  # phases in which h2 cannot reach the pool
# h2's self-fence bound: its claim unconfirmed for CLAIM_TTL - 2 x heartbeat = 2 s, checked every
# heartbeat (1 s); the rest is the 0.25 s sampling and a loaded box.
POOL_CUT_WITHDRAW_S = 4.0


def plan(lab):
    """[(name, apply(lab), majority, heal, flap)]: `apply` runs after every node's rules were
    flushed at the phase's start; a flapping phase re-applies and heals it every second."""
    split = lambda: lab.cut(["t1", "e1"], ["e2", "e3", "t2"])  # noqa: E731
    flap = lambda: lab.cut(["t2", "e3"], ["e1", "e2", "t1"])  # noqa: E731
    return [
        ("normal", None, ("t1", "t2"), False, False),
        ("split", split, ("t2",), False, False),            # t1+e1 | e2 e3 t2 (clients: both)
        ("heal-1", None, ("t1", "t2"), True, False),
        ("isolate-t2-member", lambda: lab.isolate(member_of(lab, "t2")), ("t1", "t2"), False,
         False),
        ("heal-2", None, ("t1", "t2"), True, False),
        ("oneway-member>t1", lambda: lab.cut_oneway(member_of(lab, "t1"), "t1"), ("t1", "t2"),
         False, False),  # t1's requests reach its member; the answers never come back
        ("heal-3", None, ("t1", "t2"), True, False),
        ("flap-t2+e3", flap, ("t1",), False, True),         # cut 1 s, healed 1 s, ...
        ("heal-4", None, ("t1", "t2"), True, False),
    ]


def member_of(lab, replica):
    """The etcd member `replica` talks to now: the last one its log names ("... via <url>")."""
    with open(lab.log_of[replica], errors="replace") as f:
        urls = re.findall(r" via http://([0-9.]+):2379", f.read())
    by_addr = {lab.nodes[m]: m for m in ETCD}
    return by_addr[urls[-1]] if urls else ENDPOINT_ORDER[replica][0]


def etcd_leader(lab):
    """The member the others name as leader, asked from the clients' namespace; "?" if none."""
    ids, leaders = {}, set()
    for m in ETCD:
        s, body = lab.http("c", "POST", f"http://{lab.nodes[m]}:2379/v3/maintenance/status", "{}",
                           timeout=1)
        if s == 200:
            j = json.loads(body)
            ids[j["header"]["member_id"]] = m
            leaders.add(j.get("leader"))
    names = {ids.get(lid, "?") for lid in leaders}
    return names.pop() if len(names) == 1 else "?"


def b64(s):
    return base64.b64encode(s.encode()).decode()


def etcd_cmd(lab, name, workdir):
    addr = lab.nodes[name]
    initial = ",".join(f"{m}=http://{lab.nodes[m]}:2380" for m in ETCD)
    return [netlab_etcd(), "--name", name, "--data-dir", os.path.join(workdir, f"{name}.data"),
            "--listen-client-urls", f"http://{addr}:2379",
            "--advertise-client-urls", f"http://{addr}:2379",
            "--listen-peer-urls", f"http://{addr}:2380",
            "--initial-advertise-peer-urls", f"http://{addr}:2380",
            "--initial-cluster", initial, "--initial-cluster-state", "new",
            "--initial-cluster-token", "tokenmgr-partition",
            "--heartbeat-interval", "50", "--election-timeout", "500",
            # Pre-vote (etcd's default from 3.5; off by default in Debian's 3.4): without it a
            # member that was cut off comes back with a higher term and forces an election on
            # the majority at every heal, so a flapping minority member leaves the majority
            # without a leader for most of each cycle (docs/operations.md).
            "--pre-vote",
            "--log-level", os.environ.get("PARTITION_ETCD_LOG_LEVEL", "warn")]


def netlab_etcd():
    for path in ("/usr/bin/etcd", "/usr/local/bin/etcd"):
        if os.path.exists(path):
            return path
    pytest.skip("etcd not installed (Debian package etcd-server)")


def base_env():
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "ETCD_UNSUPPORTED_ARCH": os.environ.get("ETCD_UNSUPPORTED_ARCH", "")}


def start_cluster(lab, wd):
    for m in ETCD:
        lab.spawn(m, etcd_cmd(lab, m, wd), os.path.join(wd, f"{m}.log"), env=base_env())
    probe = json.dumps({"key": b64("health")})
    procs.wait_for(lambda: all(lab.http("c", "POST", f"http://{lab.nodes[m]}:2379/v3/kv/range",
                                        probe)[0] == 200 for m in ETCD),
                   timeout=60, interval=0.2, what="etcd members answering linearizable reads")
    tms = {}
    for t, order in ENDPOINT_ORDER.items():
        env = base_env()
        # ETCD_COMPACT=off: the checker reads etcd's whole history of the lock range after the
        # run (a watch from revision 1), which tokenmgr's own compaction would remove.
        env.update({"STORE": "etcd", "ETCD_PREFIX": "/tokenmgr/", "ETCD_COMPACT": "off",
                    "ETCD_ENDPOINTS": ",".join(f"http://{lab.nodes[m]}:2379" for m in order)})
        tdir = os.path.join(wd, t)
        os.makedirs(tdir, exist_ok=True)
        lab.spawn(t, [procs.binary("tokenmgr"), "--bind-address", lab.nodes[t], "--listen-port",
                      str(PORT), "--port-file", os.path.join(tdir, "port")],
                  os.path.join(wd, f"{t}.log"), env=env)
        tms[t] = f"http://{lab.nodes[t]}:{PORT}"
    for t, url in tms.items():
        procs.wait_for(lambda: lab.http("c", "GET", url + "/readyz")[0] == 200, timeout=30,
                       interval=0.2, what=f"{t} /readyz 200")
    return tms


class PoolMount:
    """h2's view of the pool: a bind mount in h2's own mount namespace (`ip netns exec` gives
    every process it starts one), as a node mounts the pool's volume. cut() takes it away from
    h2 alone: unmounted there and its mount point removed, every access fails (ENOENT), as on
    a node that lost its NFS server; h1 and the rest still see the pool. heal() mounts it
    again. Nothing is mounted on the host: the mounts end with h2's namespace."""

    def __init__(self, lab, pool, path):
        self.lab, self.pool, self.path, self.pid = lab, pool, path, None

    def command(self, cmd):
        """`cmd` (h2's) preceded by the bind mount, in the mount namespace it will run in."""
        return ["sh", "-c", 'mount --bind "$1" "$2" && shift 2 && exec "$@"', "sh", self.pool,
                self.path] + list(cmd)

    def _in_h2(self, *cmd):
        r = subprocess.run(["nsenter", "-t", str(self.pid), "-m"] + list(cmd),
                           capture_output=True, text=True, timeout=10)
        assert r.returncode == 0, f"{cmd} in h2's mount namespace: {r.stderr}"

    def cut(self):
        self._in_h2("umount", "-l", self.path)
        os.rmdir(self.path)

    def heal(self):
        os.makedirs(self.path, exist_ok=True)
        self._in_h2("mount", "--bind", self.pool, self.path)


def start_holders(lab, wd, tms):
    pool = os.path.join(wd, "pool")
    procs.make_pool(pool, 3)
    holders = {}
    h2_pool = PoolMount(lab, pool, os.path.join(wd, "h2", "pool"))
    os.makedirs(h2_pool.path)
    for h, t in (("h1", "t1"), ("h2", "t2")):
        host_dir = os.path.join(wd, h, "etc-bitfusionio")
        os.makedirs(host_dir, exist_ok=True)
        env = base_env()
        env.update({
            "NODE_NAME": h, "POD_NAME": f"flexdirect-{h}", "HOST_DIR": host_dir,
            "POOL_DIR": h2_pool.path if h == "h2" else pool,
            "TOKENMGR_URL": tms[t] + "/api/token", "HEARTBEAT_SECONDS": "1",
            "CLAIM_TTL_SECONDS": "4", "SETTLE_MS": "200", "HEALTH_PORT": "0",
            "HEALTH_BIND": "127.0.0.1", "GPUTYPES": "K80_servers",
            "K80_servers_1": f"{netlab.SUBNET}.250:56001"})
        port_file = os.path.join(wd, f"{h}.port")
        cmd = [procs.binary("license-holder"), "--port-file", port_file]
        p = lab.spawn(h, h2_pool.command(cmd) if h == "h2" else cmd,
                      os.path.join(wd, f"{h}.log"), env=env)
        if h == "h2":
            h2_pool.pid = p.pid  # `ip netns exec` and sh exec: the holder's own pid
        holders[h] = host_dir
    procs.wait_for(lambda: all(procs.installed_license(d) for d in holders.values()),
                   timeout=60, interval=0.2, what="both holders installed a license")
    return pool, holders, h2_pool


def holder_ready(lab, wd, h):
    with open(os.path.join(wd, f"{h}.port")) as f:
        port = f.read().strip()
    return lab.http(h, "GET", f"http://127.0.0.1:{port}/readyz")[0] == 200


def own_claim(pool, h):
    """(license name, claim record) of the claim naming node `h`, or (None, None)."""
    for name in sorted(os.listdir(pool)):
        c = procs.read_claim(pool, name)
        if isinstance(c, dict) and c.get("node") == h:
            return name, c
    return None, None


class Run:
    pass


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    why = netlab.unavailable_reason()
    if why:
        pytest.skip(why)
    netlab_etcd()
    wd = str(tmp_path_factory.mktemp("partition"))
    lab = netlab.Lab(wd)
    try:
        yield scenario(lab, wd)
    finally:
        lab.close()


def scenario(lab, wd):
    for n in ETCD + ("t1", "t2", "c", "h1", "h2"):
        lab.add_node(n)
    tms = start_cluster(lab, wd)
    pool, holders, h2_pool = start_holders(lab, wd, tms)
    history, stop_file = os.path.join(wd, "history.jsonl"), os.path.join(wd, "STOP")
    phases_plan = plan(lab)
    budget = PHASE_S * (len(phases_plan) + 5) + 60
    clients = lab.spawn("c", [sys.executable, os.path.join(HERE, "clients.py"),
                              "--out", history, "--stop-file", stop_file, "--ttl", str(TTL),
                              "--max-seconds", str(budget)]
                        + [a for t, u in tms.items() for a in ("--replica", f"{t}={u}")],
                        os.path.join(wd, "clients.log"), env=base_env())
    procs.wait_for(lambda: {e["r"] for e in checker.read_history(history)
                            if e["k"] == "lock" and e["s"] == 200} == set(tms),
                   timeout=30, interval=0.2, what="a grant through each replica")
    r = Run()
    r.phases, r.holder_samples, r.wd, r.phase_walls = [], [], wd, []
    r.h2_samples = []  # (phase, time, license installed on h2)
    r.pool_cut_at = r.pool_healed_at = None
    nemesis = []  # (phase, action, began, done): CLOCK_MONOTONIC, as in the history

    def act(name, action, fn):
        t0 = time.monotonic()
        fn()
        nemesis.append((name, action, t0, time.monotonic()))
    for name, apply, majority, heal, flap in phases_plan:
        leader = etcd_leader(lab)
        start = time.monotonic()
        r.phase_walls.append(f"{name} {time.strftime('%H:%M:%S', time.gmtime())}."
                             f"{int(time.time() * 10) % 10}")
        act(name, "heal", lab.heal)
        if apply:
            act(name, "cut", apply)
        if name in HOLDER_CUT:
            lab.cut(["h1"], ["t1", "t2"])
        if name == POOL_CUT[0]:
            act(name, "pool cut from h2", h2_pool.cut)
            r.pool_cut_at = time.monotonic()
        if r.phases and r.phases[-1].name == POOL_CUT[-1]:
            act(name, "pool back for h2", h2_pool.heal)
            r.pool_healed_at = time.monotonic()
        # A flapping phase runs twice as long (8 cut/heal cycles at the default 8 s): its rate
        # depends on how many cuts catch the cut replica's client holding the lock (it stays
        # held until the heal), so 4 cycles left a third of the runs near the target by chance.
        length = PHASE_S * (2 if flap else 1)
        end, next_flip, cut = start + length, start + 1.0, True
        for _ in range(int(length * 4) + 4):  # bounded: one step per 0.25 s
            now = time.monotonic()
            if now >= end:
                break
            r.holder_samples.append((name, now, own_claim(pool, "h1"),
                                     procs.installed_license(holders["h1"])))
            r.h2_samples.append((name, now, procs.installed_license(holders["h2"])))
            if flap and now >= next_flip:
                act(name, "heal" if cut else "cut", lab.heal if cut else apply)
                cut, next_flip = not cut, next_flip + 1.0
            time.sleep(min(0.25, end - now))  # the phase's length, not synchronisation
        r.phases.append(checker.Phase(name, start, time.monotonic(), majority, heal, leader))
    with open(os.path.join(wd, "nemesis.json"), "w") as f:
        json.dump({"phases": [(p.name, p.start, p.end) for p in r.phases], "actions": nemesis}, f)
    r.h1_ready_at_end = holder_ready(lab, wd, "h1")
    with open(stop_file, "w"):
        pass
    clients.wait(timeout=30)
    r.events = checker.read_history(history)
    r.stats = checker.phase_stats(r.events, r.phases, sorted(tms))
    r.safety = checker.check_safety(r.events, TTL)
    dump = lab.run("c", [sys.executable, os.path.join(HERE, "clients.py"), "--etcd-lock-history",
                         f"http://{lab.nodes['e1']}:2379", "/tokenmgr/"], timeout=60)
    try:
        r.safety.etcd_violations = checker.check_etcd_history(json.loads(dump.stdout), r.events)
    except ValueError:
        r.safety.etcd_violations = [f"etcd's history unreadable: {dump.stdout[:200]} "
                                    f"{dump.stderr[-500:]}"]
    report = checker.table(r.stats) + "\n" + r.safety.summary() + "\n"
    report += "phases began (UTC, as in the replicas' logs): " + ", ".join(r.phase_walls) + "\n"
    misses = checker.availability_misses(r.stats)
    report += "availability targets missed:\n  " + "\n  ".join(misses or ["none"]) + "\n"
    r.misses, r.report = misses, report
    print("\n" + report)
    with open(os.path.join(wd, "report.txt"), "w") as f:
        f.write(report)
    if os.environ.get("PARTITION_REPORT"):
        with open(os.environ["PARTITION_REPORT"], "a") as f:
            f.write(time.strftime("%Y-%m-%d %H:%M:%S UTC\n", time.gmtime()) + report + "\n")
    return r


def test_checker_catches_overlaps_regressions_and_ghost_releases():
    """The checker is not vacuous: a made-up history with one of each violation."""
    ev = [
        {"k": "lock", "c": "a", "r": "t1", "ask": 0.0, "ans": 0.1, "s": 200, "id": "A", "token": 5},
        {"k": "release", "c": "a", "r": "t1", "id": "A", "token": 5, "sent": 1.0, "ack": 1.1,
         "s": 200},
        {"k": "ghost", "c": "a", "r": "t1", "id": "A", "t": 1.2, "s": 200},
        # B answered while A still held (before A sent its release), with a lower token.
        {"k": "lock", "c": "b", "r": "t2", "ask": 0.2, "ans": 0.5, "s": 200, "id": "B", "token": 4},
        {"k": "release", "c": "b", "r": "t2", "id": "B", "token": 4, "sent": 0.6, "ack": 0.7,
         "s": 200},
        # C asked after A's answer and got a lower token; its release was refused (404: the
        # lease is gone?): held to ask + TTL, which D's grant does not respect.
        {"k": "lock", "c": "c", "r": "t2", "ask": 2.0, "ans": 2.1, "s": 200, "id": "C", "token": 3},
        {"k": "release", "c": "c", "r": "t2", "id": "C", "token": 3, "sent": 2.2, "ack": 2.3,
         "s": 404},
        {"k": "lock", "c": "d", "r": "t1", "ask": 2.5, "ans": 3.0, "s": 200, "id": "D", "token": 9},
    ]
    r = checker.check_safety(ev, ttl=2)
    assert not r.ok()
    assert {(a.id, b.id) for a, b in r.overlaps} == {("A", "B"), ("C", "D")}
    assert ("A", "C") in {(a.id, b.id) for a, b in r.token_regressions}
    assert len(r.ghost_releases) == 1 and r.failed_releases == 1
    # A release without an answer may have applied: a grant after it was sent is not judged
    # by the clients' view but by etcd's history.
    unknown = [ev[0], dict(ev[1], s=0), dict(ev[3], ans=1.05, ask=0.9, token=6)]
    r = checker.check_safety(unknown, ttl=2)
    assert r.ok() and r.unknown_release_overlaps == 1
    history = {"complete": True, "events": [
        {"type": "PUT", "key": "/p/lock/A", "rev": 5, "create": 5},
        {"type": "PUT", "key": "/p/lock/B", "rev": 6, "create": 6},
        {"type": "DELETE", "key": "/p/lock/A", "rev": 7, "create": 0}]}
    assert checker.check_etcd_history(history, unknown) == [
        "revision 6: 2 keys in the lock range: ['/p/lock/A', '/p/lock/B']"]
    assert checker.check_etcd_history(dict(history, complete=False), [])
    # Tokens are the epoch plus a create revision: 1000 + 6 is key B's; a bare 6 is no grant.
    grant = {"k": "lock", "s": 200, "c": "x"}
    epoch_history = dict(history, epoch=1000, events=history["events"][1:2])
    assert checker.check_etcd_history(epoch_history, [dict(grant, token=1006)]) == []
    assert checker.check_etcd_history(epoch_history, [dict(grant, token=6)]) == [
        "token 6 granted to x is no grant key in etcd"]
    # An answer that crossed the previous holder's release acknowledgement is not an overlap.
    race = [ev[0], dict(ev[1], ack=1.5),
            {"k": "lock", "c": "b", "r": "t2", "ask": 0.2, "ans": 1.2, "s": 200, "id": "E",
             "token": 6}]
    r = checker.check_safety(race, ttl=2)
    assert r.ok() and r.ack_races == 1
    # Phase numbers: a replica with no grant after a heal has no recovery time and misses.
    ph = [checker.Phase("normal", 0, 2, ("t1", "t2")), checker.Phase("heal-1", 2, 4, ("t1", "t2"),
                                                                       heal=True)]
    stats = checker.phase_stats(ev, ph, ["t1", "t2"])
    assert stats[1].recovery == pytest.approx({"t1": 1.0, "t2": 0.1})
    assert stats[0].grants == {"t1": 1, "t2": 1}
    misses = checker.availability_misses(stats, max_recovery=0.5)
    assert misses == ["heal-1: t1 first granted after 1.0 s (target 0.5 s)"]


def test_safety_no_overlapping_holds_no_token_regressions_every_release_real(run):
    s = run.safety
    assert s.grants > 100, s.summary()
    detail = [f"overlap: {a} / {b}" for a, b in s.overlaps[:5]]
    detail += [f"token regression: {a} then {b}" for a, b in s.token_regressions[:5]]
    detail += [f"duplicate token: {a} / {b}" for a, b in s.duplicate_tokens[:5]]
    detail += [f"release not real: {e}" for e in s.ghost_releases[:5]]
    detail += s.etcd_violations[:5]
    ids = {h.id for pair in s.overlaps[:5] + s.token_regressions[:5] for h in pair}
    detail += [f"event: {e}" for e in run.events if e.get("id") in ids]
    assert s.ok(), s.summary() + "\n" + "\n".join(detail) + "\n" + run.report


def test_holder_cut_off_from_tokenmgr_keeps_and_renews_its_license(run):
    """h1 cannot reach either replica for three phases: it keeps the license it had, keeps
    renewing its claim through the (shared) pool, and stays ready."""
    cut = [(t, claim, lic) for ph, t, claim, lic in run.holder_samples if ph in HOLDER_CUT]
    assert len(cut) > 10
    names = {claim[0] for _, claim, _ in cut}
    installed = {lic for _, _, lic in cut}
    assert len(names) == 1 and None not in names, f"h1's claim moved or vanished: {names}"
    assert len(installed) == 1 and None not in installed, f"h1's license changed: {installed}"
    renewals = [claim[1]["renewals"] for _, claim, _ in cut]
    span = cut[-1][0] - cut[0][0]
    # One renewal per 1 s heartbeat; allow for a slow pool and the sampling edges.
    assert renewals[-1] - renewals[0] >= span / 2, (renewals[0], renewals[-1], span)
    assert run.h1_ready_at_end


def test_holder_cut_off_from_the_pool_withdraws_and_comes_back(run):
    """h2 loses the pool (its mount, not the network) for two phases: within its self-fence
    bound it takes its license off its host (at once: the license is gone from where it looks)
    and installs none while the pool is gone; once the pool is back it is licensed again. h1
    and h2 never have one license installed at once. (A pool that hangs instead of failing:
    tests/e2e/test_holder_pool_hang.py.)"""
    assert run.pool_cut_at and run.pool_healed_at
    before = [lic for _, t, lic in run.h2_samples if t < run.pool_cut_at]
    assert before and before[-1], "h2 had no license when its pool was cut"
    cut = [(t, lic) for _, t, lic in run.h2_samples if run.pool_cut_at <= t < run.pool_healed_at]
    gone = [t for t, lic in cut if lic is None]
    assert gone, f"h2 kept its license through {run.pool_healed_at - run.pool_cut_at:.1f} s " \
        "without its pool"
    withdrew = gone[0] - run.pool_cut_at
    assert withdrew <= POOL_CUT_WITHDRAW_S, f"h2 withdrew {withdrew:.1f} s after losing the pool"
    assert all(lic is None for t, lic in cut if t >= gone[0]), \
        "h2 installed a license while its pool was gone"
    back = [t for _, t, lic in run.h2_samples if t >= run.pool_healed_at and lic]
    assert back, "h2 was not licensed again after its pool came back"
    print(f"h2 withdrew {withdrew:.1f} s after losing the pool, licensed again "
          f"{back[0] - run.pool_healed_at:.1f} s after it came back")
    for (_, t, _, lic1), (_, _, lic2) in zip(run.holder_samples, run.h2_samples):
        assert not (lic1 and lic1 == lic2), f"h1 and h2 both had {lic1} installed at {t}"


def test_both_replicas_serve_again_after_the_last_heal(run):
    """What holds in every run so far (the guard against a replica that never comes back):
    after the last heal both replicas grant within 5 s and at >= 1/3 of their normal rate."""
    normal, last = run.stats[0], run.stats[-1]
    assert last.phase.heal
    for r in ("t1", "t2"):
        assert last.recovery[r] is not None and last.recovery[r] <= 5.0, run.report
        assert last.rate[r] >= normal.rate[r] / 3, run.report


def test_availability_targets(run):
    """The issue's targets, in every phase: a replica that can reach a majority keeps >= 1/3 of
    its normal grant rate; after a heal every replica grants again within 5 s. (The flapping
    cut met them once other replicas' waiters stalled at the head of the queue were removed
    after 300 ms instead of 1 s: docs/operations.md, "Network partitions".) Safety is asserted
    above regardless."""
    assert not run.misses, ("availability targets missed:\n" + "\n".join(run.misses) + "\n"
                            + run.report)
