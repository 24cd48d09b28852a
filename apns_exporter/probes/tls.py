"""The tls_check probe: the APNs server chain of every address, its expiry, root and trust.

Apple changes server chains address by address (as in its 2025 notice "Apple Push
Notification service server certificate update"), so each resolved address of the host is
inspected (at most :data:`chain.MAX_ADDRESSES`), and the result says which root each shows.
"""

from __future__ import annotations

import asyncio

from apns_exporter.creds import chain, truststore
from apns_exporter.creds.chain import AddressCheck
from apns_exporter.creds.truststore import RootPresence
from apns_exporter.errors import ConnectFailed, FileError
from apns_exporter.probes.results import TlsResult
from apns_exporter.probes.run import ProbeRun


async def run(ctx: ProbeRun) -> TlsResult:
    """Inspect the server chain of each address and compare it with the previous inspection."""
    settings = ctx.target.tls_check
    assert settings is not None, "the scheduler runs tls_check only when configured"
    target = ctx.target
    ca_file = str(target.ca_file) if target.ca_file is not None else None
    trust_roots = await _trust_roots(ctx, ca_file)
    try:
        checks = await chain.inspect_addresses(
            target.host,
            target.port,
            ca_file=ca_file,
            timeout=ctx.timeout(settings.timeout),
            resolver=ctx.shared.resolver,
            proxy=ctx.shared.proxy,
        )
    except ConnectFailed as exc:
        ctx.log(f"TLS check failed: {exc}")
        return TlsResult(
            run=ctx.finish(), ok=False, message=str(exc), error=exc.reason, trust_roots=trust_roots
        )
    now = ctx.shared.clock()
    for check in checks:
        _log_check(ctx, check, now)
    reports = [c.report for c in checks if c.report is not None]
    unreachable = [c for c in checks if c.report is None]
    if not reports:
        first = unreachable[0]
        message = first.problem or "no address answered"
        return TlsResult(
            run=ctx.finish(),
            ok=False,
            message=message,
            error=first.error,
            addresses=checks,
            trust_roots=trust_roots,
        )
    # The chain the per-target series describe: the first that fails, so a half-done
    # rollout to a root the trust store lacks shows as untrusted, not as the healthy rest.
    report = next((r for r in reports if not r.trusted or r.earliest_not_after <= now), reports[0])
    changed = chain.chain_changed(ctx.shared.last_chain, report)
    if changed:
        ctx.log("the issuing chain differs from the previous check")
    untrusted = [r for r in reports if not r.trusted]
    expired = [r for r in reports if r.earliest_not_after <= now]
    roots = ", ".join(f"{n} address(es) with root {root!r}" for root, n in _roots(reports))
    if untrusted:
        message = f"server chain not trusted: {untrusted[0].verify_error}"
    elif expired:
        message = "a certificate in the server chain has expired"
    elif unreachable:
        message = f"{len(unreachable)} of {len(checks)} addresses failed: {unreachable[0].problem}"
    else:
        expires_in = min(r.earliest_not_after for r in reports) - now
        message = f"chain trusted; earliest expiry in {expires_in / 86400:.0f} days"
    if len(checks) > 1:
        message += f" ({roots})"
    ok = not untrusted and not expired and not unreachable
    error = None if ok else ("tls_verify" if untrusted or expired else unreachable[0].error)
    return TlsResult(
        run=ctx.finish(),
        ok=ok,
        message=message,
        error=error,
        chain=report,
        chain_changed=changed,
        addresses=checks,
        trust_roots=trust_roots,
    )


async def _trust_roots(ctx: ProbeRun, ca_file: str | None) -> tuple[RootPresence, ...]:
    """Whether the trust store holds each root Apple's notice names: ready before a switch."""
    required = ctx.shared.required_roots
    if not required:
        return ()
    try:
        # Reading the system store's files takes milliseconds: off the loop.
        found = await asyncio.to_thread(truststore.check, required, ca_file)
    except FileError as exc:
        ctx.log(f"cannot read the trust store: {exc}")
        return ()
    for root in found:
        if not root.present:
            ctx.log(
                f"the trust store lacks root {root.name!r} (SHA-256 {root.fingerprint_sha256}): "
                "add it to the system store or ca_file before APNs presents it"
            )
    return found


def _roots(reports: list[chain.ChainReport]) -> list[tuple[str, int]]:
    names = [r.root_name or "unknown" for r in reports]
    return [(name, names.count(name)) for name in dict.fromkeys(names)]


def _log_check(ctx: ProbeRun, check: AddressCheck, now: float) -> None:
    """One line per address, shown on /probes: where each chain came from and what it was."""
    where = check.address or "via proxy"
    report = check.report
    if report is None:
        ctx.log(f"{where}: {check.problem}")
        return
    trust = "trusted" if report.trusted else f"NOT trusted ({report.verify_error})"
    expiry = "expired" if report.earliest_not_after <= now else "valid"
    ctx.log(
        f"{where}: {report.tls_version}: leaf {report.leaf_subject!r} issued by "
        f"{report.leaf_issuer!r}, root {report.root_subject!r}, "
        f"chain {'complete' if report.full_chain else 'leaf only'}, {trust}, {expiry}"
    )
