"""Conformance rows driven by a third-party client: aioapns mints its own JWT and headers.

Every ``test_rule_*`` here pins one or more rows of ``apns_exporter.mock.conformance.ROWS``;
test_mock_conformance.py checks that each row names a test and each test has a row. Where
aioapns cannot express a request (a bad apns-id, no JWT, a second token on one connection,
duplicate headers...), the row is pinned in test_conformance_h2.py with the raw h2 client.
"""

from __future__ import annotations

import ssl
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aioapns
import aioapns.connection as aioapns_connection
import pytest
from mock_support import DEVICE, KEY_ID, TEAM_ID, TOPIC, UNKNOWN_DEVICE, Credentials

from apns_exporter.apns import Reason
from apns_exporter.mock import (
    ErrorFault,
    MockAPNs,
    Policy,
    RateLimit,
    Scenario,
    generate_signing_key,
)
from apns_exporter.mock.pki import SigningKeyPair

ALERT = {"aps": {"alert": "hi"}}


@dataclass
class Apns:
    """A running mock on the wall clock (aioapns signs with time.time) and aioapns clients."""

    mock: MockAPNs
    credentials: Credentials
    clients: list[aioapns.APNs] = field(default_factory=list)

    def client(
        self,
        *,
        key: SigningKeyPair | None = None,
        key_id: str = KEY_ID,
        team_id: str = TEAM_ID,
        topic: str = TOPIC,
    ) -> aioapns.APNs:
        port = self.mock.port

        class LocalProtocol(aioapns_connection.APNsProductionClientProtocol):
            APNS_SERVER = "localhost"
            APNS_PORT = port

        context = ssl.create_default_context(cadata=self.credentials.ca.cert_pem.decode())
        client = aioapns.APNs(
            key=(key or self.credentials.signing_key).private_pem.decode(),
            key_id=key_id,
            team_id=team_id,
            topic=topic,
            ssl_context=context,
            max_connection_attempts=1,
        )
        client.pool.protocol_class = LocalProtocol
        self.clients.append(client)
        return client

    async def send(self, client: aioapns.APNs | None = None, **request: Any) -> Any:
        """Send one notification (aioapns defaults: alert payload, fresh apns-id)."""
        request.setdefault("device_token", DEVICE)
        request.setdefault("message", ALERT)
        return await (client or self.client()).send_notification(
            aioapns.NotificationRequest(**request)
        )


@pytest.fixture
async def apns(make_mock: Callable[..., MockAPNs], credentials: Credentials) -> AsyncIterator[Apns]:
    mock = make_mock(clock=time.time)
    async with mock.serving():
        harness = Apns(mock, credentials)
        yield harness
        for client in harness.clients:
            client.pool.close()


def outcome(result: Any) -> tuple[str, str | None]:
    return result.status, result.description


async def test_rule_accepted_push_echoes_apns_id(apns):
    """A valid push is 200 with aioapns's own apns-id echoed, and reaches the device."""
    notification_id = str(uuid.uuid4())
    result = await apns.send(notification_id=notification_id, collapse_key="c" * 64)
    assert (result.is_successful, result.notification_id) == (True, notification_id)
    assert apns.mock.devices.received(DEVICE)[0].json == ALERT


async def test_rule_bad_collapse_id(apns):
    """An apns-collapse-id of 65 bytes is 400 BadCollapseId."""
    assert outcome(await apns.send(collapse_key="c" * 65)) == ("400", "BadCollapseId")


async def test_rule_bad_device_token(apns):
    """A well-formed token the mock does not know is 400 BadDeviceToken."""
    assert outcome(await apns.send(device_token=UNKNOWN_DEVICE)) == ("400", "BadDeviceToken")


async def test_rule_missing_device_token(apns):
    """A :path of /3/device/ with no token is 400 MissingDeviceToken."""
    assert outcome(await apns.send(device_token="")) == ("400", "MissingDeviceToken")


@pytest.mark.parametrize("priority", [7, 0])
async def test_rule_bad_priority_value(apns, priority):
    """An apns-priority other than 10, 5 or 1 is 400 BadPriority."""
    assert outcome(await apns.send(priority=priority)) == ("400", "BadPriority")


@pytest.mark.parametrize(
    ("message", "priority", "expected"),
    [
        ({"aps": {"content-available": 1}}, 10, ("400", "BadPriority")),
        ({"aps": {"content-available": 1}, "acme": 1}, 10, ("400", "BadPriority")),
        ({"aps": {"content-available": 1}}, 5, ("200", None)),
        ({"aps": {"content-available": 1, "badge": 1}}, 10, ("200", None)),
    ],
)
async def test_rule_priority_10_needs_more_than_content_available(
    apns, message, priority, expected
):
    """An alert push whose aps holds only content-available is BadPriority at priority 10."""
    result = await apns.send(message=message, priority=priority, push_type=aioapns.PushType.ALERT)
    assert outcome(result) == expected


async def test_rule_background_push_with_priority_10(apns):
    """A background push at priority 10 is BadPriority even when its payload has an alert."""
    result = await apns.send(priority=10, push_type=aioapns.PushType.BACKGROUND)
    assert outcome(result) == ("400", "BadPriority")


@pytest.mark.parametrize(
    ("push_type", "topic", "expected"),
    [
        (aioapns.PushType.VOIP, TOPIC, ("400", "BadTopic")),
        (aioapns.PushType.VOIP, f"{TOPIC}.voip", ("200", None)),
        (aioapns.PushType.COMPLICATION, f"{TOPIC}.complication", ("200", None)),
        (aioapns.PushType.LIVEACTIVITY, TOPIC, ("400", "BadTopic")),
    ],
)
async def test_rule_push_type_topic_suffix(apns, push_type, topic, expected):
    """A push type that needs a topic suffix gets BadTopic when the suffix is missing."""
    result = await apns.send(push_type=push_type, apns_topic=topic)
    assert outcome(result) == expected


async def test_rule_device_token_not_for_topic(apns):
    """A registered token pushed under another topic is 400 DeviceTokenNotForTopic."""
    result = await apns.send(apns_topic="com.example.other")
    assert outcome(result) == ("400", "DeviceTokenNotForTopic")


async def test_rule_topic_disallowed(apns):
    """A topic the policy disallows is 400 TopicDisallowed."""
    apns.mock.policy = Policy(disallowed_topics=(TOPIC,))
    assert outcome(await apns.send()) == ("400", "TopicDisallowed")


async def test_rule_payload_limits(apns):
    """Payloads over 4096 bytes are 413 PayloadTooLarge; VoIP pushes may carry 5120."""
    big = {"aps": {"alert": "x" * 4100}}
    assert outcome(await apns.send(message=big)) == ("413", "PayloadTooLarge")
    voip = {"aps": {"alert": "x" * (5120 - 30)}}
    result = await apns.send(
        message=voip, push_type=aioapns.PushType.VOIP, apns_topic=f"{TOPIC}.voip"
    )
    assert outcome(result) == ("200", None)


@pytest.mark.parametrize("reason", ["Unregistered", "ExpiredToken"])
async def test_rule_gone_device_is_410_with_timestamp(apns, reason):
    """A device that is gone answers 410 with its reason and a timestamp in milliseconds."""
    apns.mock.devices.unregister(DEVICE, at=1_700_000_000, reason=Reason(reason))
    result = await apns.send()
    assert (*outcome(result), result.timestamp) == ("410", reason, 1_700_000_000_000)


async def test_rule_too_many_requests(apns):
    """With a per-device rate limit, the push over it is 429 TooManyRequests."""
    apns.mock.policy = Policy(rate_limit=RateLimit(pushes=1, per_seconds=3600))
    assert outcome(await apns.send()) == ("200", None)
    assert outcome(await apns.send()) == ("429", "TooManyRequests")


async def test_rule_expired_provider_token(apns):
    """A token whose iat is more than an hour old by the server's clock is ExpiredProviderToken."""
    apns.mock.scenario = Scenario(clock_skew=3601)
    assert outcome(await apns.send()) == ("403", "ExpiredProviderToken")


async def test_rule_invalid_provider_token(apns):
    """A token with a foreign iss, or signed by an unknown key, is InvalidProviderToken."""
    wrong_team = apns.client(team_id="ZZZZZZZZZZ")
    assert outcome(await apns.send(wrong_team)) == ("403", "InvalidProviderToken")
    wrong_key = apns.client(key=generate_signing_key())
    assert outcome(await apns.send(wrong_key)) == ("403", "InvalidProviderToken")


async def test_rule_bad_environment_key_id_in_token(apns):
    """A sandbox-only key used against the production mock is 403 BadEnvironmentKeyIdInToken."""
    key = generate_signing_key()
    apns.mock.add_signing_key("SANDBOXKEY", TEAM_ID, key.public_key, environment="sandbox")
    client = apns.client(key=key, key_id="SANDBOXKEY")
    assert outcome(await apns.send(client)) == ("403", "BadEnvironmentKeyIdInToken")


@pytest.mark.parametrize(
    ("reason", "status"),
    [
        ("IdleTimeout", "400"),
        ("BadCertificate", "403"),
        ("Forbidden", "403"),
        ("BadEnvironmentKeyInToken", "403"),
        ("InternalServerError", "500"),
        ("ServiceUnavailable", "503"),
        ("Shutdown", "503"),
    ],
)
async def test_rule_injected_reasons(apns, reason, status):
    """Reasons the mock has no natural trigger for are answered through an ErrorFault."""
    apns.mock.scenario = Scenario(errors=(ErrorFault(reason=reason, count=1),))
    assert outcome(await apns.send()) == (status, reason)
    assert outcome(await apns.send()) == ("200", None)
