"""Per-target series kept rendered, so a scrape's cost follows change, not the number of targets.

A :class:`Store` holds gauge, counter and histogram families (service/family.py) grouped by
their first label (the target). Each family keeps every target's sample lines rendered and
re-renders only the targets whose values changed since the last scrape; a scrape streams
cached pieces of bounded size, and :class:`Gzip` deflates them piece by piece.

prometheus_client defines the format: :meth:`Store.collect` yields the same families as
prometheus_client ``Metric`` objects, so ``generate_latest`` over a registry holding the
store is the oracle the renderer is tested against, byte for byte, in both the text
format and OpenMetrics. The process and platform collectors stay prometheus_client's own
and are rendered by it on every scrape (they are a few dozen lines).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from typing import Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.openmetrics import exposition as openmetrics

from apns_exporter.service.family import Counter, Family, Gauge, Histogram, Piece, join

PLAIN_ESCAPINGS = frozenset({openmetrics.UNDERSCORES, openmetrics.ALLOWUTF8})
EOF = b"# EOF\n"


class Collector(Protocol):
    """Anything prometheus_client can collect from (a registry, a collector)."""

    def collect(self) -> Iterable[Metric]:
        """The metric families, with their samples."""


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
            body = self._bodies[openmetrics] = join(self.pieces(openmetrics=openmetrics))
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
