"""Simulated devices and the notifications they received.

Which tokens exist, for which topic, whether they are still registered, every
notification each one received, and whether it answers exporter canaries with delivery
receipts (the posting itself is done by the server, which owns the tasks).
"""

from __future__ import annotations

import json
import random
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from apns_exporter.apns import Reason

# Reasons a scripted device can answer with that make sense for a single push.
_GONE_REASONS = frozenset({Reason.UNREGISTERED, Reason.EXPIRED_TOKEN})


def normalise_token(token_hex: str) -> str:
    """Device tokens are case-insensitive hex; the registry keys them in lower case."""
    return token_hex.strip().lower()


@dataclass(frozen=True)
class Notification:
    """One push the mock accepted for a device, as the device would have received it."""

    apns_id: str
    token: str
    topic: str
    push_type: str
    priority: int | None
    collapse_id: str | None
    expiration: int | None
    payload: bytes
    received_at: float

    @property
    def json(self) -> Any:
        """The payload parsed as JSON, or None when it is not valid JSON."""
        try:
            return json.loads(self.payload)
        except ValueError:
            return None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view for the admin API."""
        return {
            "apns_id": self.apns_id,
            "topic": self.topic,
            "push_type": self.push_type,
            "priority": self.priority,
            "collapse_id": self.collapse_id,
            "expiration": self.expiration,
            "payload": self.payload.decode("utf-8", errors="replace"),
            "received_at": self.received_at,
        }


# A fixed delay in seconds, a (low, high) range drawn uniformly, or any draw from the RNG.
ReceiptDelay = float | tuple[float, float] | Callable[[random.Random], float]


@dataclass
class ReceiptSettings:
    """How a simulated device answers exporter canaries with signed delivery receipts."""

    url: str
    secret: bytes
    delay: ReceiptDelay = 0.0
    loss: float = 0.0  # probability that a receipt is never sent
    seed: int | None = None
    rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.loss <= 1.0:
            raise ValueError(f"receipt loss must be a probability in [0, 1], not {self.loss}")
        if isinstance(self.delay, tuple):
            low, high = self.delay
            if not 0 <= low <= high:
                raise ValueError(f"receipt delay range must be 0 <= low <= high, not {self.delay}")
        elif not callable(self.delay) and self.delay < 0:
            raise ValueError(f"receipt delay cannot be negative, not {self.delay}")
        # Seeded so that a test or drill with loss and jitter is reproducible.
        self.rng = random.Random(self.seed)

    def draw(self) -> float | None:
        """The delay of the next receipt in seconds, or None when this one is lost."""
        if self.loss > 0 and self.rng.random() < self.loss:
            return None
        if isinstance(self.delay, tuple):
            return self.rng.uniform(*self.delay)
        if callable(self.delay):
            return max(0.0, self.delay(self.rng))
        return float(self.delay)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view for the admin API; the secret is never shown."""
        delay = self.delay
        shown = list(delay) if isinstance(delay, tuple) else None if callable(delay) else delay
        return {"url": self.url, "delay": shown, "loss": self.loss, "seed": self.seed}


@dataclass
class ReceiptCounts:
    """What a device did with the canaries it received."""

    scheduled: int = 0  # receipts that will be (or were) posted
    lost: int = 0  # dropped on purpose by the configured loss
    posted: int = 0  # the exporter answered 2xx
    failed: int = 0  # the POST failed or was answered with an error


@dataclass
class Device:
    """A simulated device token registered for one topic (the app's bundle ID)."""

    token: str
    topic: str
    environment: str | None = None
    gone_at: float | None = None
    gone_reason: Reason = Reason.UNREGISTERED
    notifications: list[Notification] = field(default_factory=list)
    script: deque[Reason] = field(default_factory=deque)
    receipts: ReceiptSettings | None = None
    receipt_counts: ReceiptCounts = field(default_factory=ReceiptCounts)

    @property
    def registered(self) -> bool:
        """False once the app was uninstalled (Unregistered) or the token expired."""
        return self.gone_at is None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view for the admin API."""
        return {
            "token": self.token,
            "topic": self.topic,
            "environment": self.environment,
            "registered": self.registered,
            "gone_at": self.gone_at,
            "gone_reason": None if self.registered else str(self.gone_reason),
            "received": len(self.notifications),
            "script": [str(r) for r in self.script],
            "receipts": None
            if self.receipts is None
            else {**self.receipts.as_dict(), **vars(self.receipt_counts)},
        }


class DeviceRegistry:
    """All simulated devices of one mock server, keyed by lower-case hex token."""

    def __init__(self) -> None:
        self._devices: dict[str, Device] = {}
        # Called for every notification a device receives (the server posts receipts).
        self.listener: Callable[[Device, Notification], None] | None = None

    def register(self, token_hex: str, topic: str, *, environment: str | None = None) -> Device:
        """Add (or re-register) a device for ``topic``; ``environment`` None means any."""
        token = normalise_token(token_hex)
        device = Device(token=token, topic=topic, environment=environment)
        self._devices[token] = device
        return device

    def enable_receipts(
        self,
        token_hex: str,
        url: str,
        secret: bytes,
        *,
        delay: ReceiptDelay = 0.0,
        loss: float = 0.0,
        seed: int | None = None,
    ) -> ReceiptSettings:
        """Make a device post a signed receipt to ``url`` for each exporter canary it gets."""
        settings = ReceiptSettings(url, secret, delay, loss, seed)
        self._require(token_hex).receipts = settings
        return settings

    def disable_receipts(self, token_hex: str) -> None:
        """Stop a device from posting receipts (pending ones are still sent)."""
        self._require(token_hex).receipts = None

    def unregister(self, token_hex: str, at: float, reason: Reason = Reason.UNREGISTERED) -> None:
        """Mark a device gone: later pushes get 410 ``reason`` with ``timestamp`` = at (in ms)."""
        if reason not in _GONE_REASONS:
            raise ValueError(f"a device can only be gone as {sorted(_GONE_REASONS)}, not {reason}")
        device = self._require(token_hex)
        device.gone_at = at
        device.gone_reason = reason

    def expire(self, token_hex: str, at: float) -> None:
        """Mark a device token expired: later pushes get 410 ExpiredToken."""
        self.unregister(token_hex, at, Reason.EXPIRED_TOKEN)

    def script(self, token_hex: str, reason: Reason | str, count: int = 1) -> None:
        """Make the next ``count`` otherwise-valid pushes to this device fail with ``reason``."""
        device = self._require(token_hex)
        device.script.extend([Reason(reason)] * count)

    def get(self, token_hex: str) -> Device | None:
        """The device for a token, or None when no such token was registered."""
        return self._devices.get(normalise_token(token_hex))

    def received(self, token_hex: str) -> list[Notification]:
        """Every notification accepted for this token, oldest first (empty if unknown)."""
        device = self.get(token_hex)
        return list(device.notifications) if device else []

    def remove(self, token_hex: str) -> None:
        """Forget a device entirely, so pushes to it get 400 BadDeviceToken."""
        self._devices.pop(normalise_token(token_hex), None)

    def __iter__(self) -> Iterator[Device]:
        return iter(list(self._devices.values()))

    def __len__(self) -> int:
        return len(self._devices)

    def deliver(self, device: Device, notification: Notification) -> None:
        """Record a notification the device received, then tell the listener (receipts)."""
        device.notifications.append(notification)
        if self.listener is not None:
            self.listener(device, notification)

    def _require(self, token_hex: str) -> Device:
        device = self.get(token_hex)
        if device is None:
            raise KeyError(f"no device registered with token {token_hex!r}")
        return device
