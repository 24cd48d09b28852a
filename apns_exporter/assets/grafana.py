"""Grafana dashboard building blocks: panels, layout, variables, and query listing.

The panel kinds (stat, time series, heatmap, table, ...) are in :mod:`.panels`.

Conventions (grafana/dashboard-linter): a ``datasource`` variable used by every panel;
``job``, ``instance``, ``environment`` and ``target`` variables and matchers in every
query; ``$__rate_interval`` in every rate; a unit and a description on every panel;
stable ``uid``; ``editable: false``. :func:`panel_queries` lists every query and
:func:`expand_query` substitutes the variables, so a test can evaluate each query
against a live Prometheus. Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

TAG = "apns-exporter"

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Matchers for exporter-level and per-target series.
# Instance and target values hold regex metacharacters ("10.0.0.1:10054", "app.prod"):
# Grafana escapes a single value only when asked (:regex).
EXPORTER = 'job=~"$job", instance=~"${instance:regex}"'
TARGET = (
    'job=~"$job", instance=~"${instance:regex}", apns_environment=~"$environment", '
    'target=~"${target:regex}"'
)
# Whole days (Grafana's "d" unit shows 27 days as "3.9 week").
DAYS = "suffix: days"
# Labels a per-target series is identified by, for joins.
ON_TARGET = "on (job, instance, target, apns_environment)"

Panel = dict[str, Any]


def per_target(metric: str) -> str:
    """A per-target series selector."""
    return f"{metric}{{{TARGET}}}"


def or_zero(expr: str, reference: str, **labels: str) -> str:
    """``expr``, or a 0 carrying ``labels`` while ``expr`` has no series and ``reference`` has.

    For counters the exporter only creates on the first event (GOAWAY reasons): a target
    that has simply not had one yet shows 0, not "No data", which looks like a broken panel.
    """
    zero = f"0 * {reference}"
    for name, value in labels.items():
        zero = f'label_replace({zero}, "{name}", "{value}", "", "")'
    return f"{expr} or on () {zero}"


def rate(metric: str) -> str:
    """Per-second rate of a per-target counter over Grafana's rate interval."""
    return f"rate({per_target(metric)}[$__rate_interval])"


def per_hour(metric: str) -> str:
    """Events per hour of a per-target counter: the same at every zoom level."""
    return f"3600 * {rate(metric)}"


# --------------------------------------------------------------------------- builder


def query(expr: str, legend: str = "", ref: str = "A", **extra: Any) -> dict[str, Any]:
    """One Prometheus query of a panel."""
    return {
        "datasource": DATASOURCE,
        "expr": expr,
        "legendFormat": legend or "__auto",
        "range": True,
        "refId": ref,
        **extra,
    }


def _queries(*specs: tuple[str, str]) -> list[dict[str, Any]]:
    return [query(expr, legend, chr(ord("A") + i)) for i, (expr, legend) in enumerate(specs)]


def thresholds(*steps: tuple[float | None, str]) -> dict[str, Any]:
    """Absolute thresholds; the first step's value is None (the base colour)."""
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for v, c in steps]}


def value_map(**texts: tuple[str, str]) -> list[dict[str, Any]]:
    """Map numeric values ("0", "1") to (text, colour) pairs."""
    options = {
        value: {"color": color, "index": i, "text": text}
        for i, (value, (text, color)) in enumerate(texts.items())
    }
    return [{"type": "value", "options": options}]


UP_DOWN = value_map(**{"0": ("Down", "red"), "1": ("Up", "green")})
OK_FAILING = value_map(**{"0": ("Failing", "red"), "1": ("OK", "green")})
RED_GREEN = thresholds((None, "red"), (1, "green"))


def panel(
    kind: str,
    title: str,
    description: str,
    targets: list[dict[str, Any]],
    unit: str,
    width: int,
    height: int,
    *,
    defaults: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    overrides: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> Panel:
    """A panel of any type; position and id are assigned by :func:`layout`."""
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": targets,
        "fieldConfig": {
            "defaults": {"unit": unit, **(defaults or {})},
            "overrides": overrides or [],
        },
        "options": options or {},
        "gridPos": {"h": height, "w": width, "x": 0, "y": 0},
        **extra,
    }


def row(title: str, repeat: str | None = None) -> Panel:
    """A row header; a repeated row is copied for every value of ``repeat``."""
    out: Panel = {
        "type": "row",
        "title": title,
        "collapsed": False,
        "panels": [],
        "gridPos": {"h": 1, "w": 24, "x": 0, "y": 0},
    }
    if repeat:
        out["repeat"] = repeat
    return out


def layout(panels: list[Panel]) -> list[Panel]:
    """Assign ids and grid positions left to right, wrapping at 24 columns."""
    x = y = row_height = 0
    for number, p in enumerate(panels, start=1):
        p["id"] = number
        grid = p["gridPos"]
        if p["type"] == "row" or x + grid["w"] > 24:
            x, y, row_height = 0, y + row_height, 0
        grid["x"], grid["y"] = x, y
        x += grid["w"]
        row_height = max(row_height, grid["h"])
        if p["type"] == "row":
            x, y, row_height = 0, y + grid["h"], 0
    return panels


def variable(name: str, definition: str, *, multi: bool = True) -> dict[str, Any]:
    """A query variable fed by ``label_values``; refreshed when the time range changes."""
    out: dict[str, Any] = {
        "name": name,
        # grafana/dashboard-linter: a variable is labelled with its title-cased name.
        "label": name.title(),
        "type": "query",
        "datasource": DATASOURCE,
        "definition": definition,
        "query": {"query": definition, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "refresh": 2,
        "sort": 1,
        "regex": "",
        "hide": 0,
        "multi": multi,
        "includeAll": multi,
        "current": {},
        "options": [],
    }
    if multi:
        out["allValue"] = ".+"
    return out


def templating(multi_target: bool) -> dict[str, Any]:
    """The datasource, job, instance, environment and target variables, in dependency order."""
    return {
        "list": [
            {
                "name": "datasource",
                "label": "Data source",
                "type": "datasource",
                "query": "prometheus",
                "current": {},
                "hide": 0,
                "refresh": 1,
                "regex": "",
                "includeAll": False,
                "multi": False,
                "options": [],
            },
            variable("job", "label_values(apns_exporter_build_info, job)"),
            variable("instance", 'label_values(apns_exporter_build_info{job=~"$job"}, instance)'),
            variable(
                "environment",
                f"label_values(apns_target_info{{{EXPORTER}}}, apns_environment)",
            ),
            *owner_variables(),
            variable(
                "target",
                f'label_values(apns_target_info{{{EXPORTER}, apns_environment=~"$environment", '
                '$owner_label=~"$owner"}, target)',
                multi=multi_target,
            ),
        ]
    }


# The owner label the dashboards filter by until the user types another (targets' labels:).
OWNER_LABEL = "team"


def owner_variables() -> list[dict[str, Any]]:
    """A textbox naming an owner label (targets' ``labels:``) and a pick of its values.

    The owner labels are on apns_target_info only; the target variable is narrowed by them,
    and every panel by the target variable. "All" is ``.*``, so targets without the label stay.
    """
    owner = variable(
        "owner", f"label_values(apns_target_info{{{EXPORTER}}}, $owner_label)", multi=True
    )
    owner["allValue"] = ".*"
    textbox = {
        "name": "owner_label",
        "label": "Owner label",
        "type": "textbox",
        "query": OWNER_LABEL,
        "current": {"text": OWNER_LABEL, "value": OWNER_LABEL},
        "options": [{"selected": True, "text": OWNER_LABEL, "value": OWNER_LABEL}],
        "hide": 0,
    }
    return [textbox, owner]


def dashboard(
    uid: str,
    title: str,
    description: str,
    panels: list[Panel],
    *,
    multi_target: bool,
    runbook_url: str,
) -> dict[str, Any]:
    """A complete dashboard with the shared settings, links and variables."""
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": [TAG],
        "editable": False,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "utc",
        "refresh": "1m",
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "",
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "links": [
            {
                "type": "dashboards",
                "title": "APNs dashboards",
                "tags": [TAG],
                "asDropdown": True,
                "includeVars": True,
                "keepTime": True,
                "icon": "external link",
                "targetBlank": False,
                "tooltip": "",
                "url": "",
            },
            {
                "type": "link",
                "title": "Runbook",
                "url": runbook_url,
                "targetBlank": True,
                "icon": "doc",
                "tags": [],
                "asDropdown": False,
                "includeVars": False,
                "keepTime": False,
                "tooltip": "What each alert means and how to fix it",
            },
        ],
        "templating": templating(multi_target),
        "panels": layout(panels),
    }


def _panels(board: dict[str, Any]) -> Iterator[Panel]:
    for p in board["panels"]:
        yield p
        yield from p.get("panels", [])


def panel_queries(boards: Iterator[dict[str, Any]] | list[dict[str, Any]]) -> list[dict[str, str]]:
    """Every panel query of ``boards``: dashboard uid, panel title, refId and PromQL."""
    out = []
    for board in boards:
        for p in _panels(board):
            for t in p.get("targets", []):
                out.append(
                    {
                        "dashboard": board["uid"],
                        "panel": p["title"],
                        "ref_id": t["refId"],
                        "expr": t["expr"],
                    }
                )
    return out


def literal(value: str) -> str:
    r"""A value for :func:`expand_query` that matches exactly ``value``, as Grafana escapes it.

    Regex metacharacters get a backslash, and that backslash is doubled because the value
    lands inside a PromQL string, where ``\.`` alone is an invalid escape.
    """
    regex = re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\1", value)
    return regex.replace("\\", "\\\\").replace('"', '\\"')


def expand_query(
    expr: str,
    *,
    job: str = ".+",
    instance: str = ".+",
    environment: str = ".+",
    target: str = ".+",
    rate_interval: str = "1m",
) -> str:
    """Substitute the dashboard variables as Grafana would, for evaluation elsewhere.

    Values go into ``=~`` matchers, so they are regular expressions (Grafana's "All" is
    ``.+``); pass ``literal(name)`` for a literal value.
    """
    values = {
        "job": job,
        "instance": instance,
        "environment": environment,
        "target": target,
        "__rate_interval": rate_interval,
    }

    def sub(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        # ${name:regex} gets the value regex-escaped by Grafana; values here are regexes.
        if name not in values:
            raise KeyError(f"unknown dashboard variable ${name} in {expr!r}")
        return values[name]

    return re.sub(r"\$\{(\w+)(?::regex)?\}|\$(\w+)", sub, expr)


def render(board: dict[str, Any]) -> str:
    """The exact text written for a dashboard."""
    return json.dumps(board, indent=2, ensure_ascii=False) + "\n"
