"""The environment check: which root each APNs environment presents, for the whole process.

It needs no credential and no target: both environments' push hosts are inspected however
many targets use them (global ``environment_checks``), every resolved address of each (see
:func:`creds.chain.inspect_addresses`), so a root the sandbox presents before production
(as Apple rolled out "Apple Push Notification service server certificate update" in 2025)
shows weeks ahead.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from apns_exporter.client.dial import Resolver
from apns_exporter.client.proxy import Proxy
from apns_exporter.config.models import EnvironmentChecks
from apns_exporter.creds import chain
from apns_exporter.errors import ConnectFailed
from apns_exporter.probes.results import EnvironmentCheck, EnvironmentRoot, EnvironmentsResult


async def run(
    settings: EnvironmentChecks,
    *,
    default_timeout: float,
    resolver: Resolver | None = None,
    proxy: Proxy | None = None,
    clock: Callable[[], float] = time.time,
) -> EnvironmentsResult:
    """Inspect both environments' push hosts side by side."""
    started = clock()
    logs: list[str] = []
    ca_file = str(settings.ca_file) if settings.ca_file is not None else None
    timeout = settings.timeout or default_timeout

    async def one(environment: str, host: str, port: int) -> EnvironmentCheck:
        endpoint = f"{host}:{port}"
        try:
            checks = await chain.inspect_addresses(
                host, port, ca_file=ca_file, timeout=timeout, resolver=resolver, proxy=proxy
            )
        except ConnectFailed as exc:
            logs.append(f"{clock():.3f} {environment} {endpoint}: {exc}")
            return EnvironmentCheck(environment, endpoint, error=exc.reason, message=str(exc))
        counts: dict[tuple[str, str], int] = {}
        for check in checks:
            where = check.address or "via proxy"
            if check.report is None:
                logs.append(f"{clock():.3f} {environment} {where}: {check.problem}")
                continue
            key = (check.report.root_name or "unknown", check.report.root_fingerprint_sha256 or "")
            counts[key] = counts.get(key, 0) + 1
            logs.append(f"{clock():.3f} {environment} {where}: root {key[0]!r} {key[1]}")
        roots = tuple(EnvironmentRoot(r, fp, n) for (r, fp), n in counts.items())
        if roots:
            summary = ", ".join(f"{r.root!r} on {r.addresses}" for r in roots)
            return EnvironmentCheck(environment, endpoint, roots, message=f"roots: {summary}")
        failed = next(c for c in checks if c.report is None)
        return EnvironmentCheck(
            environment, endpoint, error=failed.error, message=failed.problem or "no answer"
        )

    found = await asyncio.gather(
        *(one(env, host, port) for env, (host, port) in settings.endpoints().items())
    )
    return EnvironmentsResult(started, clock() - started, tuple(found), tuple(logs))
