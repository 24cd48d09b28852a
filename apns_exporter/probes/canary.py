"""The canary probe: one push per configured device token (or a fake one for an auth check)."""

from __future__ import annotations

import hashlib
import json
import time

import jwt

from apns_exporter.apns import PushType, Reason
from apns_exporter.client.channel import Channel, DialReport
from apns_exporter.client.connection import Connection
from apns_exporter.client.protocol import Event, GoAway
from apns_exporter.errors import ProbeError
from apns_exporter.probes.results import CanaryResult, PushOutcome
from apns_exporter.probes.run import ProbeRun, log_goaway
from apns_exporter.receipts import book

# A well-formed token that no device will ever own. APNs checks authentication before the
# device token, so "400 BadDeviceToken" for it proves TLS, credentials and routing work.
AUTH_CHECK_TOKEN = hashlib.sha256(b"apns-exporter auth check").hexdigest()
AUTH_CHECK_OK = frozenset({Reason.BAD_DEVICE_TOKEN, Reason.DEVICE_TOKEN_NOT_FOR_TOPIC})

# After these the server will not accept this connection's token again: start afresh.
_WEDGING_REASONS = frozenset(
    {Reason.EXPIRED_PROVIDER_TOKEN, Reason.TOO_MANY_PROVIDER_TOKEN_UPDATES}
)


async def run(ctx: ProbeRun) -> CanaryResult:
    """Send the canary pushes of one target and classify each answer."""
    shared = ctx.shared
    canary = ctx.target.canary
    assert canary is not None, "the scheduler runs the canary only for targets that have one"
    timeout = ctx.timeout(canary.timeout)
    token = shared.token  # this run's token, even if a credential reload swaps it meanwhile
    issued_before = token.issued_at if token is not None else None
    body = canary.encoded_body
    if shared.loaded is None:
        message = "the credential could not be loaded; see apns_credential_load_errors_total"
        ctx.log(message)
        return CanaryResult(run=ctx.finish(), ok=False, message=message, error="credential")

    try:
        bearer = token.bearer() if token is not None else None
    except (ValueError, TypeError, jwt.PyJWTError) as exc:
        # The key loaded but cannot sign (a wrong key type slipping through, say).
        ctx.log(f"cannot sign a provider token: {exc}")
        return CanaryResult(
            run=ctx.finish(),
            ok=False,
            message=f"cannot sign a provider token: {exc}",
            error="credential",
            token_failed=True,
        )

    # The auth check is always rejected, and APNs drops a connection's stream limit to 1
    # after every rejection, so it gets a connection of its own.
    groups: list[tuple[Channel, list[tuple[str, str]]]] = []
    if canary.device_tokens:
        groups.append((shared.channel, [("device", t) for t in canary.device_tokens]))
    if canary.auth_check:
        groups.append((shared.auth_channel or shared.channel, [("auth_check", AUTH_CHECK_TOKEN)]))

    outcomes: list[PushOutcome] = []
    dials: list[DialReport] = []
    peer: str | None = None
    connect_error: ProbeError | None = None
    for channel, pushes in groups:
        lease = await channel.acquire()
        if lease.dial is not None:
            dials.append(lease.dial)
            endpoint = channel.endpoint
            ctx.log(f"dialled {endpoint.host}:{endpoint.port}: {lease.dial.message or 'ok'}")
        if lease.connection is None:
            connect_error = connect_error or lease.error or ProbeError("connect", "no connection")
            ctx.log(f"no connection: {lease.error}")
            continue
        peer = peer or lease.connection.peer
        for kind, device_token in pushes:
            outcome = await _push(ctx, bearer, lease.connection, kind, device_token, body, timeout)
            outcomes.append(outcome)
            if outcome.reason in _WEDGING_REASONS or outcome.error == "timeout":
                # APNs wedges a connection after these; a stream that never answers means
                # the connection is broken even if the socket looks fine. Start afresh.
                if outcome.reason == Reason.EXPIRED_PROVIDER_TOKEN and token is not None:
                    token.force_refresh()
                ctx.log(f"{outcome.reason or outcome.error}: replacing the connection")
                await channel.discard()
                break

    failed = [o for o in outcomes if not o.ok]
    ok = connect_error is None and not failed
    if ok:
        message = "all pushes answered as expected"
    elif connect_error is not None:
        message = str(connect_error)
    else:
        message = _describe(failed[0])
    issued_at = token.issued_at if token is not None else None
    return CanaryResult(
        run=ctx.finish(),
        ok=ok,
        message=message,
        error=connect_error.reason
        if connect_error
        else next((o.error for o in failed if o.error), None),
        dials=tuple(dials),
        events=_events(ctx),
        pushes=tuple(outcomes),
        token_issued_at=issued_at,
        token_minted=issued_at is not None and issued_at != issued_before,
        connected=connect_error is None,
        address=peer,
    )


def _events(ctx: ProbeRun) -> tuple[Event, ...]:
    """What the target's connections reported since the last run."""
    shared = ctx.shared
    events = shared.channel.take_events()
    if shared.auth_channel is not None:
        # APNs drops the auth check connection's stream limit to 1 after every (expected)
        # rejection: its SETTINGS say nothing about the target, its GOAWAYs do.
        events += tuple(e for e in shared.auth_channel.take_events() if isinstance(e, GoAway))
    return events


async def _push(
    ctx: ProbeRun,
    bearer: str | None,
    conn: Connection,
    kind: str,
    device_token: str,
    body: bytes,
    timeout: float,
) -> PushOutcome:
    canary = ctx.target.canary
    assert canary is not None
    headers = [
        ("apns-push-type", str(canary.push_type)),
        ("apns-priority", str(canary.priority)),
        ("apns-expiration", str(canary.expiration)),
    ]
    # MDM pushes carry no topic: APNs takes it from the MDM push certificate.
    topic = ctx.shared.topic
    if topic is not None and canary.push_type is not PushType.MDM:
        headers.insert(0, ("apns-topic", topic))
    if bearer is not None:
        headers.append(("authorization", f"bearer {bearer}"))
    canary_id = None
    receipts = ctx.shared.receipts
    if receipts is not None and kind == "device" and canary.delivery is not None:
        # Expect the receipt before sending: a fast device may answer before APNs does.
        canary_id, sent_at = book.new_canary_id(), ctx.shared.clock()
        tagged = book.canary_payload(
            canary.body(), target=ctx.target.name, canary_id=canary_id, sent_at=sent_at
        )
        body = json.dumps(tagged, separators=(",", ":")).encode()
        receipts.expect(ctx.target.name, canary_id, sent_at, canary.delivery.deadline)
    started = time.perf_counter()
    try:
        response = await conn.request(
            "POST", f"/3/device/{device_token}", headers, body, timeout=timeout
        )
    except ProbeError as exc:
        duration = time.perf_counter() - started
        ctx.log(f"{kind} push failed after {duration * 1000:.1f}ms: {exc}")
        log_goaway(ctx, conn)
        if canary_id is not None and receipts is not None:
            receipts.discard(ctx.target.name, canary_id)
        return PushOutcome(kind, False, duration, error=exc.reason)
    # Stamped by the connection where frames were written and parsed: loop delays excluded.
    duration = response.elapsed if response.elapsed is not None else time.perf_counter() - started
    if canary_id is not None and receipts is not None:
        if response.status == 200:
            ctx.log(f"awaiting the device's receipt for canary {canary_id}")
        else:
            receipts.discard(ctx.target.name, canary_id)
    reason = Reason.parse(response.reason) if response.status != 200 else None
    if kind == "auth_check":
        ok = response.status == 400 and reason in AUTH_CHECK_OK
    else:
        ok = response.status == 200
    label = reason.value if reason is not None else "none"
    unique_id = response.headers.get("apns-unique-id")
    ctx.log(
        f"{kind} push: status={response.status} reason={label} apns-id={response.apns_id} "
        + (f"apns-unique-id={unique_id} " if unique_id else "")
        + f"in {duration * 1000:.1f}ms"
    )
    return PushOutcome(
        kind,
        ok,
        duration,
        response.status,
        label,
        apns_id=response.apns_id,
        unique_id=unique_id,
    )


def _describe(outcome: PushOutcome) -> str:
    if outcome.error is not None:
        return f"{outcome.kind} push failed: {outcome.error}"
    return f"{outcome.kind} push answered {outcome.status} {outcome.reason}"
