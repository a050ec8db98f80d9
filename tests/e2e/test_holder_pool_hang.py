"""A pool that hangs, with the real binaries: the pool lives on a small ext4 image on a loop
device, and `fsfreeze -f` makes every write to it block (uninterruptibly) until `fsfreeze -u`,
while reads of cached data still work. That is what an NFS hard mount does while its server is
unreachable: system calls on the pool do not fail, they never return. The holder must still
withdraw its license within the self-fence bound (a claim not confirmed for claim TTL - 2
heartbeats = 2 s with heartbeat 1 s and claim TTL 4 s), keep it withdrawn while the pool hangs,
and be licensed again by itself once the pool answers.

Needs root (mount, fsfreeze); skipped with the reason otherwise. While the pool is frozen this
test process never writes below the mount (it would hang too): it only reads the holder's host
dir, which is outside the mount. Teardown thaws first, then kills the holders by PID, then
unmounts and removes the image, also when the test failed."""
import os
import subprocess
import time

import pytest

from procs import Holder, Tokenmgr, installed_license, make_pool, request, wait_for

HEARTBEAT = 1
CLAIM_TTL = 4
FENCE_AFTER = CLAIM_TTL - 2 * HEARTBEAT  # agent.h FenceAfter()
WITHDRAW_BOUND = FENCE_AFTER + 2  # s from the freeze: the fence bound, a heartbeat, slack


class FreezablePool:
    """An ext4 image loop-mounted at `mnt`; freeze() blocks every write below it until thaw()."""

    def __init__(self, tmp_path):
        self.image = str(tmp_path / "pool.img")
        self.mnt = str(tmp_path / "poolfs")
        self.mounted = False
        self.frozen = False

    def mount(self):
        if os.geteuid() != 0:
            pytest.skip("a loop mount and fsfreeze need root (CAP_SYS_ADMIN)")
        os.makedirs(self.mnt, exist_ok=True)
        for cmd in (["truncate", "-s", "32M", self.image], ["mkfs.ext4", "-q", self.image]):
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                pytest.skip(f"{' '.join(cmd)} failed: {r.stderr.strip()}")
        r = subprocess.run(["mount", "-o", "loop", self.image, self.mnt], capture_output=True,
                           text=True, timeout=60)
        if r.returncode != 0:
            pytest.skip(f"mount -o loop not permitted here: {r.stderr.strip()}")
        self.mounted = True
        return self.mnt

    def freeze(self):
        subprocess.run(["fsfreeze", "-f", self.mnt], check=True, capture_output=True, timeout=60)
        self.frozen = True

    def thaw(self):
        subprocess.run(["fsfreeze", "-u", self.mnt], check=True, capture_output=True, timeout=60)
        self.frozen = False

    def cleanup(self):
        """Thaw (if frozen) and unmount; called after the holders were stopped."""
        if self.frozen:
            self.thaw()
        if self.mounted:
            r = subprocess.run(["umount", self.mnt], capture_output=True, timeout=60)
            if r.returncode != 0:  # still busy: detach it, the loop device goes with it
                subprocess.run(["umount", "-l", self.mnt], capture_output=True, timeout=60)
            self.mounted = False
        if os.path.exists(self.image):
            os.unlink(self.image)


@pytest.fixture
def hang_env(tmp_path):
    """(tokenmgr, freezable pool, holders list). Teardown: thaw, kill holders, unmount."""
    fs = FreezablePool(tmp_path)
    tm = Tokenmgr(workdir=str(tmp_path / "tm"), state_file=False)
    os.makedirs(tm.workdir)
    holders = []
    try:
        tm.start()
        yield tm, fs, holders
    finally:
        try:
            if fs.frozen:
                fs.thaw()  # first: a process blocked on the frozen fs cannot even be killed
        finally:
            for h in holders:
                h.kill()
            tm.kill()
            fs.cleanup()


def start_holder(tm, pool, tmp_path, holders, node):
    h = Holder(node, pool, str(tmp_path / f"host-{node}"), tm.url("/api/token"), str(tmp_path),
               heartbeat=HEARTBEAT, claim_ttl=CLAIM_TTL)
    holders.append(h)
    h.start()
    return h


def licensed_on_freezable_pool(hang_env, tmp_path):
    """Mounts the freezable pool with one license; returns (fs, holder "node-a" licensed)."""
    tm, fs, holders = hang_env
    pool = os.path.join(fs.mount(), "pool")
    make_pool(pool, 1)
    h = start_holder(tm, pool, tmp_path, holders, "node-a")
    wait_for(lambda: installed_license(h.host_dir) == "HOSTID-license1", timeout=15,
             what="node-a licensed")
    return fs, h


def wait_withdrawn(h, frozen_at):
    """Seconds from frozen_at until h's host dir has no license; fails after WITHDRAW_BOUND s
    (plus polling slack), naming the time waited."""
    while installed_license(h.host_dir) is not None:
        waited = time.monotonic() - frozen_at
        assert waited <= WITHDRAW_BOUND, (
            f"{h.node} still has {installed_license(h.host_dir)!r} installed {waited:.1f} s after "
            f"its pool froze (writes block); the self-fence bound is {FENCE_AFTER} s "
            f"(claim TTL {CLAIM_TTL} s - 2 x heartbeat {HEARTBEAT} s), allowed {WITHDRAW_BOUND} s"
            f"; its last log lines:\n" + "\n".join(h.logs().splitlines()[-3:]))
        time.sleep(0.02)
    return time.monotonic() - frozen_at


def assert_stays_withdrawn(holders, frozen_at, seconds=3.0):
    """No holder has a license installed at any sample for `seconds` s."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        for h in holders:
            lic = installed_license(h.host_dir)
            assert lic is None, (f"{h.node} has {lic!r} installed again "
                                 f"{time.monotonic() - frozen_at:.1f} s after its pool froze")
        time.sleep(0.05)


def test_holder_whose_pool_hangs_withdraws_its_license_within_the_fence_bound(hang_env, tmp_path):
    fs, h = licensed_on_freezable_pool(hang_env, tmp_path)

    fs.freeze()
    frozen_at = time.monotonic()
    took = wait_withdrawn(h, frozen_at)
    assert h.alive(), f"license-holder exited while its pool hung: {h.logs()[-2000:]}"
    assert_stays_withdrawn([h], frozen_at)

    fs.thaw()
    thawed_at = time.monotonic()
    wait_for(lambda: installed_license(h.host_dir) == "HOSTID-license1" and h.ready(),
             timeout=20, what=f"node-a licensed again after the thaw (withdrawn {took:.2f} s "
                              f"after the freeze)")
    print(f"withdrawn {took:.2f} s after the freeze, licensed again "
          f"{time.monotonic() - thawed_at:.2f} s after the thaw")


def test_two_holders_one_license_pool_hangs_no_one_holds_it_and_one_gets_it_back(hang_env,
                                                                                  tmp_path):
    """One license, two nodes on the same (hanging) pool: A holds it, B waits. While frozen, A
    withdraws within the bound and B cannot take it over (its claim write blocks too), so no one
    has it. After the thaw both blocked writes land (A's late renewal, perhaps B's takeover):
    never both installed at once, and exactly one node ends up licensed."""
    fs, a = licensed_on_freezable_pool(hang_env, tmp_path)
    tm, _, holders = hang_env
    pool = a.pool_dir
    b = start_holder(tm, pool, tmp_path, holders, "node-b")

    def b_waiting():  # B has looked at the pool and found nothing free
        status, _, body = request(b.port, "GET", "/readyz", timeout=5)
        return status == 503 and "no license available" in body

    wait_for(b_waiting, timeout=10, what="node-b waiting for a license")

    fs.freeze()
    frozen_at = time.monotonic()
    took = wait_withdrawn(a, frozen_at)
    # Past the claim TTL, B may judge A's claim stale, but it cannot write its own.
    assert_stays_withdrawn([a, b], frozen_at, seconds=CLAIM_TTL + 2 * HEARTBEAT)

    fs.thaw()
    thawed_at = time.monotonic()

    def one_licensed():
        got = [h for h in (a, b) if installed_license(h.host_dir) is not None]
        assert len(got) <= 1, (f"both nodes have the license installed "
                               f"{time.monotonic() - thawed_at:.2f} s after the thaw")
        return got

    wait_for(one_licensed, timeout=20, what=f"one node licensed again after the thaw (A withdrew "
                                            f"{took:.2f} s after the freeze)")
    # A late write from the freeze may still move the license (the higher token wins), but
    # never to both nodes at once; after a few heartbeats one node has it.
    until = time.monotonic() + 3 * HEARTBEAT
    while time.monotonic() < until:
        one_licensed()
        time.sleep(0.05)
    wait_for(one_licensed, timeout=10, what="one node licensed")
