"""Certificate (mTLS) authentication: topics and environments from Apple's certificate layout."""

from __future__ import annotations

import datetime as dt
import ssl

import pytest
from h2.settings import SettingCodes
from mock_support import DEVICE, TOPIC, push_headers

from apns_exporter.mock import generate_ca


@pytest.fixture(scope="module")
def provider_ca():
    return generate_ca("provider CA")


@pytest.fixture
async def mtls_mock(make_mock, provider_ca):
    async with make_mock(client_ca_pem=provider_ca.cert_pem).serving() as server:
        yield server


def cert_headers(**extra):
    return push_headers(None, **extra)


async def test_certificate_connection_is_authenticated_from_the_start(
    mtls_mock, connect, provider_ca
):
    """A verified provider certificate is auth: 1000 streams at once and pushes without a JWT."""
    client = await connect(mtls_mock, client_cert=provider_ca.issue_provider(TOPIC))
    assert client.settings_frames[0][SettingCodes.MAX_CONCURRENT_STREAMS] == 1000
    assert (await client.request(headers=cert_headers())).status == 200
    assert mtls_mock.connections[0]["client_certificate_topics"] == [
        TOPIC,
        f"{TOPIC}.voip",
        f"{TOPIC}.complication",
    ]


async def test_multi_topic_certificate_needs_a_topic(mtls_mock, connect, provider_ca):
    """With a multi-topic certificate a push without apns-topic gets 400 MissingTopic."""
    client = await connect(mtls_mock, client_cert=provider_ca.issue_provider(TOPIC))
    response = await client.request(headers=cert_headers(apns_topic=None))
    assert (response.status, response.reason) == (400, "MissingTopic")


async def test_single_topic_certificate_implies_the_topic(mtls_mock, connect, provider_ca):
    """A single-topic certificate's UID is the topic when apns-topic is omitted."""
    cert = provider_ca.issue_provider(TOPIC, topic_kinds=None)
    client = await connect(mtls_mock, client_cert=cert)
    assert (await client.request(headers=cert_headers(apns_topic=None))).status == 200
    assert mtls_mock.devices.received(DEVICE)[0].topic == TOPIC


@pytest.mark.parametrize(("topic_kinds", "expected"), [(("app", "voip"), 200), (None, 400)])
async def test_voip_topic_must_be_in_the_certificate(
    mtls_mock, connect, provider_ca, topic_kinds, expected
):
    """A voip push is accepted only if the certificate's 6.3.6 list has the .voip topic."""
    cert = provider_ca.issue_provider(TOPIC, topic_kinds=topic_kinds)
    client = await connect(mtls_mock, client_cert=cert)
    headers = cert_headers(apns_push_type="voip", apns_topic=f"{TOPIC}.voip")
    assert (await client.request(headers=headers)).status == expected


async def test_topic_outside_the_certificate_is_bad_topic(mtls_mock, connect, provider_ca):
    """A topic the certificate does not carry gets 400 BadTopic."""
    client = await connect(mtls_mock, client_cert=provider_ca.issue_provider(TOPIC))
    response = await client.request(headers=cert_headers(apns_topic="com.example.other"))
    assert (response.status, response.reason) == (400, "BadTopic")


async def test_wrong_environment_certificate_gets_goaway(mtls_mock, connect, provider_ca):
    """A sandbox-only certificate on production gets GOAWAY BadCertificateEnvironment (JSON)."""
    cert = provider_ca.issue_provider(TOPIC, environments=["sandbox"])
    client = await connect(mtls_mock, client_cert=cert)
    await client.wait_closed()
    [goaway] = client.goaways
    assert (goaway.last_stream_id, goaway.error_code) == (0, 0)
    assert goaway.additional_data == b'{"reason":"BadCertificateEnvironment"}'


async def test_production_only_certificate_on_sandbox(make_mock, connect, provider_ca):
    """A production-only certificate against the sandbox mock is also the wrong environment."""
    mock = make_mock(client_ca_pem=provider_ca.cert_pem, environment="sandbox")
    async with mock.serving():
        cert = provider_ca.issue_provider(TOPIC, environments=["production"])
        client = await connect(mock, client_cert=cert)
        await client.wait_closed()
        assert b"BadCertificateEnvironment" in client.goaways[0].additional_data


async def test_mdm_push_uses_the_certificate_topic(mtls_mock, connect, provider_ca):
    """An MDM push with no apns-topic goes to the device registered for the MDM UID topic."""
    cert = provider_ca.issue_mdm(push_uuid="5f0e6b5e-0000-4000-8000-000000000001")
    mdm_topic = cert.topics[0]
    mtls_mock.devices.register("12" * 32, mdm_topic)
    client = await connect(mtls_mock, client_cert=cert)
    response = await client.request(
        f"/3/device/{'12' * 32}",
        headers=cert_headers(apns_topic=None, apns_push_type="mdm"),
        body=b'{"mdm":"push-magic"}',
    )
    assert response.status == 200
    assert mtls_mock.devices.received("12" * 32)[0].json == {"mdm": "push-magic"}


@pytest.mark.parametrize("window", [(-30, -1), (1, 30)])
async def test_expired_or_not_yet_valid_client_certificate_fails_tls(
    mtls_mock, connect, provider_ca, window
):
    """An expired or not-yet-valid client certificate fails at TLS: no HTTP/2 is ever spoken."""
    now = dt.datetime.now(dt.UTC)
    cert = provider_ca.issue_provider(
        TOPIC,
        valid_from=now + dt.timedelta(days=window[0]),
        valid_until=now + dt.timedelta(days=window[1]),
    )
    try:
        client = await connect(mtls_mock, client_cert=cert, ready=False)
    except (ssl.SSLError, ConnectionError):
        return  # TLS 1.2: the handshake itself fails
    await client.wait_closed()  # TLS 1.3: the server's alert arrives after the client finished
    assert client.settings_frames == []
    assert mtls_mock.stats.connections == 0


async def test_unknown_issuer_client_certificate_fails_tls(mtls_mock, connect):
    """A client certificate from a CA the mock does not trust is rejected at TLS."""
    cert = generate_ca("rogue").issue_provider(TOPIC)
    try:
        client = await connect(mtls_mock, client_cert=cert, ready=False)
    except (ssl.SSLError, ConnectionError):
        return
    await client.wait_closed()
    assert client.settings_frames == []


async def test_token_auth_still_works_when_certificates_are_optional(mtls_mock, connect, token):
    """With optional client certificates, a token client without one is served normally."""
    client = await connect(mtls_mock)
    assert (await client.request(headers=push_headers(token))).status == 200


async def test_required_certificate_refuses_token_only_clients(make_mock, connect, provider_ca):
    """With require_client_certificate, a client without a certificate never gets HTTP/2."""
    mock = make_mock(client_ca_pem=provider_ca.cert_pem, require_client_certificate=True)
    async with mock.serving():
        try:
            client = await connect(mock, ready=False)
        except (ssl.SSLError, ConnectionError):
            return
        await client.wait_closed()
        assert client.settings_frames == []
