"""Simulated devices and the notifications they received.

Which tokens exist, for which topic, whether they are still registered, and every
notification each one received.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator
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
        }


class DeviceRegistry:
    """All simulated devices of one mock server, keyed by lower-case hex token."""

    def __init__(self) -> None:
        self._devices: dict[str, Device] = {}

    def register(self, token_hex: str, topic: str, *, environment: str | None = None) -> Device:
        """Add (or re-register) a device for ``topic``; ``environment`` None means any."""
        token = normalise_token(token_hex)
        device = Device(token=token, topic=topic, environment=environment)
        self._devices[token] = device
        return device

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

    def _require(self, token_hex: str) -> Device:
        device = self.get(token_hex)
        if device is None:
            raise KeyError(f"no device registered with token {token_hex!r}")
        return device
