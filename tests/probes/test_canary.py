"""Canary edge cases that need no server: a key that cannot sign."""

from __future__ import annotations

from apns_exporter import config
from apns_exporter.probes import ProbeKind, Snapshot, canary
from apns_exporter.service.metrics import Metrics
from apns_exporter.service.state import TargetStatus
from tests.helpers import Workspace, add_target, record


class _BrokenToken:
    """A token schedule whose signing fails, as a corrupted key in memory would."""

    issued_at = None

    def bearer(self) -> str:
        raise ValueError("key cannot sign")


class _Loaded:
    """A loaded credential holding only its token."""

    def __init__(self, token: _BrokenToken) -> None:
        self.token = token
        self.certificate = None


async def test_signing_failure_is_a_refresh_failure_not_a_crash(workspace: Workspace) -> None:
    """A token that cannot be signed fails the canary with error credential and is counted."""
    cfg = config.load(workspace.config(workspace.target(443, devices=("ab" * 32,))))
    target = cfg.targets[0]
    loaded = _Loaded(token=_BrokenToken())
    snapshot = Snapshot(target, channel=None, default_timeout=1.0, loaded=loaded)  # type: ignore[arg-type]
    result = await canary.run(snapshot.start(ProbeKind.CANARY))
    assert (result.ok, result.error, result.token_failed) == (False, "credential", True)
    metrics = Metrics()
    add_target(
        metrics,
        "t1",
        "production",
        host="h",
        port=443,
        topic="t",
        canary_interval=1,
        ping_interval=1,
        key=("K", "T"),
    )
    record(metrics, result, TargetStatus(up=False, layer=result.layer))
    labels = {"target": "t1", "apns_environment": "production"}
    assert (
        metrics.registry.get_sample_value("apns_provider_token_refresh_failures_total", labels) == 1
    )
    assert result.probe is ProbeKind.CANARY
