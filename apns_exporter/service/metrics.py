"""Every metric the exporter serves, in a private registry fed by probe results.

Probes run on their own schedule, not per scrape (canary pushes have side effects and
Apple rate limits), so values describe the most recent run; HELP texts say so. The
per-target families are defined in :mod:`apns_exporter.service.families`, one group per
probe; :meth:`Metrics.record` is the one way in, and it only turns results (and the
target's status the service derived from them) into series. The only state kept is what
the series need: each target's labels and static facts.
"""

from __future__ import annotations

import platform
from collections.abc import Iterator
from dataclasses import replace

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
from apns_exporter.probes import (
    BroadcastResult,
    CanaryResult,
    ConnectionResult,
    CredentialsResult,
    PingResult,
    ProbeResult,
    ReachabilityResult,
    TlsResult,
)
from apns_exporter.probes.results import EnvironmentsResult
from apns_exporter.receipts.book import Delivery
from apns_exporter.service.exposition import Exposition, Store
from apns_exporter.service.families import (
    MAX_ROOT_LABELS,
    BroadcastSeries,
    CanarySeries,
    ChainSeries,
    CredentialSeries,
    DeliverySeries,
    KeySeries,
    PingSeries,
    ReachabilitySeries,
    TargetSeries,
)
from apns_exporter.service.family import Family
from apns_exporter.service.series import (
    RECEIPT_REJECTIONS,
    TARGET,
    Families,
    Labels,
    response_labels,
)
from apns_exporter.service.state import TargetInfo, TargetStatus

__all__ = ["TARGET", "Metrics", "response_labels"]


class Metrics:
    """The exporter's metric families; call :meth:`record` with each probe result."""

    def __init__(
        self, registry: CollectorRegistry | None = None, *, process_metrics: bool = True
    ) -> None:
        # Every counter's _created twin would double the series for no alerting value.
        disable_created_metrics()  # type: ignore[no-untyped-call]  # unannotated upstream
        # prometheus_client's own collectors and the few process-wide families; the
        # per-target families live in the store, kept rendered (service/family.py).
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
        self.discovery_errors = Counter(
            "apns_discovery_errors",
            "Files a discover source found but could not list as a target, by source and "
            "reason (each file is counted once per version).",
            ["source", "reason"],
            registry=r,
        )
        self.discovered = Gauge(
            "apns_discovery_targets",
            "Targets a discover source lists now.",
            ["source"],
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
            "apns_exporter_shards",
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
        self.environment_root = Gauge(
            "apns_environment_root_info",
            "A root the environment's push host presents on at least one address (its common "
            "name, and SHA-256 fingerprint when a trust store verified it); always 1.",
            ["apns_environment", "root", "fingerprint_sha256"],
            registry=r,
        )
        self.environment_ok = Gauge(
            "apns_environment_check_success",
            "1 if the last check of the environment's server chain got an answer.",
            ["apns_environment"],
            registry=r,
        )
        self._environment_roots: dict[str, set[tuple[str, str]]] = {}
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
        self.broadcast = BroadcastSeries(make)
        self._targets: dict[str, TargetInfo] = {}  # each target's labels and static facts

    def families(self) -> Iterator[MetricWrapperBase | Family]:
        """Every metric family the exporter defines (not the process collectors)."""
        yield from (self.build_info, self.receipts_rejected, self.reload_ok, self.reload_time)
        yield from (self.shard_index, self.shard_count, self.targets_configured)
        yield self.targets_probed
        yield from (self.environment_root, self.environment_ok)
        yield from (self.discovery_errors, self.discovered)
        yield from self.exposition.store.families

    def _labels(self, target: str) -> Labels:
        info = self._targets.get(target)
        return (target, info.environment if info is not None else "")

    def delivered(self, delivery: Delivery, now: float) -> None:
        """Count a canary confirmed by its device."""
        t = self._labels(delivery.target)
        self.delivery.duration.labels(*t).observe(delivery.latency)
        self.delivery.deliveries.labels(*t).inc()
        self.delivery.last.labels(*t).set(now)

    def lost(self, target: str) -> None:
        """Count a canary whose receipt never came."""
        if target in self._targets:
            self.delivery.lost.labels(*self._labels(target)).inc()

    def receipt_rejected(self, reason: str) -> None:
        """Count a refused receipt under the reason its check raised (a closed set)."""
        self.receipts_rejected.labels(reason).inc()

    def record_environments(self, result: EnvironmentsResult) -> None:
        """Which roots each environment presents; an unanswered check keeps the last known."""
        for check in result.checks:
            self.environment_ok.labels(check.environment).set(1 if check.ok else 0)
            if not check.ok:
                continue
            roots = {(r.root, r.fingerprint_sha256) for r in check.roots[:MAX_ROOT_LABELS]}
            for gone in self._environment_roots.get(check.environment, set()) - roots:
                self.environment_root.remove(check.environment, *gone)
            for root in roots:
                self.environment_root.labels(check.environment, *root).set(1)
            self._environment_roots[check.environment] = roots

    def environments_off(self) -> None:
        """Drop the environment series: the check is switched off."""
        self.environment_root.clear()
        self.environment_ok.clear()
        self._environment_roots.clear()

    def discovery_failed(self, source: str, reason: str) -> None:
        """Count a file a discover source could not list (``reason`` from a closed set)."""
        self.discovery_errors.labels(source, reason).inc()

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

    def forget(self, name: str) -> None:
        """Remove every series of a target, so a removed target disappears from /metrics."""
        self.exposition.store.forget(name)
        self.target.forgot(name)
        self._targets.pop(name, None)

    def add_target(self, info: TargetInfo) -> None:
        """Create a target's series, so the values alerts select read 0 before any event.

        An ``inventory_only`` target never connects: it gets its credential's series only.
        """
        self._targets[info.name] = info
        t = (info.name, info.environment)
        # How often each probe runs: staleness is judged against each target's own interval.
        for kind, seconds in info.intervals:
            self.probe_interval.labels(*t, kind).set(seconds)
        network = not info.inventory_only
        self.target.add(
            t,
            info.host,
            info.port,
            info.topic,
            info.auth_method,
            network=network,
            owners=info.labels,
        )
        if info.key is not None:
            self.key.add(t, info.key, info.rotate_by, network=network)
        if not network:
            return
        if info.canary_interval is not None:
            self.canary.add(t)
        if info.delivery:
            self.delivery.add(t)

    def record(self, result: ProbeResult, status: TargetStatus) -> None:
        """Turn one probe result, and the target's status after it, into series."""
        info = self._targets.get(result.target)
        if info is None:
            return  # the target was removed while this run was in flight
        t = (info.name, info.environment)
        if isinstance(result, ConnectionResult):
            self.target.record_connection(t, result)
        match result:
            case CanaryResult():
                self.canary.record(t, result)
                self.key.record(t, result, status)
            case PingResult():
                self.ping.record(t, result)
                self.target.connection_up.labels(*t).set(1 if result.ok else 0)
            case ReachabilityResult():
                self.reachability.record(t, result)
            case TlsResult():
                self.chain.record(t, result)
            case BroadcastResult():
                self.broadcast.record(t, result)
            case CredentialsResult():
                self.credential.record(t, result)
                if status.topic_change is not None:
                    # The MDM trap: a renewed certificate came back with another topic.
                    previous, topic = status.topic_change
                    self.credential.topic_changed_to(t, previous, topic, result.run.finished_at)
                if status.topic is not None and status.topic != info.topic:
                    # The certificate in use changed, and with it the topic the canary sends.
                    self._targets[info.name] = info = replace(info, topic=status.topic)
                    self.target.describe(
                        t, info.host, info.port, info.topic, info.auth_method, info.labels
                    )
        if info.inventory_only:
            return
        if status.up is not None:
            self.target.up.labels(*t).set(1 if status.up else 0)
        self.target.set_layer(t, status.layer)
