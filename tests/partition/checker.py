"""The checker over a partition test's history (events written by clients.py; times are
CLOCK_MONOTONIC seconds). Pure functions: no I/O, so test_partitions.py also feeds it made-up
histories to show that it catches what it claims to catch.

Safety (must hold in every run):
- Holds never overlap. A client holds a grant from its answer until its release is
  acknowledged, or, when the release fails (or never happened), until the lease's end counted
  from when it asked (ask + TTL: the lease lives at least the TTL from the answer). One
  exception, counted apart as `ack_races` and not a violation: B's answer arriving between A's
  release being sent and its acknowledgement (the server released A and granted B, and the two
  answers crossed on the wire). An overlap that began before A sent its release is a violation.
  A release that got no answer or a 5xx has an unknown outcome: it may have applied (the etcd
  txn committed, the answer was lost to the cut). B's answer after such a release was sent is
  counted apart as `unknown_release_overlaps`; etcd's own history (below) judges those.
- etcd's history of the lock range (check_etcd_history): at no revision does the range hold two
  keys, and every token a client was granted is the create revision of a key in that range.
- Fencing tokens only grow: if A's answer came before B asked, A's token < B's token; no token
  is granted twice.
- Every acknowledged release was real: a renew of a released id, sent after the release's
  acknowledgement, never succeeds (`ghost` events with status 200).

Availability (per phase): grants through each replica, its grant rate, the longest gap with no
grant (also from the phase's start and to its end), the time from a heal to each replica's first
grant, readiness (share of /readyz polls answered 200) and failed lock calls by status.
"""
import heapq
import json
import os
from dataclasses import dataclass, field


def read_history(path):
    """The clients' history (history.jsonl): one event per line; none when the file is missing."""
    events = []
    if not os.path.exists(path):
        return events
    with open(path) as f:
        for line in f:
            try:
                events.append(json.loads(line))
            except ValueError:
                pass  # a line cut short when the clients were killed
    return events


@dataclass
class Phase:
    name: str
    start: float
    end: float
    majority: tuple = ()  # replicas that can reach an etcd majority throughout the phase
    heal: bool = False    # the phase starts with a heal: recovery is measured
    leader: str = "?"     # the etcd leader just before the phase's cut (or heal)


@dataclass
class Hold:
    id: str
    token: int
    client: str
    replica: str
    ask: float
    start: float          # the grant's answer
    end: float            # see the module comment
    sent: float = None    # release sent (acknowledged or unknown-outcome releases)
    unknown: bool = False  # the release got no answer or a 5xx


@dataclass
class Safety:
    grants: int = 0
    overlaps: list = field(default_factory=list)      # (hold A, hold B)
    ack_races: int = 0
    unknown_release_overlaps: int = 0
    etcd_violations: list = field(default_factory=list)    # readable lines
    token_regressions: list = field(default_factory=list)  # (earlier hold, later hold)
    duplicate_tokens: list = field(default_factory=list)
    ghost_releases: list = field(default_factory=list)     # ghost events answered 200
    failed_releases: int = 0

    def ok(self):
        return not (self.overlaps or self.token_regressions or self.duplicate_tokens
                    or self.ghost_releases or self.etcd_violations)

    def summary(self):
        return (f"{self.grants} grants, {len(self.overlaps)} overlapping holds "
                f"({self.ack_races} release/answer races, {self.unknown_release_overlaps} after a "
                f"release of unknown outcome), {len(self.etcd_violations)} violations in etcd's "
                f"history, {len(self.token_regressions)} token "
                f"regressions, {len(self.duplicate_tokens)} duplicate tokens, "
                f"{len(self.ghost_releases)} acknowledged releases that were not real, "
                f"{self.failed_releases} failed releases")


def holds(events, ttl):
    releases = {e["id"]: e for e in events if e["k"] == "release"}
    out = []
    for e in events:
        if e["k"] != "lock" or e["s"] != 200:
            continue
        rel = releases.get(e["id"])
        if rel and rel["s"] == 200:
            out.append(Hold(e["id"], e["token"], e["c"], e["r"], e["ask"], e["ans"], rel["ack"],
                            rel["sent"]))
        else:
            unknown = bool(rel) and (rel["s"] == 0 or rel["s"] >= 500)
            out.append(Hold(e["id"], e["token"], e["c"], e["r"], e["ask"], e["ans"],
                            max(e["ask"] + ttl, e["ans"]), rel["sent"] if unknown else None,
                            unknown))
    return out


def check_safety(events, ttl):
    r = Safety()
    hs = sorted(holds(events, ttl), key=lambda h: h.start)
    r.grants = len(hs)
    r.failed_releases = sum(1 for e in events if e["k"] == "release" and e["s"] != 200)
    active = []  # holds that may still be running at the current start
    for h in hs:
        active = [a for a in active if a.end > h.start]
        for a in active:
            if a.sent is not None and h.start >= a.sent and a.unknown:
                r.unknown_release_overlaps += 1
            elif a.sent is not None and h.start >= a.sent:
                r.ack_races += 1
            else:
                r.overlaps.append((a, h))
        active.append(h)
    seen = {}
    for h in hs:
        if h.token in seen:
            r.duplicate_tokens.append((seen[h.token], h))
        seen[h.token] = h
    answered = []  # heap of (answer time, token, hold) of grants answered before the next ask
    max_before = None
    for h in sorted(hs, key=lambda h: h.ask):
        while answered and answered[0][0] < h.ask:
            _, _, a = heapq.heappop(answered)
            if max_before is None or a.token > max_before.token:
                max_before = a
        if max_before is not None and h.token <= max_before.token:
            r.token_regressions.append((max_before, h))
        heapq.heappush(answered, (h.start, h.token, h))
    r.ghost_releases = [e for e in events if e["k"] == "ghost" and e["s"] == 200]
    return r


def check_etcd_history(dump, events):
    """Readable violations in etcd's history of the lock range (clients.py --etcd-lock-history):
    two keys alive at one revision, or a client's token that is not the token epoch plus a
    key's create revision."""
    out = []
    if not dump["complete"]:
        return ["etcd's history of the lock range could not be read to the end"]
    live, created = {}, set()
    by_rev = {}
    for e in dump["events"]:
        by_rev.setdefault(e["rev"], []).append(e)
    for rev in sorted(by_rev):
        for e in by_rev[rev]:
            if e["type"] == "DELETE":
                live.pop(e["key"], None)
            else:
                live[e["key"]] = e["create"]
                created.add(e["create"])
        if len(live) > 1:
            out.append(f"revision {rev}: {len(live)} keys in the lock range: {sorted(live)}")
    for e in events:
        if e["k"] == "lock" and e["s"] == 200 and e["token"] - dump.get("epoch", 0) not in created:
            out.append(f"token {e['token']} granted to {e['c']} is no grant key in etcd")
    return out


@dataclass
class PhaseStats:
    phase: Phase
    grants: dict          # replica -> grants answered in the phase
    rate: dict            # replica -> grants per second
    longest_gap: dict     # replica -> seconds without a grant (phase edges count)
    recovery: dict        # replica -> seconds from the phase start to its first grant (heals)
    ready: dict           # replica -> share of /readyz polls answered 200
    failures: dict        # replica -> {status: count} of lock calls not granted


def phase_stats(events, phases, replicas):
    out = []
    for ph in phases:
        st = PhaseStats(ph, {}, {}, {}, {}, {}, {})
        for r in replicas:
            times = sorted(e["ans"] for e in events if e["k"] == "lock" and e["r"] == r
                           and e["s"] == 200 and ph.start <= e["ans"] < ph.end)
            st.grants[r] = len(times)
            st.rate[r] = len(times) / (ph.end - ph.start)
            edges = [ph.start] + times + [ph.end]
            st.longest_gap[r] = max(b - a for a, b in zip(edges, edges[1:]))
            if ph.heal:
                st.recovery[r] = times[0] - ph.start if times else None
            polls = [e["s"] for e in events if e["k"] == "ready" and e["r"] == r
                     and ph.start <= e["t"] < ph.end]
            st.ready[r] = sum(1 for s in polls if s == 200) / len(polls) if polls else None
            fails = {}
            for e in events:
                if (e["k"] == "lock" and e["r"] == r and e["s"] != 200
                        and ph.start <= e["ans"] < ph.end):
                    fails[e["s"]] = fails.get(e["s"], 0) + 1
            st.failures[r] = fails
        out.append(st)
    return out


def availability_misses(stats, normal="normal", min_share=1 / 3, max_recovery=5.0):
    """The issue's availability targets that a run missed, as readable lines: a replica that can
    reach a majority keeps >= min_share of its rate in the `normal` phase; after a heal every
    replica grants again within max_recovery seconds."""
    base = next(s for s in stats if s.phase.name == normal)
    misses = []
    for s in stats:
        for r in s.phase.majority:
            if s.rate[r] < min_share * base.rate[r]:
                misses.append(f"{s.phase.name}: {r} granted {s.rate[r]:.1f}/s, under "
                              f"{min_share:.2f} x its normal {base.rate[r]:.1f}/s "
                              f"(longest gap {s.longest_gap[r]:.1f} s)")
        for r, rec in s.recovery.items():
            if rec is None or rec > max_recovery:
                misses.append(f"{s.phase.name}: {r} first granted "
                              f"{'never' if rec is None else f'after {rec:.1f} s'} "
                              f"(target {max_recovery:g} s)")
    return misses


def table(stats):
    """The per-phase numbers as a fixed-width text table."""
    reps = sorted(stats[0].grants) if stats else []
    head = f"{'phase':<18}{'s':>5} ldr" + "".join(
        f" | {r}: {'grants':>6} {'/s':>6} {'gap':>5} {'rec':>5} {'ready':>5} fails" for r in reps)
    lines = [head]
    for s in stats:
        row = f"{s.phase.name:<18}{s.phase.end - s.phase.start:>5.1f} {s.phase.leader:>3}"
        for r in reps:
            rec = s.recovery.get(r)
            rec_text = "-" if r not in s.recovery else ("never" if rec is None else f"{rec:.1f}")
            ready = "-" if s.ready[r] is None else f"{s.ready[r]:.2f}"
            mark = "*" if r in s.phase.majority else " "
            fails = ",".join(f"{k}:{v}" for k, v in sorted(s.failures[r].items())) or "0"
            row += (f" |{mark}{r}: {s.grants[r]:>6} {s.rate[r]:>6.1f} {s.longest_gap[r]:>5.1f} "
                    f"{rec_text:>5} {ready:>5} {fails}")
        lines.append(row)
    lines.append("(ldr = etcd leader when the phase began; * = can reach an etcd majority in "
                 "that phase; gap/rec in seconds; fails = lock calls not granted by HTTP status, "
                 "0 = no answer)")
    return "\n".join(lines)
