"""Generate the Grafana dashboards of apns-exporter.

The JSON files next to this script are generated; edit this file instead and run::

    python dashboards/generate.py           # rewrite dashboards/*.json
    python dashboards/generate.py --check   # exit 1 if a committed file is out of date

Two dashboards:

- ``apns-exporter-overview.json``: one row per target (the row repeats over the
  ``target`` variable) with canary state, days until the client certificate expires,
  provider token (JWT) age against Apple's 20/60-minute bands, connection state,
  canary p99 latency, and the share of canaries delivered to the device with the median
  delivery latency; plus a row on the exporter itself.
- ``apns-exporter-target.json``: one target in detail: canary state timeline, latency
  heatmap, responses by reason, delivery to the device (latency heatmap and quantiles,
  deliveries and losses), PING round trip, reconnects and GOAWAYs, stream limit,
  credentials, the server certificate chain and reachability.

Conventions (grafana/dashboard-linter): a ``datasource`` variable used by every panel;
``job``, ``instance`` and ``target`` variables and matchers in every query;
``$__rate_interval`` in every rate/increase; a unit and a description on every panel;
stable ``uid``; ``editable: false``.

:func:`panel_queries` lists every query with its dashboard and panel, and
:func:`expand_query` substitutes the template variables, so a test can evaluate each
query against a live Prometheus. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

OVERVIEW_UID = "apns-exporter-overview"
TARGET_UID = "apns-exporter-target"
TAG = "apns-exporter"
REPO = "https://github.com/apns-exporter/apns-exporter"
RUNBOOK = f"{REPO}/blob/main/docs/runbook.md"

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Matchers for exporter-level and per-target series.
EXPORTER = 'job=~"$job", instance=~"$instance"'
TARGET = 'job=~"$job", instance=~"$instance", target=~"$target"'

Panel = dict[str, Any]


def per_target(metric: str) -> str:
    """A per-target series selector."""
    return f"{metric}{{{TARGET}}}"


def increase(metric: str) -> str:
    """Increase of a per-target counter over Grafana's rate interval."""
    return f"increase({per_target(metric)}[$__rate_interval])"


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


def stat(
    title: str,
    description: str,
    expr: str,
    unit: str,
    width: int,
    *,
    legend: str = "",
    height: int = 4,
    steps: dict[str, Any] | None = None,
    mappings: list[dict[str, Any]] | None = None,
    no_value: str | None = None,
    decimals: int | None = None,
) -> Panel:
    """A single-value panel showing the latest value, coloured by thresholds."""
    defaults: dict[str, Any] = {"color": {"mode": "thresholds"}, "mappings": mappings or []}
    if steps is not None:
        defaults["thresholds"] = steps
    if no_value is not None:
        defaults["noValue"] = no_value
    if decimals is not None:
        defaults["decimals"] = decimals
    return panel(
        "stat",
        title,
        description,
        [query(expr, legend, instant=True, range=False)],
        unit,
        width,
        height,
        defaults=defaults,
        options={
            "colorMode": "background",
            "graphMode": "none",
            "justifyMode": "center",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "textMode": "value",
        },
    )


def timeseries(
    title: str,
    description: str,
    targets: list[dict[str, Any]],
    unit: str,
    width: int,
    *,
    height: int = 8,
    steps: dict[str, Any] | None = None,
    threshold_style: str = "off",
    draw: str = "line",
) -> Panel:
    """A time series graph; ``draw="bars"`` for event counts per interval."""
    custom = {
        "drawStyle": draw,
        "fillOpacity": 80 if draw == "bars" else 10,
        "lineWidth": 1,
        "showPoints": "never",
        "spanNulls": False,
        "thresholdsStyle": {"mode": threshold_style},
    }
    defaults: dict[str, Any] = {"custom": custom}
    if steps is not None:
        defaults["thresholds"] = steps
    return panel(
        "timeseries",
        title,
        description,
        targets,
        unit,
        width,
        height,
        defaults=defaults,
        options={
            "legend": {"displayMode": "table", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    )


def state_timeline(
    title: str,
    description: str,
    expr: str,
    legend: str,
    mappings: list[dict[str, Any]],
    width: int = 24,
    height: int = 5,
) -> Panel:
    """A state timeline of a 0/1 gauge, one lane per series."""
    return panel(
        "state-timeline",
        title,
        description,
        [query(expr, legend)],
        "bool",
        width,
        height,
        defaults={
            "color": {"mode": "thresholds"},
            "mappings": mappings,
            "thresholds": RED_GREEN,
        },
        options={
            "alignValue": "left",
            "mergeValues": True,
            "rowHeight": 0.9,
            "showValue": "auto",
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": False},
        },
    )


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
        "label": name,
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
    """The datasource, job, instance and target variables, in dependency order."""
    return {
        "list": [
            {
                "name": "datasource",
                "label": "Data Source",
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
                "target",
                f"label_values(apns_target_info{{{EXPORTER}}}, target)",
                multi=multi_target,
            ),
        ]
    }


def dashboard(
    uid: str, title: str, description: str, panels: list[Panel], multi_target: bool
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
                "url": RUNBOOK,
                "targetBlank": True,
                "icon": "doc",
                "tags": [],
                "asDropdown": False,
                "includeVars": False,
                "keepTime": False,
                "tooltip": "What each alert means and how to fix it",
            },
            {
                "type": "link",
                "title": "README",
                "url": REPO,
                "targetBlank": True,
                "icon": "info",
                "tags": [],
                "asDropdown": False,
                "includeVars": False,
                "keepTime": False,
                "tooltip": "apns-exporter documentation",
            },
        ],
        "templating": templating(multi_target),
        "panels": layout(panels),
    }


# ------------------------------------------------------------------------ dashboards

CANARY_UP = (
    "Result of the most recent canary push or auth check (apns_up). A canary is a real "
    "push to a test device, or a push to a well-formed fake token that APNs must answer "
    "with 400 BadDeviceToken, which proves TLS, authentication and routing."
)
CERT_DAYS = (
    "Days until the client certificate presented on the live connection expires. Alerts: "
    "warning at 28 days, critical at 7 (MDM certificates: 60/30/14/7). Empty for token "
    "(.p8) authentication, which does not expire."
)
JWT_AGE = (
    "Age of the provider token (JWT) in use. Apple: refresh no more often than every 20 "
    "minutes (blue: younger than that) and no less often than every 60 (red: APNs rejects "
    "it with ExpiredProviderToken); orange from 55 minutes. Empty for certificate auth."
)
CONNECTION_UP = "1 while the HTTP/2 connection to APNs is open and its last PING was acknowledged."
CANARY_P99 = (
    "p99 time from sending a canary to APNs' response headers over the last 30 minutes, "
    "from the recording rule target_quantile:apns_canary_duration_seconds:histogram_quantile "
    "(load alerts/apns-exporter.rules.yml). Alert above 2 s."
)

DELIVERED = (
    "Share of the last hour's device canaries whose delivery receipt came back from the "
    "canary device within the deadline, from the recording rule "
    "target:apns_canary_delivery_lost:ratio1h. Empty when delivery receipts are not set up "
    "(docs/delivery-receipts.md). Alert below 50%."
)
DELIVERY_P50 = (
    "Median time from sending a canary to the device's delivery receipt over the last hour, "
    "from the recording rule "
    "target_quantile:apns_canary_delivery_duration_seconds:histogram_quantile. Alert above "
    "10 s."
)

JWT_STEPS = thresholds((None, "blue"), (1200, "green"), (3300, "orange"), (3600, "red"))
DAYS_STEPS = thresholds((None, "red"), (7, "orange"), (28, "green"))


def overview() -> dict[str, Any]:
    """The overview dashboard: one repeated row per target, then the exporter."""
    panels = [
        row("$target", repeat="target"),
        stat(
            "Canary",
            CANARY_UP,
            f"apns_up{{{TARGET}}}",
            "bool",
            4,
            mappings=OK_FAILING,
            steps=RED_GREEN,
            no_value="no canary",
        ),
        stat(
            "Certificate expires in",
            CERT_DAYS,
            f"(apns_client_certificate_not_after_timestamp_seconds{{{TARGET}}} - time()) / 86400",
            "d",
            4,
            steps=DAYS_STEPS,
            no_value="token auth",
            decimals=1,
        ),
        stat(
            "Provider token age",
            JWT_AGE,
            f"time() - apns_provider_token_issued_timestamp_seconds{{{TARGET}}}",
            "s",
            4,
            steps=JWT_STEPS,
            no_value="certificate auth",
        ),
        stat(
            "Connection",
            CONNECTION_UP,
            f"apns_connection_up{{{TARGET}}}",
            "bool",
            3,
            mappings=UP_DOWN,
            steps=RED_GREEN,
        ),
        stat(
            "Canary p99 latency",
            CANARY_P99,
            f"target_quantile:apns_canary_duration_seconds:histogram_quantile"
            f'{{{TARGET}, quantile="0.99"}}',
            "s",
            3,
            steps=thresholds((None, "green"), (1, "orange"), (2, "red")),
            no_value="no data",
        ),
        stat(
            "Delivered",
            DELIVERED,
            f"1 - target:apns_canary_delivery_lost:ratio1h{{{TARGET}}}",
            "percentunit",
            3,
            steps=thresholds((None, "red"), (0.5, "orange"), (0.9, "green")),
            no_value="no receipts",
        ),
        stat(
            "Delivery p50",
            DELIVERY_P50,
            f"target_quantile:apns_canary_delivery_duration_seconds:histogram_quantile"
            f'{{{TARGET}, quantile="0.5"}}',
            "s",
            3,
            steps=thresholds((None, "green"), (5, "orange"), (10, "red")),
            no_value="no receipts",
        ),
        row("Exporter"),
        stat(
            "Scrape",
            "Whether Prometheus can scrape the exporter (up).",
            f"up{{{EXPORTER}}}",
            "bool",
            6,
            legend="{{instance}}",
            mappings=UP_DOWN,
            steps=RED_GREEN,
        ),
        stat(
            "Last config reload",
            "Whether the last configuration reload succeeded; a failed reload keeps the "
            "previous configuration running.",
            f"apns_exporter_config_last_reload_successful{{{EXPORTER}}}",
            "bool",
            6,
            legend="{{instance}}",
            mappings=OK_FAILING,
            steps=RED_GREEN,
        ),
        stat(
            "Config loaded",
            "Time since the configuration was last loaded successfully.",
            f"time() - apns_exporter_config_last_reload_success_timestamp_seconds{{{EXPORTER}}}",
            "s",
            6,
            legend="{{instance}}",
        ),
        stat(
            "Targets",
            "Number of targets the exporter probes.",
            f"count(apns_target_info{{{EXPORTER}}})",
            "short",
            6,
        ),
    ]
    return dashboard(
        OVERVIEW_UID,
        "APNs exporter / Overview",
        "Can our servers deliver push notifications through APNs? One row per target.",
        panels,
        multi_target=True,
    )


def target_detail() -> dict[str, Any]:
    """The per-target dashboard."""
    ping_buckets = rate("apns_ping_rtt_seconds_bucket")
    server_not_after = per_target("apns_server_certificate_not_after_timestamp_seconds")
    panels = [
        row("Canary"),
        state_timeline("Canary state", CANARY_UP, f"apns_up{{{TARGET}}}", "{{target}}", OK_FAILING),
        panel(
            "heatmap",
            "Canary latency",
            "Canary request to APNs response headers (apns_canary_duration_seconds), "
            "canaries per latency bucket and interval. APNs normally answers in 50-300 ms.",
            [
                query(
                    f"sum by (le) ({increase('apns_canary_duration_seconds_bucket')})",
                    "{{le}}",
                    format="heatmap",
                )
            ],
            "s",
            12,
            8,
            options={
                "calculate": False,
                "yAxis": {"unit": "s"},
                "cellGap": 1,
                "color": {"mode": "scheme", "scheme": "Oranges", "fill": "dark", "steps": 64},
                "tooltip": {"show": True, "yHistogram": False},
                "legend": {"show": True},
            },
        ),
        timeseries(
            "Canary responses by reason",
            "APNs answers to canaries by HTTP status and reason, and requests that got no "
            "answer by error. Auth checks expect 400 BadDeviceToken.",
            _queries(
                (
                    f"sum by (status, reason) ({increase('apns_canary_responses_total')}) > 0",
                    "{{status}} {{reason}}",
                ),
                (
                    # Pre-initialised per error: 0 is data, so no "> 0" filter.
                    f"sum by (error) ({increase('apns_canary_request_errors_total')})",
                    "no response: {{error}}",
                ),
            ),
            "short",
            12,
            draw="bars",
        ),
        row("Delivery"),
        panel(
            "heatmap",
            "Delivery latency",
            "Canary sent to the device's signed delivery receipt "
            "(apns_canary_delivery_duration_seconds), receipts per latency bucket and interval. "
            "Empty when delivery receipts are not set up (docs/delivery-receipts.md).",
            [
                query(
                    f"sum by (le) ({increase('apns_canary_delivery_duration_seconds_bucket')})",
                    "{{le}}",
                    format="heatmap",
                )
            ],
            "s",
            8,
            8,
            options={
                "calculate": False,
                "yAxis": {"unit": "s"},
                "cellGap": 1,
                "color": {"mode": "scheme", "scheme": "Blues", "fill": "dark", "steps": 64},
                "tooltip": {"show": True, "yHistogram": False},
                "legend": {"show": True},
            },
        ),
        timeseries(
            "Delivery latency quantiles",
            "Median and p90 time from sending a canary to the device's receipt over the last "
            "hour (recording rules in alerts/apns-exporter.rules.yml). Alert when the median "
            "stays above 10 s.",
            _queries(
                (
                    "target_quantile:apns_canary_delivery_duration_seconds:histogram_quantile"
                    f'{{{TARGET}, quantile="0.5"}}',
                    "p50",
                ),
                (
                    "target_quantile:apns_canary_delivery_duration_seconds:histogram_quantile"
                    f'{{{TARGET}, quantile="0.9"}}',
                    "p90",
                ),
            ),
            "s",
            8,
            steps=thresholds((None, "green"), (10, "red")),
            threshold_style="line",
        ),
        timeseries(
            "Deliveries and losses",
            "Canaries the device confirmed with a receipt (apns_canary_deliveries_total) and "
            "canaries with no receipt within the deadline (apns_canary_delivery_lost_total), "
            "per interval. Some loss is normal: iOS defers or drops pushes to a sleeping, "
            "offline or Low Power Mode device.",
            _queries(
                (f"sum({increase('apns_canary_deliveries_total')})", "delivered"),
                (f"sum({increase('apns_canary_delivery_lost_total')})", "lost"),
            ),
            "short",
            8,
            draw="bars",
        ),
        row("Connection"),
        state_timeline(
            "Connection state",
            CONNECTION_UP,
            f"apns_connection_up{{{TARGET}}}",
            "{{target}}",
            UP_DOWN,
        ),
        timeseries(
            "PING round trip",
            "HTTP/2 PING to PING ACK (apns_ping_rtt_seconds), median and p99. Alert when the "
            "p99 stays above 1 s.",
            _queries(
                (
                    f"histogram_quantile(0.5, sum by (le) ({ping_buckets}))",
                    "p50",
                ),
                (
                    f"histogram_quantile(0.99, sum by (le) ({ping_buckets}))",
                    "p99",
                ),
            ),
            "s",
            8,
            steps=thresholds((None, "green"), (1, "red")),
            threshold_style="line",
        ),
        timeseries(
            "Reconnects and GOAWAYs",
            "Connection attempts, failed attempts by reason and GOAWAY frames from APNs by "
            "reason, per interval. A healthy connection stays open for hours.",
            _queries(
                (f"sum({increase('apns_connection_attempts_total')})", "connection attempts"),
                (
                    f"sum by (reason) ({increase('apns_connection_failures_total')})",
                    "failed: {{reason}}",
                ),
                (
                    or_zero(
                        f"sum by (reason) ({increase('apns_goaway_received_total')})",
                        f"sum({increase('apns_connection_attempts_total')})",
                        reason="none",
                    ),
                    "GOAWAY: {{reason}}",
                ),
            ),
            "short",
            8,
            draw="bars",
        ),
        timeseries(
            "Stream limit",
            "MAX_CONCURRENT_STREAMS advertised by APNs. Token-authenticated connections start "
            "at 1 and get about 1000 after an accepted request; stuck at 1 means requests are "
            "being rejected.",
            _queries((f"apns_max_concurrent_streams{{{TARGET}}}", "max concurrent streams")),
            "short",
            8,
            steps=thresholds((None, "red"), (2, "green")),
        ),
        row("Credentials"),
        timeseries(
            "Provider token age",
            JWT_AGE,
            _queries(
                (f"time() - apns_provider_token_issued_timestamp_seconds{{{TARGET}}}", "token age")
            ),
            "s",
            12,
            steps=JWT_STEPS,
            threshold_style="line+area",
        ),
        stat(
            "Client certificate expires in",
            CERT_DAYS,
            f"(apns_client_certificate_not_after_timestamp_seconds{{{TARGET}}} - time()) / 86400",
            "d",
            6,
            height=8,
            steps=DAYS_STEPS,
            no_value="token auth",
            decimals=1,
        ),
        stat(
            "Credential loaded",
            "Whether the configured certificate, .p12 or .p8 key loads (apns_credential_up).",
            f"apns_credential_up{{{TARGET}}}",
            "bool",
            6,
            height=8,
            mappings=OK_FAILING,
            steps=RED_GREEN,
        ),
        row("Server TLS"),
        panel(
            "table",
            "Server certificate chain",
            "The chain APNs presents: leaf subject, issuer and root (since 2025 APNs chains "
            "to USERTrust RSA Certification Authority), whether it verifies against the "
            "trust store the exporter's connections use (system store plus ca_file), and "
            "days until the earliest certificate expires.",
            [
                query(
                    f"apns_server_certificate_info{{{TARGET}}}",
                    "",
                    "A",
                    format="table",
                    instant=True,
                    range=False,
                ),
                query(
                    f'apns_server_certificate_verified{{{TARGET}, trust_store="effective"}}',
                    "",
                    "B",
                    format="table",
                    instant=True,
                    range=False,
                ),
                query(
                    f"({server_not_after} - time()) / 86400",
                    "",
                    "C",
                    format="table",
                    instant=True,
                    range=False,
                ),
            ],
            "none",
            24,
            6,
            overrides=[
                {
                    "matcher": {"id": "byName", "options": "Value #B"},
                    "properties": [
                        {"id": "displayName", "value": "verified"},
                        {"id": "unit", "value": "bool"},
                        {
                            "id": "mappings",
                            "value": value_map(
                                **{"0": ("not verified", "red"), "1": ("verified", "green")}
                            ),
                        },
                        {"id": "custom.cellOptions", "value": {"type": "color-background"}},
                        {"id": "thresholds", "value": RED_GREEN},
                    ],
                },
                {
                    "matcher": {"id": "byName", "options": "Value #C"},
                    "properties": [
                        {"id": "displayName", "value": "expires in"},
                        {"id": "unit", "value": "d"},
                        {"id": "decimals", "value": 0},
                    ],
                },
            ],
            transformations=[
                {"id": "merge", "options": {}},
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {
                            "Time": True,
                            "Value #A": True,
                            "__name__": True,
                            "job": True,
                            "instance": True,
                            "trust_store": True,
                        },
                        "indexByName": {
                            "target": 0,
                            "apns_environment": 1,
                            "subject": 2,
                            "issuer": 3,
                            "root": 4,
                            "Value #B": 5,
                            "Value #C": 6,
                            "fingerprint_sha256": 7,
                            "presented": 8,
                        },
                        "renameByName": {},
                    },
                },
            ],
        ),
        row("Reachability"),
        state_timeline(
            "TCP reachability",
            "Whether a TCP connection to each APNs host and port opens, per address family "
            "(apns_reachable). Port 2197 is Apple's alternative to 443.",
            f"apns_reachable{{{TARGET}}}",
            "{{host}}:{{port}} {{family}}",
            value_map(**{"0": ("unreachable", "red"), "1": ("reachable", "green")}),
            width=12,
            height=6,
        ),
        state_timeline(
            "Addresses in Apple's range",
            "Whether every address an APNs host resolves to is in Apple's 17.0.0.0/8 or IPv6 "
            "ranges (apns_address_in_apple_range). Outside means a DNS override, a proxy or "
            "an endpoint override such as a mock server.",
            f"apns_address_in_apple_range{{{TARGET}}}",
            "{{host}}",
            value_map(**{"0": ("outside", "red"), "1": ("Apple", "green")}),
            width=12,
            height=6,
        ),
    ]
    return dashboard(
        TARGET_UID,
        "APNs exporter / Target",
        "One APNs target in detail: canaries, connection, credentials, server TLS, network.",
        panels,
        multi_target=False,
    )


def dashboards() -> dict[str, dict[str, Any]]:
    """Every dashboard, keyed by its file name."""
    return {
        "apns-exporter-overview.json": overview(),
        "apns-exporter-target.json": target_detail(),
    }


def render(board: dict[str, Any]) -> str:
    """The exact text committed for a dashboard."""
    return json.dumps(board, indent=2, ensure_ascii=False) + "\n"


# --------------------------------------------------------------------------- queries


def _panels(board: dict[str, Any]) -> Iterator[Panel]:
    for p in board["panels"]:
        yield p
        yield from p.get("panels", [])


def panel_queries() -> list[dict[str, str]]:
    """Every panel query: dashboard uid, panel title, refId and PromQL expression."""
    out = []
    for board in dashboards().values():
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
    target: str = ".+",
    rate_interval: str = "1m",
) -> str:
    """Substitute the dashboard variables as Grafana would, for evaluation elsewhere.

    Values go into ``=~`` matchers, so they are regular expressions (Grafana's "All" is
    ``.+``); pass ``literal(name)`` for a literal value.
    """
    values = {"job": job, "instance": instance, "target": target, "__rate_interval": rate_interval}

    def sub(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"unknown dashboard variable ${name} in {expr!r}")
        return values[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", sub, expr)


# ------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    """Write the dashboards, or with ``--check`` report files that are out of date."""
    parser = argparse.ArgumentParser(description="Generate the apns-exporter Grafana dashboards.")
    parser.add_argument(
        "--check", action="store_true", help="do not write; exit 1 if a committed file differs"
    )
    parser.add_argument("--out", type=Path, default=HERE, help="output directory")
    args = parser.parse_args(argv)
    stale = []
    for name, board in dashboards().items():
        path = args.out / name
        text = render(board)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print(
            f"out of date: {', '.join(stale)}; run python dashboards/generate.py", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
