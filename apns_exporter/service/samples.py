"""A target's series and their sample lines, rendered as prometheus_client renders them.

A series marks its target stale in its family on every change (see service/family.py); its
label set is rendered once, its values on each :meth:`lines` call.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from prometheus_client.core import Exemplar
from prometheus_client.utils import floatToGoString as _untyped_go_float

if TYPE_CHECKING:
    from apns_exporter.service.family import Family

LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
# Upstream's float formatting (Go's, with +Inf, -Inf and NaN), typed for mypy.
floatToGoString: Callable[[float], str] = _untyped_go_float
# OpenMetrics: an exemplar's label names and values together hold at most 128 characters.
EXEMPLAR_MAX_RUNES = 128


def _label_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


class Child:
    """One labelled series (a histogram's buckets, count and sum count as one)."""

    __slots__ = ("_family", "_key", "_prefix", "extra", "labels")

    def __init__(
        self, family: Family, labels: tuple[str, ...], extra: tuple[tuple[str, str], ...] = ()
    ) -> None:
        self._family = family
        self._key = labels[0]
        self.labels = labels
        # Labels of this series alone, beyond the family's (owner labels on an info series).
        self.extra = extra
        # The label set is fixed for the series' life: render it once, sorted as upstream does.
        pairs = sorted([*zip(family.labelnames, labels, strict=True), *extra])
        self._prefix = ",".join(f'{k}="{_label_value(v)}"' for k, v in pairs)

    def _changed(self) -> None:
        self._family.touch(self._key)


class GaugeChild(Child):
    """A gauge series."""

    __slots__ = ("value",)

    def __init__(
        self, family: Family, labels: tuple[str, ...], extra: tuple[tuple[str, str], ...] = ()
    ) -> None:
        super().__init__(family, labels, extra)
        self.value = 0.0

    def set(self, value: float) -> None:
        """Set the value."""
        value = float(value)
        # Most gauges are set to what they already hold (up, intervals): an unchanged series
        # keeps its rendered line.
        if value == self.value and math.copysign(1.0, value) == math.copysign(1.0, self.value):
            return  # the same value, -0.0 and 0.0 told apart as upstream renders them
        self.value = value
        self._changed()

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount``."""
        self.set(self.value + amount)

    def dec(self, amount: float = 1.0) -> None:
        """Subtract ``amount``."""
        self.set(self.value - amount)

    def lines(self, name: str, *, openmetrics: bool = False) -> str:
        """The series' exposition lines."""
        return f"{name}{{{self._prefix}}} {floatToGoString(self.value)}\n"


class CounterChild(GaugeChild):
    """A counter series: it only goes up."""

    __slots__ = ()

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount`` (never negative)."""
        if amount < 0:
            raise ValueError("counters can only be incremented by non-negative amounts")
        self.value += amount
        self._changed()

    def lines(self, name: str, *, openmetrics: bool = False) -> str:
        """The series' exposition line, named with the counter's ``_total`` suffix."""
        return f"{name}_total{{{self._prefix}}} {floatToGoString(self.value)}\n"


class HistogramChild(Child):
    """A histogram series: cumulative buckets, count and sum, and each bucket's exemplar."""

    __slots__ = ("_lead", "_trail", "buckets", "exemplars", "sum")

    def __init__(self, family: Family, labels: tuple[str, ...]) -> None:
        super().__init__(family, labels)
        self.buckets = [0.0] * len(family.bounds)
        self.exemplars: list[Exemplar | None] = [None] * len(family.bounds)
        self.sum = 0.0
        # Upstream sorts "le" in among the other labels; split the rendered set around it.
        pairs = sorted(zip(family.labelnames, labels, strict=True))
        lead = [f'{k}="{_label_value(v)}",' for k, v in pairs if k < "le"]
        trail = [f',{k}="{_label_value(v)}"' for k, v in pairs if k > "le"]
        self._lead, self._trail = "".join(lead), "".join(trail)

    def observe(self, amount: float, exemplar: Mapping[str, str] | None = None) -> None:
        """Count one observation; ``exemplar`` labels it in its bucket, as upstream does.

        Exemplars are shown in OpenMetrics only and never become series labels.
        """
        if exemplar is not None:
            _check_exemplar(exemplar)
        self.sum += amount
        for i, bound in enumerate(self._family.bounds):
            if amount <= bound:
                self.buckets[i] += 1.0
        # The first bucket that holds the value, as prometheus_client's Histogram does.
        at = next((i for i, b in enumerate(self._family.bounds) if amount <= b), None)
        if exemplar is not None and at is not None:
            self.exemplars[at] = Exemplar(dict(exemplar), amount, time.time())
        self._changed()

    def lines(self, name: str, *, openmetrics: bool = False) -> str:
        """The series' bucket, count and sum lines (OpenMetrics: with exemplars)."""
        p = self._prefix
        marks = self.exemplars if openmetrics else [None] * len(self.buckets)
        out = [
            f'{name}_bucket{{{self._lead}le="{le}"{self._trail}}} {floatToGoString(v)}'
            f"{_exemplar(e)}\n"
            for le, v, e in zip(self._family.les, self.buckets, marks, strict=True)
        ]
        out.append(f"{name}_count{{{p}}} {floatToGoString(self.buckets[-1])}\n")
        out.append(f"{name}_sum{{{p}}} {floatToGoString(self.sum)}\n")
        return "".join(out)


def _check_exemplar(labels: Mapping[str, str]) -> None:
    runes = sum(len(k) + len(v) for k, v in labels.items())
    if runes > EXEMPLAR_MAX_RUNES:
        raise ValueError(f"exemplar labels hold {runes} characters; at most 128 are allowed")
    for name in labels:
        if not LABEL_NAME.match(name):
            raise ValueError(f"invalid exemplar label name {name!r}")


def _exemplar(exemplar: Exemplar | None) -> str:
    """An exemplar as prometheus_client's OpenMetrics writer renders it."""
    if exemplar is None:
        return ""
    labels = ",".join(f'{k}="{_label_value(v)}"' for k, v in sorted(exemplar.labels.items()))
    stamp = "" if exemplar.timestamp is None else f" {exemplar.timestamp}"
    return f" # {{{labels}}} {floatToGoString(exemplar.value)}{stamp}"
