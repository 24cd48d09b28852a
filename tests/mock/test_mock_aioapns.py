"""Compatibility: a third-party APNs client (aioapns, h2-based) works against the mock.

aioapns is a test dependency only (the `test` extra); it must be installed, never skipped.
"""

from __future__ import annotations

import ssl
import time
import uuid

import aioapns
import aioapns.connection as aioapns_connection
import pytest
from mock_support import DEVICE, KEY_ID, TEAM_ID, TOPIC, UNKNOWN_DEVICE


@pytest.fixture
async def apns_client(make_mock, credentials):
    mock = make_mock(clock=time.time)
    async with mock.serving():

        class LocalProtocol(aioapns_connection.APNsProductionClientProtocol):
            APNS_SERVER = "localhost"
            APNS_PORT = mock.port

        context = ssl.create_default_context(cadata=credentials.ca.cert_pem.decode())
        client = aioapns.APNs(
            key=credentials.signing_key.private_pem.decode(),
            key_id=KEY_ID,
            team_id=TEAM_ID,
            topic=TOPIC,
            ssl_context=context,
            max_connection_attempts=1,
        )
        client.pool.protocol_class = LocalProtocol
        yield mock, client
        client.pool.close()


def request(token: str) -> object:
    return aioapns.NotificationRequest(
        device_token=token,
        message={"aps": {"alert": "hi"}},
        notification_id=str(uuid.uuid4()),
        push_type=aioapns.PushType.ALERT,
    )


async def test_aioapns_push_is_accepted_and_delivered(apns_client):
    """aioapns mints its own JWT and its push reaches the simulated device."""
    mock, client = apns_client
    result = await client.send_notification(request(DEVICE))
    assert result.is_successful
    assert mock.devices.received(DEVICE)[0].json == {"aps": {"alert": "hi"}}


async def test_aioapns_sees_apple_reasons(apns_client):
    """aioapns parses the mock's error bodies: BadDeviceToken and 410 with its timestamp."""
    mock, client = apns_client
    bad = await client.send_notification(request(UNKNOWN_DEVICE))
    assert (bad.status, bad.description) == ("400", "BadDeviceToken")
    mock.devices.unregister(DEVICE, at=1_700_000_000)
    gone = await client.send_notification(request(DEVICE))
    assert (gone.status, gone.description) == ("410", "Unregistered")
    assert gone.timestamp == 1_700_000_000_000
