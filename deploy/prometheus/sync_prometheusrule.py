"""Generate the PrometheusRule of deploy/kubernetes/monitoring.yaml from the Prometheus rule file.

``deploy/prometheus/rules/dotmac-platform.rules.yml`` is the source of truth: promtool checks and
unit-tests it. This script embeds its groups, text and comments unchanged, as the ``spec`` of the
PrometheusRule that ends monitoring.yaml, below the marker line. Everything above the marker is
written by hand and kept.

    python deploy/prometheus/sync_prometheusrule.py          # rewrite monitoring.yaml
    python deploy/prometheus/sync_prometheusrule.py --check  # exit 1 if it is out of date

Standard library only, so it runs from any Python.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

DEPLOY_DIR = Path(__file__).resolve().parent.parent
RULES_FILE = DEPLOY_DIR / "prometheus" / "rules" / "dotmac-platform.rules.yml"
MONITORING_FILE = DEPLOY_DIR / "kubernetes" / "monitoring.yaml"
MARKER = "# --- deploy/prometheus/sync_prometheusrule.py: edit the rules file, not below this line. ---"

# The annotation that carries the one base of every runbook_url; an overlay rewrites the links from it
# (docs/DEPLOYMENT.md, "Your overlay").
RUNBOOK_BASE_ANNOTATION = "dotmac-platform/runbook-base-url"
PROMETHEUS_RULE_HEADER = """\
---
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: dotmac-platform
  namespace: dotmac-production
  labels:
    app.kubernetes.io/name: dotmac-platform
    prometheus: dotmac
  annotations:
    {annotation}: {base}
spec:
"""
_RUNBOOK_URL = re.compile(r"^\s*runbook_url:\s*'?([^'#\s]+)#[\w-]+'?\s*$", re.M)


def runbook_base_url(rules_text: str) -> str:
    """The base every runbook_url of the rule file shares (the part before "#")."""
    bases = set(_RUNBOOK_URL.findall(rules_text))
    if len(bases) != 1:
        raise SystemExit(f"{RULES_FILE}: every runbook_url is one base + '#anchor'; found {sorted(bases)}")
    return bases.pop()


def rules_body(rules_text: str) -> str:
    """The rule file without its leading comment block (the header that describes the file)."""
    lines = rules_text.splitlines()
    while lines and (lines[0].startswith("#") or not lines[0].strip()):
        lines.pop(0)
    return "\n".join(lines) + "\n"


def indent(text: str, spaces: int) -> str:
    """Indent every non-empty line (empty lines stay empty: no trailing whitespace)."""
    pad = " " * spaces
    return "".join(pad + line if line.strip() else line for line in text.splitlines(keepends=True))


def render(monitoring_text: str, rules_text: str) -> str:
    """monitoring.yaml with the part below the marker regenerated from the rules text."""
    head, found, _ = monitoring_text.partition(MARKER)
    if not found:
        raise SystemExit(f"{MONITORING_FILE}: marker line not found:\n{MARKER}")
    base = runbook_base_url(rules_text)
    header = PROMETHEUS_RULE_HEADER.format(annotation=RUNBOOK_BASE_ANNOTATION, base=base)
    return head + MARKER + "\n" + header + indent(rules_body(rules_text), 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if monitoring.yaml is out of date")
    args = parser.parse_args(argv)
    current = MONITORING_FILE.read_text()
    wanted = render(current, RULES_FILE.read_text())
    if args.check:
        if current != wanted:
            print(
                f"{MONITORING_FILE} is out of date with {RULES_FILE}: run python {Path(__file__).as_posix()}",
                file=sys.stderr,
            )
            return 1
        return 0
    if current != wanted:
        MONITORING_FILE.write_text(wanted)
        print(f"updated {MONITORING_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
