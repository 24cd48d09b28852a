"""MAX_CONCURRENT_STREAMS: Apple's 1-until-authenticated, drop-on-rejection and refusals."""

from __future__ import annotations

from h2.errors import ErrorCodes
from mock_support import UNKNOWN_DEVICE, push_headers

from apns_exporter.mock import Policy


async def test_rejection_drops_limit_to_one_and_acceptance_restores_it(mock, connect, token):
    """Any rejected push drops MAX_CONCURRENT_STREAMS to 1; the next accepted one restores 1000."""
    client = await connect(mock)
    assert (await client.request(headers=push_headers(token))).status == 200
    await client.wait_for(lambda: client.max_streams == 1000)
    rejected = await client.request(f"/3/device/{UNKNOWN_DEVICE}", headers=push_headers(token))
    assert rejected.status == 400
    await client.wait_for(lambda: client.max_streams == 1)
    assert (await client.request(headers=push_headers(token))).status == 200
    await client.wait_for(lambda: client.max_streams == 1000)
    assert mock.connections[0]["stream_limit"] == 1000


async def test_drop_on_rejection_can_be_disabled(make_mock, connect, token):
    """With drop_streams_on_rejection=False a rejection leaves the limit at 1000."""
    async with make_mock(policy=Policy(drop_streams_on_rejection=False)).serving() as mock:
        client = await connect(mock)
        rejected = await client.request(f"/3/device/{UNKNOWN_DEVICE}", headers=push_headers(token))
        assert rejected.status == 400
        await client.wait_for(lambda: client.max_streams == 1000)
        assert mock.connections[0]["stream_limit"] == 1000


async def test_stream_over_the_limit_is_refused(mock, connect):
    """A second concurrent stream while the limit is 1 gets RST_STREAM REFUSED_STREAM."""
    client = await connect(mock)
    client.ignore_stream_limit()
    mock.latency = 30.0  # keeps the first (unauthenticated) stream open
    first = client.send(headers=push_headers(None))
    second = await client.request(headers=push_headers(None))
    assert second.reset == ErrorCodes.REFUSED_STREAM
    assert not client._futures[first].done()
    assert mock.stats.refused_streams == 1


async def test_configured_authenticated_limit_is_advertised(make_mock, connect, token):
    """Policy.authenticated_streams sets the limit advertised after a valid token."""
    async with make_mock(policy=Policy(authenticated_streams=500)).serving() as mock:
        client = await connect(mock)
        assert (await client.request(headers=push_headers(token))).status == 200
        await client.wait_for(lambda: client.max_streams == 500)


async def test_many_concurrent_streams_after_authentication(mock, connect, token):
    """Once authenticated, many pushes can be in flight on one connection and all succeed."""
    client = await connect(mock)
    assert (await client.request(headers=push_headers(token))).status == 200
    await client.wait_for(lambda: client.max_streams == 1000)
    streams = [client.send(headers=push_headers(token)) for _ in range(50)]
    statuses = {(await client.response(s)).status for s in streams}
    assert statuses == {200}
