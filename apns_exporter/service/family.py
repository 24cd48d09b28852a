"""A metric family whose series are grouped by target, each target's lines kept rendered.

A result marks its target's lines stale; a scrape re-renders only those and hands the
family out in :class:`Piece` objects of bounded size, so no event-loop turn does work that
grows with the fleet. A piece is replaced, never mutated, so its deflated form can be kept
beside it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.samples import Sample

from apns_exporter.service.samples import (
    LABEL_NAME,
    Child,
    CounterChild,
    GaugeChild,
    HistogramChild,
    floatToGoString,
)

if TYPE_CHECKING:
    from apns_exporter.service.exposition import Store

# Names in the legacy character set read the same under every escaping scheme a scraper
# may negotiate except "dots" and "values"; those fall back to prometheus_client. No
# colons: upstream's OpenMetrics writer turns them into underscores in sample names only.
_METRIC_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
# Text handed over per event-loop turn: a 10 000-target body is about 80 MiB, so a scrape
# takes hundreds of short turns instead of one long one.
CHUNK = 256 * 1024
# Rendering costs far more per byte than joining (about 10 ms per 256 KiB of histogram
# lines): a loop turn renders at most this much text.
RENDER_SLICE = 32 * 1024


class Piece:
    """A slice of the body, immutable once made, and its deflated form once computed."""

    __slots__ = ("deflated", "text")

    def __init__(self, text: bytes) -> None:
        self.text = text
        self.deflated: bytes | None = None


def _cuts(texts: Sequence[bytes]) -> Iterator[tuple[int, int]]:
    """Index ranges of ``texts`` holding at most CHUNK bytes each (a longer text alone)."""
    start, size = 0, 0
    for i, text in enumerate(texts):
        if size + len(text) > CHUNK and i > start:
            yield start, i
            start, size = i, 0
        size += len(text)
    if start < len(texts):
        yield start, len(texts)


def join(pieces: Iterable[Piece | None]) -> bytes:
    return b"".join(p.text for p in pieces if p is not None)


class Family:
    """A metric family whose series are grouped, and cached, by their first label."""

    kind = ""

    def __init__(
        self, store: Store, name: str, documentation: str, labelnames: Sequence[str]
    ) -> None:
        if not _METRIC_NAME.match(name) or not labelnames:
            raise ValueError(f"metric {name!r}: needs a legacy name and at least one label")
        for label in labelnames:
            if not LABEL_NAME.match(label) or label.startswith("__") or label == "le":
                raise ValueError(f"metric {name}: invalid label name {label!r}")
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.bounds: tuple[float, ...] = ()
        self.les: tuple[str, ...] = ()
        self._store = store
        self._series: dict[str, dict[tuple[str, ...], Child]] = {}
        # Same key order as _series, so joining it gives collect()'s order.
        self._lines: dict[str, bytes] = {}
        self._dirty: set[str] = set()
        # Histograms render OpenMetrics apart (exemplars): their own lines and dirt.
        self._om_lines: dict[str, bytes] = {}
        self._om_dirty: set[str] = set()
        # The sample lines cut into pieces, per "OpenMetrics apart", while nothing changes.
        self._pieces: dict[bool, tuple[Piece, ...]] = {}
        self._version = 0
        self._headers: dict[bool, bytes] = {}
        store.add(self)

    def header(self, *, openmetrics: bool) -> bytes:
        """The HELP and TYPE lines; the text format names a counter family with ``_total``."""
        header = self._headers.get(openmetrics)
        if header is None:
            doc = self.documentation.replace("\\", r"\\").replace("\n", r"\n")
            if openmetrics:
                doc = doc.replace('"', r"\"")
            name = self.name
            if self.kind == "counter" and not openmetrics:
                name += "_total"
            header = f"# HELP {name} {doc}\n# TYPE {name} {self.kind}\n".encode()
            self._headers[openmetrics] = header
        return header

    def _child(self, labels: tuple[str, ...]) -> Child:
        raise NotImplementedError

    def labels(self, *values: str) -> Child:
        """The series with these label values, created (at zero) on first use."""
        # Every probe result looks up a dozen existing series: find those without copying.
        group = self._series.get(values[0]) if values else None
        child = group.get(values) if group is not None else None
        if child is not None:
            return child
        if len(values) != len(self.labelnames):
            raise ValueError(f"metric {self.name}: expected labels {self.labelnames}")
        labels = tuple(str(v) for v in values)
        group = self._group(labels[0])
        child = group.get(labels)
        if child is None:
            child = group[labels] = self._child(labels)
            self.touch(labels[0])
        return child

    def _group(self, key: str) -> dict[tuple[str, ...], Child]:
        """One target's series, created with its (empty) rendered lines on first use."""
        group = self._series.get(key)
        if group is None:
            group = self._series[key] = {}
            self._lines[key] = self._om_lines[key] = b""
        return group

    def remove_by_labels(self, labels: Mapping[str, str]) -> None:
        """Drop every series whose labels include ``labels``."""
        index = [(self.labelnames.index(k), v) for k, v in labels.items()]
        for key in list(self._series):
            group = self._series[key]
            for values in [v for v in group if all(v[i] == want for i, want in index)]:
                del group[values]
                self.touch(key)
            if not group:
                del self._series[key], self._lines[key], self._om_lines[key]
                self._dirty.discard(key)
                self._om_dirty.discard(key)

    def forget(self, key: str) -> None:
        """Drop every series of one target."""
        if self._series.pop(key, None) is not None:
            del self._lines[key], self._om_lines[key]
            self._dirty.discard(key)
            self._om_dirty.discard(key)
            self._stale()

    def touch(self, key: str) -> None:
        """Mark one target's lines stale."""
        self._dirty.add(key)
        if self.kind == "histogram":
            self._om_dirty.add(key)
        self._stale()

    def _stale(self) -> None:
        self._pieces.clear()
        self._version += 1
        self._store.changed = True

    def pieces(self, *, openmetrics: bool = False) -> Generator[Piece | None, None, None]:
        """Every sample line in pieces of at most :data:`CHUNK` bytes; ``None``: work was done.

        Each step (one ``next``) renders about RENDER_SLICE bytes or joins at most CHUNK, so a
        caller on the event loop can let it run between steps: targets that change meanwhile
        keep the lines they had and are rendered at the next scrape.
        """
        apart = openmetrics and self.kind == "histogram"
        cached = self._pieces.get(apart)
        if cached is not None:
            yield from cached
            return
        lines, dirty = (self._om_lines, self._om_dirty) if apart else (self._lines, self._dirty)
        size = 0
        for key in list(dirty):
            group = self._series.get(key)
            if group is not None and key in dirty:
                text = lines[key] = "".join(
                    c.lines(self.name, openmetrics=openmetrics)  # type: ignore[attr-defined]
                    for c in group.values()
                ).encode()
                size += len(text)
            dirty.discard(key)
            if size >= RENDER_SLICE:
                size = 0
                yield None
        # The family at this moment: a copy of references, not of text.
        clean, version, texts = not dirty, self._version, list(lines.values())
        made: list[Piece] = []
        for start, stop in _cuts(texts):
            made.append(Piece(b"".join(texts[start:stop])))
            yield made[-1]
        if clean and version == self._version:
            self._pieces[apart] = tuple(made)

    def metric(self) -> Metric:
        """The family as prometheus_client sees it (for generate_latest and tests)."""
        raise NotImplementedError

    def sample_names(self) -> tuple[str, ...]:
        """The names its samples carry."""
        if self.kind == "histogram":
            return (f"{self.name}_bucket", f"{self.name}_count", f"{self.name}_sum")
        return (self.name + "_total",) if self.kind == "counter" else (self.name,)

    def children(self) -> Iterator[Child]:
        """Every series, in exposition order."""
        for group in self._series.values():
            yield from group.values()


class Gauge(Family):
    """A gauge family."""

    kind = "gauge"
    _upstream: type[GaugeMetricFamily] | type[CounterMetricFamily] = GaugeMetricFamily

    def _child(self, labels: tuple[str, ...]) -> Child:
        return GaugeChild(self, labels)

    def labels(self, *values: str) -> GaugeChild:
        """The series with these label values."""
        return super().labels(*values)  # type: ignore[return-value]

    def labels_with(self, values: Sequence[str], extra: Mapping[str, str]) -> GaugeChild:
        """A series with label values and ``extra`` labels of its own (an info series' owners)."""
        pairs = tuple(sorted(extra.items()))
        for name, _ in pairs:
            if not LABEL_NAME.match(name) or name.startswith("__") or name in self.labelnames:
                raise ValueError(f"metric {self.name}: invalid extra label name {name!r}")
        if not pairs:
            return self.labels(*values)
        labels = tuple(str(v) for v in values)
        if len(labels) != len(self.labelnames):
            raise ValueError(f"metric {self.name}: expected labels {self.labelnames}")
        group = self._group(labels[0])
        key = (*labels, *(part for pair in pairs for part in pair))
        child = group.get(key)
        if child is None:
            child = group[key] = GaugeChild(self, labels, pairs)
            self.touch(labels[0])
        return child  # type: ignore[return-value]

    def metric(self) -> Metric:
        """The family as prometheus_client sees it."""
        m = self._upstream(self.name, self.documentation, labels=self.labelnames)
        for c in self.children():
            if c.extra:
                labels = dict(zip(self.labelnames, c.labels, strict=True)) | dict(c.extra)
                m.samples.append(Sample(self.name, labels, c.value))  # type: ignore[attr-defined]
            else:
                m.add_metric(c.labels, c.value)  # type: ignore[attr-defined]
        return m


class Counter(Gauge):
    """A counter family (name given without ``_total``)."""

    kind = "counter"
    _upstream = CounterMetricFamily

    def _child(self, labels: tuple[str, ...]) -> Child:
        return CounterChild(self, labels)

    def labels(self, *values: str) -> CounterChild:
        """The series with these label values."""
        return super().labels(*values)  # type: ignore[return-value]


class Histogram(Family):
    """A histogram family with fixed bucket bounds (``+Inf`` is added)."""

    kind = "histogram"

    def __init__(
        self,
        store: Store,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        buckets: Sequence[float],
    ) -> None:
        super().__init__(store, name, documentation, labelnames)
        bounds = sorted(float(b) for b in buckets)
        if not bounds or bounds[0] < 0:
            # Upstream drops _sum below zero; durations never need it.
            raise ValueError(f"metric {name}: bucket bounds must be non-negative")
        if bounds[-1] != math.inf:
            bounds.append(math.inf)
        self.bounds = tuple(bounds)
        self.les = tuple(floatToGoString(b) for b in bounds)

    def _child(self, labels: tuple[str, ...]) -> Child:
        return HistogramChild(self, labels)

    def labels(self, *values: str) -> HistogramChild:
        """The series with these label values."""
        return super().labels(*values)  # type: ignore[return-value]

    def metric(self) -> Metric:
        """The family as prometheus_client sees it."""
        # Samples as prometheus_client's Histogram yields them: HistogramMetricFamily would
        # drop count and sum when a bucket bound is negative.
        m = Metric(self.name, self.documentation, "histogram")
        for c in self.children():
            h: HistogramChild = c  # type: ignore[assignment]
            labels = dict(zip(self.labelnames, h.labels, strict=True))
            for le, value, mark in zip(self.les, h.buckets, h.exemplars, strict=True):
                m.add_sample(self.name + "_bucket", {**labels, "le": le}, value, exemplar=mark)
            m.add_sample(self.name + "_count", labels, h.buckets[-1])
            m.add_sample(self.name + "_sum", labels, h.sum)
        return m
