"""End-to-end: the Node Feature Discovery label file (NFD_FEATURE_FILE) appears when a node is
licensed and goes in step with the license (issue 18 item 2), with real tokenmgr and
license-holder processes on 127.0.0.1, heartbeat 1 s, claim TTL 4 s. The invariant checked at
every poll: a node is never labelled while its license is not installed."""
import datetime
import os
import re
import signal
import subprocess
import time

from procs import Holder, binary, read_claim, request, wait_for
from test_holder_defects import read_only
from test_license_holder import cluster  # noqa: F401  (the fixture)

LABEL = "feature.node.kubernetes.io/bitfusion-license=true"


def labelled_holder(cluster, node, start=True):  # noqa: F811
    features = os.path.join(os.path.dirname(cluster.pool_dir), node, "features.d")
    os.makedirs(features, exist_ok=True)
    h = cluster.holder(node, start=False,
                       extra_env={"NFD_FEATURE_FILE": os.path.join(features, "bitfusion-license")})
    h.feature_file = h.extra_env["NFD_FEATURE_FILE"]
    return h.start() if start else h


def label(h):
    """The feature file's content, or None."""
    try:
        with open(h.feature_file) as f:
            return f.read()
    except FileNotFoundError:
        return None


def expiry(h):
    """The label's expiry as a UTC datetime, or None without a label."""
    text = label(h)
    if text is None:
        return None
    m = re.search(r"^# \+expiry-time=(\S+)$", text, re.M)
    assert m, text
    return datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc)


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def in_step(h, condition):
    """`condition`, after checking that `h` is not labelled without an installed license."""
    def check():
        text, installed = label(h), h.installed()
        if text is not None and installed is None:
            # Read again: the install may have finished between the two reads; a withdrawal
            # removes the label first, so a label seen after an absent license is a defect.
            assert label(h) is None or h.installed() is not None, f"{h.node} labelled, no license"
        return condition()
    return check


def test_label_appears_with_the_license_and_release_removes_it(cluster):  # noqa: F811
    cluster.pool(1)
    a = labelled_holder(cluster, "node-a")
    wait_for(in_step(a, lambda: label(a) is not None), timeout=20, what="node-a labelled")
    text = label(a)
    assert LABEL + "\n" in text
    assert all(line.startswith("#") or line == LABEL for line in text.splitlines()), text
    assert a.installed() == "HOSTID-license1"
    # Expires within a claim TTL (4 s; the file holds whole seconds), refreshed as it renews.
    assert now() - datetime.timedelta(seconds=1) < expiry(a) <= now() + datetime.timedelta(seconds=4)
    first = expiry(a)
    wait_for(in_step(a, lambda: expiry(a) is not None and expiry(a) > first), timeout=10,
             what="expiry refreshed")
    assert not os.path.exists(os.path.join(os.path.dirname(a.feature_file), ".bitfusion-license"))

    rc, out = a.release()
    assert rc == 0, out
    assert label(a) is None  # the release command removed it itself
    assert a.installed() is None
    # The running agent sees the release and stays unlabelled.
    wait_for(lambda: "license-holder release" in request(a.port, "GET", "/readyz")[2], timeout=10,
             what="agent released")
    assert a.alive() and label(a) is None


def test_killed_holders_label_expires_by_the_takeover_and_the_new_node_is_labelled(cluster):  # noqa: F811
    cluster.pool(1)
    a = labelled_holder(cluster, "node-a")
    wait_for(in_step(a, lambda: a.ready() and label(a) is not None), timeout=20, what="node-a")
    b = labelled_holder(cluster, "node-b")
    wait_for(lambda: "license_holder_waiting 1" in b.metrics(), timeout=10, what="node-b waits")
    assert label(b) is None
    a.stop(signal.SIGKILL)
    killed = now()
    # A dead process removes nothing: its file stays, but claims at most a claim TTL more.
    assert label(a) is not None
    assert expiry(a) <= killed + datetime.timedelta(seconds=4)
    wait_for(in_step(b, lambda: b.ready() and label(b) is not None), timeout=20,
             what="node-b takes over and is labelled")
    assert b.installed() == "HOSTID-license1"
    # By the time another node holds the license, the dead node's label has expired.
    assert expiry(a) <= now(), (expiry(a), now())


def test_label_goes_in_the_step_the_holder_self_fences(cluster):  # noqa: F811
    cluster.pool(1)
    a = labelled_holder(cluster, "node-a")
    wait_for(in_step(a, lambda: a.ready() and label(a) is not None), timeout=20, what="node-a")
    with read_only(os.path.join(cluster.pool_dir, "license1")):  # renewals fail from now on
        wait_for(in_step(a, lambda: a.installed() is None), timeout=10, what="self-fencing")
        assert label(a) is None
        assert "withdrawing license 'license1'" in a.logs()
        assert read_claim(cluster.pool_dir, "license1")["node"] == "node-a"  # never renewed
    wait_for(in_step(a, lambda: a.ready() and label(a) is not None), timeout=20,
             what="relabelled once the claim can be renewed again")


def test_bad_nfd_feature_file_is_a_start_up_error_naming_it(tmp_path):
    for bad in ("features.d/bitfusion-license", str(tmp_path / "missing" / "bitfusion-license"),
                str(tmp_path)):
        h = Holder("node-a", str(tmp_path / "pool"), str(tmp_path / "host"), "http://127.0.0.1:1",
                   str(tmp_path), extra_env={"NFD_FEATURE_FILE": bad})
        r = subprocess.run([binary("license-holder")], env=h.env(), capture_output=True,
                           text=True, timeout=10)
        assert r.returncode == 2, (bad, r.stderr)
        assert "NFD_FEATURE_FILE" in r.stderr, r.stderr
