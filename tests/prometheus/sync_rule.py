#!/usr/bin/env python3
"""Keeps prometheusrule.yaml (for the Prometheus operator) equal to alerts.rules.yaml (plain).

  sync_rule.py --check   exit 1 (and say what differs) when the two disagree
  sync_rule.py --write   rewrite prometheusrule.yaml from alerts.rules.yaml
"""
import os
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DIR = os.path.join(ROOT, "examples", "kubernetes", "components", "monitoring")
RULES = os.path.join(DIR, "alerts.rules.yaml")
CR = os.path.join(DIR, "prometheusrule.yaml")

HEADER = """\
# The alerting rules of alerts.rules.yaml as a PrometheusRule for the Prometheus operator.
# Generated: edit alerts.rules.yaml, then run tests/prometheus/sync_rule.py --write
# (tests/prometheus/run.sh fails when the two differ).
"""


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper, value):  # multi-line strings (expressions) as literal blocks, as written
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in ("--check", "--write"):
        print(__doc__, file=sys.stderr)
        return 2
    with open(RULES) as f:
        groups = yaml.safe_load(f)["groups"]
    cr = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "bitfusion-license-manager",
                     "labels": {"app.kubernetes.io/name": "bitfusion-license-manager"}},
        "spec": {"groups": groups},
    }
    if sys.argv[1] == "--write":
        with open(CR, "w") as f:
            f.write(HEADER)
            yaml.dump(cr, f, Dumper=_Dumper, sort_keys=False, width=100)
        return 0
    with open(CR) as f:
        have = yaml.safe_load(f)
    if have != cr:
        print(f"{CR} differs from {RULES}: run tests/prometheus/sync_rule.py --write",
              file=sys.stderr)
        return 1
    print("prometheusrule.yaml matches alerts.rules.yaml")
    return 0


if __name__ == "__main__":
    sys.exit(main())
