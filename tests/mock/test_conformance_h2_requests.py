"""Conformance rows aioapns cannot express, part 2: path, headers, payload, responses, order.

Driven with the raw h2 client of mock_support. Each ``test_rule_*`` is named by a row of
``apns_exporter.mock.conformance.ROWS``.
"""

from __future__ import annotations

import re

import pytest
from mock_support import DEVICE, TOPIC, UNKNOWN_DEVICE, push_headers

from apns_exporter.mock import VALIDATION_ORDER

LOWER_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
PATH = f"/3/device/{DEVICE}"
SILENT = b'{"aps":{"content-available":1}}'


async def answer(client, path=PATH, body=b'{"aps":{"alert":"hi"}}', method="POST", **headers):
    response = await client.request(path, headers=push_headers(**headers), body=body, method=method)
    return response.status, response.reason


# -- method and path ---------------------------------------------------------------------------


async def test_rule_method_not_allowed(mock, connect):
    """Any :method but POST is 405 MethodNotAllowed, even with no provider token."""
    client = await connect(mock)
    assert await answer(client, method="GET", body=b"", token=None) == (405, "MethodNotAllowed")
    head = await client.request(PATH, headers=[], body=b"", method="HEAD")
    assert (head.status, head.body) == (405, b"")


@pytest.mark.parametrize("path", ["/2/device/" + DEVICE, "/3/devices/" + DEVICE, PATH + "/x"])
async def test_rule_bad_path(mock, connect, token, path):
    """A :path that is not /3/device/<token> is 404 BadPath."""
    client = await connect(mock)
    assert await answer(client, path=path, token=token) == (404, "BadPath")


async def test_rule_query_string_is_ignored(mock, connect, token):
    """A query string after the device token is ignored: the push is accepted."""
    client = await connect(mock)
    assert await answer(client, path=PATH + "?source=canary", token=token) == (200, None)


@pytest.mark.parametrize(("length", "expected"), [(64, 200), (160, 200), (200, 200), (62, 400)])
async def test_rule_device_token_size(mock, connect, token, length, expected):
    """Hex tokens of 64 to 200 characters are served; shorter ones are BadDeviceToken."""
    device = "a" * length
    if length >= 64:
        mock.devices.register(device, TOPIC)
    client = await connect(mock)
    assert (await answer(client, path=f"/3/device/{device}", token=token))[0] == expected


# -- headers -----------------------------------------------------------------------------------


async def test_rule_bad_message_id(mock, connect, token):
    """A non-UUID apns-id is 400 BadMessageId, answered under a fresh apns-id."""
    client = await connect(mock)
    response = await client.request(headers=push_headers(token, apns_id="not-a-uuid"))
    assert (response.status, response.reason) == (400, "BadMessageId")
    assert LOWER_UUID.fullmatch(response.headers["apns-id"])


async def test_rule_apns_id_generated_when_omitted(mock, connect, token):
    """Without apns-id the response carries a new lowercase UUID."""
    client = await connect(mock)
    response = await client.request(headers=push_headers(token))
    assert response.status == 200
    assert LOWER_UUID.fullmatch(response.headers["apns-id"])


async def test_rule_uppercase_apns_id_is_accepted(mock, connect, token):
    """An upper-case UUID in apns-id is accepted and echoed unchanged."""
    apns_id = "ACDFB3EB-105B-D33C-7F29-8D09A01CC4EF"
    client = await connect(mock)
    response = await client.request(headers=push_headers(token, apns_id=apns_id))
    assert (response.status, response.headers["apns-id"]) == (200, apns_id)


@pytest.mark.parametrize(("value", "expected"), [("tomorrow", 400), ("-5", 400), ("0", 200)])
async def test_rule_expiration_is_unix_seconds(mock, connect, token, value, expected):
    """apns-expiration must be a UNIX time in seconds (0 allowed); else BadExpirationDate."""
    client = await connect(mock)
    status, reason = await answer(client, token=token, apns_expiration=value)
    assert status == expected
    assert reason == (None if expected == 200 else "BadExpirationDate")


async def test_rule_duplicate_headers(mock, connect, token):
    """A request header sent twice is 400 DuplicateHeaders."""
    client = await connect(mock)
    headers = [*push_headers(token), ("apns-priority", "10"), ("apns-priority", "10")]
    response = await client.request(headers=headers)
    assert (response.status, response.reason) == (400, "DuplicateHeaders")


async def test_rule_invalid_push_type(mock, connect, token):
    """An apns-push-type outside Apple's list is 400 InvalidPushType."""
    client = await connect(mock)
    assert await answer(client, token=token, apns_push_type="banana") == (400, "InvalidPushType")


async def test_rule_omitted_push_type_is_alert(mock, connect, token):
    """A push without apns-push-type is accepted and recorded as an alert push."""
    client = await connect(mock)
    assert await answer(client, token=token, apns_push_type=None) == (200, None)
    assert mock.devices.received(DEVICE)[0].push_type == "alert"


async def test_rule_token_connection_needs_a_topic(mock, connect, token):
    """With a provider token, a push without apns-topic is 400 MissingTopic."""
    client = await connect(mock)
    assert await answer(client, token=token, apns_topic=None) == (400, "MissingTopic")


async def test_rule_omitted_priority_with_content_available(mock, connect, token):
    """A content-available-only payload without apns-priority is accepted (no implied 10)."""
    client = await connect(mock)
    assert await answer(client, body=SILENT, token=token, apns_push_type="background") == (
        200,
        None,
    )


# -- payload and responses ---------------------------------------------------------------------


async def test_rule_payload_empty(mock, connect, token):
    """A POST without a body is 400 PayloadEmpty."""
    client = await connect(mock)
    assert await answer(client, body=b"", token=token) == (400, "PayloadEmpty")


async def test_rule_response_bodies(mock, connect, token):
    """200 has an empty body; errors are JSON with reason, plus timestamp only on 410."""
    client = await connect(mock)
    accepted = await client.request(headers=push_headers(token))
    assert (accepted.status, accepted.body) == (200, b"")
    rejected = await client.request(f"/3/device/{UNKNOWN_DEVICE}", headers=push_headers(token))
    assert rejected.json == {"reason": "BadDeviceToken"}
    mock.devices.unregister(DEVICE, at=1_700_000_000)
    gone = await client.request(headers=push_headers(token))
    assert gone.json == {"reason": "Unregistered", "timestamp": 1_700_000_000_000}


@pytest.mark.parametrize(("environment", "present"), [("sandbox", True), ("production", False)])
async def test_rule_apns_unique_id_in_sandbox_only(make_mock, connect, token, environment, present):
    """apns-unique-id is on sandbox responses only, as a UUID."""
    async with make_mock(environment=environment).serving() as mock:
        client = await connect(mock)
        response = await client.request(headers=push_headers(token))
    assert response.status == 200
    assert ("apns-unique-id" in response.headers) is present
    if present:
        assert LOWER_UUID.fullmatch(response.headers["apns-unique-id"])


# -- the order among several defects -----------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "token_ok", "extra", "body", "expected"),
    [
        ("GET", "/2/device/x", False, {"apns_priority": "7"}, b"", (405, "MethodNotAllowed")),
        ("POST", "/2/device/x", False, {"apns_priority": "7"}, b"", (404, "BadPath")),
        ("POST", PATH, False, {"apns_priority": "7"}, b"", (403, "MissingProviderToken")),
        (
            "POST",
            f"/3/device/{UNKNOWN_DEVICE}",
            True,
            {"apns_priority": "7"},
            b"",
            (400, "BadPriority"),
        ),
        ("POST", f"/3/device/{UNKNOWN_DEVICE}", True, {}, b"", (400, "BadDeviceToken")),
        ("POST", PATH, True, {}, b"", (400, "PayloadEmpty")),
    ],
)
async def test_rule_defect_order(
    mock, connect, token, method, path, token_ok, extra, body, expected
):
    """With several defects the first in VALIDATION_ORDER wins: method, path, auth, headers..."""
    assert VALIDATION_ORDER == (
        "method",
        "path",
        "auth",
        "headers",
        "device_token",
        "payload",
        "rate",
    )
    client = await connect(mock)
    headers = push_headers(token if token_ok else None, **extra)
    response = await client.request(path, headers=headers, body=body, method=method)
    assert (response.status, response.reason if method != "HEAD" else None) == expected
