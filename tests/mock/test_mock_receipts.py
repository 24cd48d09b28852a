"""Simulated devices answer exporter canaries with signed delivery receipts, or lose them."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import socket

import aiohttp
import pytest
from aiohttp import web
from mock_support import DEVICE, WAIT, push_headers

from apns_exporter.mock.admin import AdminServer
from apns_exporter.mock.devices import ReceiptSettings

SECRET = b"0123456789abcdef0123456789abcdef"


class Collector:
    """A tiny receipt endpoint that records every POST and answers with a chosen status."""

    def __init__(self, status=202):
        self.status = status
        self.received = []
        self.arrived = asyncio.Event()
        app = web.Application()
        app.router.add_post("/canary/receipt", self._receive)
        self.runner = web.AppRunner(app, access_log=None)
        self.url = ""

    async def _receive(self, request):
        self.received.append((await request.read(), dict(request.headers)))
        self.arrived.set()
        return web.Response(status=self.status)

    async def start(self):
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/canary/receipt"

    async def wait(self):
        async with asyncio.timeout(WAIT):
            await self.arrived.wait()


@pytest.fixture
async def collector():
    server = Collector()
    await server.start()
    yield server
    await server.runner.cleanup()


def canary(canary_id="5f0c2a"):
    payload = {
        "aps": {"content-available": 1},
        "apns_exporter": {"canary_id": canary_id, "sent_at": 1.0, "target": "prod"},
    }
    return json.dumps(payload).encode()


async def push(mock, connect, token, body):
    client = await connect(mock)
    response = await client.request(
        headers=push_headers(token, apns_push_type="background", apns_priority="5"), body=body
    )
    assert response.status == 200


async def test_device_posts_signed_receipt_after_delay(mock, connect, token, collector, clock):
    """A canary makes the device post a receipt, signed with its secret, dated receipt + delay."""
    mock.devices.enable_receipts(DEVICE, collector.url, SECRET, delay=0.05)
    await push(mock, connect, token, canary())
    await collector.wait()
    [(body, headers)] = collector.received
    expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    assert headers["X-APNs-Exporter-Signature"] == expected
    assert json.loads(body) == {
        "target": "prod",
        "canary_id": "5f0c2a",
        "received_at": pytest.approx(clock.now + 0.05),
    }
    device = mock.devices.get(DEVICE)
    assert device.receipt_counts.scheduled == 1


async def test_full_loss_posts_nothing(mock, connect, token, collector):
    """With loss 1.0 the device decides at receipt to stay silent: nothing is scheduled."""
    mock.devices.enable_receipts(DEVICE, collector.url, SECRET, loss=1.0)
    await push(mock, connect, token, canary())
    counts = mock.devices.get(DEVICE).receipt_counts
    assert (counts.lost, counts.scheduled) == (1, 0)
    assert mock.pending_receipts == 0
    assert collector.received == []


async def test_ordinary_pushes_get_no_receipt(mock, connect, token, collector):
    """Only pushes carrying the exporter's canary object are answered."""
    mock.devices.enable_receipts(DEVICE, collector.url, SECRET)
    await push(mock, connect, token, b'{"aps":{"alert":"hi"}}')
    assert mock.devices.get(DEVICE).receipt_counts.scheduled == 0
    assert mock.pending_receipts == 0


async def test_stop_cancels_pending_receipts(make_mock, connect, token, collector):
    """mock.stop() cancels receipts still waiting for their delay; none is posted."""
    mock = make_mock()
    await mock.start()
    mock.devices.enable_receipts(DEVICE, collector.url, SECRET, delay=3600)
    await push(mock, connect, token, canary())
    assert mock.pending_receipts == 1
    await mock.stop()
    assert mock.pending_receipts == 0
    assert collector.received == []


async def test_rejected_receipt_is_counted_not_fatal(mock, connect, token, collector):
    """An error answer from the exporter counts as failed and the mock keeps serving."""
    collector.status = 401
    mock.devices.enable_receipts(DEVICE, collector.url, SECRET)
    await push(mock, connect, token, canary("a"))
    await collector.wait()
    async with asyncio.timeout(WAIT):
        await mock.settle_receipts()
    assert mock.devices.get(DEVICE).receipt_counts.failed == 1
    await push(mock, connect, token, canary("b"))


async def test_unreachable_exporter_is_counted_not_fatal(mock, connect, token):
    """A receipt URL nobody listens on counts as failed; the task ends quietly."""
    # Bound but not listening: connections are refused, and no other test can take the port.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/canary/receipt"
        mock.devices.enable_receipts(DEVICE, url, SECRET)
        await push(mock, connect, token, canary())
        async with asyncio.timeout(WAIT):
            await mock.settle_receipts()
    assert mock.devices.get(DEVICE).receipt_counts.failed == 1
    assert mock.pending_receipts == 0


def test_seeded_delay_and_loss_are_reproducible():
    """Two devices with the same seed draw the same delays and losses."""
    a = ReceiptSettings("http://x", SECRET, delay=(0.1, 2.0), loss=0.3, seed=7)
    b = ReceiptSettings("http://x", SECRET, delay=(0.1, 2.0), loss=0.3, seed=7)
    draws = [a.draw() for _ in range(50)]
    assert draws == [b.draw() for _ in range(50)]
    assert None in draws
    assert all(d is None or 0.1 <= d <= 2.0 for d in draws)


def test_delay_can_be_any_distribution():
    """A callable delay draws from the device's RNG (an exponential here)."""
    settings = ReceiptSettings("http://x", SECRET, delay=lambda rng: rng.expovariate(2.0), seed=1)
    expected = random.Random(1).expovariate(2.0)
    assert settings.draw() == expected


@pytest.mark.parametrize(
    "kwargs",
    [{"loss": 1.5}, {"loss": -0.1}, {"delay": -1.0}, {"delay": (2.0, 1.0)}],
)
def test_bad_settings_are_refused(kwargs):
    """Loss outside [0, 1] and negative or inverted delays are errors."""
    with pytest.raises(ValueError, match="receipt"):
        ReceiptSettings("http://x", SECRET, **kwargs)


async def test_admin_api_configures_receipts(mock, connect, token, collector):
    """PUT /devices/{token}/receipts turns receipts on; GET shows settings and counts, no secret."""
    admin = AdminServer(mock)
    await admin.start("127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{admin.port}") as http:
            body = {
                "url": collector.url,
                "secret": SECRET.decode(),
                "delay": [0.0, 0.01],
                "seed": 3,
            }
            async with http.put(f"/devices/{DEVICE}/receipts", json=body) as response:
                assert response.status == 200
            await push(mock, connect, token, canary())
            await collector.wait()
            async with http.get(f"/devices/{DEVICE}") as response:
                shown = await response.json()
            assert shown["receipts"]["delay"] == [0.0, 0.01]
            assert shown["receipts"]["scheduled"] == 1
            assert SECRET.decode() not in json.dumps(shown)
            async with http.delete(f"/devices/{DEVICE}/receipts") as response:
                assert response.status == 200
            assert mock.devices.get(DEVICE).receipts is None
    finally:
        await admin.stop()
