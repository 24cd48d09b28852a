"""Every metric the exporter serves, in a private registry fed by probe results.

Probes run on their own schedule, not per scrape (canary pushes have side effects and
Apple rate limits), so values describe the most recent run; HELP texts say so. The
per-target families are defined in :mod:`apns_exporter.service.families`, one group per
probe; this module turns results into series and holds no runtime state but what the
series need (each target's environment, the latest canary and PING verdicts).
"""

from __future__ import annotations

import platform
from collections.abc import Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.metrics import MetricWrapperBase

from apns_exporter import __version__
from apns_exporter.client.protocol import Event, GoAway, SettingsChanged
from apns_exporter.probes import ProbeKind, ProbeResult
from apns_exporter.receipts.book import Delivery
from apns_exporter.service.exposition import Exposition, Family, Store
from apns_exporter.service.families import (
    CanarySeries,
    ChainSeries,
    CredentialSeries,
    DeliverySeries,
    KeySeries,
    PingSeries,
    ReachabilitySeries,
    TargetSeries,
)
from apns_exporter.service.series import (
    RECEIPT_REJECTIONS,
    TARGET,
    Families,
    Labels,
    bounded,
    goaway_label,
    response_labels,
)

__all__ = ["TARGET", "Metrics", "response_labels"]


class Metrics:
    """The exporter's metric families; call :meth:`record` with each probe result."""

    def __init__(
        self, registry: CollectorRegistry | None = None, *, process_metrics: bool = True
    ) -> None:
        # Every counter's _created twin would double the series for no alerting value.
        disable_created_metrics()  # type: ignore[no-untyped-call]  # unannotated upstream
        # prometheus_client's own collectors and the few process-wide families; the
        # per-target families live in the store, kept rendered (service/exposition.py).
        r = registry or CollectorRegistry(auto_describe=True)
        if process_metrics:
            # The exporter's own health, as every Prometheus exporter reports it.
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
            GCCollector(registry=r)
        self.build_info = Gauge(
            "apns_exporter_build_info",
            "Build information; always 1.",
            ["version", "python_version"],
            registry=r,
        )
        self.build_info.labels(__version__, platform.python_version()).set(1)
        self.receipts_rejected = Counter(
            "apns_canary_receipts_rejected",
            "Receipts refused by the receipt listener, by reason.",
            ["reason"],
            registry=r,
        )
        for reason in RECEIPT_REJECTIONS:
            self.receipts_rejected.labels(reason)
        self.reload_ok = Gauge(
            "apns_exporter_config_last_reload_successful",
            "1 if the last configuration reload succeeded.",
            registry=r,
        )
        self.reload_time = Gauge(
            "apns_exporter_config_last_reload_success_timestamp_seconds",
            "When the configuration was last loaded successfully.",
            registry=r,
        )
        # Meta-monitoring: a missing shard or an unprobed target is otherwise silent.
        self.shard_index = Gauge(
            "apns_exporter_shard_index",
            "This replica's shard I of --targets.shard I/N.",
            registry=r,
        )
        self.shard_count = Gauge(
            "apns_exporter_shard_count",
            "Shards N the targets are split into (1: unsharded).",
            registry=r,
        )
        self.shard_count.set(1)
        self.targets_configured = Gauge(
            "apns_exporter_targets_configured",
            "Targets in the loaded configuration, every shard's.",
            registry=r,
        )
        self.targets_probed = Gauge(
            "apns_exporter_targets_probed", "Targets this replica probes (its shard's).", registry=r
        )
        self.exposition = Exposition(r, Store())
        # Everything /metrics serves, for generate_latest, get_sample_value and tests.
        self.registry = self.exposition.registry
        self._families = make = Families(self.exposition.store)
        self.target = TargetSeries(make)
        self.ping = PingSeries(make)
        self.canary = CanarySeries(make)
        self.key = KeySeries(make)
        self.credential = CredentialSeries(make)
        self.delivery = DeliverySeries(make)
        self.chain = ChainSeries(make)
        self.reachability = ReachabilitySeries(make)
        self.probe_interval = make.gauge(
            "apns_probe_interval_seconds", "Configured interval of each probe.", "probe"
        )
        self._environments: dict[str, str] = {}
        self._has_canary: dict[str, bool] = {}
        self._latest: dict[tuple[str, ProbeKind], ProbeResult] = {}

    def families(self) -> Iterator[MetricWrapperBase | Family]:
        """Every metric family the exporter defines (not the process collectors)."""
        yield from (self.build_info, self.receipts_rejected, self.reload_ok, self.reload_time)
        yield from (self.shard_index, self.shard_count, self.targets_configured)
        yield self.targets_probed
        yield from self.exposition.store.families

    def _labels(self, target: str) -> Labels:
        return (target, self._environments.get(target, ""))

    def delivered(self, delivery: Delivery, now: float) -> None:
        """Count a canary confirmed by its device."""
        t = self._labels(delivery.target)
        self.delivery.duration.labels(*t).observe(delivery.latency)
        self.delivery.deliveries.labels(*t).inc()
        self.delivery.last.labels(*t).set(now)

    def lost(self, target: str) -> None:
        """Count a canary whose receipt never came."""
        if target in self._environments:
            self.delivery.lost.labels(*self._labels(target)).inc()

    def receipt_rejected(self, reason: str) -> None:
        """Count a refused receipt (the reason set is closed)."""
        self.receipts_rejected.labels(bounded(reason, RECEIPT_REJECTIONS, "malformed")).inc()

    def reloaded(self, ok: bool, now: float) -> None:
        """Record the outcome of loading the configuration."""
        self.reload_ok.set(1 if ok else 0)
        if ok:
            self.reload_time.set(now)

    def sharded(self, shard: tuple[int, int], configured: int, probed: int) -> None:
        """Record this replica's shard and how many of the configured targets it probes."""
        self.shard_index.set(shard[0])
        self.shard_count.set(shard[1])
        self.targets_configured.set(configured)
        self.targets_probed.set(probed)

    def intervals(self, target: str, every: dict[ProbeKind, float]) -> None:
        """Record how often each probe of ``target`` runs (staleness is judged against it)."""
        for kind, seconds in every.items():
            self.probe_interval.labels(*self._labels(target), kind.value).set(seconds)

    def forget(self, name: str) -> None:
        """Remove every series of a target, so a removed target disappears from /metrics."""
        self.exposition.store.forget(name)
        self._environments.pop(name, None)
        self._has_canary.pop(name, None)
        self.key.forget(name)
        for kind in ProbeKind:
            self._latest.pop((name, kind), None)

    def add_target(
        self,
        name: str,
        environment: str,
        *,
        host: str,
        port: int,
        topic: str,
        auth_method: str,
        canary_interval: float | None,
        ping_interval: float,
        key: tuple[str, str] | None = None,
        rotate_by: float | None = None,
        delivery: bool = False,
        inventory_only: bool = False,
    ) -> None:
        """Create a target's series, so the values alerts select read 0 before any event.

        An ``inventory_only`` target never connects: it gets its credential's series only.
        """
        self._environments[name] = environment
        self._has_canary[name] = canary_interval is not None
        t = (name, environment)
        network = not inventory_only
        self.target.add(t, host, port, topic, auth_method, network=network)
        if key is not None:
            self.key.add(t, key, rotate_by, network=network)
        if not network:
            return
        self.ping.add(t, ping_interval)
        if canary_interval is not None:
            self.canary.add(t, canary_interval)
        self.chain.add(t)
        if delivery:
            self.delivery.add(t)

    def record(self, result: ProbeResult) -> None:
        """Fold one probe result into the metrics."""
        t = self._labels(result.target)
        self.target.record_dials(t, result.dials)
        if result.probe is ProbeKind.CANARY:
            self.canary.record(t, result)
            self.key.record(t, result)
            self.target.up.labels(*t).set(1 if result.ok else 0)
        elif result.probe is ProbeKind.PING:
            self.ping.record(t, result)
            self.target.connection_up.labels(*t).set(1 if result.ok else 0)
            if not self._has_canary.get(t[0], False):
                self.target.up.labels(*t).set(1 if result.ok else 0)
        elif result.probe is ProbeKind.REACHABILITY:
            self.reachability.record(t, result)
        elif result.probe is ProbeKind.TLS:
            self.chain.record(t, result)
        elif result.probe is ProbeKind.CREDENTIALS:
            self.credential.record(t, result)
        self._latest[(result.target, result.probe)] = result
        self._set_layer(t)

    def _set_layer(self, t: Labels) -> None:
        # The canary sees every layer up to APNs itself, so its verdict wins; the PING
        # speaks for targets (or moments) without a failing canary.
        canary = self._latest.get((t[0], ProbeKind.CANARY))
        ping = self._latest.get((t[0], ProbeKind.PING))
        layer = canary.layer if canary is not None else None
        if layer is None and ping is not None:
            layer = ping.layer
        self.target.set_layer(t, layer)

    def observe(self, target: str, event: Event, *, streams: bool = True) -> None:
        """Count a connection-level event as it happens (``streams``: track its stream limit)."""
        t = self._labels(target)
        if isinstance(event, GoAway):
            self.target.goaways.labels(*t, goaway_label(event)).inc()
        elif isinstance(event, SettingsChanged) and streams:
            self.target.max_streams.labels(*t).set(event.max_concurrent_streams)
