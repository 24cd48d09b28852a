"""The knobs of the shipped rules and dashboards, as the mixins' ``_config`` has them.

Every threshold, window and ``for:`` duration of the alert rules is a field here, so a
user without a repository clone can write the rules out with their own values
(``apns-exporter assets --set canary_latency_seconds=1 --for ApnsCanaryFailing=15m``).
Pure data and parsing; no I/O.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

# Not a real host: example.com is reserved for documentation (RFC 2606). Point runbook_url
# at wherever you publish docs/runbook.md (a fork on GitHub, an internal wiki).
DEFAULT_RUNBOOK_URL = "https://runbooks.example.com/apns-exporter/runbook.md"
DEFAULT_SELECTOR = 'job="apns-exporter"'

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def duration_seconds(value: str) -> int:
    """Seconds in a Prometheus duration such as ``1h30m`` (days down to seconds only)."""
    match = _DURATION.match(value)
    if not value or match is None:
        raise ValueError(f"not a Prometheus duration: {value!r} (use e.g. 30s, 5m, 1h)")
    return sum(int(n) * unit for n, (_, unit) in zip(match.groups(), _UNITS, strict=True) if n)


def format_duration(seconds: int) -> str:
    """The shortest Prometheus duration for a whole number of seconds (``900`` -> ``15m``)."""
    if seconds <= 0:
        return "0s"
    out = ""
    for suffix, unit in _UNITS:
        count, seconds = divmod(seconds, unit)
        if count:
            out += f"{count}{suffix}"
    return out


@dataclass(frozen=True)
class Params:
    """Everything a user may change in the generated rules, dashboards and examples."""

    # PromQL label matchers that select the exporter's series, e.g. job="apns-exporter".
    selector: str = DEFAULT_SELECTOR
    # Where docs/runbook.md is published; each alert links to "<runbook_url>#<alertname>".
    runbook_url: str = DEFAULT_RUNBOOK_URL
    # keep_firing_for on the paging alerts ("" leaves it out: Prometheus < 2.42, or a
    # prometheus-operator older than v0.66 that rejects the field).
    keep_firing_for: str = "10m"
    # ApnsExporterDown means we are blind, not that users suffer: a warning by default.
    exporter_down_severity: str = "warning"
    # How far back canary answers are judged (setup problem or outage, authentication).
    canary_window: str = "15m"
    canary_latency_seconds: float = 2.0
    ping_rtt_seconds: float = 1.0
    # Age of the provider token when a canary used it: refresh overdue.
    token_age_at_use_minutes: int = 55
    cert_warning_days: int = 28
    cert_critical_days: int = 1
    mdm_info_days: int = 60
    mdm_warning_days: int = 30
    mdm_late_warning_days: int = 14
    key_rotation_warning_days: int = 14
    goaways_per_hour: int = 3
    reconnects_per_hour: int = 6
    delivery_lost_ratio: float = 0.5
    delivery_p50_seconds: float = 10.0
    # A fleet-wide failure: at least this share of production targets, and this many.
    fleet_failing_ratio: float = 0.5
    fleet_min_targets: int = 2
    # The longest reachability interval the staleness alert judges: a range cannot follow
    # each target's apns_probe_interval_seconds, so targets probed less often are skipped.
    reachability_interval: str = "5m"
    # A fleet SLO: the share of canary-target evaluations that are not failing, per job
    # and environment, over slo_window; the burn-rate alert watches its error budget.
    canary_slo: float = 0.995
    # Where Grafana serves the shipped dashboards ("" leaves dashboard_url out), e.g.
    # https://grafana.example.org; alerts link to the overview or the target dashboard.
    grafana_url: str = ""
    # alertname -> for: duration, replacing the default of every band of that alert.
    for_overrides: Mapping[str, str] = field(default_factory=dict)
    # Labels added to every alert (team="push", cluster="eu-1").
    extra_labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("canary_window", "reachability_interval"):
            if duration_seconds(getattr(self, name)) <= 0:
                raise ValueError(f"{name} must be longer than 0s")
        if self.keep_firing_for:
            duration_seconds(self.keep_firing_for)
        for alert, value in self.for_overrides.items():
            try:
                duration_seconds(value)
            except ValueError as exc:
                raise ValueError(f"for {alert}: {exc}") from None
        if self.exporter_down_severity not in ("critical", "warning", "info"):
            raise ValueError("exporter_down_severity must be critical, warning or info")
        for name in ("runbook_url", "grafana_url", "selector"):
            _plain(name, getattr(self, name))
        if '"' in self.runbook_url or not self.runbook_url:
            raise ValueError("runbook_url must be a non-empty URL without quotes")
        if '"' in self.grafana_url:
            raise ValueError("grafana_url must be a URL without quotes")
        for name, value in self.extra_labels.items():
            if not _LABEL.match(name) or name.startswith("__"):
                raise ValueError(f"label {name!r}: not a Prometheus label name")
            _plain(f"label {name}", value)
        _check_ranges(self)

    def runbook(self, alert: str) -> str:
        """The runbook address of one alert: its section anchor is the lower-cased name."""
        return f"{self.runbook_url}#{alert.lower()}"

    def select(self, metric: str, *matchers: str) -> str:
        """A selector of ``metric`` limited to the exporter's series, plus ``matchers``."""
        inside = ", ".join(m for m in (self.selector, *matchers) if m)
        return f"{metric}{{{inside}}}" if inside else metric

    def up(self) -> str:
        """The exporter's ``up`` series: by the selector, else by its build_info series.

        An empty selector must not select every scrape target Prometheus has.
        """
        if self.selector:
            return self.select("up")
        return "(up and on (job, instance) last_over_time(apns_exporter_build_info[1d]))"

    def for_(self, alert: str, default: str) -> str:
        """The ``for:`` of ``alert``: the user's override, else ``default``."""
        return self.for_overrides.get(alert, default)


_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# Ranges of the numeric knobs: (lowest, highest) allowed.
RANGES: dict[str, tuple[float, float]] = {
    "canary_latency_seconds": (0.001, 3600),
    "ping_rtt_seconds": (0.001, 3600),
    "token_age_at_use_minutes": (1, 60),
    "cert_warning_days": (1, 3650),
    "cert_critical_days": (0, 3650),
    "mdm_info_days": (1, 3650),
    "mdm_warning_days": (1, 3650),
    "mdm_late_warning_days": (1, 3650),
    "key_rotation_warning_days": (0, 3650),
    "goaways_per_hour": (0, 100000),
    "reconnects_per_hour": (0, 100000),
    "delivery_lost_ratio": (0, 1),
    "delivery_p50_seconds": (0.001, 86400),
    "fleet_failing_ratio": (0.01, 1),
    "fleet_min_targets": (1, 1000000),
    "canary_slo": (0.5, 0.99999),
}


def _plain(name: str, value: str) -> None:
    """Refuse CR, LF and NUL: they would break a YAML line, a header or a rule."""
    if any(c in value for c in "\r\n\0"):
        raise ValueError(f"{name} must not contain CR, LF or NUL")


def _check_ranges(p: Params) -> None:
    for name, (low, high) in RANGES.items():
        value = getattr(p, name)
        if not low <= value <= high:
            raise ValueError(f"{name}={value:g} is out of range: use {low:g} to {high:g}")
    if p.cert_critical_days >= p.cert_warning_days:
        raise ValueError("cert_critical_days must be below cert_warning_days")


# Fields --set may change: everything but the mapping of for: overrides.
TUNABLE = {
    f.name: f for f in dataclasses.fields(Params) if f.name not in ("for_overrides", "extra_labels")
}


def with_settings(
    params: Params,
    settings: Mapping[str, str],
    fors: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    alerts: Collection[str] | None = None,
) -> Params:
    """``params`` with ``name=value`` strings applied, converted to each field's type.

    ``alerts``, when given, are the alert names a ``for:`` override may name.
    """
    changes: dict[str, Any] = {}
    unknown = sorted(set(fors or ()) - set(alerts)) if alerts is not None else []
    if unknown:
        raise ValueError(
            f"--for {unknown[0]}: no such alert (known: {', '.join(sorted(alerts or ()))})"
        )
    for name, text in settings.items():
        if name not in TUNABLE:
            raise ValueError(f"unknown setting {name!r} (known: {', '.join(sorted(TUNABLE))})")
        kind = type(getattr(Params(), name))
        try:
            changes[name] = kind(text)
        except ValueError:
            raise ValueError(f"{name}: {text!r} is not a {kind.__name__}") from None
    if fors:
        changes["for_overrides"] = {**params.for_overrides, **fors}
    if labels:
        changes["extra_labels"] = {**params.extra_labels, **labels}
    return dataclasses.replace(params, **changes)
