"""The admin JSON API: reading stats and devices, changing the scenario at run time."""

from __future__ import annotations

import aiohttp
import pytest
from mock_support import DEVICE, TOPIC, UNKNOWN_DEVICE, push_headers

from apns_exporter.mock.admin import AdminServer


@pytest.fixture
async def admin(mock):
    server = AdminServer(mock)
    await server.start("127.0.0.1", 0)
    async with aiohttp.ClientSession(f"http://127.0.0.1:{server.port}") as session:
        yield session
    await server.stop()


async def test_stats_reflect_traffic(mock, admin, connect, token):
    """GET /stats reports the responses the mock sent, by status and reason."""
    client = await connect(mock)
    await client.request(headers=push_headers(token))
    async with admin.get("/stats") as response:
        stats = await response.json()
    assert stats["connections"] == 1
    assert stats["responses"] == [{"status": 200, "reason": "", "count": 1}]


async def test_device_registration_and_notifications(mock, admin, connect, token):
    """POST /devices registers a device; GET /devices/{token} lists what it received."""
    async with admin.post("/devices", json={"token": UNKNOWN_DEVICE, "topic": TOPIC}) as response:
        assert response.status == 201
    client = await connect(mock)
    path = f"/3/device/{UNKNOWN_DEVICE}"
    assert (await client.request(path, headers=push_headers(token))).status == 200
    async with admin.get(f"/devices/{UNKNOWN_DEVICE}") as response:
        device = await response.json()
    assert device["received"] == 1
    assert device["notifications"][0]["payload"] == '{"aps":{"alert":"hi"}}'


async def test_unregister_via_admin(mock, admin, connect, token):
    """POST /devices/{token}/unregister makes later pushes 410 with the given timestamp."""
    async with admin.post(f"/devices/{DEVICE}/unregister", json={"at": 1700000000}) as response:
        assert response.status == 200
    client = await connect(mock)
    response = await client.request(headers=push_headers(token))
    assert response.json == {"reason": "Unregistered", "timestamp": 1700000000000}


async def test_scenario_change_at_run_time(mock, admin, connect, token):
    """PUT /scenario swaps the fault scenario for the next request; GET /scenario shows it."""
    client = await connect(mock)
    body = {"name": "outage", "errors": [{"reason": "ServiceUnavailable"}]}
    async with admin.put("/scenario", json=body) as response:
        assert response.status == 200
    assert (await client.request(headers=push_headers(token))).status == 503
    async with admin.put("/scenarios/healthy") as response:
        assert (await response.json())["name"] == "healthy"
    assert (await client.request(headers=push_headers(token))).status == 200


async def test_bad_scenario_is_400_and_keeps_the_old_one(mock, admin):
    """An invalid scenario body is answered 400 naming the key, and nothing changes."""
    async with admin.put("/scenario", json={"stall": "sometimes"}) as response:
        assert response.status == 400
        assert "stall" in (await response.json())["error"]
    assert mock.scenario.name == "custom"


async def test_goaway_via_admin(mock, admin, connect):
    """POST /goaway sends GOAWAY with the given debug data to every open connection."""
    client = await connect(mock)
    body = {"debug": "json", "reason": "Shutdown", "graceful": False}
    async with admin.post("/goaway", json=body) as response:
        assert (await response.json())["connections"] == 1
    await client.wait_closed()
    assert client.goaways[0].additional_data == b'{"reason":"Shutdown"}'


async def test_latency_and_connections_endpoints(mock, admin, connect):
    """PUT /latency sets the knob; GET /connections lists open connections with their limit."""
    await connect(mock)
    async with admin.put("/latency", json={"seconds": 0.25}) as response:
        assert response.status == 200
    assert mock.latency == 0.25
    async with admin.get("/connections") as response:
        [connection] = await response.json()
    assert connection["stream_limit"] == 1


async def test_index_and_not_found(admin):
    """GET / lists the endpoints; unknown devices are 404."""
    async with admin.get("/") as response:
        assert "/scenario" in await response.text()
    async with admin.get(f"/devices/{UNKNOWN_DEVICE}") as response:
        assert response.status == 404
