"""Conformance of the channel-management API (broadcast push), over real TLS and HTTP/2.

Driven with the raw h2 client of mock_support against the mock's management server on its
own port. Each ``test_rule_*`` is named by a row of ``apns_exporter.mock.conformance.ROWS``.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import AsyncIterator

import pytest
from mock_support import KEY_ID, TEAM_ID, TOPIC, Credentials

from apns_exporter import apns
from apns_exporter.mock import MockAPNs, generate_signing_key
from apns_exporter.mock.broadcast import ManagementServer
from apns_exporter.mock.channels import ChannelStore

CHANNELS = f"/1/apps/{TOPIC}/channels"
ALL = f"/1/apps/{TOPIC}/all-channels"
CREATE = json.dumps({"message-storage-policy": 1, "push-type": "LiveActivity"}).encode()
UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


@pytest.fixture
async def management(mock: MockAPNs) -> AsyncIterator[ManagementServer]:
    """The mock's channel-management server on its own loopback port, limit 3 channels."""
    server = ManagementServer(mock, store=ChannelStore(limit=3))
    await server.start("127.0.0.1", 0)
    try:
        yield server
    finally:
        await server.stop()


def _headers(token: str | None, **extra: str) -> list[tuple[str, str]]:
    headers = [("authorization", f"bearer {token}")] if token is not None else []
    return headers + [(k.replace("_", "-"), v) for k, v in extra.items()]


async def _create(client, token: str) -> str:
    response = await client.request(CHANNELS, headers=_headers(token), body=CREATE)
    assert response.status == 201, response.body
    return response.headers["apns-channel-id"]


async def test_rule_management_hosts_and_ports() -> None:
    """Channel management is on api-manage-broadcast hosts: 2195 sandbox, 2196 production."""
    assert apns.Environment.SANDBOX.management_endpoint == (
        "api-manage-broadcast.sandbox.push.apple.com",
        2195,
    )
    assert apns.Environment.PRODUCTION.management_endpoint == (
        "api-manage-broadcast.push.apple.com",
        2196,
    )


async def test_rule_create_channel(management, connect, token) -> None:
    """POST .../channels answers 201 with a base64 apns-channel-id and the request's id."""
    client = await connect(management)
    request_id = str(uuid.uuid4())
    response = await client.request(
        CHANNELS, headers=_headers(token, apns_request_id=request_id), body=CREATE
    )
    assert response.status == 201
    assert response.headers["apns-request-id"] == request_id
    channel = response.headers["apns-channel-id"]
    assert base64.b64decode(channel, validate=True)
    assert response.body == b""
    assert management.store.channels(TOPIC)[channel].message_storage_policy == 1


async def test_rule_read_channel(management, connect, token) -> None:
    """GET .../channels with apns-channel-id answers 200 with the channel's configuration."""
    client = await connect(management)
    channel = await _create(client, token)
    response = await client.request(
        CHANNELS, headers=_headers(token, apns_channel_id=channel), body=b"", method="GET"
    )
    assert response.status == 200
    assert response.json == {"message-storage-policy": 1, "push-type": "LiveActivity"}


async def test_rule_list_all_channels(management, connect, token) -> None:
    """GET .../all-channels answers 200 {"channels": [...]} and changes nothing."""
    client = await connect(management)
    created = {await _create(client, token), await _create(client, token)}
    for _ in range(2):
        response = await client.request(ALL, headers=_headers(token), body=b"", method="GET")
        assert response.status == 200
        assert set(response.json["channels"]) == created
    assert len(management.store.channels(TOPIC)) == 2


async def test_rule_delete_channel(management, connect, token) -> None:
    """DELETE .../channels answers 204; the channel is gone (404 ChannelNotRegistered)."""
    client = await connect(management)
    channel = await _create(client, token)
    headers = _headers(token, apns_channel_id=channel)
    deleted = await client.request(CHANNELS, headers=headers, body=b"", method="DELETE")
    assert (deleted.status, deleted.body) == (204, b"")
    again = await client.request(CHANNELS, headers=headers, body=b"", method="GET")
    assert (again.status, again.reason) == (404, "ChannelNotRegistered")


async def test_rule_request_id_on_every_answer(management, connect, token) -> None:
    """Every answer, errors included, carries apns-request-id (a new UUID when none was sent)."""
    client = await connect(management)
    ok = await client.request(ALL, headers=_headers(token), body=b"", method="GET")
    error = await client.request(ALL, headers=_headers(None), body=b"", method="GET")
    for response in (ok, error):
        assert UUID.fullmatch(response.headers["apns-request-id"])
    assert ok.headers["apns-request-id"] != error.headers["apns-request-id"]


async def test_rule_management_authenticates_like_pushes(
    management, connect, token, credentials: Credentials, clock
) -> None:
    """The push JWT works; none, an unknown key, another app's key or an old token do not."""
    scoped = generate_signing_key()
    management.mock.add_signing_key("SCOPED1234", TEAM_ID, scoped.public_key, ["com.other"])
    client = await connect(management)

    async def status(headers: list[tuple[str, str]]) -> tuple[int | None, str | None]:
        response = await client.request(ALL, headers=headers, body=b"", method="GET")
        return response.status, response.reason

    assert await status(_headers(token)) == (200, None)
    assert await status(_headers(None)) == (403, "MissingProviderToken")
    stranger = credentials.mint(clock.now, key=generate_signing_key())
    assert await status(_headers(stranger)) == (403, "InvalidProviderToken")
    elsewhere = credentials.mint(clock.now, kid="SCOPED1234", key=scoped)
    assert await status(_headers(elsewhere)) == (400, "TopicDisallowed")
    clock.advance(3601)
    assert await status(_headers(token)) == (403, "ExpiredProviderToken")


async def test_rule_key_without_broadcast_rights(
    mock: MockAPNs, management, connect, credentials: Credentials, clock
) -> None:
    """A key registered without broadcast rights is refused with 403 FeatureNotEnabled."""
    other = generate_signing_key()
    mock.add_signing_key("NOBCAST123", TEAM_ID, other.public_key, broadcast=False)
    client = await connect(management)
    denied = credentials.mint(clock.now, kid="NOBCAST123", key=other)
    response = await client.request(ALL, headers=_headers(denied), body=b"", method="GET")
    assert (response.status, response.reason) == (403, "FeatureNotEnabled")
    allowed = credentials.mint(clock.now, kid=KEY_ID)
    ok = await client.request(ALL, headers=_headers(allowed), body=b"", method="GET")
    assert ok.status == 200


@pytest.mark.parametrize(
    ("channel", "expected"),
    [
        (None, (400, "MissingChannelId")),
        ("not base64!", (400, "BadChannelId")),
        (base64.b64encode(b"never created").decode(), (404, "ChannelNotRegistered")),
    ],
)
async def test_rule_channel_id_errors(management, connect, token, channel, expected) -> None:
    """Reads without, with a malformed or with an unknown apns-channel-id get their reasons."""
    client = await connect(management)
    extra = {"apns_channel_id": channel} if channel is not None else {}
    response = await client.request(
        CHANNELS, headers=_headers(token, **extra), body=b"", method="GET"
    )
    assert (response.status, response.reason) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", (400, "PayloadEmpty")),
        (b"{not json", (400, "BadRequestPayload")),
        (b'{"message-storage-policy": 0}', (400, "MissingPushType")),
        (b'{"push-type": "alert"}', (400, "InvalidPushType")),
        (b'{"push-type": "LiveActivity", "message-storage-policy": 7}', (400, "BadRequestPayload")),
    ],
)
async def test_rule_create_errors(management, connect, token, body, expected) -> None:
    """Create requests with a bad body get the reason naming what is wrong."""
    client = await connect(management)
    response = await client.request(CHANNELS, headers=_headers(token), body=body)
    assert (response.status, response.reason) == expected


async def test_rule_channel_limit(management, connect, token) -> None:
    """Beyond the store's channel limit a create is 400 CannotCreateChannelConfig."""
    client = await connect(management)
    for _ in range(3):
        await _create(client, token)
    response = await client.request(CHANNELS, headers=_headers(token), body=CREATE)
    assert (response.status, response.reason) == (400, "CannotCreateChannelConfig")


async def test_rule_management_check_order(management, connect, token) -> None:
    """Path, then method, then auth, then apns-request-id, then the request itself."""
    client = await connect(management)

    async def answer(path: str, method: str, headers: list[tuple[str, str]]) -> tuple:
        response = await client.request(path, headers=headers, body=b"", method=method)
        return response.status, response.reason

    assert await answer("/1/apps/x/nope", "PUT", _headers(None)) == (404, "BadPath")
    assert await answer(ALL, "DELETE", _headers(None)) == (405, "MethodNotAllowed")
    assert await answer(ALL, "GET", _headers(None, apns_request_id="x")) == (
        403,
        "MissingProviderToken",
    )
    assert await answer(CHANNELS, "GET", _headers(token, apns_request_id="x")) == (
        400,
        "BadMessageId",
    )
