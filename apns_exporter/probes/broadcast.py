"""The broadcast probe: one read-only channel-management request, listing the app's channels.

Broadcast push (Apple's "Sending broadcast push notification requests to APNs") sends to
channels that the app's server creates and deletes through the channel-management API
(Apple's "Sending channel management requests to APNs"): its own host, port 2195 in the
sandbox and 2196 in production, authenticated with the same provider token as pushes. The
probe reads ``GET /1/apps/<bundle-id>/all-channels``, which changes nothing, on a
connection of its own opened per run (the interval is minutes; nothing is kept open).
"""

from __future__ import annotations

import json
import time

import jwt

from apns_exporter.apns import ALL_CHANNELS_PATH, Reason
from apns_exporter.client.connection import Connection, Endpoint
from apns_exporter.client.tls import client_context
from apns_exporter.errors import ProbeError
from apns_exporter.probes.results import BroadcastResult
from apns_exporter.probes.run import ProbeRun


async def run(ctx: ProbeRun) -> BroadcastResult:
    """List the app's broadcast channels and classify the answer."""
    target = ctx.target
    settings = target.broadcast
    bundle_id = target.broadcast_bundle_id
    assert settings is not None, "the scheduler runs broadcast only when configured"
    assert bundle_id is not None, "a token-auth target always has a topic"
    timeout = ctx.timeout(settings.timeout)
    token = ctx.shared.token
    if token is None:
        message = "the signing key could not be loaded; see apns_credential_load_errors_total"
        ctx.log(message)
        return BroadcastResult(run=ctx.finish(), ok=False, message=message, error="credential")
    try:
        bearer = token.bearer()
    except (ValueError, TypeError, jwt.PyJWTError) as exc:
        ctx.log(f"cannot sign a provider token: {exc}")
        message = f"cannot sign a provider token: {exc}"
        return BroadcastResult(run=ctx.finish(), ok=False, message=message, error="credential")
    host, port = settings.management_endpoint(target)
    loaded = ctx.shared.loaded
    ca_file = str(target.ca_file) if target.ca_file is not None else None
    ssl_context = loaded.ssl_context if loaded is not None else client_context(ca_file)
    started = time.perf_counter()
    try:
        conn = await Connection.open(
            Endpoint(host, port),
            ssl_context,
            timeout=timeout,
            resolver=ctx.shared.resolver,
            proxy=ctx.shared.proxy,
        )
    except ProbeError as exc:
        ctx.log(f"cannot connect to channel management at {host}:{port}: {exc}")
        return BroadcastResult(run=ctx.finish(), ok=False, message=str(exc), error=exc.reason)
    try:
        headers = [("authorization", f"bearer {bearer}")]
        path = ALL_CHANNELS_PATH.format(bundle_id=bundle_id)
        response = await conn.request("GET", path, headers, b"", timeout=timeout)
    except ProbeError as exc:
        ctx.log(f"GET {path} on {host}:{port} failed: {exc}")
        return BroadcastResult(
            run=ctx.finish(), ok=False, message=str(exc), error=exc.reason, address=conn.peer
        )
    finally:
        await conn.aclose()
    seconds = time.perf_counter() - started
    reason = "none" if response.status == 200 else Reason.parse(response.reason).value
    channels = _count(response.body) if response.status == 200 else None
    ctx.log(
        f"GET {path} on {host}:{port} via {conn.peer}: status={response.status} "
        f"reason={reason} in {seconds * 1000:.1f}ms"
        + (f", {channels} channel(s)" if channels is not None else "")
    )
    ok = response.status == 200
    message = (
        f"channel management answered: {channels} channel(s) for {bundle_id}"
        if ok
        else f"channel management answered {response.status} {reason}"
    )
    return BroadcastResult(
        run=ctx.finish(),
        ok=ok,
        message=message,
        status=response.status,
        reason=reason,
        channels=channels,
        address=conn.peer,
    )


def _count(body: bytes) -> int | None:
    """How many channel IDs a list answer holds; None when it is not the documented shape."""
    try:
        channels = json.loads(body).get("channels")
    except (ValueError, AttributeError):
        return None
    return len(channels) if isinstance(channels, list) else None
