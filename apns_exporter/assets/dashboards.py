"""The Grafana dashboards: a fleet overview that works for 1 or 1 000 targets, and one target.

The overview has no per-target rows: a table lists the targets sorted by trouble
(firing alerts, failing layer, credential days left, last canary), beside fleet totals
and the firing alerts themselves (``ALERTS``). Selecting a target leads to the per-target
dashboard (:mod:`apns_exporter.assets.dashboard_target`).
"""

from __future__ import annotations

from typing import Any

from apns_exporter.assets.dashboard_target import TARGET_UID, target_detail
from apns_exporter.assets.grafana import (
    DAYS,
    EXPORTER,
    OK_FAILING,
    ON_TARGET,
    RED_GREEN,
    TARGET,
    UP_DOWN,
    Panel,
    dashboard,
    or_zero,
    query,
    row,
    thresholds,
)
from apns_exporter.assets.panels import stat, table, timeseries
from apns_exporter.assets.params import Params

OVERVIEW_UID = "apns-exporter-overview"


def firing(*matchers: str) -> str:
    """The firing APNs alerts of the selected jobs (fleet alerts carry no instance)."""
    inside = ", ".join(('alertstate="firing"', 'alertname=~"Apns.+"', 'job=~"$job"', *matchers))
    return f"ALERTS{{{inside}}}"


def _target_link() -> dict[str, Any]:
    """A table cell's link to the row's target on the per-target dashboard."""
    fields = "&".join(
        f"var-{var}=${{__data.fields.{field}}}"
        for var, field in (
            ("job", "job"),
            ("instance", "instance"),
            ("environment", "apns_environment"),
            ("target", "target"),
        )
    )
    return {
        "title": "Target dashboard",
        "url": f"/d/{TARGET_UID}?{fields}&${{__url_time_range}}",
    }


def _targets_table() -> Panel:
    up = f"apns_up{{{TARGET}}}"
    # Every target has apns_target_info, inventory-only ones (no apns_up) included: rows
    # are keyed on it, without its extra labels.
    every = f"max by (job, instance, target, apns_environment) (0 * apns_target_info{{{TARGET}}})"
    alerts = firing('instance=~"$instance"', 'target=~"$target"')
    count = f"count by (job, instance, target, apns_environment) ({alerts})"
    days = (
        f"(apns_client_certificate_not_after_timestamp_seconds{{{TARGET}}} - time()) / 86400\n"
        f"or\n(apns_signing_key_rotation_due_timestamp_seconds{{{TARGET}}} - time()) / 86400"
    )
    layer = (
        f"apns_failing_layer{{{TARGET}}} == 1\n"
        f'or {ON_TARGET} label_replace({every}, "layer", "none", "", "")'
    )
    return table(
        "Targets by trouble",
        "Every selected target, the most troubled first: trouble counts firing alerts, and "
        "a failing canary (or PING, without a canary) as ten. Failing layer is the lowest "
        "layer that fails now; credential days left is the client certificate's, or the "
        "signing key's until its configured rotate_by date; last canary is the time since "
        "the last canary finished.",
        [
            (
                f"(10 * (1 - {up}) or {ON_TARGET} {every})\n+ {ON_TARGET}\n({count} or {every})",
                "trouble",
                "none",
            ),
            (layer, "layer value", "none"),
            (up, "OK", "bool"),
            (days, "credential days left", DAYS),
            (
                f"time() - apns_canary_last_attempt_timestamp_seconds{{{TARGET}}}",
                "last canary",
                "s",
            ),
            (f"{count} or {every}", "firing alerts", "none"),
        ],
        24,
        10,
        hide=("job", "Value #B"),
        order=("target", "apns_environment", "instance", "Value #A", "layer"),
        sort_by="trouble",
        overrides=[
            {
                "matcher": {"id": "byName", "options": "target"},
                "properties": [{"id": "links", "value": [_target_link()]}],
            },
            {
                "matcher": {"id": "byName", "options": "Value #C"},
                "properties": [
                    {"id": "mappings", "value": OK_FAILING},
                    {"id": "custom.cellOptions", "value": {"type": "color-background"}},
                    {"id": "thresholds", "value": RED_GREEN},
                ],
            },
        ],
    )


def overview(p: Params) -> dict[str, Any]:
    """The overview dashboard: fleet totals, targets by trouble, firing alerts, the exporter."""
    failing = f"sum(target:apns_failing:bool{{{TARGET}}})"
    panels = [
        row("Fleet"),
        stat(
            "Targets",
            "Targets the selected exporters probe.",
            f"count(apns_target_info{{{TARGET}}})",
            "short",
            6,
        ),
        stat(
            "Failing for users",
            "Targets whose canary (or PING, without a canary) fails, leaving out canaries "
            "that fail only because of their own setup (recording rule "
            "target:apns_failing:bool; load the shipped rules).",
            failing,
            "short",
            6,
            steps=thresholds((None, "green"), (1, "red")),
        ),
        stat(
            "Critical alerts",
            "Firing critical APNs alerts: the ones that page.",
            "count(" + firing('severity="critical"') + ") or vector(0)",
            "short",
            6,
            steps=thresholds((None, "green"), (1, "red")),
        ),
        stat(
            "Warnings",
            "Firing warning APNs alerts: causes and setup problems for working hours.",
            "count(" + firing('severity="warning"') + ") or vector(0)",
            "short",
            6,
            steps=thresholds((None, "green"), (1, "orange")),
        ),
        _targets_table(),
        timeseries(
            "Failing targets by layer",
            "Canary targets failing for users over time (recording rule "
            "target:apns_canary_failing:bool), by the layer that fails "
            "(apns_failing_layer): one layer rising across many targets is a shared cause.",
            [
                query(
                    # Only canary targets count; a layer is served only while it fails,
                    # so none reads 0 while nothing does.
                    or_zero(
                        f"sum by (layer) (\n  apns_failing_layer{{{TARGET}}}\n"
                        f"  * {ON_TARGET} group_left\n"
                        f"  target:apns_canary_failing:bool{{{TARGET}}}\n)",
                        f"count(target:apns_canary_failing:bool{{{TARGET}}})",
                        layer="none",
                    ),
                    "{{layer}}",
                )
            ],
            "short",
            16,
            draw="bars",
        ),
        timeseries(
            "Canary SLO",
            "Share of canary targets not failing, per job and environment (recording rule "
            "job_environment:apns_canary_success:ratio); the error budget alert "
            "ApnsCanaryErrorBudgetBurn watches its burn rate.",
            [
                query(
                    'job_environment:apns_canary_success:ratio{job=~"$job", '
                    'apns_environment=~"$environment"}',
                    "{{job}} {{apns_environment}}",
                )
            ],
            "percentunit",
            8,
        ),
        table(
            "Firing alerts",
            "APNs alerts firing now (ALERTS), as Prometheus evaluates the shipped rules; "
            "the runbook explains each.",
            [(firing(), "firing", "none")],
            24,
            8,
            hide=("alertstate", "Value #A"),
            order=("severity", "alertname", "target", "apns_environment", "instance"),
        ),
        row("Exporter"),
        stat(
            "Scrape",
            "Whether Prometheus can scrape the exporter (up).",
            f"up{{{EXPORTER}}}",
            "bool",
            8,
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
            8,
            legend="{{instance}}",
            mappings=OK_FAILING,
            steps=RED_GREEN,
        ),
        stat(
            "Config loaded",
            "Time since the configuration was last loaded successfully.",
            f"time() - apns_exporter_config_last_reload_success_timestamp_seconds{{{EXPORTER}}}",
            "s",
            8,
            legend="{{instance}}",
        ),
        table(
            "Server roots by environment",
            "The roots each APNs environment's servers present (any of their addresses), from "
            "the exporter's environment checks (global.environment_checks). Apple changes the "
            "sandbox first: a root only the sandbox shows is a production change on its way "
            "(ApnsProductionRootChangeAhead).",
            [(f"apns_environment_root_info{{{EXPORTER}}}", "presented", "none")],
            24,
            6,
            hide=("job", "Value #A"),
            order=("apns_environment", "root", "fingerprint_sha256", "instance"),
        ),
    ]
    return dashboard(
        OVERVIEW_UID,
        "APNs exporter / Overview",
        "Can our servers deliver push notifications through APNs? The fleet at a glance, "
        "targets sorted by trouble.",
        panels,
        multi_target=True,
        runbook_url=p.runbook_url,
    )


def dashboards(p: Params | None = None) -> dict[str, dict[str, Any]]:
    """Every dashboard, keyed by its file name."""
    p = p or Params()
    return {
        "apns-exporter-overview.json": overview(p),
        "apns-exporter-target.json": target_detail(p.runbook_url),
    }


__all__ = ["OVERVIEW_UID", "TARGET_UID", "dashboards"]
