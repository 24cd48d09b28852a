"""Building blocks of the shipped rules: selectors, event counts, rule dictionaries.

Every per-target series carries ``target`` and ``apns_environment``; Prometheus adds
``job`` and ``instance``; joins therefore match on :data:`TARGET`.
"""

from __future__ import annotations

from typing import Any

from apns_exporter.assets.params import Params

TARGET = "job, instance, target, apns_environment"
ON = f"on ({TARGET})"
Rule = dict[str, Any]


def count(selector: str, window: str) -> str:
    """How many events a counter counted in the last ``window``, its very first included.

    ``increase()`` needs two samples, so a series the exporter creates on the first event
    (at 1) would never show that event. A series that did not exist ``window`` ago is
    counted by its whole value instead. (A Prometheus with an empty TSDB sees every series
    as new for one window, so old counts look recent until then.)
    """
    return f"(increase({selector}[{window}]) and {selector} offset {window} or {selector})"


def per_target(expr: str) -> str:
    """A Go template query for ``expr`` with ``{T}`` replaced by the alert's own target.

    The result is piped into ``query``; use it after ``range``/``with``.
    """
    matchers = "job=%q,instance=%q,target=%q"
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
    """One alerting rule with the shared annotations and the user's ``for:`` override."""
    rule: Rule = {"alert": name, "expr": expr}
    duration = p.for_overrides.get(name, for_)
    if duration:
        rule["for"] = duration
    if keep_firing and p.keep_firing_for:
        rule["keep_firing_for"] = p.keep_firing_for
    rule["labels"] = {"severity": severity, **labels}
    rule["annotations"] = {
        "summary": summary,
        "description": " ".join(description.split()),
        "runbook_url": p.runbook(name),
    }
    return rule


def record(name: str, expr: str, **labels: str) -> Rule:
    """One recording rule."""
    rule: Rule = {"record": name, "expr": expr}
    if labels:
        rule["labels"] = labels
    return rule
