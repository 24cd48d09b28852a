"""Per-target series kept rendered, so a scrape's cost follows change, not the number of targets.

(Longer than ~400 lines: the families, their cached lines and the gzip of those lines share
one invariant, "a cached piece is replaced, never mutated", that is easiest to check in one
place.)

A :class:`Store` holds gauge, counter and histogram families grouped by their first label
(the target). Each family keeps every target's sample lines rendered and re-renders only
the targets whose values changed since the last scrape; a scrape joins cached blocks.

prometheus_client defines the format: :meth:`Store.collect` yields the same families as
prometheus_client ``Metric`` objects, so ``generate_latest`` over a registry holding the
store is the oracle the renderer is tested against, byte for byte, in both the text
format and OpenMetrics. The process and platform collectors stay prometheus_client's own
and are rendered by it on every scrape (they are a few dozen lines).
"""

from __future__ import annotations

import math
import re
import time
import zlib
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from typing import Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    Exemplar,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString as _untyped_go_float

# Names in the legacy character set read the same under every escaping scheme a scraper
# may negotiate except "dots" and "values"; those fall back to prometheus_client. No
# colons: upstream's OpenMetrics writer turns them into underscores in sample names only.
_METRIC_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
PLAIN_ESCAPINGS = frozenset({openmetrics.UNDERSCORES, openmetrics.ALLOWUTF8})
EOF = b"# EOF\n"
# Upstream's float formatting (Go's, with +Inf, -Inf and NaN), typed for mypy.
floatToGoString: Callable[[float], str] = _untyped_go_float


# OpenMetrics: an exemplar's label names and values together hold at most 128 characters.
EXEMPLAR_MAX_RUNES = 128


class Collector(Protocol):
    """Anything prometheus_client can collect from (a registry, a collector)."""

    def collect(self) -> Iterable[Metric]:
        """The metric families, with their samples."""


def _label_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


class _Child:
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


class GaugeChild(_Child):
    """A gauge series."""

    __slots__ = ("value",)

    def __init__(
        self, family: Family, labels: tuple[str, ...], extra: tuple[tuple[str, str], ...] = ()
    ) -> None:
        super().__init__(family, labels, extra)
        self.value = 0.0

    def set(self, value: float) -> None:
        """Set the value."""
        self.value = float(value)
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


class HistogramChild(_Child):
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
        if not _LABEL_NAME.match(name):
            raise ValueError(f"invalid exemplar label name {name!r}")


def _exemplar(exemplar: Exemplar | None) -> str:
    """An exemplar as prometheus_client's OpenMetrics writer renders it."""
    if exemplar is None:
        return ""
    labels = ",".join(f'{k}="{_label_value(v)}"' for k, v in sorted(exemplar.labels.items()))
    stamp = "" if exemplar.timestamp is None else f" {exemplar.timestamp}"
    return f" # {{{labels}}} {floatToGoString(exemplar.value)}{stamp}"


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


def _join(pieces: Iterable[Piece | None]) -> bytes:
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
            if not _LABEL_NAME.match(label) or label.startswith("__") or label == "le":
                raise ValueError(f"metric {name}: invalid label name {label!r}")
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.bounds: tuple[float, ...] = ()
        self.les: tuple[str, ...] = ()
        self._store = store
        self._series: dict[str, dict[tuple[str, ...], _Child]] = {}
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

    def _child(self, labels: tuple[str, ...]) -> _Child:
        raise NotImplementedError

    def labels(self, *values: str) -> _Child:
        """The series with these label values, created (at zero) on first use."""
        if len(values) != len(self.labelnames):
            raise ValueError(f"metric {self.name}: expected labels {self.labelnames}")
        labels = tuple(str(v) for v in values)
        group = self._group(labels[0])
        child = group.get(labels)
        if child is None:
            child = group[labels] = self._child(labels)
            self.touch(labels[0])
        return child

    def _group(self, key: str) -> dict[tuple[str, ...], _Child]:
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

    def children(self) -> Iterator[_Child]:
        """Every series, in exposition order."""
        for group in self._series.values():
            yield from group.values()


class Gauge(Family):
    """A gauge family."""

    kind = "gauge"
    _upstream: type[GaugeMetricFamily] | type[CounterMetricFamily] = GaugeMetricFamily

    def _child(self, labels: tuple[str, ...]) -> _Child:
        return GaugeChild(self, labels)

    def labels(self, *values: str) -> GaugeChild:
        """The series with these label values."""
        return super().labels(*values)  # type: ignore[return-value]

    def labels_with(self, values: Sequence[str], extra: Mapping[str, str]) -> GaugeChild:
        """A series with label values and ``extra`` labels of its own (an info series' owners)."""
        pairs = tuple(sorted(extra.items()))
        for name, _ in pairs:
            if not _LABEL_NAME.match(name) or name.startswith("__") or name in self.labelnames:
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

    def _child(self, labels: tuple[str, ...]) -> _Child:
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

    def _child(self, labels: tuple[str, ...]) -> _Child:
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


class Store:
    """The per-target families, in the order they were defined; a prometheus_client collector."""

    def __init__(self) -> None:
        self.families: list[Family] = []
        self.changed = True
        self._bodies: dict[bool, bytes] = {}

    def add(self, family: Family) -> None:
        """Register a family (families register themselves)."""
        if any(f.name == family.name for f in self.families):
            raise ValueError(f"metric {family.name} is defined twice")
        self.families.append(family)
        self.changed = True

    def gauge(self, name: str, documentation: str, labelnames: Sequence[str]) -> Gauge:
        """A new gauge family."""
        return Gauge(self, name, documentation, labelnames)

    def counter(self, name: str, documentation: str, labelnames: Sequence[str]) -> Counter:
        """A new counter family."""
        return Counter(self, name, documentation, labelnames)

    def histogram(
        self, name: str, documentation: str, labelnames: Sequence[str], buckets: Sequence[float]
    ) -> Histogram:
        """A new histogram family."""
        return Histogram(self, name, documentation, labelnames, buckets)

    def forget(self, key: str) -> None:
        """Drop every series of one target."""
        for family in self.families:
            family.forget(key)

    def series(self, key: str) -> int:
        """How many series one target has (a histogram counts its buckets, count and sum)."""
        total = 0
        for family in self.families:
            n = len(family._series.get(key, ()))
            total += n * (len(family.bounds) + 2) if family.bounds else n
        return total

    def collect(self, names: frozenset[str] | None = None) -> Iterator[Metric]:
        """Every family (or those that can hold a sample in ``names``), as upstream metrics."""
        for family in self.families:
            if names is None or not names.isdisjoint(family.sample_names()):
                yield family.metric()

    def pieces(self, *, openmetrics: bool = False) -> Generator[Piece | None, None, None]:
        """Every family's HELP and TYPE, then its samples, in bounded steps (see Family)."""
        for family in list(self.families):
            yield Piece(family.header(openmetrics=openmetrics))
            yield from family.pieces(openmetrics=openmetrics)

    def render(self, *, openmetrics: bool = False) -> bytes:
        """:meth:`pieces` joined in one go; the same bytes object while nothing changes."""
        if self.changed:
            self._bodies.clear()
            self.changed = False
        body = self._bodies.get(openmetrics)
        if body is None:
            body = self._bodies[openmetrics] = _join(self.pieces(openmetrics=openmetrics))
        return body


# gzip member header (RFC 1952): magic, deflate, no flags, no mtime, no extra flags, OS unknown.
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
_FINAL_BLOCK = b"\x03\x00"  # an empty final fixed-Huffman block


class Gzip:
    """One gzip member written piece by piece; :meth:`feed` may run in a worker thread.

    Each piece is deflated on its own and ends with a sync flush (byte-aligned, not final),
    so the pieces concatenate into one valid deflate stream (RFC 1951) inside one gzip
    member (RFC 1952). A cached piece keeps its deflated form, so a scrape recompresses
    only what changed. zlib releases the interpreter lock while it works.
    """

    def __init__(self, level: int = 6) -> None:
        self.level = level
        self._crc = 0
        self._size = 0

    def feed(self, pieces: Iterable[Piece]) -> bytes:
        """The deflated form of ``pieces``, in order."""
        out = []
        for piece in pieces:
            deflated = piece.deflated
            if deflated is None:
                c = zlib.compressobj(self.level, zlib.DEFLATED, -15)
                # Two threads may both compute it: the same bytes, set atomically.
                deflated = piece.deflated = c.compress(piece.text) + c.flush(zlib.Z_SYNC_FLUSH)
            out.append(deflated)
            self._crc = zlib.crc32(piece.text, self._crc)
            self._size += len(piece.text)
        return b"".join(out)

    def trailer(self) -> bytes:
        """The end of the member: a final empty block, the CRC-32 and the size."""
        size = (self._size & 0xFFFFFFFF).to_bytes(4, "little")
        return _FINAL_BLOCK + self._crc.to_bytes(4, "little") + size

    def compress(self, pieces: Iterable[Piece]) -> bytes:
        """One whole gzip member holding ``pieces`` (for tests and benchmarks)."""
        return GZIP_HEADER + self.feed(pieces) + self.trailer()


class Exposition:
    """The whole /metrics body: prometheus_client's own collectors, then the cached store."""

    def __init__(self, static: CollectorRegistry, store: Store, *, gzip_level: int = 6) -> None:
        self.static = static
        self.store = store
        self.gzip_level = gzip_level
        # The same families as one registry, for generate_latest and name[] filters.
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(static)
        self.registry.register(store)

    def pieces(self, *, openmetrics: bool = False) -> Generator[Piece | None, None, None]:
        """The exposition in bounded steps (run on the thread that updates the store)."""
        yield Piece(self._static(openmetrics=openmetrics))
        yield from self.store.pieces(openmetrics=openmetrics)
        if openmetrics:
            yield Piece(EOF)

    def render(self, *, openmetrics: bool = False) -> bytes:
        """The exposition, byte for byte what prometheus_client renders for :attr:`registry`."""
        head = self._static(openmetrics=openmetrics)
        tail = EOF if openmetrics else b""
        return b"".join((head, self.store.render(openmetrics=openmetrics), tail))

    def restricted(self, names: Iterable[str]) -> Restricted:
        """Only the samples in ``names`` (``name[]``), collecting only families that hold them."""
        wanted = frozenset(names)
        return Restricted(_Chain(self.static, lambda: self.store.collect(wanted)), wanted)

    def _static(self, *, openmetrics: bool) -> bytes:
        if not openmetrics:
            return generate_latest(self.static)
        return openmetrics_latest(self.static).removesuffix(EOF)


def openmetrics_latest(collector: Collector) -> bytes:
    """prometheus_client's OpenMetrics rendering (typed for mypy)."""
    body: bytes = openmetrics.generate_latest(collector)  # type: ignore[no-untyped-call]
    return body


class _Chain:
    """A registry's families, then more."""

    def __init__(self, first: Collector, then: Callable[[], Iterable[Metric]]) -> None:
        self._first = first
        self._then = then

    def collect(self) -> Iterator[Metric]:
        """Both, in order."""
        yield from self._first.collect()
        yield from self._then()


class Restricted:
    """Only the samples named in ``names`` (the ``name[]`` query), as upstream filters them."""

    def __init__(self, collector: Collector, names: Iterable[str]) -> None:
        self._collector = collector
        self._names = frozenset(names)

    def collect(self) -> Iterator[Metric]:
        """The families with at least one wanted sample, holding only those."""
        for metric in self._collector.collect():
            samples = [s for s in metric.samples if s.name in self._names]
            if samples:
                m = Metric(metric.name, metric.documentation, metric.type)
                m.samples = samples
                yield m
