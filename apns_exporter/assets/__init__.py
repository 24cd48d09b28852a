"""What the exporter ships besides itself: alert rules, dashboards, an Alertmanager example.

A pip user has no repository clone, so everything is generated from this package with
the user's :class:`Params` (``apns-exporter assets --out DIR``); the repository's
``alerts/``, ``dashboards/`` and ``deploy/kubernetes/prometheusrule.yaml`` are the same
output with the defaults. Pure: imports only the APNs vocabulary, reads only its own
package data, writes nothing.
"""

from __future__ import annotations

from importlib import resources

from apns_exporter.assets.dashboards import dashboards
from apns_exporter.assets.grafana import render
from apns_exporter.assets.params import DEFAULT_RUNBOOK_URL, DEFAULT_SELECTOR, Params
from apns_exporter.assets.rules import (
    ALERTED_REASONS,
    groups,
    render_prometheus_rule,
    render_rules,
)

RULES_FILE = "apns-exporter.rules.yml"
PROMETHEUS_RULE_FILE = "prometheusrule.yaml"
ALERTMANAGER_FILE = "alertmanager.yml"


def runbook_title(layer: str) -> str:
    """The heading of docs/runbook.md's section for a target failing at ``layer``."""
    return f"Failing layer {layer}"


def runbook_section(layer: str, base: str) -> str:
    """The address of that section under ``base``, as GitHub-style renderers anchor it."""
    return f"{base}#{runbook_title(layer).lower().replace(' ', '-')}"


def alertmanager_example() -> str:
    """The shipped Alertmanager example (package data), unchanged."""
    return resources.files(__name__).joinpath(ALERTMANAGER_FILE).read_text(encoding="utf-8")


def alert_names() -> frozenset[str]:
    """Every alert the rules define (what ``--for`` may name)."""
    return frozenset(r["alert"] for g in groups(Params()) for r in g["rules"] if "alert" in r)


def render_all(params: Params | None = None) -> dict[str, str]:
    """Every shipped file, by its path relative to the output directory."""
    p = params or Params()
    files = {
        RULES_FILE: render_rules(p),
        PROMETHEUS_RULE_FILE: render_prometheus_rule(p),
        ALERTMANAGER_FILE: alertmanager_example(),
    }
    files |= {f"dashboards/{name}": render(board) for name, board in dashboards(p).items()}
    return files


__all__ = [
    "ALERTED_REASONS",
    "DEFAULT_RUNBOOK_URL",
    "DEFAULT_SELECTOR",
    "Params",
    "alert_names",
    "alertmanager_example",
    "render_all",
    "runbook_section",
    "runbook_title",
]
