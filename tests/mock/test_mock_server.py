"""The mock's core contract: TLS + ALPN h2, Apple's SETTINGS, token auth, devices, responses."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import uuid

import pytest
from h2.settings import SettingCodes
from mock_support import DEVICE, KEY_ID, TEAM_ID, TOPIC, UNKNOWN_DEVICE, WAIT, push_headers

from apns_exporter.mock import generate_signing_key

APPLE_SETTINGS = {
    SettingCodes.HEADER_TABLE_SIZE: 4096,
    SettingCodes.MAX_CONCURRENT_STREAMS: 1,
    SettingCodes.INITIAL_WINDOW_SIZE: 65535,
    SettingCodes.MAX_FRAME_SIZE: 16384,
    SettingCodes.MAX_HEADER_LIST_SIZE: 8000,
}


async def test_negotiates_h2_over_tls(mock, connect):
    """A TLS client offering ALPN h2 gets h2 and a certificate that verifies against the CA."""
    client = await connect(mock)
    ssl_object = client.writer.get_extra_info("ssl_object")
    assert ssl_object.selected_alpn_protocol() == "h2"
    assert ssl_object.version() in ("TLSv1.2", "TLSv1.3")


async def test_client_without_alpn_h2_is_disconnected_when_required(make_mock, connect):
    """With require_alpn, a client that does not offer ALPN h2 gets no HTTP/2 at all."""
    async with make_mock(require_alpn=True).serving() as mock:
        client = await connect(mock, alpn=["http/1.1"], ready=False)
        await client.wait_closed()
        assert client.settings_frames == []


async def test_http2_prior_knowledge_without_alpn_is_served(mock, connect, token):
    """By default a TLS client offering no ALPN may speak HTTP/2 directly, as aioapns does."""
    client = await connect(mock, alpn=[])
    assert client.writer.get_extra_info("ssl_object").selected_alpn_protocol() is None
    assert (await client.request(headers=push_headers(token))).status == 200


async def test_http1_client_is_disconnected(mock, credentials):
    """An HTTP/1.1 request over TLS fails the HTTP/2 preface and the connection is closed."""
    context = ssl.create_default_context(cadata=credentials.ca.cert_pem.decode())
    context.set_alpn_protocols(["http/1.1"])
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(mock.host, mock.port, ssl=context, server_hostname="localhost"),
        WAIT,
    )
    writer.write(b"GET /3/device/x HTTP/1.1\r\nHost: localhost\r\n\r\n" + b"\r\n" * 8)
    try:
        data = await asyncio.wait_for(reader.read(), WAIT)  # until the server closes
    except (ConnectionError, ssl.SSLError):
        data = b""
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), WAIT)
    assert b"HTTP/1.1 200" not in data
    assert mock.stats.protocol_errors == 1


async def test_untrusted_client_rejects_mock_certificate(mock, connect):
    """The served chain is the generated one, so a client trusting another CA refuses it."""
    from apns_exporter.mock import generate_ca

    with pytest.raises(ssl.SSLCertVerificationError):
        await connect(mock, cadata=generate_ca("someone else").cert_pem)


async def test_initial_settings_are_apples_five_with_one_stream(mock, connect):
    """The first SETTINGS frame carries Apple's five values and MAX_CONCURRENT_STREAMS 1."""
    client = await connect(mock)
    await client.wait_for(lambda: bool(client.settings_frames))
    assert client.settings_frames[0] == APPLE_SETTINGS


async def test_stream_limit_rises_to_1000_after_first_valid_token(mock, connect, token):
    """After the first push with a valid provider token the server advertises 1000 streams."""
    client = await connect(mock)
    response = await client.request(headers=push_headers(token))
    assert response.status == 200
    await client.wait_for(lambda: client.max_streams == 1000)
    raised = {**APPLE_SETTINGS, SettingCodes.MAX_CONCURRENT_STREAMS: 1000}
    assert client.settings_frames[-1] == raised


async def test_non_post_is_405_before_auth(mock, connect):
    """Any method other than POST gets 405 MethodNotAllowed even with no provider token."""
    client = await connect(mock)
    for method in ("GET", "HEAD", "PUT"):
        response = await client.request(method=method, headers=[], body=b"")
        assert response.status == 405
        if method != "HEAD":
            assert response.reason == "MethodNotAllowed"


async def test_missing_token_is_403_missing_provider_token(mock, connect):
    """A push without an authorization header gets 403 MissingProviderToken."""
    client = await connect(mock)
    response = await client.request(headers=push_headers(None))
    assert (response.status, response.reason) == (403, "MissingProviderToken")


@pytest.mark.parametrize(
    "variant", ["wrong-signature", "unknown-kid", "wrong-team", "garbage", "not-bearer"]
)
async def test_bad_tokens_are_403_invalid_provider_token(
    mock, connect, credentials, clock, variant
):
    """Bad signature, unknown key ID, wrong team or unparsable tokens get InvalidProviderToken."""
    tokens = {
        "wrong-signature": credentials.mint(clock.now, key=generate_signing_key()),
        "unknown-kid": credentials.mint(clock.now, kid="ZZZZZZZZZZ"),
        "wrong-team": credentials.mint(clock.now, team="OTHERTEAM1"),
        "garbage": "not.a.jwt",
    }
    client = await connect(mock)
    if variant == "not-bearer":
        headers = [*push_headers(None), ("authorization", f"basic {credentials.mint(clock.now)}")]
    else:
        headers = push_headers(tokens[variant])
    response = await client.request(headers=headers)
    assert (response.status, response.reason) == (403, "InvalidProviderToken")


async def test_token_older_than_an_hour_is_expired(mock, connect, credentials, clock):
    """A token whose iat is more than 3600 s before the mock clock gets ExpiredProviderToken."""
    client = await connect(mock)
    response = await client.request(headers=push_headers(credentials.mint(clock.now - 3601)))
    assert (response.status, response.reason) == (403, "ExpiredProviderToken")


async def test_token_just_under_an_hour_is_accepted(mock, connect, credentials, clock):
    """A token 3599 s old is still valid."""
    client = await connect(mock)
    response = await client.request(headers=push_headers(credentials.mint(clock.now - 3599)))
    assert response.status == 200


async def test_unknown_device_is_400_bad_device_token(mock, connect, token):
    """A well-formed token that no device registered gets 400 BadDeviceToken (auth passed)."""
    client = await connect(mock)
    response = await client.request(f"/3/device/{UNKNOWN_DEVICE}", headers=push_headers(token))
    assert (response.status, response.reason) == (400, "BadDeviceToken")


async def test_unregistered_device_is_410_with_ms_timestamp(mock, connect, token):
    """A device unregistered at time t answers 410 Unregistered with timestamp t in ms."""
    mock.devices.unregister(DEVICE, at=1_700_000_000.25)
    client = await connect(mock)
    response = await client.request(headers=push_headers(token))
    assert response.status == 410
    assert response.json == {"reason": "Unregistered", "timestamp": 1_700_000_000_250}


async def test_accepted_push_is_200_with_empty_body_and_recorded(mock, connect, token):
    """An accepted push gets 200 with no body, and the device records what it received."""
    client = await connect(mock)
    apns_id = str(uuid.uuid4())
    response = await client.request(
        headers=push_headers(
            token,
            apns_id=apns_id,
            apns_priority="5",
            apns_collapse_id="c1",
            apns_expiration="1750000100",
        ),
        body=b'{"aps":{"alert":"hello"}}',
    )
    assert (response.status, response.body) == (200, b"")
    [note] = mock.devices.received(DEVICE)
    assert note.json == {"aps": {"alert": "hello"}}
    assert (note.apns_id, note.topic, note.push_type, note.priority) == (apns_id, TOPIC, "alert", 5)
    assert (note.collapse_id, note.expiration) == ("c1", 1750000100)


async def test_apns_id_is_echoed_or_generated_on_every_response(mock, connect, token):
    """Every response carries apns-id: the client's valid one echoed, else a lowercase uuid4."""
    client = await connect(mock)
    mine = str(uuid.uuid4())
    echoed = await client.request(headers=push_headers(token, apns_id=mine))
    generated = await client.request(f"/3/device/{UNKNOWN_DEVICE}", headers=push_headers(token))
    rejected = await client.request(method="GET", body=b"")
    assert echoed.headers["apns-id"] == mine
    for response in (generated, rejected):
        value = response.headers["apns-id"]
        assert value == value.lower()
        assert uuid.UUID(value).version == 4


async def test_production_has_no_apns_unique_id(mock, connect, token):
    """apns-unique-id is only sent by the sandbox (development) environment."""
    client = await connect(mock)
    response = await client.request(headers=push_headers(token))
    assert "apns-unique-id" not in response.headers


async def test_sandbox_adds_apns_unique_id(make_mock, connect, token):
    """In sandbox mode every response carries an apns-unique-id UUID."""
    async with make_mock(environment="sandbox").serving() as sandbox:
        client = await connect(sandbox)
        response = await client.request(headers=push_headers(token))
        assert uuid.UUID(response.headers["apns-unique-id"])


async def test_error_body_is_json_reason_only(mock, connect):
    """Errors other than 410 have a JSON body with exactly one key, reason."""
    client = await connect(mock)
    response = await client.request(headers=push_headers(None))
    assert response.json == {"reason": "MissingProviderToken"}


async def test_latency_knob_delays_responses_while_running(mock, connect, token):
    """Setting mock.latency on a running server holds responses back (a PING still comes back)."""
    client = await connect(mock)
    mock.latency = 30.0
    stream_id = client.send(headers=push_headers(token))
    await asyncio.wait_for(client.ping(), WAIT)
    assert not client._futures[stream_id].done()
    mock.latency = 0.0
    second = await client.request(f"/3/device/{UNKNOWN_DEVICE}", headers=push_headers(token))
    assert second.status == 400
    assert not client._futures[stream_id].done()


async def test_pings_are_acked_and_counted(mock, connect):
    """HTTP/2 PINGs are ACKed with the same data and counted in stats.pings."""
    client = await connect(mock)
    await asyncio.wait_for(client.ping(b"12345678"), WAIT)
    await asyncio.wait_for(client.ping(b"abcdefgh"), WAIT)
    assert mock.stats.pings == 2


async def test_stats_count_responses_and_connections(mock, connect, token):
    """stats.responses counts by (status, reason) and stats.connections counts h2 connections."""
    client = await connect(mock)
    await client.request(headers=push_headers(token))
    await client.request(f"/3/device/{UNKNOWN_DEVICE}", headers=push_headers(token))
    await connect(mock)
    assert mock.stats.count(200) == 1
    assert mock.stats.count(400, "BadDeviceToken") == 1
    assert mock.stats.connections == 2


async def test_malformed_frames_do_not_crash_the_server(mock, connect, token):
    """A client sending an undecodable HEADERS frame is disconnected; others keep being served."""
    client = await connect(mock)
    # HEADERS, END_STREAM|END_HEADERS, stream 1, with an HPACK block that cannot be decoded.
    client.writer.write(b"\x00\x00\x04\x01\x05\x00\x00\x00\x01\xff\xff\xff\xff")
    await client.wait_closed()
    assert mock.stats.protocol_errors == 1
    other = await connect(mock)
    assert (await other.request(headers=push_headers(token))).status == 200


async def test_port_and_host_report_the_bound_socket(mock):
    """Port 0 binds an ephemeral port that .port reports; .host is the loopback address."""
    assert mock.port > 0
    assert mock.host == "127.0.0.1"


async def test_keys_and_teams_are_what_the_fixtures_registered(mock):
    """The fixture mock knows exactly one key and one device (guards the other tests' setup)."""
    assert [k.key_id for k in mock.keys] == [KEY_ID]
    assert [k.team_id for k in mock.keys] == [TEAM_ID]
    assert [d.token for d in mock.devices] == [DEVICE]


async def test_client_resets_and_vanishing_clients_do_not_hurt(mock, connect, token):
    """A stream reset by the client and a client vanishing mid-request leave the mock serving."""
    client = await connect(mock)
    mock.latency = 0.2
    stream_id = client.send(headers=push_headers(token))
    client.conn.reset_stream(stream_id)
    client._flush()
    await asyncio.wait_for(client.ping(), WAIT)
    client.send(headers=push_headers(token))
    client.writer.transport.abort()
    mock.latency = 0.0
    other = await connect(mock)
    assert (await other.request(headers=push_headers(token))).status == 200
    assert mock.stats.protocol_errors == 0
