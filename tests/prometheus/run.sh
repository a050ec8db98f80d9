#!/usr/bin/env bash
# Checks the shipped alerting rules: promtool's syntax check, the promtool unit tests of every
# alert (firing and not), the PrometheusRule agreeing with the plain rules file, and, to show the
# unit tests can fail, the same tests against a copy with one alert's expression broken.
# The real-Prometheus end-to-end test is tests/e2e/test_prometheus_alerts.py.
set -euo pipefail
cd "$(dirname "$0")/../.."
rules=examples/kubernetes/components/monitoring/alerts.rules.yaml
promtool check rules "$rules"
(cd tests/prometheus && promtool test rules alerts_test.yaml)
python3 tests/prometheus/sync_rule.py --check

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/examples/kubernetes/components/monitoring" "$work/tests/prometheus"
# A typo in a metric name: the rule still parses, but never fires.
sed 's/^\(\s*\)license_holder_waiting == 1$/\1license_holder_wating == 1/' "$rules" \
  > "$work/$rules"
cmp -s "$rules" "$work/$rules" && { echo "run.sh: could not break the rule" >&2; exit 1; }
cp tests/prometheus/alerts_test.yaml "$work/tests/prometheus/"
if (cd "$work/tests/prometheus" && promtool test rules alerts_test.yaml >"$work/out" 2>&1); then
  echo "run.sh: the unit tests passed on a broken rule: they cannot fail" >&2
  exit 1
fi
grep -q 'BitfusionNodeWaitingNoFreeLicense' "$work/out"
echo "a deliberately broken rule fails the unit tests, as it must"
echo "alert rules: all checks passed"
