"""The ping probe: an HTTP/2 PING on the target's live connection, timed."""

from __future__ import annotations

from apns_exporter.errors import ProbeError
from apns_exporter.probes.results import PingResult
from apns_exporter.probes.run import ProbeRun, log_goaway


async def run(ctx: ProbeRun) -> PingResult:
    """Send one PING and report its round-trip time."""
    channel = ctx.shared.channel
    lease = await channel.acquire()
    dials = (lease.dial,) if lease.dial else ()
    conn = lease.connection
    try:
        if conn is None:
            raise lease.error or ProbeError("connect", "no connection")
        rtt = await conn.ping(timeout=ctx.timeout(ctx.target.ping.timeout))
    except ProbeError as exc:
        ctx.log(f"ping failed: {exc}")
        if conn is not None:
            log_goaway(ctx, conn)
            # A connection that cannot answer a PING is dead even if the socket looks open.
            await channel.discard()
        return PingResult(
            run=ctx.finish(),
            ok=False,
            message=str(exc),
            error=exc.reason,
            dials=dials,
            events=channel.take_events(),
            connected=conn is not None,
            address=conn.peer if conn is not None else None,
        )
    message = f"PING acknowledged in {rtt * 1000:.2f}ms"
    ctx.log(message)
    return PingResult(
        run=ctx.finish(),
        ok=True,
        message=message,
        dials=dials,
        events=channel.take_events(),
        rtt=rtt,
        address=conn.peer,
    )
