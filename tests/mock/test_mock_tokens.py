"""Provider-token (JWT) rules: signatures, expiry, refresh limits, team/key/environment binding."""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from h2.errors import ErrorCodes
from mock_support import TEAM_ID, push_headers

from apns_exporter.mock import Policy, generate_signing_key


def to_der_signature(token: str) -> str:
    head, _, sig = token.rpartition(".")
    raw = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    return head + "." + base64.urlsafe_b64encode(der).rstrip(b"=").decode()


async def status_reason(client, token):
    response = await client.request(headers=push_headers(token))
    return response.status, response.reason


async def test_der_encoded_signature_is_accepted(mock, connect, credentials, clock):
    """ES256 tokens signed in DER form (Java, old APNSwift) verify like raw R||S ones."""
    client = await connect(mock)
    der_token = to_der_signature(credentials.mint(clock.now))
    assert der_token != credentials.mint(clock.now)
    assert await status_reason(client, der_token) == (200, None)


async def test_corrupted_der_signature_is_invalid(mock, connect, credentials, clock):
    """A DER signature that does not verify is still InvalidProviderToken."""
    client = await connect(mock)
    other = to_der_signature(credentials.mint(clock.now, key=generate_signing_key()))
    assert await status_reason(client, other) == (403, "InvalidProviderToken")


async def test_resending_the_same_token_is_fine(mock, connect, token, clock):
    """Re-sending the accepted token string is not an update, even minutes later."""
    client = await connect(mock)
    for _ in range(3):
        assert await status_reason(client, token) == (200, None)
        clock.advance(300)


async def test_new_token_within_20_minutes_is_too_many_updates(mock, connect, credentials, clock):
    """A different token on one connection within 20 min gets 429 TooManyProviderTokenUpdates."""
    client = await connect(mock)
    assert await status_reason(client, credentials.mint(clock.now)) == (200, None)
    clock.advance(1199)
    assert await status_reason(client, credentials.mint(clock.now)) == (
        429,
        "TooManyProviderTokenUpdates",
    )


async def test_new_token_after_20_minutes_is_accepted(mock, connect, credentials, clock):
    """A different token 20 min after the previous one was first accepted is a legal refresh."""
    client = await connect(mock)
    assert await status_reason(client, credentials.mint(clock.now)) == (200, None)
    clock.advance(1200)
    assert await status_reason(client, credentials.mint(clock.now)) == (200, None)


async def test_token_updates_are_per_connection_by_default(mock, connect, credentials, clock):
    """By default another connection may present a different token at once."""
    first, second = await connect(mock), await connect(mock)
    assert await status_reason(first, credentials.mint(clock.now)) == (200, None)
    clock.advance(60)
    assert await status_reason(second, credentials.mint(clock.now)) == (200, None)


async def test_team_wide_token_update_scope(make_mock, connect, credentials, clock):
    """With token_update_scope="team" a new token on another connection also counts as an update."""
    async with make_mock(policy=Policy(token_update_scope="team")).serving() as mock:
        first, second = await connect(mock), await connect(mock)
        assert await status_reason(first, credentials.mint(clock.now)) == (200, None)
        clock.advance(60)
        assert await status_reason(second, credentials.mint(clock.now)) == (
            429,
            "TooManyProviderTokenUpdates",
        )


async def test_cooloff_makes_the_connection_unusable(make_mock, connect, credentials, clock):
    """With a cool-off, after TooManyProviderTokenUpdates even the old token is refused a while."""
    async with make_mock(policy=Policy(token_update_cooloff=600)).serving() as mock:
        client = await connect(mock)
        old = credentials.mint(clock.now)
        assert await status_reason(client, old) == (200, None)
        clock.advance(10)
        assert (await status_reason(client, credentials.mint(clock.now)))[0] == 429
        assert (await status_reason(client, old))[0] == 429
        clock.advance(600)
        assert await status_reason(client, old) == (200, None)


async def test_accepted_token_expires_on_the_connection(mock, connect, token, clock):
    """A token accepted earlier becomes ExpiredProviderToken once it is over an hour old."""
    client = await connect(mock)
    assert await status_reason(client, token) == (200, None)
    clock.advance(3601)
    assert await status_reason(client, token) == (403, "ExpiredProviderToken")


async def test_expired_token_wedges_the_connection(mock, connect, credentials, clock):
    """After ExpiredProviderToken the limit drops to 1 and every later stream is REFUSED_STREAM."""
    client = await connect(mock)
    assert await status_reason(client, credentials.mint(clock.now)) == (200, None)
    await client.wait_for(lambda: client.max_streams == 1000)
    expired = credentials.mint(clock.now - 3700)
    assert (await status_reason(client, expired))[1] == "ExpiredProviderToken"
    await client.wait_for(lambda: client.max_streams == 1)
    fresh = await client.request(headers=push_headers(credentials.mint(clock.now)))
    assert fresh.reset == ErrorCodes.REFUSED_STREAM
    assert mock.connections[0]["wedged"] is True


async def test_first_push_pins_the_team(mock, connect, credentials, clock):
    """After a push from one team, a valid token of another team on that connection is invalid."""
    other_key = generate_signing_key()
    mock.add_signing_key("OTHERKEY01", "OTHERTEAM1", other_key.public_key)
    client = await connect(mock)
    assert await status_reason(client, credentials.mint(clock.now)) == (200, None)
    foreign = credentials.mint(clock.now, kid="OTHERKEY01", team="OTHERTEAM1", key=other_key)
    assert await status_reason(client, foreign) == (403, "InvalidProviderToken")
    fresh_connection = await connect(mock)
    assert await status_reason(fresh_connection, foreign) == (200, None)


async def test_unrelated_key_on_one_connection(mock, connect, credentials, clock):
    """A topic-specific key after a team-scoped key on one connection is UnrelatedKeyIdInToken."""
    topic_key = generate_signing_key()
    mock.add_signing_key("TOPICKEY01", TEAM_ID, topic_key.public_key, topics=["com.example.app"])
    client = await connect(mock)
    assert await status_reason(client, credentials.mint(clock.now)) == (200, None)
    token = credentials.mint(clock.now, kid="TOPICKEY01", key=topic_key)
    assert await status_reason(client, token) == (403, "UnrelatedKeyIdInToken")


async def test_related_team_key_change_counts_as_token_update(mock, connect, credentials, clock):
    """Switching between two team-scoped keys of one team within 20 min is an update (429)."""
    second_key = generate_signing_key()
    mock.add_signing_key("SECONDKEY1", TEAM_ID, second_key.public_key)
    client = await connect(mock)
    assert await status_reason(client, credentials.mint(clock.now)) == (200, None)
    token = credentials.mint(clock.now, kid="SECONDKEY1", key=second_key)
    assert (await status_reason(client, token))[1] == "TooManyProviderTokenUpdates"


async def test_environment_scoped_key_on_wrong_environment(mock, connect, credentials, clock):
    """A sandbox-only key used against production gets 403 BadEnvironmentKeyIdInToken."""
    sandbox_key = generate_signing_key()
    mock.add_signing_key("SANDBOXKEY", TEAM_ID, sandbox_key.public_key, environment="sandbox")
    client = await connect(mock)
    token = credentials.mint(clock.now, kid="SANDBOXKEY", key=sandbox_key)
    assert await status_reason(client, token) == (403, "BadEnvironmentKeyIdInToken")


async def test_revoked_key_tokens_are_invalid(mock, connect, credentials, clock):
    """After keys.revoke(kid), new connections presenting its tokens get InvalidProviderToken."""
    mock.keys.revoke("ABC123DEFG")
    client = await connect(mock)
    assert await status_reason(client, credentials.mint(clock.now)) == (403, "InvalidProviderToken")


async def test_future_iat_policy(make_mock, connect, credentials, clock):
    """With max_future_iat set, a token issued too far in the future is InvalidProviderToken."""
    async with make_mock(policy=Policy(max_future_iat=60)).serving() as mock:
        client = await connect(mock)
        token = credentials.mint(clock.now + 120)
        assert await status_reason(client, token) == (403, "InvalidProviderToken")


async def test_wrong_algorithm_is_invalid(mock, connect, clock):
    """A token signed with HS256 instead of ES256 is InvalidProviderToken."""
    import jwt

    token = jwt.encode(
        {"iss": TEAM_ID, "iat": int(clock.now)},
        "k" * 32,
        algorithm="HS256",
        headers={"kid": "ABC123DEFG"},
    )
    client = await connect(mock)
    assert await status_reason(client, token) == (403, "InvalidProviderToken")
