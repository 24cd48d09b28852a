"""The tls_check probe: the APNs server chain, its expiry, root and trust, on its own handshake."""

from __future__ import annotations

from apns_exporter.creds import chain
from apns_exporter.errors import ConnectFailed
from apns_exporter.probes.results import TlsResult
from apns_exporter.probes.run import ProbeRun


async def run(ctx: ProbeRun) -> TlsResult:
    """Inspect the server chain and compare it with the previous inspection."""
    settings = ctx.target.tls_check
    assert settings is not None, "the scheduler runs tls_check only when configured"
    target = ctx.target
    ca_file = str(target.ca_file) if target.ca_file is not None else None
    try:
        report = await chain.inspect(
            target.host,
            target.port,
            server_hostname=None,
            ca_file=ca_file,
            timeout=ctx.timeout(settings.timeout),
            resolver=ctx.shared.resolver,
        )
    except ConnectFailed as exc:
        ctx.log(f"TLS check failed: {exc}")
        return TlsResult(run=ctx.finish(), ok=False, message=str(exc), error=exc.reason)
    changed = chain.chain_changed(ctx.shared.last_chain, report)
    ctx.log(
        f"{report.tls_version}: leaf {report.leaf_subject!r} issued by {report.leaf_issuer!r}, "
        f"root {report.root_subject!r}, chain {'complete' if report.full_chain else 'leaf only'}"
    )
    if changed:
        ctx.log("the issuing chain differs from the previous check")
    expires_in = report.earliest_not_after - ctx.shared.clock()
    if not report.trusted:
        message = f"server chain not trusted: {report.verify_error}"
    elif expires_in <= 0:
        message = "a certificate in the server chain has expired"
    else:
        message = f"chain trusted; earliest expiry in {expires_in / 86400:.0f} days"
    ok = report.trusted and expires_in > 0
    return TlsResult(
        run=ctx.finish(),
        ok=ok,
        message=message,
        error=None if ok else "tls_verify",
        chain=report,
        chain_changed=changed,
    )
