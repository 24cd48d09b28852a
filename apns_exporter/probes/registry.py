"""Every probe kind: how to run it, when a target runs it, and the deadline of one run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from apns_exporter.config import GlobalConfig, Target
from apns_exporter.probes import (
    Probe,
    ProbeKind,
    broadcast,
    canary,
    credentials,
    ping,
    reachability,
    tls,
)


@dataclass(frozen=True)
class ProbeSpec:
    """One probe kind and its rules."""

    kind: ProbeKind
    run: Probe
    # How often a target runs it; None when the target does not run it at all.
    interval: Callable[[Target, GlobalConfig], float | None]
    # The whole run's budget, from the target and the global per-request timeout.
    deadline: Callable[[Target, float], float]
    # Talks to the network: skipped for inventory-only targets, first runs spread out.
    network: bool = True


def _canary_deadline(target: Target, default: float) -> float:
    assert target.canary is not None
    # One request timeout per push (each device token, plus the auth check), and a dial.
    pushes = len(target.canary.device_tokens) + int(target.canary.auth_check)
    return (target.canary.timeout or default) * max(1, pushes) + default


def _tls_deadline(target: Target, default: float) -> float:
    assert target.tls_check is not None
    # Resolve, then every address side by side, each up to three handshakes (fetch the
    # chain, verify with ca_file, with the system) under one timeout; with room to spare.
    return (target.tls_check.timeout or default) * 3


def _reachability_deadline(target: Target, default: float) -> float:
    settings = target.reachability
    assert settings is not None
    # Per host and port: resolve, then one connect per address family.
    return (settings.timeout or default) * len(settings.endpoints(target)) * 3


def _broadcast_deadline(target: Target, default: float) -> float:
    assert target.broadcast is not None
    # A dial, then one request, each within the timeout.
    return (target.broadcast.timeout or default) * 2


PROBES: dict[ProbeKind, ProbeSpec] = {
    spec.kind: spec
    for spec in (
        ProbeSpec(
            ProbeKind.CREDENTIALS,
            credentials.run,
            lambda target, settings: settings.credential_check_interval,
            lambda target, default: default,
            network=False,
        ),
        ProbeSpec(
            ProbeKind.PING,
            ping.run,
            lambda target, settings: target.ping.interval,
            lambda target, default: target.ping.timeout or default,
        ),
        ProbeSpec(
            ProbeKind.CANARY,
            canary.run,
            lambda target, settings: target.canary.interval if target.canary else None,
            _canary_deadline,
        ),
        ProbeSpec(
            ProbeKind.TLS,
            tls.run,
            lambda target, settings: target.tls_check.interval if target.tls_check else None,
            _tls_deadline,
        ),
        ProbeSpec(
            ProbeKind.REACHABILITY,
            reachability.run,
            lambda target, settings: target.reachability.interval if target.reachability else None,
            _reachability_deadline,
        ),
        ProbeSpec(
            ProbeKind.BROADCAST,
            broadcast.run,
            lambda target, settings: target.broadcast.interval if target.broadcast else None,
            _broadcast_deadline,
        ),
    )
}


def probes_of(target: Target, settings: GlobalConfig) -> list[tuple[ProbeSpec, float]]:
    """The probes ``target`` runs, each with its interval (inventory-only: local ones only)."""
    chosen = []
    for spec in PROBES.values():
        interval = spec.interval(target, settings)
        if interval is not None and not (spec.network and target.inventory_only):
            chosen.append((spec, interval))
    return chosen
