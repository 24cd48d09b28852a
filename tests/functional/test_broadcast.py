"""The broadcast probe: a read-only channel-management request over real TLS to the mock."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from apns_exporter.mock.broadcast import ManagementServer
from apns_exporter.mock.pki import SigningKeyPair
from apns_exporter.mock.server import MockAPNs
from apns_exporter.probes import BroadcastResult, ProbeKind
from tests.helpers import KEY_ID, TEAM_ID, TOPIC, Workspace, sample

T = {"target": "t1", "apns_environment": "production"}


@pytest.fixture
async def management(mock: MockAPNs) -> AsyncIterator[ManagementServer]:
    """The mock's channel-management API on its own port, beside the push one."""
    server = ManagementServer(mock)
    await server.start("127.0.0.1", 0)
    try:
        yield server
    finally:
        await server.stop()


def _with_broadcast(workspace: Workspace, push_port: int, management_port: int) -> str:
    return (
        workspace.target(push_port, interval="1h", auth_check=True)
        + f"  broadcast: {{interval: 1s, timeout: 1s, endpoint: 127.0.0.1:{management_port}}}\n"
        + "  reachability: {interval: 1s}\n"
    )


def _broadcast(result: object) -> bool:
    return isinstance(result, BroadcastResult)


async def test_listing_channels_passes_and_is_counted(
    mock: MockAPNs, management: ManagementServer, workspace: Workspace, run_exporter
) -> None:
    """A key with broadcast rights lists the app's channels: 200, up, and counted as none."""
    cfg = workspace.config(_with_broadcast(workspace, mock.port, management.port))
    async with run_exporter(cfg) as running:
        result = await running.wait_for(_broadcast)
        reach = await running.wait_for(lambda r: r.probe is ProbeKind.REACHABILITY)
        s = await running.scrape()
    assert result.ok, result.message
    assert isinstance(result, BroadcastResult)
    assert result.channels == 0
    assert result.peer == f"127.0.0.1:{management.port}"
    assert management.answers[(200, "")] >= 1
    assert sample(s, "apns_broadcast_up", **T) == 1
    assert sample(s, "apns_broadcast_responses_total", **T, status="200", reason="none") >= 1
    where = {"host": "127.0.0.1", "port": str(management.port), "family": "ipv4"}
    assert sample(s, "apns_reachable", **T, **where) == 1
    assert any(r.port == management.port for r in reach.reaches)  # type: ignore[attr-defined]


async def test_key_without_broadcast_rights_fails_with_feature_not_enabled(
    mock: MockAPNs,
    management: ManagementServer,
    workspace: Workspace,
    signing_key: SigningKeyPair,
    run_exporter,
) -> None:
    """A key the management API refuses answers 403 FeatureNotEnabled: an auth-layer failure."""
    mock.add_signing_key(KEY_ID, TEAM_ID, signing_key.public_key, topics=[TOPIC], broadcast=False)
    cfg = workspace.config(_with_broadcast(workspace, mock.port, management.port))
    async with run_exporter(cfg) as running:
        result = await running.wait_for(_broadcast)
        s = await running.scrape()
    assert isinstance(result, BroadcastResult)
    assert not result.ok
    assert (result.status, result.reason) == (403, "FeatureNotEnabled")
    assert result.layer == "auth"
    assert sample(s, "apns_broadcast_up", **T) == 0
    labels = {"status": "403", "reason": "FeatureNotEnabled"}
    assert sample(s, "apns_broadcast_responses_total", **T, **labels) >= 1


async def test_unreachable_management_port_fails_at_connect(
    mock: MockAPNs, workspace: Workspace, unused_tcp_port: int, run_exporter
) -> None:
    """Nothing listening on the management port is a tcp-layer failure, with no answer counted."""
    cfg = workspace.config(_with_broadcast(workspace, mock.port, unused_tcp_port))
    async with run_exporter(cfg) as running:
        result = await running.wait_for(_broadcast)
        s = await running.scrape()
    assert not result.ok
    assert result.error == "connect"
    assert result.layer == "tcp"
    assert sample(s, "apns_broadcast_up", **T) == 0
    # No answer, so no answer series at all (each appears with its first answer).
    assert not [key for key, _ in s if key == "apns_broadcast_responses_total"]
