"""Conformance rows aioapns cannot express, part 1: connection, provider tokens, GOAWAY, mTLS.

Driven with the raw h2 client of mock_support (never the exporter's client). Each
``test_rule_*`` is named by a row of ``apns_exporter.mock.conformance.ROWS``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import ssl

import aiohttp
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from hyperframe.frame import PriorityFrame
from mock_support import DEVICE, TEAM_ID, TOPIC, UNKNOWN_DEVICE, push_headers

from apns_exporter.mock import IdleClose, Scenario, generate_ca, generate_signing_key
from apns_exporter.mock.admin import AdminServer

APPLE_SETTINGS = {
    SettingCodes.HEADER_TABLE_SIZE: 4096,
    SettingCodes.MAX_CONCURRENT_STREAMS: 1,
    SettingCodes.INITIAL_WINDOW_SIZE: 65535,
    SettingCodes.MAX_FRAME_SIZE: 16384,
    SettingCodes.MAX_HEADER_LIST_SIZE: 8000,
}
UNKNOWN_PATH = f"/3/device/{UNKNOWN_DEVICE}"


async def outcome(client, token, path=f"/3/device/{DEVICE}"):
    response = await client.request(path, headers=push_headers(token))
    return response.status, response.reason


def to_der_signature(token: str) -> str:
    head, _, sig = token.rpartition(".")
    raw = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    return head + "." + base64.urlsafe_b64encode(der).rstrip(b"=").decode()


# -- connection --------------------------------------------------------------------------------


async def test_rule_settings_and_one_stream_until_a_valid_token(mock, connect, token):
    """Apple's five SETTINGS come first with 1 stream; a push with a valid JWT raises it to 1000."""
    client = await connect(mock)
    assert client.settings_frames[0] == APPLE_SETTINGS
    assert await outcome(client, token) == (200, None)
    await client.wait_for(lambda: client.max_streams == 1000)


async def test_rule_rejection_drops_the_stream_limit(mock, connect, token):
    """After a rejected push the limit is 1 again; the next accepted push restores 1000."""
    client = await connect(mock)
    assert await outcome(client, token, UNKNOWN_PATH) == (400, "BadDeviceToken")
    await client.wait_for(lambda: client.max_streams == 1)
    assert await outcome(client, token) == (200, None)
    await client.wait_for(lambda: client.max_streams == 1000)


async def test_rule_stream_over_the_limit_is_refused(mock, connect):
    """A stream beyond the advertised limit gets RST_STREAM REFUSED_STREAM, not GOAWAY."""
    client = await connect(mock)
    client.ignore_stream_limit()
    mock.latency = 30.0  # keeps the first (unauthenticated) stream open
    client.send(headers=push_headers(None))
    second = await client.request(headers=push_headers(None))
    assert second.reset == ErrorCodes.REFUSED_STREAM
    assert client.goaways == []


async def test_rule_priority_frames_are_ignored(mock, connect, token):
    """PRIORITY frames are accepted and change nothing: the push that follows is answered 200."""
    client = await connect(mock)
    stream_id = client.conn.get_next_available_stream_id()
    frame = PriorityFrame(stream_id, depends_on=0, stream_weight=255, exclusive=True)
    client.writer.write(frame.serialize())
    assert await outcome(client, token) == (200, None)
    assert mock.stats.protocol_errors == 0


# -- provider tokens ---------------------------------------------------------------------------


async def test_rule_missing_provider_token(mock, connect):
    """A token connection's push without an authorization header is 403 MissingProviderToken."""
    client = await connect(mock)
    assert await outcome(client, None) == (403, "MissingProviderToken")


async def test_rule_token_must_be_es256(mock, connect, clock):
    """A token signed with anything but ES256 (here HS256) is 403 InvalidProviderToken."""
    claims = {"iss": TEAM_ID, "iat": int(clock.now)}
    token = jwt.encode(claims, "k" * 32, algorithm="HS256", headers={"kid": "ABC123DEFG"})
    client = await connect(mock)
    assert await outcome(client, token) == (403, "InvalidProviderToken")


async def test_rule_token_expires_after_an_hour_and_wedges(mock, connect, credentials, clock):
    """iat 3599 s old is fine; 3601 s old is ExpiredProviderToken, and later streams are refused."""
    fresh = await connect(mock)
    assert await outcome(fresh, credentials.mint(clock.now - 3599)) == (200, None)
    client = await connect(mock)
    stale = credentials.mint(clock.now - 3601)
    assert await outcome(client, stale) == (403, "ExpiredProviderToken")
    later = await client.request(headers=push_headers(credentials.mint(clock.now)))
    assert later.reset == ErrorCodes.REFUSED_STREAM


async def test_rule_der_signature_is_accepted(mock, connect, credentials, clock):
    """An ES256 signature in DER form instead of raw R||S verifies and the push is accepted."""
    client = await connect(mock)
    token = credentials.mint(clock.now)
    assert await outcome(client, to_der_signature(token)) == (200, None)


async def test_rule_string_iat_is_accepted(mock, connect, credentials, clock):
    """An iat claim sent as a numeric JSON string is read as a number and accepted."""
    client = await connect(mock)
    token = credentials.mint(clock.now, extra={"iat": str(int(clock.now))})
    assert await outcome(client, token) == (200, None)


async def test_rule_future_iat_is_accepted(mock, connect, credentials, clock):
    """A token issued 50 minutes in the future is accepted by default (no skew check)."""
    client = await connect(mock)
    assert await outcome(client, credentials.mint(clock.now + 3000)) == (200, None)


async def test_rule_token_updates_at_most_every_20_minutes(mock, connect, credentials, clock):
    """A new token within 20 min on one connection is 429; at 20 min it is accepted."""
    client = await connect(mock)
    assert await outcome(client, credentials.mint(clock.now)) == (200, None)
    clock.advance(1199)
    newer = credentials.mint(clock.now)
    assert await outcome(client, newer) == (429, "TooManyProviderTokenUpdates")
    clock.advance(1)
    assert await outcome(client, newer) == (200, None)


async def test_rule_one_team_per_connection(mock, connect, credentials, clock):
    """A second team's valid token on a connection pinned to the first is InvalidProviderToken."""
    other = generate_signing_key()
    mock.add_signing_key("OTHERKEY01", "OTHERTEAM1", other.public_key)
    client = await connect(mock)
    assert await outcome(client, credentials.mint(clock.now)) == (200, None)
    foreign = credentials.mint(clock.now, kid="OTHERKEY01", team="OTHERTEAM1", key=other)
    assert await outcome(client, foreign) == (403, "InvalidProviderToken")


async def test_rule_unrelated_key_id_in_token(mock, connect, credentials, clock):
    """A topic-specific key after the team key on one connection is 403 UnrelatedKeyIdInToken."""
    topic_key = generate_signing_key()
    mock.add_signing_key("TOPICKEY01", TEAM_ID, topic_key.public_key, topics=[TOPIC])
    client = await connect(mock)
    assert await outcome(client, credentials.mint(clock.now)) == (200, None)
    token = credentials.mint(clock.now, kid="TOPICKEY01", key=topic_key)
    assert await outcome(client, token) == (403, "UnrelatedKeyIdInToken")


# -- GOAWAY ------------------------------------------------------------------------------------


async def test_rule_goaway_json_reason_through_the_admin_api(mock, connect):
    """POST /goaway sends GOAWAY whose debug data is JSON with a reason key."""
    admin = AdminServer(mock)
    await admin.start("127.0.0.1", 0)
    try:
        client = await connect(mock)
        async with aiohttp.ClientSession(f"http://127.0.0.1:{admin.port}") as session:
            body = {"reason": "Shutdown", "graceful": False}
            async with session.post("/goaway", json=body) as response:
                assert response.status == 200
        await client.wait_closed()
    finally:
        await admin.stop()
    assert json.loads(client.goaways[0].additional_data) == {"reason": "Shutdown"}


@pytest.mark.parametrize(
    ("idle", "debug"),
    [
        (IdleClose(after=0.05), [b'{"reason":"IdleTimeout"}']),
        (IdleClose(after=0.05, followed_by_empty=True), [b'{"reason":"IdleTimeout"}', b""]),
        (IdleClose(after=0.05, debug="empty"), [b""]),
    ],
)
async def test_rule_idle_close_goaway_says_idle_timeout(mock, connect, idle, debug):
    """Idle close sends GOAWAY {"reason":"IdleTimeout"}; the empty forms are options."""
    mock.scenario = Scenario(idle_close=idle)
    client = await connect(mock)
    await client.wait_closed()
    assert [g.additional_data or b"" for g in client.goaways] == debug


# -- client certificates -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def provider_ca():
    return generate_ca("provider CA")


@pytest.fixture
async def mtls_mock(make_mock, provider_ca):
    async with make_mock(client_ca_pem=provider_ca.cert_pem).serving() as server:
        yield server


async def test_rule_wrong_environment_certificate(mtls_mock, connect, provider_ca):
    """A sandbox-only certificate on production gets GOAWAY with BadCertificateEnvironment."""
    cert = provider_ca.issue_provider(TOPIC, environments=["sandbox"])
    client = await connect(mtls_mock, client_cert=cert)
    await client.wait_closed()
    [goaway] = client.goaways
    assert (goaway.last_stream_id, goaway.additional_data) == (
        0,
        b'{"reason":"BadCertificateEnvironment"}',
    )


async def test_rule_bad_certificate_fails_tls(mtls_mock, connect, provider_ca):
    """An expired client certificate fails at TLS: the client never sees HTTP/2 SETTINGS."""
    now = dt.datetime.now(dt.UTC)
    cert = provider_ca.issue_provider(
        TOPIC, valid_from=now - dt.timedelta(days=30), valid_until=now - dt.timedelta(days=1)
    )
    try:
        client = await connect(mtls_mock, client_cert=cert, ready=False)
    except (ssl.SSLError, ConnectionError):
        assert mtls_mock.stats.connections == 0  # TLS 1.2: the handshake itself failed
        return
    await client.wait_closed()  # TLS 1.3: the alert arrives after the client's Finished
    assert client.settings_frames == []


async def test_rule_certificate_topics(mtls_mock, connect, provider_ca):
    """A multi-topic certificate needs apns-topic, and a topic outside it is BadTopic."""
    client = await connect(mtls_mock, client_cert=provider_ca.issue_provider(TOPIC))
    missing = await client.request(headers=push_headers(None, apns_topic=None))
    assert (missing.status, missing.reason) == (400, "MissingTopic")
    other = await client.request(headers=push_headers(None, apns_topic="com.example.other"))
    assert (other.status, other.reason) == (400, "BadTopic")


async def test_rule_single_topic_certificate_default_topic(mtls_mock, connect, provider_ca):
    """Without apns-topic, a single-topic certificate's subject UID is the topic."""
    cert = provider_ca.issue_provider(TOPIC, topic_kinds=None)
    client = await connect(mtls_mock, client_cert=cert)
    response = await client.request(headers=push_headers(None, apns_topic=None))
    assert response.status == 200
    assert mtls_mock.devices.received(DEVICE)[0].topic == TOPIC
