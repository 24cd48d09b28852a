"""Fault injection as data: a Scenario is a plain, loadable description of what goes wrong.

Scenarios are frozen dataclasses that round-trip through YAML/JSON (``scenario_from_dict``,
``scenario_to_dict``); swapping ``MockAPNs.scenario`` at run time changes behaviour for the
next request, PING or connection.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from apns_exporter.apns import Reason
from apns_exporter.mock.mapping import from_mapping, to_mapping


@dataclass(frozen=True)
class Latency:
    """Extra delay before each response: fixed ``value``, uniform ``low..high`` or normal."""

    distribution: Literal["fixed", "uniform", "normal"] = "fixed"
    value: float = 0.0
    low: float = 0.0
    high: float = 0.0
    mean: float = 0.0
    stddev: float = 0.0

    def sample(self, rng: random.Random) -> float:
        """Draw one delay in seconds (never negative)."""
        if self.distribution == "uniform":
            return max(0.0, rng.uniform(self.low, self.high))
        if self.distribution == "normal":
            return max(0.0, rng.gauss(self.mean, self.stddev))
        return max(0.0, self.value)


@dataclass(frozen=True)
class ErrorFault:
    """Answer a request with ``reason`` (e.g. ServiceUnavailable) before validating it.

    Applies with ``probability``; ``count`` caps how many requests it hits (None = no cap).
    """

    reason: str
    probability: float = 1.0
    count: int | None = None

    def __post_init__(self) -> None:
        Reason(self.reason)  # fail at load time, not at the first request


@dataclass(frozen=True)
class GoAwayFault:
    """Send GOAWAY after ``after_requests`` responses on a connection (0 = right after connect).

    ``debug`` picks the debug-data form Apple has used: JSON ``{"reason": ...}``, plain text,
    or empty. Graceful GOAWAYs finish in-flight streams; immediate ones drop the connection.
    """

    after_requests: int = 0
    debug: Literal["json", "text", "empty"] = "json"
    reason: str = "Shutdown"
    text: str = "Maximum active streams violated for this endpoint."
    graceful: bool = True
    error_code: int = 0
    followed_by_empty: bool = False

    def debug_data(self) -> bytes:
        """The GOAWAY frame's additional debug data."""
        if self.debug == "json":
            return json.dumps({"reason": self.reason}, separators=(",", ":")).encode()
        if self.debug == "text":
            return self.text.encode()
        return b""


@dataclass(frozen=True)
class IdleClose:
    """Close a connection that received nothing for ``after`` seconds, with or without GOAWAY.

    The GOAWAY carries ``{"reason":"IdleTimeout"}`` as Apple documents (``debug`` "json"), or
    empty debug data (``debug`` "empty"); ``followed_by_empty`` adds an empty second GOAWAY
    after the JSON one, a pair seen from Apple in the wild.
    """

    after: float
    goaway: bool = True
    debug: Literal["json", "empty"] = "json"
    followed_by_empty: bool = False

    def goaway_fault(self) -> GoAwayFault:
        """The immediate GOAWAY this idle close sends when ``goaway`` is on."""
        return GoAwayFault(
            debug=self.debug,
            reason="IdleTimeout",
            graceful=False,
            followed_by_empty=self.followed_by_empty,
        )


@dataclass(frozen=True)
class PingFault:
    """Delay PING ACKs by ``delay`` seconds, or never send them (``ack`` False)."""

    ack: bool = True
    delay: float = 0.0


@dataclass(frozen=True)
class DeviceScript:
    """The next ``count`` valid pushes to ``token`` fail with ``reason``."""

    token: str
    reason: str
    count: int = 1


@dataclass(frozen=True)
class Scenario:
    """Everything the mock does wrong, as data. The default is a healthy server."""

    name: str = "custom"
    description: str = ""
    latency: Latency = Latency()
    # Probability that a request is never answered (the stream stays open).
    stall: float = 0.0
    errors: tuple[ErrorFault, ...] = ()
    goaway: GoAwayFault | None = None
    idle_close: IdleClose | None = None
    ping: PingFault = PingFault()
    # Added to the mock clock: 3601 makes every fresh provider token look expired.
    clock_skew: float = 0.0
    # Name of the server keypair new connections get (None = the one the mock was built with).
    certificate: str | None = None
    # Alternate between all named server keypairs every this many seconds (CA rotation drills).
    rotate_certificates: float | None = None
    device_scripts: tuple[DeviceScript, ...] = ()
    seed: int | None = None


class FaultInjector:
    """Draws the random parts of a scenario reproducibly and tracks per-fault budgets."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self._rng = random.Random(scenario.seed)
        self._used = [0] * len(scenario.errors)

    def stall(self) -> bool:
        """Whether the next request should never be answered."""
        probability = self.scenario.stall
        return probability > 0 and self._rng.random() < probability

    def error(self) -> Reason | None:
        """The injected error for the next request, if any."""
        for index, fault in enumerate(self.scenario.errors):
            if fault.count is not None and self._used[index] >= fault.count:
                continue
            if fault.probability >= 1 or self._rng.random() < fault.probability:
                self._used[index] += 1
                return Reason(fault.reason)
        return None

    def delay(self) -> float:
        """Scenario latency for the next response, in seconds."""
        return self.scenario.latency.sample(self._rng)


def scenario_from_dict(data: object, location: str = "scenario") -> Scenario:
    """Build a Scenario from plain data, naming the offending key on error."""
    return from_mapping(Scenario, data, location)


def scenario_to_dict(scenario: Scenario) -> dict[str, Any]:
    """The plain-data form of a scenario (JSON/YAML ready)."""
    result: dict[str, Any] = to_mapping(scenario)
    return result


BUILTIN_SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(name="healthy", description="Apple on a good day: every valid push accepted."),
        Scenario(
            name="flaky",
            description="Jittery latency, 5% 503 ServiceUnavailable, 1% 500, 1% stalled streams.",
            latency=Latency(distribution="normal", mean=0.08, stddev=0.05),
            stall=0.01,
            errors=(
                ErrorFault(reason="ServiceUnavailable", probability=0.05),
                ErrorFault(reason="InternalServerError", probability=0.01),
            ),
        ),
        Scenario(
            name="expired-token",
            description="The mock clock runs 61 minutes ahead: every provider token is expired.",
            clock_skew=3660.0,
        ),
        Scenario(
            name="goaway-storm",
            description='Every connection gets GOAWAY {"reason":"Shutdown"} after 3 responses.',
            goaway=GoAwayFault(
                after_requests=3, debug="json", reason="Shutdown", followed_by_empty=True
            ),
        ),
        Scenario(
            name="idle-timeout",
            description='Idle connections close after 60 s: GOAWAY {"reason":"IdleTimeout"}, '
            "then an empty GOAWAY.",
            idle_close=IdleClose(after=60.0, followed_by_empty=True),
        ),
        Scenario(
            name="ca-rotation",
            description="New connections alternate between two server chains every 5 minutes.",
            rotate_certificates=300.0,
        ),
    )
}


def load_scenario(source: str | Path) -> Scenario:
    """A built-in scenario by name, or one read from a YAML/JSON file."""
    if isinstance(source, str) and source in BUILTIN_SCENARIOS:
        return BUILTIN_SCENARIOS[source]
    path = Path(source)
    if not path.is_file():
        names = ", ".join(sorted(BUILTIN_SCENARIOS))
        raise ValueError(f"{source}: neither a built-in scenario ({names}) nor a file")
    data = yaml.safe_load(path.read_text())
    return scenario_from_dict(data, location=str(path))
