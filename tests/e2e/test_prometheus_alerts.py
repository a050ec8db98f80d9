"""The shipped alerting rules in a real Prometheus server scraping a real tokenmgr and real
license-holders, all on 127.0.0.1.

The rules file is examples/kubernetes/components/monitoring/alerts.rules.yaml with every `for:`
shortened to a few seconds (the expressions are what is tested here; the durations are covered by
the promtool unit tests in tests/prometheus/). Prometheus scrapes every second.
"""
import json
import os
import re
import shutil
import subprocess
import tempfile
import urllib.request

import pytest

import procs
from procs import free_port

ROOT = procs.ROOT
RULES = os.path.join(ROOT, "examples", "kubernetes", "components", "monitoring", "alerts.rules.yaml")


class Prometheus(procs.Process):
    def __init__(self, workdir, scrape_configs, rules_text):
        super().__init__(os.path.join(workdir, "prometheus.log"))
        self.workdir = workdir
        self.port = free_port()
        self.rules = os.path.join(workdir, "alerts.rules.yaml")
        with open(self.rules, "w") as f:
            f.write(rules_text)
        self.config = os.path.join(workdir, "prometheus.yml")
        with open(self.config, "w") as f:
            json.dump({  # JSON is YAML
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s",
                           "scrape_timeout": "900ms"},
                "rule_files": [self.rules],
                "scrape_configs": scrape_configs,
            }, f)

    def start(self):
        binary = shutil.which("prometheus")
        if not binary:
            pytest.skip("prometheus not installed (Debian package prometheus)")
        self.spawn([binary, f"--config.file={self.config}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    f"--storage.tsdb.path={os.path.join(self.workdir, 'data')}"])
        procs.wait_for(self._ready, timeout=30, what="prometheus ready")
        return self

    def _ready(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"prometheus exited {self.proc.returncode}: {self.logs()}")
        try:
            return procs.request(self.port, "GET", "/-/ready", timeout=2)[0] == 200
        except OSError:
            return False

    def alerts(self, name, state="firing"):
        """Active alerts named `name` in `state`, as label dicts."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/v1/alerts", timeout=5) as r:
            data = json.load(r)
        return [a["labels"] for a in data["data"]["alerts"]
                if a["labels"].get("alertname") == name and a["state"] == state]

    def stop(self):
        return super().stop(timeout=15)


def short_rules():
    with open(RULES) as f:
        text = f.read()
    text, n = re.subn(r"(?m)^(\s*)for: \S+$", r"\1for: 2s", text)
    assert n >= 5, "the rules file has fewer `for:` clauses than expected"
    return text


def set_immutable(path, on):
    subprocess.run(["chattr", "+i" if on else "-i", path], check=True, capture_output=True)


def test_alerts_fire_and_resolve_in_a_real_prometheus():
    work = tempfile.mkdtemp(prefix="prom-e2e-")
    pool = os.path.join(work, "pool")
    procs.make_pool(pool, 1)
    ttl = 6  # fence after 6 - 2 x 1 = 4 s; a healthy claim is at most ~1 s old
    tm = procs.Tokenmgr(workdir=os.path.join(work, "tm"),
                        env={"POOL_DIR": pool, "CLAIM_TTL_SECONDS": str(ttl)})
    os.makedirs(tm.workdir)
    holders = [procs.Holder(n, pool, os.path.join(work, n, "etc"), None, work, heartbeat=1,
                            claim_ttl=ttl) for n in ("node-a", "node-b")]
    prom = None
    immutable = None
    try:
        tm.start()
        for h in holders:
            h.url = tm.url("/api/token")
            h.start()
        holder = procs.wait_for(lambda: next((h for h in holders if h.ready()), None), timeout=20,
                                what="one node licensed")
        waiter = next(h for h in holders if h is not holder)
        prom = Prometheus(work, [
            {"job_name": "tokenmgr", "static_configs": [{"targets": [f"127.0.0.1:{tm.port}"]}]},
            {"job_name": "flexdirect", "static_configs": [
                {"targets": [f"127.0.0.1:{h.port}"],
                 "labels": {"node": h.node, "pod": f"flexdirect-{h.node}"}} for h in holders]},
        ], short_rules()).start()

        # 1. The pool is exhausted and node b waits: the alert names it, and only it.
        firing = procs.wait_for(lambda: prom.alerts("BitfusionNodeWaitingNoFreeLicense"),
                                timeout=60, what="nodes-waiting alert firing")
        assert [a["node"] for a in firing] == [waiter.node]
        assert not prom.alerts("BitfusionTokenmgrNotReady")

        # 2. A second license arrives: node b takes it, and the alert resolves.
        procs.make_pool(pool, 2)
        procs.wait_for(waiter.ready, timeout=20, what=f"{waiter.node} licensed")
        procs.wait_for(lambda: not prom.alerts("BitfusionNodeWaitingNoFreeLicense", "firing")
                       and not prom.alerts("BitfusionNodeWaitingNoFreeLicense", "pending"),
                       timeout=30, what="nodes-waiting alert resolved")

        # 3. Node a loses write access to its license in the pool (immutable, as a read-only or
        # broken mount would be): its renewals fail, and the alerts say which node.
        lic = next(n for n in sorted(os.listdir(pool))
                   if (procs.read_claim(pool, n) or {}).get("node") == holder.node)
        immutable = os.path.join(pool, lic)
        set_immutable(immutable, True)
        firing = procs.wait_for(lambda: prom.alerts("BitfusionLicenseRenewalsFailing"),
                                timeout=60, what="renewal-failure alert firing")
        assert [a["node"] for a in firing] == [holder.node]
        fencing = procs.wait_for(lambda: prom.alerts("BitfusionLicenseAboutToSelfFence", "firing")
                                 or prom.alerts("BitfusionLicenseAboutToSelfFence", "pending"),
                                 timeout=30, what="about-to-self-fence alert")
        assert [a["node"] for a in fencing] == [holder.node]
    finally:
        if immutable:
            set_immutable(immutable, False)
        if prom:
            prom.stop()
        for h in holders:
            h.stop()
        tm.stop()
        shutil.rmtree(work, ignore_errors=True)
