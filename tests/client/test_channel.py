"""The channel's reconnect policy: jittered exponential backoff between a floor and a ceiling."""

from __future__ import annotations

import itertools
import random

from apns_exporter.client.channel import Backoff, Channel
from apns_exporter.client.connection import Endpoint
from apns_exporter.client.tls import client_context
from apns_exporter.mock.server import MockAPNs
from tests.helpers import Workspace


def test_backoff_doubles_within_floor_and_ceiling() -> None:
    """Delays grow exponentially, never drop below half the floor, never exceed the ceiling."""
    backoff = Backoff(floor=1.0, ceiling=60.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(12)]
    assert all(0.5 <= d <= 60.0 for d in delays)
    assert delays[5] >= 16.0  # base 32 s, at least half of it
    assert max(delays[-3:]) <= 60.0
    backoff.reset()
    assert backoff.next_delay() <= 1.0


async def test_refused_connection_storm_is_bounded_by_the_backoff(unused_tcp_port: int) -> None:
    """Acquiring every 100 ms for 10 simulated minutes on a refused port dials about 10 times."""
    now = [0.0]
    channel = Channel(
        Endpoint("127.0.0.1", unused_tcp_port),
        client_context(),
        connect_timeout=1.0,
        backoff=Backoff(floor=1.0, ceiling=300.0, rng=random.Random(1)),
        clock=lambda: now[0],
    )
    dial_times = []
    for _ in range(6000):  # 10 minutes at 10 acquisitions per second
        lease = await channel.acquire()
        assert lease.connection is None
        assert lease.error is not None
        assert lease.error.reason == "connect"
        if lease.dial is not None:
            dial_times.append(now[0])
        now[0] += 0.1
    gaps = [b - a for a, b in itertools.pairwise(dial_times)]
    # 1, 2, 4 ... 256 s with at least half of each: never more than 11 dials in 600 s.
    assert 5 <= len(dial_times) <= 11
    assert all(gap >= 0.5 * min(300.0, 2.0**i) for i, gap in enumerate(gaps))
    assert max(gaps) <= 300.0
    await channel.aclose()


async def test_a_connection_given_up_before_any_answer_is_explained(
    mock: MockAPNs, workspace: Workspace
) -> None:
    """A connection dropped before the server answered reads as words, never as 'None'."""
    channel = Channel(
        Endpoint("127.0.0.1", mock.port), client_context(str(workspace.ca_file)), connect_timeout=5
    )
    assert (await channel.acquire()).connection is not None
    await channel.discard()  # what a probe does when its request or PING goes unanswered
    lease = await channel.acquire()
    await channel.aclose()
    assert lease.error is not None
    assert "None" not in str(lease.error)
    assert "before the server answered anything (no answer in time" in str(lease.error)
