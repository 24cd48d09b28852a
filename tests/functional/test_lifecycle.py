"""Connection lifecycle under injected faults: each names its layer and reason, then recovers."""

from __future__ import annotations

import asyncio
import socket

import pytest

from apns_exporter.mock.faults import GoAwayFault, IdleClose, PingFault, Scenario
from apns_exporter.mock.pki import CertificateAuthority, generate_ca
from apns_exporter.mock.server import MockAPNs
from apns_exporter.probes import ConnectionResult, ProbeKind, ProbeResult
from tests.helpers import Workspace, sample

T = {"target": "t1", "apns_environment": "production"}


def _layer(samples: dict, layer: str) -> float | None:
    return sample(samples, "apns_failing_layer", **T, layer=layer)


@pytest.mark.parametrize(
    ("debug", "reason"),
    [("json", "Shutdown"), ("text", "text"), ("empty", "none")],
)
async def test_goaway_in_each_form_is_counted_and_the_exporter_reconnects(
    mock: MockAPNs, workspace: Workspace, device: str, run_exporter, debug: str, reason: str
) -> None:
    """A GOAWAY after the first push is counted by reason and a new connection follows."""
    mock.scenario = Scenario(goaway=GoAwayFault(after_requests=1, debug=debug, graceful=True))
    cfg = workspace.config(workspace.target(mock.port, devices=(device,)))
    async with run_exporter(cfg) as running:
        first = await running.wait_canary()
        second = await running.wait_canary()
        s = await running.scrape()
    assert first.ok, first.message
    assert second.ok, second.message  # served on a fresh connection
    assert sample(s, "apns_goaway_received_total", **T, reason=reason) >= 1
    assert sample(s, "apns_connection_attempts_total", **T) >= 2
    assert mock.stats.goaways >= 1


@pytest.mark.parametrize("with_goaway", [True, False], ids=["goaway", "reset"])
async def test_idle_close_is_survived(
    mock: MockAPNs, workspace: Workspace, device: str, run_exporter, with_goaway: bool
) -> None:
    """A server closing an idle connection (with or without GOAWAY) costs one reconnect."""
    mock.scenario = Scenario(idle_close=IdleClose(after=0.3, goaway=with_goaway))
    cfg = workspace.config(workspace.target(mock.port, devices=(device,)))
    async with run_exporter(cfg) as running:
        dials: list[object] = []

        def redialled(result: ProbeResult) -> bool:
            if isinstance(result, ConnectionResult) and any(d.ok for d in result.dials):
                dials.append(result)
            return len(dials) >= 2

        await running.wait_for(redialled)
        await running.wait_canary(ok=True)
        s = await running.scrape()
    assert sample(s, "apns_up", **T) == 1
    goaways = sum(
        v
        for (name, labels), v in s.items()
        if name == "apns_goaway_received_total" and ("target", "t1") in labels
    )
    assert (goaways >= 1) is with_goaway


async def test_ping_without_ack_marks_the_connection_down(
    mock: MockAPNs, workspace: Workspace, device: str, run_exporter
) -> None:
    """PINGs that are never acknowledged fail with timeout, set connection_up 0 and layer http2."""
    mock.scenario = Scenario(ping=PingFault(ack=False))
    cfg = workspace.config(workspace.target(mock.port, devices=(device,)))
    async with run_exporter(cfg) as running:
        failed = await running.wait_for(lambda r: r.probe is ProbeKind.PING and not r.ok)
        s = await running.scrape()
    assert failed.error == "timeout"
    assert sample(s, "apns_connection_up", **T) == 0
    assert sample(s, "apns_ping_failures_total", **T, reason="timeout") >= 1


async def test_stalled_stream_is_a_timeout_and_replaces_the_connection(
    mock: MockAPNs, workspace: Workspace, device: str, run_exporter
) -> None:
    """A push that is never answered counts as a timeout error at the apns layer."""
    mock.scenario = Scenario(stall=1.0)
    cfg = workspace.config(workspace.target(mock.port, devices=(device,)))
    async with run_exporter(cfg) as running:
        failed = await running.wait_canary(ok=False)
        mock.scenario = Scenario()
        await running.wait_canary(ok=True)  # recovers on a new connection once the fault clears
        s = await running.scrape()
    assert failed.pushes[0].error == "timeout"
    assert failed.layer == "apns"
    assert sample(s, "apns_canary_request_errors_total", **T, error="timeout") >= 1
    assert sample(s, "apns_connection_attempts_total", **T) >= 2


async def test_server_chain_from_an_unknown_root_is_tls_verify(
    mock: MockAPNs, workspace: Workspace, device: str, run_exporter
) -> None:
    """After the server switches to a chain whose root is not trusted, dials fail tls_verify."""
    mock.set_keypair(generate_ca("USERTrust-like new root").issue_server())
    cfg = workspace.config(workspace.target(mock.port, devices=(device,)))
    async with run_exporter(cfg) as running:
        failed = await running.wait_canary(ok=False)
        s = await running.scrape()
    assert (failed.error, failed.layer) == ("tls_verify", "tls")
    assert sample(s, "apns_connection_failures_total", **T, reason="tls_verify") >= 1
    assert _layer(s, "tls") == 1
    assert _layer(s, "auth") is None  # only the failing layer is served


async def test_expired_server_certificate_is_tls_verify(
    ca: CertificateAuthority, workspace: Workspace, device: str, run_exporter
) -> None:
    """A server certificate past its notAfter fails verification with reason tls_verify."""
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    expired = ca.issue_server(
        valid_from=now - dt.timedelta(days=30), valid_until=now - dt.timedelta(days=1)
    )
    server = MockAPNs(expired)
    await server.start("127.0.0.1", 0)
    try:
        cfg = workspace.config(workspace.target(server.port, devices=(device,)))
        async with run_exporter(cfg) as running:
            failed = await running.wait_canary(ok=False)
    finally:
        await server.stop()
    assert failed.error == "tls_verify"
    assert "expired" in failed.message


async def test_dns_failure_is_reason_dns(workspace: Workspace, device: str, run_exporter) -> None:
    """A resolver that cannot resolve the host gives reason dns and layer dns."""

    async def broken(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    cfg = workspace.config(workspace.target(443, devices=(device,)))
    async with run_exporter(cfg, resolver=broken) as running:
        failed = await running.wait_canary(ok=False)
        s = await running.scrape()
    assert (failed.error, failed.layer) == ("dns", "dns")
    assert sample(s, "apns_connection_failures_total", **T, reason="dns") >= 1
    assert _layer(s, "dns") == 1


async def test_an_injected_dns_fault_reaches_every_dialing_probe(
    mock: MockAPNs, workspace: Workspace, device: str, run_exporter
) -> None:
    """With the mock up but the resolver broken, canary, tls_check and reachability all fail dns."""

    async def broken(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    probes = (
        "  tls_check: {interval: 1s}\n"
        f'  reachability:\n    interval: 1s\n    hosts: ["127.0.0.1:{mock.port}"]\n'
    )
    cfg = workspace.config(workspace.target(mock.port, devices=(device,)) + probes)
    async with run_exporter(cfg, resolver=broken) as running:
        canary = await running.wait_canary()
        tls = await running.wait_for(lambda r: r.probe is ProbeKind.TLS)
        reach = await running.wait_for(lambda r: r.probe is ProbeKind.REACHABILITY)
    for result in (canary, tls, reach):
        assert (result.ok, result.error, result.layer) == (False, "dns", "dns"), result.message
    assert mock.stats.tls_handshakes == 0


async def test_recovery_after_refused_connections(
    mock: MockAPNs, workspace: Workspace, device: str, run_exporter, unused_tcp_port: int
) -> None:
    """Refused dials back off; once APNs is reachable again the target comes back up."""
    port = mock.port

    async def flaky(host: str, port_: int) -> list[str]:
        return ["127.0.0.1"]

    cfg = workspace.config(workspace.target(port, devices=(device,)))
    await mock.stop()
    async with run_exporter(cfg, resolver=flaky) as running:
        failed = await running.wait_canary(ok=False)
        await mock.start("127.0.0.1", port)
        ok = await running.wait_canary(ok=True)
    assert (failed.error, ok.ok) == ("connect", True)
    await asyncio.sleep(0)
