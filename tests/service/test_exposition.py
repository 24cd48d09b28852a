"""The cached renderer against prometheus_client's own exposition, byte for byte."""

from __future__ import annotations

import gzip
import math
from dataclasses import dataclass
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, disable_created_metrics, generate_latest
from prometheus_client import Counter as ClientCounter
from prometheus_client import Gauge as ClientGauge
from prometheus_client import Histogram as ClientHistogram

from apns_exporter.service.exposition import (
    Exposition,
    Gzip,
    Restricted,
    Store,
    openmetrics_latest,
)
from apns_exporter.service.samples import GaugeChild

# The exporter serves no _created series; the oracle must not either.
disable_created_metrics()  # type: ignore[no-untyped-call]

SPECIALS = [math.nan, math.inf, -math.inf, 0.0, -0.0, 1e22, 1.5e-7, 123456789.0]
NUMBERS = st.one_of(st.sampled_from(SPECIALS), st.floats(allow_nan=True, allow_infinity=True))
AMOUNTS = st.one_of(st.sampled_from([0.0, 1.0, math.inf]), st.floats(min_value=0, max_value=1e9))
# Label values and HELP texts lean on the characters the format escapes.
TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from(["\\", "\n", '"', "{", "}", ",", "=", " ", "é", "☃"]),
        st.characters(codec="utf-8"),
    ),
    max_size=12,
)
NAME = st.from_regex(r"[a-z][a-z0-9_]{0,10}x", fullmatch=True)
LABEL = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True).filter(lambda s: s != "le")


@dataclass
class FamilySpec:
    kind: str
    name: str
    doc: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...]


@st.composite
def families(draw: st.DrawFn) -> list[FamilySpec]:
    names = draw(st.lists(NAME, min_size=1, max_size=5, unique=True))
    specs = []
    for name in names:
        kind = draw(st.sampled_from(["gauge", "counter", "histogram"]))
        extra = draw(st.lists(LABEL.filter(lambda s: s != "target"), max_size=2, unique=True))
        buckets = tuple(
            sorted(draw(st.lists(st.floats(0, 1e6), min_size=1, max_size=4, unique=True)))
        )
        specs.append(FamilySpec(kind, name, draw(TEXT), ("target", *extra), buckets))
    return specs


@dataclass
class Op:
    family: int
    action: str
    target: str
    extra: tuple[str, ...]
    value: float
    render: bool


OPS = st.lists(
    st.builds(
        Op,
        st.integers(0, 4),
        st.sampled_from(["set", "inc", "observe", "exemplar", "touch", "remove", "forget"]),
        st.sampled_from(["a", "b", 'c"\\\n']) | TEXT,
        st.tuples(TEXT, TEXT),
        NUMBERS,
        st.booleans(),
    ),
    max_size=40,
)


def _static() -> CollectorRegistry:
    registry = CollectorRegistry()
    ClientGauge("build_info", "Build.", ["version"], registry=registry).labels('1"\\').set(1)
    ClientCounter("reloads", "Reloads.", registry=registry).inc(3)
    return registry


class Pair:
    """The same families in the store and as prometheus_client's own metrics."""

    def __init__(self, specs: list[FamilySpec]) -> None:
        self.specs = specs
        self.store = Store()
        self.exposition = Exposition(_static(), self.store)
        self.client = CollectorRegistry()
        self.ours: list[object] = []
        self.theirs: list[object] = []
        for s in specs:
            if s.kind == "gauge":
                self.ours.append(self.store.gauge(s.name, s.doc, s.labels))
                self.theirs.append(ClientGauge(s.name, s.doc, s.labels, registry=self.client))
            elif s.kind == "counter":
                self.ours.append(self.store.counter(s.name, s.doc, s.labels))
                self.theirs.append(ClientCounter(s.name, s.doc, s.labels, registry=self.client))
            else:
                self.ours.append(self.store.histogram(s.name, s.doc, s.labels, s.buckets))
                self.theirs.append(
                    ClientHistogram(
                        s.name, s.doc, s.labels, buckets=s.buckets, registry=self.client
                    )
                )

    def apply(self, op: Op) -> None:
        i = op.family % len(self.specs)
        spec = self.specs[i]
        values = (op.target, *op.extra[: len(spec.labels) - 1])
        for family in (self.ours[i], self.theirs[i]):
            if op.action == "remove":
                family.remove_by_labels({"target": op.target})  # type: ignore[attr-defined]
                continue
            if op.action == "forget":
                continue
            child = family.labels(*values)  # type: ignore[attr-defined]
            if op.action == "touch":
                continue
            if spec.kind == "gauge":
                child.inc(op.value) if op.action == "inc" else child.set(op.value)
            elif spec.kind == "counter":
                child.inc(abs(op.value) if not math.isnan(op.value) else 1.0)
            elif op.action == "exemplar":
                # Both stamp the exemplar with time.time(): one clock for both.
                with mock.patch("time.time", return_value=1700000000.25):
                    child.observe(op.value, {"apns_id": op.extra[0], "apns_unique_id": "u"})
            else:
                child.observe(op.value)
        if op.action == "forget":
            self.store.forget(op.target)
            for family in self.theirs:
                family.remove_by_labels({"target": op.target})  # type: ignore[attr-defined]

    def check(self) -> None:
        """Both formats equal upstream's for the store, and line for line its twin's."""
        registry = self.exposition.registry
        text = self.exposition.render()
        assert text == generate_latest(registry)
        om = self.exposition.render(openmetrics=True)
        assert om == openmetrics_latest(registry)
        twin = generate_latest(self.exposition.static) + generate_latest(self.client)
        _same_lines(text, twin)
        twin_om = openmetrics_latest(self.exposition.static).removesuffix(b"# EOF\n")
        _same_lines(om, twin_om + openmetrics_latest(self.client))
        pieces = [p for p in self.exposition.pieces(openmetrics=True) if p is not None]
        assert b"".join(p.text for p in pieces) == om
        # Twice: the second member reuses each piece's deflated form.
        for _ in range(2):
            assert gzip.decompress(Gzip().compress(pieces)) == om


def _same_lines(ours: bytes, theirs: bytes) -> None:
    # Series order within a family differs (ours groups by target); the lines may not.
    assert [x for x in ours.splitlines() if x.startswith(b"#")] == [
        x for x in theirs.splitlines() if x.startswith(b"#")
    ]
    assert sorted(ours.splitlines()) == sorted(theirs.splitlines())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(families(), OPS)
def test_renderer_matches_prometheus_client(specs: list[FamilySpec], ops: list[Op]) -> None:
    """After any sequence of updates, both formats equal prometheus_client's bytes, cache or not."""
    pair = Pair(specs)
    pair.check()
    for op in ops:
        pair.apply(op)
        if op.render:
            pair.check()
    pair.check()


def test_exemplars_render_in_openmetrics_only_as_prometheus_client_does() -> None:
    """A canary latency exemplar: byte for byte upstream's OpenMetrics; absent from text."""
    pair = Pair([FamilySpec("histogram", "lat_seconds", "Latency.", ("target",), (0.1, 1.0))])
    ids = {"apns_id": "8F2B0D4E-1C8A-4F4B-9C7E-2B1A3D4C5E6F", "apns_unique_id": "a1b2"}
    with mock.patch("time.time", return_value=1700000000.5):
        for family in (pair.ours[0], pair.theirs[0]):
            family.labels("prod").observe(0.25, ids)  # type: ignore[attr-defined]
    pair.check()
    om = pair.exposition.render(openmetrics=True)
    line = (
        b'lat_seconds_bucket{le="1.0",target="prod"} 1.0 # {apns_id="8F2B0D4E-1C8A-4F4B-9C7E-'
        b'2B1A3D4C5E6F",apns_unique_id="a1b2"} 0.25 1700000000.5'
    )
    assert line in om.splitlines()
    assert b"apns_id" not in pair.exposition.render()


def test_exemplars_over_the_openmetrics_bound_are_refused() -> None:
    """An exemplar longer than OpenMetrics' 128 characters is refused, never rendered."""
    store = Store()
    child = store.histogram("lat_seconds", "Latency.", ("target",), (1.0,)).labels("prod")
    with pytest.raises(ValueError, match="128"):
        child.observe(0.5, {"apns_id": "x" * 130})
    assert b"#" not in store.render(openmetrics=True).replace(b"# HELP", b"").replace(
        b"# TYPE", b""
    )


def test_unchanged_store_is_served_from_cache() -> None:
    """A scrape with no new results returns the very same body object, rendered once."""
    store = Store()
    store.gauge("g", "G.", ["target"]).labels("a").set(1)
    first = store.render()
    assert store.render() is first


def test_only_changed_target_is_rendered_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """A result for one target re-renders that target's lines and no other's."""
    store = Store()
    gauge = store.gauge("g", "G.", ["target"])
    a = gauge.labels("a")
    gauge.labels("b").set(1)
    store.render()
    rendered: list[str] = []
    original = GaugeChild.lines

    def spy(child: GaugeChild, name: str, *, openmetrics: bool = False) -> str:
        rendered.append(child.labels[0])
        return original(child, name, openmetrics=openmetrics)

    monkeypatch.setattr(GaugeChild, "lines", spy)
    a.set(2)
    assert store.render().endswith(b'g{target="a"} 2.0\ng{target="b"} 1.0\n')
    assert rendered == ["a"]


def test_restricted_names_match_upstream_filter() -> None:
    """The name[] filter keeps only the named samples, as prometheus_client's registry does."""
    pair = Pair([FamilySpec("histogram", "h", "H.", ("target",), (1.0,))])
    for family in (pair.ours[0], pair.theirs[0]):
        family.labels("a").observe(0.5)  # type: ignore[attr-defined]
    names = ["h_count", "build_info"]
    body = generate_latest(Restricted(pair.exposition.registry, names))
    assert generate_latest(pair.exposition.restricted(names)) == body
    static = pair.exposition.static.restricted_registry(names)
    assert body == generate_latest(static) + generate_latest(pair.client.restricted_registry(names))
    assert b"h_count" in body
    assert b"h_sum" not in body


def test_series_counts_histogram_lines() -> None:
    """A target's series count includes each histogram bucket, count and sum."""
    store = Store()
    store.histogram("h", "H.", ["target"], [0.1, 1.0]).labels("a")
    store.gauge("g", "G.", ["target", "x"]).labels("a", "1")
    assert store.series("a") == 6
    store.forget("a")
    assert store.series("a") == 0


@pytest.mark.parametrize(
    ("name", "labels"),
    [("bad-name", ["target"]), ("a:b", ["target"]), ("ok", []), ("ok", ["target", "le"])],
)
def test_invalid_names_are_refused(name: str, labels: list[str]) -> None:
    """Names outside the legacy set (or with colons), and reserved labels, are refused."""
    with pytest.raises(ValueError, match="name"):
        Store().gauge(name, "doc", labels)


def test_negative_buckets_are_refused() -> None:
    """A histogram bound below zero is refused (upstream would drop its _sum)."""
    with pytest.raises(ValueError, match="non-negative"):
        Store().histogram("h", "H.", ["target"], [-1.0, 1.0])


def test_counter_refuses_to_go_down() -> None:
    """A counter rejects a negative increment, as prometheus_client's does."""
    with pytest.raises(ValueError, match="non-negative"):
        Store().counter("c", "C.", ["target"]).labels("a").inc(-1)


def test_series_with_extra_labels_render_as_prometheus_client_does() -> None:
    """An info series with labels of its own renders, in both formats, as upstream's would."""
    store = Store()
    info = store.gauge("x_info", "Info.", ["target", "host"])
    info.labels_with(("a", "h1"), {"team": 'mdm "core"', "customer": "acme"}).set(1)
    info.labels_with(("b", "h2"), {}).set(1)
    exposition = Exposition(CollectorRegistry(), store)
    client = CollectorRegistry()
    upstream = ClientGauge(
        "x_info", "Info.", ["customer", "host", "target", "team"], registry=client
    )
    upstream.labels(customer="acme", host="h1", target="a", team='mdm "core"').set(1)
    text = exposition.render().decode()
    assert 'x_info{customer="acme",host="h1",target="a",team="mdm \\"core\\""} 1.0' in text
    assert 'x_info{host="h2",target="b"} 1.0' in text
    assert exposition.render() == generate_latest(exposition.registry)
    om = exposition.render(openmetrics=True)
    assert om == openmetrics_latest(exposition.registry)
    assert generate_latest(client).splitlines()[2] in text.encode().splitlines()


def test_extra_labels_may_not_shadow_the_family_labels() -> None:
    """An extra label named like one of the family's own is refused, not silently doubled."""
    info = Store().gauge("x_info", "Info.", ["target", "host"])
    with pytest.raises(ValueError, match="invalid extra label name 'host'"):
        info.labels_with(("a", "h"), {"host": "other"})
