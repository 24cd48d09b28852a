"""Probe results and the context probes run in; probes never raise for expected failures."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum

from apns_exporter.channel import Channel, DialReport
from apns_exporter.config import Target
from apns_exporter.tokens import ProviderToken


class ProbeKind(StrEnum):
    """The probes a target can run."""

    CANARY = "canary"
    PING = "ping"


@dataclass(frozen=True)
class PushOutcome:
    """One canary push and how APNs answered it."""

    kind: str  # "device" or "auth_check"
    ok: bool
    duration: float
    status: int | None = None
    reason: str | None = None  # APNs reason, "none" on 200
    error: str | None = None  # request error label when there was no response
    apns_id: str | None = None


@dataclass(frozen=True)
class ProbeResult:
    """What one run of one probe found; the only thing metrics and pages read."""

    target: str
    probe: ProbeKind
    ok: bool
    started_at: float
    duration: float
    message: str
    error: str | None = None  # bounded failure label (connection failure or request error)
    dial: DialReport | None = None
    pushes: tuple[PushOutcome, ...] = ()
    rtt: float | None = None
    token_issued_at: float | None = None
    token_minted: bool = False
    logs: tuple[str, ...] = ()


@dataclass
class ProbeContext:
    """Everything a probe of one target needs: its config, connection and credentials."""

    target: Target
    channel: Channel
    token: ProviderToken | None
    default_timeout: float
    clock: Callable[[], float] = time.time
    logs: list[str] = field(default_factory=list)

    def begin(self) -> float:
        """Start a new run: clear the previous run's log and return the start time."""
        self.logs.clear()
        return self.clock()

    def log(self, message: str) -> None:
        """Keep a line for this run's log, shown on the probes page."""
        self.logs.append(f"{self.clock():.3f} {message}")


Probe = Callable[[ProbeContext], Awaitable[ProbeResult]]
