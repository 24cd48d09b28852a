"""The whole exporter against the mock APNs over real TLS, scraped over real HTTP."""

from __future__ import annotations

import asyncio
import shutil
import time
from asyncio.subprocess import PIPE, STDOUT

from apns_exporter.mock.faults import Scenario
from apns_exporter.mock.pki import generate_signing_key
from apns_exporter.mock.server import MockAPNs
from tests.helpers import Workspace, sample

T = {"target": "t1", "apns_environment": "production"}


async def test_healthy_target_reports_up_with_latency_and_token(
    mock: MockAPNs, workspace: Workspace, device: str, run_exporter
) -> None:
    """A registered device and an auth check both succeed: apns_up 1 and every series moves."""
    cfg = workspace.config(workspace.target(mock.port, devices=(device,), auth_check=True))
    async with run_exporter(cfg) as running:
        result = await running.wait_canary(ok=True)
        assert [(p.kind, p.status, p.reason) for p in result.pushes] == [
            ("device", 200, "none"),
            ("auth_check", 400, "BadDeviceToken"),
        ]
        await running.wait_for(lambda r: r.probe == "ping" and r.ok)
        s = await running.scrape()
    assert sample(s, "apns_up", **T) == 1
    assert sample(s, "apns_connection_up", **T) == 1
    assert sample(s, "apns_canary_responses_total", **T, status="200", reason="none") >= 1
    assert sample(s, "apns_canary_responses_total", **T, status="400", reason="BadDeviceToken") >= 1
    assert sample(s, "apns_canary_pushes_total", **T, kind="auth_check") >= 1
    assert sample(s, "apns_canary_duration_seconds_count", **T) >= 2
    assert sample(s, "apns_ping_rtt_seconds_count", **T) >= 1
    assert abs(sample(s, "apns_provider_token_issued_timestamp_seconds", **T) - time.time()) < 60
    assert sample(s, "apns_provider_token_refreshes_total", **T) == 1
    # The auth check has a connection of its own: its rejections would pin the limit at 1.
    assert sample(s, "apns_connection_attempts_total", **T) == 2
    assert sample(s, "apns_connection_last_setup_duration_seconds", **T, phase="tls") > 0
    assert sample(s, "apns_max_concurrent_streams", **T) == 1000
    assert sample(s, "apns_signing_key_info", **T, key_id="ABC123DEFG", team_id="DEF123GHIJ") == 1
    assert mock.devices.received(device), "the device recorded the canary push"


async def test_unknown_signing_key_is_invalid_provider_token(
    mock: MockAPNs, workspace: Workspace, device: str, run_exporter
) -> None:
    """A key the server does not know is counted as 403 InvalidProviderToken and apns_up is 0."""
    other = workspace.path / "other.p8"
    other.write_bytes(generate_signing_key().private_pem)
    cfg = workspace.config(workspace.target(mock.port, devices=(device,), key_file=other))
    async with run_exporter(cfg) as running:
        result = await running.wait_canary()
        s = await running.scrape()
    assert not result.ok
    assert sample(s, "apns_up", **T) == 0
    assert (
        sample(s, "apns_canary_responses_total", **T, status="403", reason="InvalidProviderToken")
        >= 1
    )
    # No answer series starts at 0; a success that never came has no series.
    assert sample(s, "apns_canary_responses_total", **T, status="200", reason="none") is None


async def test_expired_provider_token_is_reported(
    mock: MockAPNs, workspace: Workspace, device: str, run_exporter
) -> None:
    """A token whose iat is over an hour old by the server's clock gets ExpiredProviderToken."""
    mock.scenario = Scenario(clock_skew=2 * 3600)
    cfg = workspace.config(workspace.target(mock.port, devices=(device,)))
    async with run_exporter(cfg) as running:
        result = await running.wait_canary()
        s = await running.scrape()
    assert [(p.status, p.reason) for p in result.pushes] == [(403, "ExpiredProviderToken")]
    assert sample(s, "apns_up", **T) == 0
    assert (
        sample(s, "apns_canary_responses_total", **T, status="403", reason="ExpiredProviderToken")
        >= 1
    )


async def test_unknown_device_is_bad_device_token(
    mock: MockAPNs, workspace: Workspace, run_exporter
) -> None:
    """A device canary to a token the server does not know fails with 400 BadDeviceToken."""
    cfg = workspace.config(workspace.target(mock.port, devices=("ab" * 32,)))
    async with run_exporter(cfg) as running:
        result = await running.wait_canary()
        s = await running.scrape()
    assert [(p.kind, p.status, p.reason) for p in result.pushes] == [
        ("device", 400, "BadDeviceToken")
    ]
    assert sample(s, "apns_up", **T) == 0
    assert sample(s, "apns_canary_responses_total", **T, status="400", reason="BadDeviceToken") >= 1


async def test_unregistered_device_is_410(
    mock: MockAPNs, workspace: Workspace, device: str, run_exporter
) -> None:
    """An unregistered device answers 410 Unregistered, counted under that reason."""
    mock.devices.unregister(device, at=time.time() - 60)
    cfg = workspace.config(workspace.target(mock.port, devices=(device,)))
    async with run_exporter(cfg) as running:
        result = await running.wait_canary()
        s = await running.scrape()
    assert [(p.status, p.reason) for p in result.pushes] == [(410, "Unregistered")]
    assert sample(s, "apns_canary_responses_total", **T, status="410", reason="Unregistered") >= 1


async def test_unreachable_target_does_not_stall_healthy_one(
    mock: MockAPNs, workspace: Workspace, device: str, run_exporter, unused_tcp_port: int
) -> None:
    """A target whose port refuses connections fails with reason connect; the other stays up."""
    targets = workspace.target(mock.port, name="good", devices=(device,)) + workspace.target(
        unused_tcp_port, name="dead", devices=(device,)
    )
    async with run_exporter(workspace.config(targets)) as running:
        bad = await running.wait_canary("dead")
        good = await running.wait_canary("good", ok=True)
        s = await running.scrape()
    assert (bad.ok, bad.error, good.ok) == (False, "connect", True)
    dead = {"target": "dead", "apns_environment": "production"}
    assert sample(s, "apns_connection_failures_total", **dead, reason="connect") >= 1
    assert sample(s, "apns_up", **dead) == 0
    assert sample(s, "apns_up", target="good", apns_environment="production") == 1


async def test_latency_injected_by_the_mock_shows_in_the_histogram(
    mock: MockAPNs, workspace: Workspace, device: str, run_exporter
) -> None:
    """A 300 ms server delay moves canary latency into the 1 s bucket and out of 0.25 s."""
    mock.latency = 0.3
    cfg = workspace.config(workspace.target(mock.port, devices=(device,)))
    async with run_exporter(cfg) as running:
        result = await running.wait_canary(ok=True)
        s = await running.scrape()
    assert result.pushes[0].duration >= 0.3
    assert sample(s, "apns_max_concurrent_streams", **T) == 1000
    assert sample(s, "apns_canary_duration_seconds_bucket", **T, le="0.25") == 0
    assert sample(s, "apns_canary_duration_seconds_bucket", **T, le="1.0") >= 1


async def test_metrics_pass_promtool_check_metrics(
    mock: MockAPNs, workspace: Workspace, device: str, run_exporter
) -> None:
    """The exposition passes `promtool check metrics` (naming and HELP lint)."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool is required: apt-get install prometheus (scripts/setup does)"
    cfg = workspace.config(workspace.target(mock.port, devices=(device,), auth_check=True))
    async with run_exporter(cfg) as running:
        await running.wait_canary(ok=True)
        text = await running.scrape_text()
    proc = await asyncio.create_subprocess_exec(
        promtool, "check", "metrics", stdin=PIPE, stdout=PIPE, stderr=STDOUT
    )
    output, _ = await proc.communicate(text.encode())
    assert proc.returncode == 0, output.decode()


async def test_landing_health_and_ready_pages(
    mock: MockAPNs, workspace: Workspace, device: str, run_exporter
) -> None:
    """The landing page lists the target and its last result; health and readiness answer."""
    cfg = workspace.config(workspace.target(mock.port, devices=(device,)))
    async with run_exporter(cfg) as running:
        await running.wait_canary(ok=True)
        page = await running.scrape_text("/")
        assert "Healthy" in await running.scrape_text("/-/healthy")
        assert "Ready" in await running.scrape_text("/-/ready")
    assert "<td>t1</td>" in page
    assert "all pushes answered as expected" in page
