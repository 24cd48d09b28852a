"""Every fault the mock can inject: the exporter's counts equal the mock's ground truth exactly.

Each case runs the exporter (fast schedule, device canary plus auth check) against the mock:
healthy first, then the fault until a probe result shows it, then healthy again until both
the canary and the PING succeed. Every probe loop is then parked at a gate, so nothing is in
flight, and the exporter's counters are compared with the mock's. Finally the exporter and
the mock stop, and no task or file descriptor may be left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from apns_exporter.mock.faults import (
    ErrorFault,
    GoAwayFault,
    IdleClose,
    Latency,
    PingFault,
    Scenario,
)
from apns_exporter.mock.pki import CertificateAuthority, SigningKeyPair, generate_ca
from apns_exporter.mock.server import MockAPNs
from apns_exporter.probes import ConnectionResult, ProbeKind, ProbeResult
from tests.helpers import Samples, sample
from tests.reliability.support import (
    ENV,
    Gate,
    Leaks,
    Rig,
    ground_truth_mismatches,
    running_exporter,
    start_mock,
    target_yaml,
    total,
    write_config,
)

T = {"target": "t1", "apns_environment": ENV}


@dataclass
class Bench:
    """A mock and an exporter probing it, plus what a case needs to drive both."""

    mock: MockAPNs
    rig: Rig
    ca: CertificateAuthority


@contextlib.asynccontextmanager
async def bench(
    tmp_path: Path,
    ca: CertificateAuthority,
    signing_key: SigningKeyPair,
    device: str,
    gate: Gate,
    **options: object,
) -> AsyncIterator[Bench]:
    """Mock plus exporter; on exit both stop and nothing they opened may be left behind."""
    leaks = Leaks.snapshot()
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    key_file = tmp_path / "AuthKey.p8"
    key_file.write_bytes(signing_key.private_pem)
    mock = await start_mock(ca, signing_key, device)
    try:
        cfg = write_config(
            tmp_path / "apns.yml", target_yaml("t1", mock.port, ca_file, key_file, device=device)
        )
        async with running_exporter(cfg, gate, **options) as rig:
            await rig.wait_canary(ok=True)  # healthy before any fault
            yield Bench(mock, rig, ca)
    finally:
        await mock.stop()
    leaks.check()


async def settle_and_compare(b: Bench) -> Samples:
    """Recover, park every probe, and require exact agreement with the mock's ground truth."""
    await b.rig.quiesce_healthy()
    samples = await b.rig.scrape()
    assert ground_truth_mismatches(samples, b.mock) == []
    assert sample(samples, "apns_up", **T) == 1
    assert sample(samples, "apns_connection_up", **T) == 1
    assert await b.rig.get("/-/healthy") == (200, "Healthy\n")
    assert await b.rig.get("/-/ready") == (200, "Ready\n")
    return samples


def canary_push(check: Callable[[ProbeResult], bool]) -> Callable[[ProbeResult], bool]:
    """A predicate on canary results."""
    return lambda r: r.probe is ProbeKind.CANARY and check(r)


def answered(status: int, reason: str) -> Callable[[ProbeResult], bool]:
    """A canary result with a push answered ``status reason``."""
    return canary_push(lambda r: any((p.status, p.reason) == (status, reason) for p in r.pushes))


def redialled(r: ProbeResult) -> bool:
    """A result whose run had to open a new connection."""
    return isinstance(r, ConnectionResult) and any(d.ok for d in r.dials)


def push_error(error: str) -> Callable[[ProbeResult], bool]:
    """A canary result with a push that failed with ``error``."""
    return canary_push(lambda r: any(p.error == error for p in r.pushes))


def goaway(**fields: object) -> Scenario:
    """A scenario whose only fault is a GOAWAY."""
    return Scenario(goaway=GoAwayFault(**fields))  # type: ignore[arg-type]


CASES = [
    pytest.param(
        Scenario(latency=Latency(value=0.05)),
        canary_push(lambda r: r.ok and all(p.duration >= 0.05 for p in r.pushes)),
        id="latency-fixed",
    ),
    pytest.param(
        Scenario(latency=Latency(distribution="uniform", low=0.0, high=0.05), seed=7),
        canary_push(lambda r: r.ok),
        id="latency-uniform",
    ),
    pytest.param(
        Scenario(ping=PingFault(delay=0.05)),
        lambda r: r.probe is ProbeKind.PING and r.ok and (r.rtt or 0) >= 0.05,
        id="ping-ack-delayed",
    ),
    pytest.param(Scenario(stall=1.0), push_error("timeout"), id="stalled-stream"),
    pytest.param(
        Scenario(errors=(ErrorFault("InternalServerError"),)),
        answered(500, "InternalServerError"),
        id="500-InternalServerError",
    ),
    pytest.param(
        Scenario(errors=(ErrorFault("ServiceUnavailable"),)),
        answered(503, "ServiceUnavailable"),
        id="503-ServiceUnavailable",
    ),
    pytest.param(
        Scenario(errors=(ErrorFault("Shutdown"),)), answered(503, "Shutdown"), id="503-Shutdown"
    ),
    pytest.param(
        Scenario(errors=(ErrorFault("TooManyProviderTokenUpdates", count=2),)),
        answered(429, "TooManyProviderTokenUpdates"),
        id="429-TooManyProviderTokenUpdates-injected",
    ),
    pytest.param(
        Scenario(clock_skew=3660.0),
        answered(403, "ExpiredProviderToken"),
        id="expired-token-clock-skew",
    ),
    pytest.param(goaway(after_requests=1), redialled, id="goaway-json-graceful"),
    pytest.param(
        goaway(after_requests=1, debug="text", graceful=False),
        redialled,
        id="goaway-text-immediate",
    ),
    pytest.param(
        goaway(after_requests=1, debug="empty", error_code=0), redialled, id="goaway-empty"
    ),
    pytest.param(
        goaway(after_requests=2, followed_by_empty=True, error_code=2),
        redialled,
        id="goaway-json-then-empty-internal-error",
    ),
    pytest.param(
        Scenario(idle_close=IdleClose(after=0.05, goaway=True)), redialled, id="idle-close-goaway"
    ),
    pytest.param(
        Scenario(idle_close=IdleClose(after=0.05, goaway=False)), redialled, id="idle-close-reset"
    ),
    pytest.param(
        Scenario(ping=PingFault(ack=False)),
        lambda r: r.probe is ProbeKind.PING and r.error == "timeout",
        id="ping-without-ack",
    ),
]


@pytest.mark.parametrize(("scenario", "shows"), CASES)
async def test_fault_counts_match_the_mock_and_the_exporter_recovers(
    tmp_path: Path,
    ca: CertificateAuthority,
    signing_key: SigningKeyPair,
    device: str,
    gate: Gate,
    scenario: Scenario,
    shows: Callable[[ProbeResult], bool],
) -> None:
    """Under the fault the exporter stays up, counts exactly what the mock did, and recovers."""
    async with bench(tmp_path, ca, signing_key, device, gate) as b:
        b.mock.scenario = scenario
        await b.rig.wait_for(shows)
        b.mock.scenario = Scenario()
        await settle_and_compare(b)


async def test_goaway_on_connect_is_a_failed_connection_then_recovers(
    tmp_path: Path, ca: CertificateAuthority, signing_key: SigningKeyPair, device: str, gate: Gate
) -> None:
    """A server that says GOAWAY right after SETTINGS fails the canary at http2, then heals."""
    async with bench(tmp_path, ca, signing_key, device, gate) as b:
        b.mock.scenario = goaway(
            after_requests=0, reason="BadCertificateEnvironment", graceful=False
        )
        await b.mock.goaway(GoAwayFault(graceful=False))  # existing connections must redial
        failed = await b.rig.wait_canary(ok=False)
        b.mock.scenario = Scenario()
        samples = await settle_and_compare(b)
    assert failed.layer == "http2", failed.message
    assert (
        total(samples, "apns_goaway_received_total", **T, reason="BadCertificateEnvironment") >= 1
    )


async def test_graceful_goaway_lets_the_in_flight_push_finish(
    tmp_path: Path, ca: CertificateAuthority, signing_key: SigningKeyPair, device: str, gate: Gate
) -> None:
    """A push answered after a graceful GOAWAY that covers its stream counts as answered."""
    async with bench(tmp_path, ca, signing_key, device, gate) as b:
        b.mock.scenario = Scenario(latency=Latency(value=0.05))
        sent: list[asyncio.Task[int]] = []

        def delay_then_goaway() -> float:
            # Called as the mock accepts a push: announce GOAWAY before answering it.
            if not sent:
                sent.append(asyncio.ensure_future(b.mock.goaway()))
            return 0.05

        b.mock.faults.delay = delay_then_goaway  # type: ignore[method-assign]
        result = await b.rig.wait_for(lambda r: r.probe is ProbeKind.CANARY and bool(sent))
        assert await sent[0] >= 1
        b.mock.scenario = Scenario()
        samples = await settle_and_compare(b)
    assert all(p.error is None for p in result.pushes), result.logs
    assert total(samples, "apns_goaway_received_total", **T, reason="Shutdown") >= 1


async def test_untrusted_chain_switch_fails_tls_verify_then_recovers(
    tmp_path: Path, ca: CertificateAuthority, signing_key: SigningKeyPair, device: str, gate: Gate
) -> None:
    """A switch to a chain from an unknown root fails new dials with tls_verify, then recovers."""
    async with bench(tmp_path, ca, signing_key, device, gate) as b:
        b.mock.add_keypair("next", generate_ca("unknown root").issue_server())
        b.mock.scenario = Scenario(certificate="next")
        await b.mock.goaway(GoAwayFault(graceful=False))  # existing connections must redial
        failed = await b.rig.wait_canary(ok=False)
        b.mock.scenario = Scenario()
        samples = await settle_and_compare(b)
    assert (failed.error, failed.layer) == ("tls_verify", "tls"), failed.message
    assert total(samples, "apns_connection_failures_total", **T, reason="tls_verify") >= 1


async def test_trusted_chain_switch_is_seamless(
    tmp_path: Path, ca: CertificateAuthority, signing_key: SigningKeyPair, device: str, gate: Gate
) -> None:
    """A switch to another chain under the same trusted root costs one reconnect, no failure."""
    async with bench(tmp_path, ca, signing_key, device, gate) as b:
        b.mock.add_keypair("next", ca.issue_intermediate("APNs intermediate 2").issue_server())
        b.mock.scenario = Scenario(certificate="next")
        await b.mock.goaway(GoAwayFault(graceful=False))
        await b.rig.wait_for(redialled)
        samples = await settle_and_compare(b)
    assert total(samples, "apns_connection_failures_total", **T) == 0
    assert b.mock.stats.tls_handshakes == b.mock.stats.connections


async def test_refused_connections_back_off_and_recover(
    tmp_path: Path, ca: CertificateAuthority, signing_key: SigningKeyPair, device: str, gate: Gate
) -> None:
    """While the port refuses connections dials fail with connect; afterwards all is counted."""
    async with bench(tmp_path, ca, signing_key, device, gate) as b:
        port = b.mock.port
        await b.mock.stop()
        failed = await b.rig.wait_canary(ok=False)
        await b.mock.start("127.0.0.1", port)
        samples = await settle_and_compare(b)
    assert (failed.error, failed.layer) == ("connect", "tcp"), failed.message
    assert total(samples, "apns_connection_failures_total", **T, reason="connect") >= 1


async def test_real_token_update_within_20_minutes_is_429_then_recovers(
    tmp_path: Path, ca: CertificateAuthority, signing_key: SigningKeyPair, device: str, gate: Gate
) -> None:
    """A token re-minted on a live connection gets 429 TooManyProviderTokenUpdates, then heals."""
    skew = [0.0]
    async with bench(
        tmp_path, ca, signing_key, device, gate, clock=lambda: time.time() + skew[0]
    ) as b:
        skew[0] = 21 * 60.0  # the exporter's clock jumps: its token is due for a refresh
        failed = await b.rig.wait_for(answered(429, "TooManyProviderTokenUpdates"))
        samples = await settle_and_compare(b)
    assert failed.layer == "auth"
    assert total(samples, "apns_provider_token_refreshes_total", **T) == 2
