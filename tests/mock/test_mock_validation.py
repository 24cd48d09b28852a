"""Apple's request validation: every step, every reason, and the order they are checked in."""

from __future__ import annotations

import uuid

import pytest
from mock_support import DEVICE, TOPIC, UNKNOWN_DEVICE, push_headers

from apns_exporter.mock import Policy, RateLimit


async def reason_of(client, path=f"/3/device/{DEVICE}", headers=None, body=None):
    kwargs = {"body": body} if body is not None else {}
    response = await client.request(path, headers=headers, **kwargs)
    return response.status, response.reason


def test_policy_rejects_unknown_steps():
    """A validation order naming a step that does not exist is refused at construction."""
    with pytest.raises(ValueError, match="unknown validation step"):
        Policy(validation_order=("method", "telepathy"))


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/3/device/", (400, "MissingDeviceToken")),
        ("/3/device", (400, "MissingDeviceToken")),
        ("/2/device/" + DEVICE, (404, "BadPath")),
        ("/3/device/" + DEVICE + "/extra", (404, "BadPath")),
        ("/", (404, "BadPath")),
    ],
)
async def test_path_errors(mock, connect, path, expected):
    """Paths other than /3/device/<token> get 404 BadPath, or 400 MissingDeviceToken."""
    client = await connect(mock)
    assert await reason_of(client, path, push_headers(None)) == expected


async def test_path_is_checked_before_auth(mock, connect):
    """A bad path with no provider token is a path error, not an auth error."""
    client = await connect(mock)
    assert (await reason_of(client, "/bad", push_headers(None)))[1] == "BadPath"


async def test_auth_is_checked_before_device_token(mock, connect):
    """An unknown device with no provider token gets MissingProviderToken, not BadDeviceToken."""
    client = await connect(mock)
    result = await reason_of(client, f"/3/device/{UNKNOWN_DEVICE}", push_headers(None))
    assert result == (403, "MissingProviderToken")


async def test_reordered_validation_checks_device_token_first(make_mock, connect):
    """A policy that moves device_token before auth makes the same request a BadDeviceToken."""
    order = ("method", "path", "device_token", "auth", "headers", "payload", "rate")
    async with make_mock(policy=Policy(validation_order=order)).serving() as mock:
        client = await connect(mock)
        result = await reason_of(client, f"/3/device/{UNKNOWN_DEVICE}", push_headers(None))
        assert result == (400, "BadDeviceToken")


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"apns_id": "not-a-uuid"}, "BadMessageId"),
        ({"apns_priority": "7"}, "BadPriority"),
        ({"apns_push_type": "background", "apns_priority": "10"}, "BadPriority"),
        ({"apns_push_type": "carrier-pigeon"}, "InvalidPushType"),
        ({"apns_topic": None}, "MissingTopic"),
        ({"apns_push_type": "voip"}, "BadTopic"),
        ({"apns_push_type": "liveactivity"}, "BadTopic"),
        ({"apns_collapse_id": "x" * 65}, "BadCollapseId"),
        ({"apns_expiration": "tomorrow"}, "BadExpirationDate"),
    ],
)
async def test_header_errors(mock, connect, token, overrides, expected):
    """Each malformed header gets its documented 400 reason."""
    client = await connect(mock)
    assert await reason_of(client, headers=push_headers(token, **overrides)) == (400, expected)


async def test_priority_1_and_collapse_id_of_64_bytes_are_fine(mock, connect, token):
    """apns-priority 1 and a 64-byte collapse ID are within the rules."""
    client = await connect(mock)
    headers = push_headers(token, apns_priority="1", apns_collapse_id="x" * 64)
    assert await reason_of(client, headers=headers) == (200, None)


async def test_duplicate_headers(mock, connect, token):
    """The same apns-* header twice gets 400 DuplicateHeaders."""
    client = await connect(mock)
    headers = [*push_headers(token), ("apns-collapse-id", "a"), ("apns-collapse-id", "b")]
    assert await reason_of(client, headers=headers) == (400, "DuplicateHeaders")


async def test_voip_push_to_voip_topic_is_accepted_with_5120_bytes(mock, connect, token):
    """A voip push needs the .voip topic suffix and may carry up to 5120 bytes."""
    client = await connect(mock)
    headers = push_headers(token, apns_push_type="voip", apns_topic=f"{TOPIC}.voip")
    body = b'{"p":"' + b"x" * (5120 - 8) + b'"}'
    assert len(body) == 5120
    assert await reason_of(client, headers=headers, body=body) == (200, None)
    assert mock.devices.received(DEVICE)[-1].topic == f"{TOPIC}.voip"


@pytest.mark.parametrize(("push_type", "limit"), [("alert", 4096), ("voip", 5120)])
async def test_payload_one_byte_over_the_limit_is_413(mock, connect, token, push_type, limit):
    """A payload one byte over 4096 (5120 for voip) gets 413 PayloadTooLarge."""
    client = await connect(mock)
    topic = TOPIC + (".voip" if push_type == "voip" else "")
    headers = push_headers(token, apns_push_type=push_type, apns_topic=topic)
    assert await reason_of(client, headers=headers, body=b"x" * (limit + 1)) == (
        413,
        "PayloadTooLarge",
    )


async def test_empty_payload(mock, connect, token):
    """A push with no body gets 400 PayloadEmpty."""
    client = await connect(mock)
    assert await reason_of(client, headers=push_headers(token), body=b"") == (400, "PayloadEmpty")


async def test_topic_disallowed_for_topic_specific_key(make_mock, connect, credentials, clock):
    """A topic-specific key used for another topic gets 400 TopicDisallowed."""
    mock = make_mock()
    mock.add_signing_key(
        "TOPICKEY01", "DEF123GHIJ", credentials.signing_key.public_key, topics=["com.example.other"]
    )
    async with mock.serving():
        client = await connect(mock)
        token = credentials.mint(clock.now, kid="TOPICKEY01")
        assert await reason_of(client, headers=push_headers(token)) == (400, "TopicDisallowed")


@pytest.mark.parametrize("token_hex", ["ab" * 31, "zz" * 32, "abc" + "d" * 62, "ab" * 101])
async def test_malformed_device_tokens(mock, connect, token, token_hex):
    """Too short, non-hex, odd-length or too long tokens get 400 BadDeviceToken."""
    client = await connect(mock)
    result = await reason_of(client, f"/3/device/{token_hex}", push_headers(token))
    assert result == (400, "BadDeviceToken")


async def test_long_live_activity_tokens_are_accepted(mock, connect, token):
    """Token length is a range (default 64..200 hex), so a 160-hex token can be valid."""
    long_token = "ef" * 80
    mock.devices.register(long_token, TOPIC)
    client = await connect(mock)
    assert await reason_of(client, f"/3/device/{long_token}", push_headers(token)) == (200, None)


async def test_device_tokens_are_case_insensitive(mock, connect, token):
    """Upper-case hex in the path addresses the same device."""
    client = await connect(mock)
    assert await reason_of(client, f"/3/device/{DEVICE.upper()}", push_headers(token)) == (
        200,
        None,
    )


async def test_device_token_not_for_topic(mock, connect, token):
    """A device registered for another app gets 400 DeviceTokenNotForTopic."""
    mock.devices.register(UNKNOWN_DEVICE, "com.example.other")
    client = await connect(mock)
    result = await reason_of(client, f"/3/device/{UNKNOWN_DEVICE}", push_headers(token))
    assert result == (400, "DeviceTokenNotForTopic")


async def test_expired_device_token_is_410_with_timestamp(mock, connect, token):
    """An expired device token gets 410 ExpiredToken with its ms timestamp."""
    mock.devices.expire(DEVICE, at=1_700_000_000)
    client = await connect(mock)
    response = await client.request(headers=push_headers(token))
    assert response.json == {"reason": "ExpiredToken", "timestamp": 1_700_000_000_000}


async def test_device_environment_mismatch_is_bad_device_token(mock, connect, token):
    """A sandbox device token sent to production gets 400 BadDeviceToken."""
    mock.devices.register(UNKNOWN_DEVICE, TOPIC, environment="sandbox")
    client = await connect(mock)
    result = await reason_of(client, f"/3/device/{UNKNOWN_DEVICE}", push_headers(token))
    assert result == (400, "BadDeviceToken")


async def test_per_token_rate_limit(make_mock, connect, token, clock):
    """Over the configured pushes per window one token gets 429 TooManyRequests, then recovers."""
    policy = Policy(rate_limit=RateLimit(pushes=2, per_seconds=10))
    async with make_mock(policy=policy).serving() as mock:
        client = await connect(mock)
        results = [(await reason_of(client, headers=push_headers(token)))[0] for _ in range(3)]
        assert results == [200, 200, 429]
        clock.advance(10)
        assert (await reason_of(client, headers=push_headers(token)))[0] == 200


async def test_device_script_fails_the_next_pushes(mock, connect, token):
    """devices.script(token, reason, 2) makes the next two valid pushes fail, then 200 again."""
    mock.devices.script(DEVICE, "Unregistered", count=2)
    client = await connect(mock)
    statuses = [(await client.request(headers=push_headers(token))).status for _ in range(3)]
    assert statuses == [410, 410, 200]


async def test_client_apns_id_accepted_in_any_case(mock, connect, token):
    """An upper-case canonical UUID is a valid apns-id and is echoed back."""
    client = await connect(mock)
    apns_id = str(uuid.uuid4()).upper()
    response = await client.request(headers=push_headers(token, apns_id=apns_id))
    assert (response.status, response.headers["apns-id"]) == (200, apns_id)
