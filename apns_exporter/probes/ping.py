"""The ping probe: an HTTP/2 PING on the target's live connection, timed."""

from __future__ import annotations

from apns_exporter.errors import ProbeError
from apns_exporter.probes import ProbeResult, ProbeRun, log_goaway


async def run(ctx: ProbeRun) -> ProbeResult:
    """Send one PING and report its round-trip time."""
    channel = ctx.shared.channel
    lease = await channel.acquire()
    try:
        if lease.connection is None:
            raise lease.error or ProbeError("connect", "no connection")
        rtt = await lease.connection.ping(timeout=ctx.timeout(ctx.target.ping.timeout))
    except ProbeError as exc:
        ctx.log(f"ping failed: {exc}")
        if lease.connection is not None:
            log_goaway(ctx, lease.connection)
            # A connection that cannot answer a PING is dead even if the socket looks open.
            await channel.discard()
        return ctx.result(
            False,
            str(exc),
            error=exc.reason,
            dials=(lease.dial,) if lease.dial else (),
            connected=lease.connection is not None,
        )
    ctx.log(f"PING acknowledged in {rtt * 1000:.2f}ms")
    return ctx.result(
        True,
        f"PING acknowledged in {rtt * 1000:.2f}ms",
        dials=(lease.dial,) if lease.dial else (),
        rtt=rtt,
    )
