"""Reachability: DNS and TCP per host, port and family, and Apple's address ranges."""

from __future__ import annotations

import socket

from apns_exporter.mock.server import MockAPNs
from tests.helpers import Workspace, sample

T = {"target": "t1", "apns_environment": "production"}


def _with_reachability(workspace: Workspace, port: int, device: str, block: str) -> str:
    return workspace.target(port, devices=(device,)) + "  reachability:\n" + block


async def test_each_family_and_port_is_reported(
    mock: MockAPNs, workspace: Workspace, device: str, run_exporter, unused_tcp_port: int
) -> None:
    """An open port is reachable over IPv4, a closed one is not, and IPv6 is reported apart."""

    async def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.1", "::1"] if host == "api.push.apple.com" else ["127.0.0.1"]

    block = (
        f'    interval: 1s\n    hosts: ["api.push.apple.com:{mock.port}",'
        f' "api.push.apple.com:{unused_tcp_port}"]\n    apple_ranges: ["127.0.0.0/8", "::1/128"]\n'
    )
    cfg = workspace.config(_with_reachability(workspace, mock.port, device, block))
    async with run_exporter(cfg, resolver=resolver) as running:
        result = await running.wait_for(lambda r: r.probe == "reachability")
        s = await running.scrape()
    host = {"host": "api.push.apple.com"}
    assert sample(s, "apns_reachable", **T, **host, port=str(mock.port), family="ipv4") == 1
    assert sample(s, "apns_reachable", **T, **host, port=str(unused_tcp_port), family="ipv4") == 0
    assert sample(s, "apns_reachable", **T, **host, port=str(mock.port), family="ipv6") == 0
    assert (
        sample(
            s, "apns_reachability_connect_seconds", **T, **host, port=str(mock.port), family="ipv4"
        )
        > 0
    )
    assert sample(s, "apns_address_in_apple_range", **T, **host) == 1
    assert not result.ok
    assert "unreachable" in result.message


async def test_answer_outside_apple_ranges_is_flagged(
    mock: MockAPNs, workspace: Workspace, device: str, run_exporter
) -> None:
    """A resolver answer outside 17.0.0.0/8 and Apple's IPv6 ranges sets the range gauge to 0."""

    async def hijacked(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    block = f'    interval: 1s\n    hosts: ["api.push.apple.com:{mock.port}"]\n'
    cfg = workspace.config(_with_reachability(workspace, mock.port, device, block))
    async with run_exporter(cfg, resolver=hijacked) as running:
        result = await running.wait_for(lambda r: r.probe == "reachability")
        s = await running.scrape()
    assert sample(s, "apns_address_in_apple_range", **T, host="api.push.apple.com") == 0
    assert (
        sample(
            s, "apns_reachable", **T, host="api.push.apple.com", port=str(mock.port), family="ipv4"
        )
        == 1
    )
    assert result.message == "resolved outside Apple's ranges: api.push.apple.com"


async def test_unresolvable_host_is_unreachable_on_every_family(
    mock: MockAPNs, workspace: Workspace, device: str, run_exporter
) -> None:
    """A host that does not resolve is reported unreachable with error dns."""

    async def nxdomain(host: str, port: int) -> list[str]:
        if host == "1-courier.push.apple.com":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return ["127.0.0.1"]

    block = f'    interval: 1s\n    hosts: ["127.0.0.1:{mock.port}"]\n    courier: true\n'
    cfg = workspace.config(_with_reachability(workspace, mock.port, device, block))
    async with run_exporter(cfg, resolver=nxdomain) as running:
        result = await running.wait_for(lambda r: r.probe == "reachability")
        s = await running.scrape()
    courier = {"host": "1-courier.push.apple.com", "port": "5223"}
    assert sample(s, "apns_reachable", **T, **courier, family="ipv4") == 0
    assert sample(s, "apns_reachable", **T, **courier, family="ipv6") == 0
    assert result.error == "dns"
