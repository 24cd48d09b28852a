"""The reachability probe: DNS and a bare TCP connect to each host push depends on."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Iterable, Sequence

from apns_exporter.client import dial
from apns_exporter.client.dial import Resolver, system_resolver
from apns_exporter.errors import ConnectFailed
from apns_exporter.probes.results import Reach, ReachabilityResult
from apns_exporter.probes.run import ProbeRun

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def in_ranges(addresses: Iterable[str], networks: Sequence[Network]) -> bool:
    """Whether every address lies inside one of ``networks``."""
    return all(any(ipaddress.ip_address(a) in n for n in networks) for a in addresses)


async def run(ctx: ProbeRun) -> ReachabilityResult:
    """Check every configured host:port and report each family separately."""
    settings = ctx.target.reachability
    assert settings is not None, "the scheduler runs reachability only when configured"
    timeout = ctx.timeout(settings.timeout)
    resolve = ctx.shared.resolver or system_resolver
    reaches: list[Reach] = []
    for host, port in settings.endpoints(ctx.target):
        reaches += await _check(ctx, host, port, resolve, timeout, settings.apple_ranges)
    failed = [r for r in reaches if not r.reachable]
    outside = sorted({r.host for r in reaches if r.in_apple_range is False})
    ok = not failed and not outside
    if ok:
        message = f"{len(reaches)} host/port/family checks reachable, inside Apple's ranges"
    elif failed:
        message = f"unreachable: {', '.join(f'{r.host}:{r.port}/{r.family}' for r in failed)}"
    else:
        message = f"resolved outside Apple's ranges: {', '.join(outside)}"
    return ReachabilityResult(
        run=ctx.finish(),
        ok=ok,
        message=message,
        error=failed[0].error if failed else None,
        reaches=tuple(reaches),
    )


async def _check(
    ctx: ProbeRun,
    host: str,
    port: int,
    resolve: Resolver,
    timeout: float,
    networks: Sequence[Network],
) -> list[Reach]:
    try:
        async with asyncio.timeout(timeout):
            addresses = await dial.resolve(host, port, resolve)
    except ConnectFailed as exc:
        ctx.log(str(exc))
        return [Reach(host, port, "none", False, None, None, "dns")]
    except TimeoutError:
        ctx.log(f"cannot resolve {host}: no answer within {timeout:g}s")
        return [Reach(host, port, "none", False, None, None, "dns")]
    ctx.log(f"{host} resolves to {', '.join(addresses)}")
    inside = in_ranges(addresses, networks)
    by_family: dict[str, str] = {}
    for address in addresses:
        by_family.setdefault(f"ipv{ipaddress.ip_address(address).version}", address)
    reaches = []
    for family, address in sorted(by_family.items()):
        reaches.append(await _connect(ctx, host, port, family, address, timeout, inside))
    return reaches


async def _connect(
    ctx: ProbeRun,
    host: str,
    port: int,
    family: str,
    address: str,
    timeout: float,
    inside: bool,
) -> Reach:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            _, writer = await dial.connect(host, port, [address])
    except TimeoutError:
        ctx.log(f"{host}:{port} via {address}: no TCP answer within {timeout:g}s")
        return Reach(host, port, family, False, None, inside, "timeout")
    except ConnectFailed as exc:
        ctx.log(f"{host}:{port} via {address}: {exc}")
        return Reach(host, port, family, False, None, inside, "connect")
    seconds = time.perf_counter() - started
    await dial.hang_up(writer)
    ctx.log(f"{host}:{port} via {address}: connected in {seconds * 1000:.1f}ms")
    return Reach(host, port, family, True, seconds, inside)
