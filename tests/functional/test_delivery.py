"""End-to-end delivery: simulated devices in the mock post signed receipts to the exporter."""

from __future__ import annotations

import secrets
from pathlib import Path

from apns_exporter.mock.server import MockAPNs
from apns_exporter.probes import ProbeKind
from tests.helpers import Workspace, sample

T = {"target": "t1", "apns_environment": "production"}
RECEIPTS = "receipts:\n  listen_address: 127.0.0.1:0\n"


def _delivery_target(workspace: Workspace, port: int, device: str, deadline: str) -> str:
    secret_file = workspace.path / "receipt.key"
    secret_file.write_text(secrets.token_hex(32) + "\n")
    return workspace.target(port, devices=(device,)) + (
        f"    delivery:\n      secret_file: {secret_file}\n      deadline: {deadline}\n"
    )


def _secret(workspace: Workspace) -> bytes:
    return Path(workspace.path / "receipt.key").read_bytes().strip()


async def test_device_delay_shows_in_the_delivery_histogram(
    mock: MockAPNs, workspace: Workspace, device: str, run_exporter
) -> None:
    """A device that answers 350 ms after the push lands in the 0.5 s bucket, not 0.25 s."""
    cfg = workspace.config(_delivery_target(workspace, mock.port, device, "30s"), extra=RECEIPTS)

    def enable(url: str) -> None:
        mock.devices.enable_receipts(device, url, _secret(workspace), delay=0.35)

    async with run_exporter(cfg, on_receipts=enable) as running:
        await running.wait_canary(ok=True)
        await mock.settle_receipts()
        s = await running.scrape()
    assert sample(s, "apns_canary_deliveries_total", **T) >= 1
    assert sample(s, "apns_canary_delivery_duration_seconds_bucket", **T, le="0.25") == 0
    assert sample(s, "apns_canary_delivery_duration_seconds_bucket", **T, le="0.5") >= 1
    assert sample(s, "apns_canary_delivery_lost_total", **T) == 0
    assert sample(s, "apns_canary_last_delivery_timestamp_seconds", **T) > 0


async def test_device_loss_shows_as_lost_deliveries(
    mock: MockAPNs, workspace: Workspace, device: str, run_exporter
) -> None:
    """A device that never answers turns each accepted canary into a lost delivery."""
    cfg = workspace.config(_delivery_target(workspace, mock.port, device, "1s"), extra=RECEIPTS)

    def enable(url: str) -> None:
        mock.devices.enable_receipts(device, url, _secret(workspace), loss=1.0)

    async with run_exporter(cfg, on_receipts=enable) as running:
        await running.wait_canary(ok=True)
        # The first canary's deadline passes while the next ones run.
        await running.wait_for(
            lambda r: (
                r.probe is ProbeKind.CANARY
                and (
                    running.exporter.metrics.registry.get_sample_value(
                        "apns_canary_delivery_lost_total", T
                    )
                    or 0
                )
                >= 1
            )
        )
        s = await running.scrape()
    assert sample(s, "apns_canary_delivery_lost_total", **T) >= 1
    assert sample(s, "apns_canary_deliveries_total", **T) == 0
