"""The knobs of the shipped rules and dashboards, as the mixins' ``_config`` has them.

Every threshold, window and ``for:`` duration of the alert rules is a field here, so a
user without a repository clone can write the rules out with their own values
(``apns-exporter assets --set canary_latency_seconds=1 --for ApnsCanaryFailing=15m``).
Pure data and parsing; no I/O.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
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
    # The reachability interval of your targets (not exported as a metric): the probe is
    # stale after three of them without a fresh result.
    reachability_interval: str = "5m"
    # The same for the server-chain check (tls_check.interval; not exported either, to keep
    # a target's series within budget).
    tls_check_interval: str = "1h"
    # alertname -> for: duration, replacing the default of every band of that alert.
    for_overrides: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("canary_window", "reachability_interval", "tls_check_interval"):
            duration_seconds(getattr(self, name))
        if self.keep_firing_for:
            duration_seconds(self.keep_firing_for)
        for alert, value in self.for_overrides.items():
            try:
                duration_seconds(value)
            except ValueError as exc:
                raise ValueError(f"for {alert}: {exc}") from None
        if self.exporter_down_severity not in ("critical", "warning", "info"):
            raise ValueError("exporter_down_severity must be critical, warning or info")
        if '"' in self.runbook_url or not self.runbook_url:
            raise ValueError("runbook_url must be a non-empty URL without quotes")

    def runbook(self, alert: str) -> str:
        """The runbook address of one alert: its section anchor is the lower-cased name."""
        return f"{self.runbook_url}#{alert.lower()}"

    def select(self, metric: str, *matchers: str) -> str:
        """A selector of ``metric`` limited to the exporter's series, plus ``matchers``."""
        inside = ", ".join(m for m in (self.selector, *matchers) if m)
        return f"{metric}{{{inside}}}"

    def for_(self, alert: str, default: str) -> str:
        """The ``for:`` of ``alert``: the user's override, else ``default``."""
        return self.for_overrides.get(alert, default)


# Fields --set may change: everything but the mapping of for: overrides.
TUNABLE = {f.name: f for f in dataclasses.fields(Params) if f.name != "for_overrides"}


def with_settings(
    params: Params, settings: Mapping[str, str], fors: Mapping[str, str] | None = None
) -> Params:
    """``params`` with ``name=value`` strings applied, converted to each field's type."""
    changes: dict[str, Any] = {}
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
    return dataclasses.replace(params, **changes)
