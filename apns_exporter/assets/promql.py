"""Building blocks of the shipped rules: selectors, event counts, rule dictionaries.

Every per-target series carries ``target`` and ``apns_environment``; Prometheus adds
``job`` and ``instance``; joins therefore match on :data:`TARGET`.
"""

from __future__ import annotations

from typing import Any

from apns_exporter.assets.params import Params, duration_seconds

TARGET = "job, instance, target, apns_environment"
ON = f"on ({TARGET})"
Rule = dict[str, Any]


# How long a gauge's last scraped value stands in for a missed scrape: Prometheus' own
# lookback, so one failed scrape (a stale marker) does not restart an alert's for:.
HOLD = "5m"


def count(selector: str, window: str) -> str:
    """How many events a counter counted in the last ``window``, its very first included.

    ``increase()`` needs two samples, so a series the exporter creates on the first event
    (at 1) would never show that event. A series that did not exist ``window`` ago is
    counted by its whole value only if it is new: it is missing from some of the window's
    successful scrapes of its exporter (fewer samples than ``sum_over_time(up)``). A
    series Prometheus merely had not seen (a fresh Prometheus, a gap longer than the
    lookback) is in every scrape, so only its increase within the window counts and an
    old lifetime count never looks recent.
    """
    scraped = f"on (job, instance) group_left sum_over_time(up[{window}])"
    return (
        f"(increase({selector}[{window}]) and {selector} offset {window}"
        f" or {selector} and count_over_time({selector}[{window}]) < {scraped}"
        f" or increase({selector}[{window}]))"
    )


def last(selector: str) -> str:
    """A gauge's last scraped value within :data:`HOLD`, so a missed scrape leaves no gap."""
    return f"last_over_time({selector}[{HOLD}])"


def interval(p: Params, probe: str) -> str:
    """A probe's configured interval (``apns_probe_interval_seconds``), as :func:`last` reads it."""
    return last(p.select("apns_probe_interval_seconds", f'probe="{probe}"'))


def recent(metric: str, window: str) -> str:
    """A :func:`per_target` query of ``metric``'s events per series in ``window``.

    For descriptions: a series the exporter created within ``window`` (on its first event)
    shows its whole value, which ``increase()`` alone would miss.
    """
    s = metric + "{{T}}"
    return per_target(f"({s} unless {s} offset {window}) > 0 or increase({s}[{window}]) >= 0.5")


def per_target(expr: str) -> str:
    """A Go template query for ``expr`` with ``{T}`` replaced by the alert's own target.

    The result is piped into ``query``; use it after ``range``/``with``. Indexed verbs
    let ``expr`` name ``{T}`` more than once.
    """
    matchers = "job=%[1]q,instance=%[2]q,target=%[3]q"
    return f'printf "{expr.replace("{T}", matchers)}" $labels.job $labels.instance $labels.target'


def alert(
    p: Params,
    name: str,
    expr: str,
    severity: str,
    summary: str,
    description: str,
    *,
    for_: str | None = None,
    keep_firing: bool = False,
    **labels: str,
) -> Rule:
    """One alerting rule with the shared annotations and the user's ``for:`` override.

    ``<FOR>`` in the description becomes the alert's effective ``for:`` duration.
    """
    rule: Rule = {"alert": name, "expr": expr}
    duration = p.for_overrides.get(name, for_)
    if duration:
        rule["for"] = duration
    if keep_firing and p.keep_firing_for:
        rule["keep_firing_for"] = p.keep_firing_for
    rule["labels"] = {"severity": severity, **labels, **p.extra_labels}
    text = " ".join(description.split()).replace("<FOR>", spoken(duration or "0s"))
    rule["annotations"] = {
        "summary": summary,
        "description": text,
        "runbook_url": p.runbook(name),
    }
    if p.grafana_url:
        rule["annotations"]["dashboard_url"] = dashboard_url(
            p.grafana_url, "$labels.target" in text
        )
    return rule


def spoken(duration: str) -> str:
    """A duration as a description says it: ``10m`` -> ``10 minutes``, ``1h30m`` stays."""
    seconds = duration_seconds(duration)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'' if n == 1 else 's'}"
    return duration


def dashboard_url(base: str, per_target: bool) -> str:
    """The dashboard of an alert: the target's own when it has a target label, else the fleet's."""
    root = base.rstrip("/")
    if per_target:
        return (
            f"{root}/d/apns-exporter-target?var-job={{{{ $labels.job }}}}"
            "&var-instance={{ $labels.instance }}&var-target={{ $labels.target }}"
        )
    return f"{root}/d/apns-exporter-overview?var-job={{{{ $labels.job }}}}"


def record(name: str, expr: str, **labels: str) -> Rule:
    """One recording rule."""
    rule: Rule = {"record": name, "expr": expr}
    if labels:
        rule["labels"] = labels
    return rule
