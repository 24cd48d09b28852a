"""Delivery receipts: canaries awaiting a device's signed receipt, and the checks receipts pass.

A 200 from APNs means Apple accepted a push, not that a device received it. To measure
delivery, every device canary carries a unique id, and an app on the canary device posts a
signed receipt back to the exporter when the push arrives.

Wire format (docs/delivery-receipts.md shows both sides)::

    canary payload   the configured payload plus a top-level object
                     "apns_exporter": {"canary_id": "<32 hex>", "sent_at": <epoch s>,
                                       "target": "<target name>"}
    receipt          POST /canary/receipt
                     X-APNs-Exporter-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>
                     {"target": "<name>", "canary_id": "<id>", "received_at": <epoch s>}

The HMAC covers the raw body bytes exactly as sent; the hex digest may be upper or lower
case. The secret is the target's secret file with surrounding whitespace removed, used as
bytes as it is (``openssl rand -hex 32`` gives 64 ASCII characters, and those characters
are the key; they are not hex-decoded), at least :data:`MIN_SECRET_BYTES` long.

A receipt is checked in this order, and the first failure is its rejection reason:
``too_large`` (body over the size limit), ``malformed`` (not a JSON object with a string
target, a canary id of 1-64 characters ``[A-Za-z0-9_-]`` and a finite numeric
received_at), ``unknown_target`` (no secret for the target), ``bad_signature`` (missing or
wrong signature), ``replay`` (this canary was already received), ``stale`` (received_at
older than the freshness window or further in the future than the allowed clock skew),
``unknown_canary`` (never sent, already lost, or dropped from a full book), and ``stale``
again when received_at is before the canary was sent (beyond the clock skew). Nothing is
trusted before the signature check: rejections up to there reveal nothing about canaries.

Latency is the device's ``received_at`` minus the exporter's ``sent_at``, so it is only as
good as both clocks (phones and servers normally run NTP); values a little below zero from
skew are clamped to zero. Memory is bounded: at most ``max_pending`` canaries await a
receipt per target (the oldest is given up as lost beyond that), and the replay set keeps
at most ``max_received`` ids, each only while its receipt is still fresh.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import uuid
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from apns_exporter.errors import ReceiptRejected

SIGNATURE_HEADER = "X-APNs-Exporter-Signature"
SIGNATURE_PREFIX = "sha256="
PAYLOAD_KEY = "apns_exporter"
MAX_BODY = 4096
FRESHNESS = 300.0
CLOCK_SKEW = 60.0
MAX_PENDING = 1000
MAX_RECEIVED = 10_000

# The rejection reasons, in a stable order for pre-initialised series.
REASONS = tuple(sorted(ReceiptRejected.REASONS))

_CANARY_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class Delivery:
    """A canary a device confirmed: when it was sent, received, and the latency between."""

    target: str
    canary_id: str
    sent_at: float
    received_at: float
    latency: float


@dataclass(frozen=True)
class _Pending:
    sent_at: float
    due: float


def new_canary_id() -> str:
    """A fresh, unguessable canary id (uuid4 as 32 hex digits)."""
    return uuid.uuid4().hex


def canary_payload(
    base: Mapping[str, Any], *, target: str, canary_id: str, sent_at: float
) -> dict[str, Any]:
    """The configured payload plus the ``apns_exporter`` object; ``base`` is left untouched."""
    return {
        **base,
        PAYLOAD_KEY: {"canary_id": canary_id, "sent_at": round(sent_at, 3), "target": target},
    }


def sign(secret: bytes, body: bytes) -> str:
    """The signature header value for ``body``: ``sha256=<hex HMAC-SHA256>``."""
    return SIGNATURE_PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def encode_receipt(target: str, canary_id: str, received_at: float) -> bytes:
    """A receipt body as a device sends it (compact JSON, UTF-8)."""
    data = {"target": target, "canary_id": canary_id, "received_at": received_at}
    return json.dumps(data, separators=(",", ":")).encode()


def _signature_ok(secret: bytes, body: bytes, header: str | None) -> bool:
    if header is None or not header.startswith(SIGNATURE_PREFIX):
        return False
    try:
        given = header[len(SIGNATURE_PREFIX) :].strip().lower().encode("ascii")
    except UnicodeEncodeError:
        return False
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest().encode("ascii")
    return hmac.compare_digest(given, expected)


def _parse(body: bytes) -> tuple[str, str, float]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        # RecursionError: a few thousand nested brackets fit well under the size limit.
        raise ReceiptRejected("malformed") from None
    if not isinstance(data, dict):
        raise ReceiptRejected("malformed")
    target, canary_id, received_at = (
        data.get("target"),
        data.get("canary_id"),
        data.get("received_at"),
    )
    if (
        not isinstance(target, str)
        or not isinstance(canary_id, str)
        or not _CANARY_ID.fullmatch(canary_id)
        # bool is an int in Python, and JSON true is no timestamp.
        or isinstance(received_at, bool)
        or not isinstance(received_at, int | float)
    ):
        raise ReceiptRejected("malformed")
    try:
        # A JSON integer of thousands of digits parses, but no float holds it.
        when = float(received_at)
    except OverflowError:
        raise ReceiptRejected("malformed") from None
    if not math.isfinite(when):
        raise ReceiptRejected("malformed")
    return target, canary_id, when


class ReceiptBook:
    """Canaries awaiting a receipt per target: accepts signed receipts, gives up on late ones."""

    def __init__(
        self,
        secrets: Mapping[str, bytes],
        *,
        freshness: float = FRESHNESS,
        clock_skew: float = CLOCK_SKEW,
        max_pending: int = MAX_PENDING,
        max_received: int = MAX_RECEIVED,
        max_body: int = MAX_BODY,
    ) -> None:
        self.freshness = freshness
        self.clock_skew = clock_skew
        self.max_pending = max_pending
        self.max_received = max_received
        self.max_body = max_body
        self._secrets: dict[str, bytes] = {}
        self._pending: dict[str, OrderedDict[str, _Pending]] = {}
        # (target, canary_id) -> received_at of accepted receipts, oldest first.
        self._received: OrderedDict[tuple[str, str], float] = OrderedDict()
        # Canaries pushed out of a full book; expire() reports them as lost.
        self._overflow: deque[tuple[str, str]] = deque(maxlen=max_pending)
        self.set_secrets(secrets)

    @property
    def targets(self) -> frozenset[str]:
        """Targets that have a secret, and so can have receipts."""
        return frozenset(self._secrets)

    def set_secrets(self, secrets: Mapping[str, bytes]) -> None:
        """Replace the per-target secrets (on reload); removed targets' canaries are forgotten."""
        for target, secret in secrets.items():
            if not secret:
                raise ValueError(f"target {target!r}: the receipt secret is empty")
        self._secrets = dict(secrets)
        for target in list(self._pending):
            if target not in self._secrets:
                del self._pending[target]
        for target in self._secrets:
            self._pending.setdefault(target, OrderedDict())
        self._overflow = deque(
            (item for item in self._overflow if item[0] in self._secrets), maxlen=self.max_pending
        )

    def expect(self, target: str, canary_id: str, sent_at: float, deadline: float) -> None:
        """Await a receipt for a canary sent at ``sent_at``, for ``deadline`` seconds."""
        if target not in self._secrets:
            raise KeyError(f"target {target!r} has no receipt secret")
        pending = self._pending[target]
        pending[canary_id] = _Pending(sent_at, sent_at + deadline)
        while len(pending) > self.max_pending:
            oldest, _ = pending.popitem(last=False)
            self._overflow.append((target, oldest))

    def discard(self, target: str, canary_id: str) -> bool:
        """Stop awaiting a canary APNs did not accept; True if it was pending."""
        pending = self._pending.get(target)
        return pending is not None and pending.pop(canary_id, None) is not None

    def pending(self, target: str | None = None) -> int:
        """How many canaries await a receipt, for one target or all."""
        if target is not None:
            return len(self._pending.get(target, ()))
        return sum(len(p) for p in self._pending.values())

    def next_due(self) -> float | None:
        """The earliest deadline of any pending canary, or None when nothing is pending."""
        dues = [p.due for pending in self._pending.values() for p in pending.values()]
        return min(dues, default=None)

    def expire(self, now: float) -> list[tuple[str, str]]:
        """Give up on canaries past their deadline; returns them as (target, canary_id), lost."""
        lost = list(self._overflow)
        self._overflow.clear()
        for target, pending in self._pending.items():
            late = [cid for cid, p in pending.items() if p.due <= now]
            for cid in late:
                del pending[cid]
                lost.append((target, cid))
        self._forget_received(now)
        return lost

    def accept(self, raw_body: bytes, signature_header: str | None, now: float) -> Delivery:
        """Check a receipt and return the delivery it proves; raises :class:`ReceiptRejected`."""
        if len(raw_body) > self.max_body:
            raise ReceiptRejected("too_large")
        target, canary_id, received_at = _parse(raw_body)
        secret = self._secrets.get(target)
        if secret is None:
            raise ReceiptRejected("unknown_target")
        if not _signature_ok(secret, raw_body, signature_header):
            raise ReceiptRejected("bad_signature", target=target)
        self._forget_received(now)
        key = (target, canary_id)
        if key in self._received:
            raise ReceiptRejected("replay", target=target)
        if not now - self.freshness <= received_at <= now + self.clock_skew:
            raise ReceiptRejected("stale", target=target)
        pending = self._pending[target]
        canary = pending.get(canary_id)
        if canary is None:
            raise ReceiptRejected("unknown_canary", target=target)
        if received_at < canary.sent_at - self.clock_skew:
            raise ReceiptRejected("stale", target=target)
        del pending[canary_id]
        self._received[key] = received_at
        while len(self._received) > self.max_received:
            self._received.popitem(last=False)
        latency = max(0.0, received_at - canary.sent_at)
        return Delivery(target, canary_id, canary.sent_at, received_at, latency)

    def _forget_received(self, now: float) -> None:
        # A replayed body carries the same received_at, so once that is outside the
        # freshness window the replay is rejected as stale: no need to remember it longer.
        # Receipts arrive in roughly received_at order; entries behind an out-of-order one
        # linger until it goes, which the max_received cap bounds.
        horizon = now - self.freshness
        while self._received:
            key, received_at = next(iter(self._received.items()))
            if received_at >= horizon:
                break
            del self._received[key]
