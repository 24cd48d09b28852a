"""What the exporter remembers and says of probe runs: recent results, failures kept apart, log.

Each target keeps its recent results of every kind and, separately, its last failures, so
a burst of successes never pushes the evidence of a failure out of ``/probes``. Every
failed run and every change of a target's state (up or down, failing layer) is one
structured log line, rate-limited per target so a flapping target cannot flood the log.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from apns_exporter.probes import CanaryResult, ProbeResult
from apns_exporter.service.state import TargetStatus

# Logged under its own name, so operators can route or silence probe outcomes on their own.
log = logging.getLogger("apns_exporter.prober")

HISTORY_LIMIT = 100  # recent results per target, every probe kind together
FAILURES_KEPT = 20  # failures per target, kept apart from the recent results
# Per target: a burst of this many lines, then one more per refill interval.
LOG_BURST = 5
LOG_REFILL_SECONDS = 60.0


@dataclass
class _Bucket:
    """A token bucket: how many lines a target may still log, and what it held back."""

    tokens: float
    stamp: float
    suppressed: int = 0


@dataclass
class _Record:
    recent: collections.deque[ProbeResult] = field(
        default_factory=lambda: collections.deque(maxlen=HISTORY_LIMIT)
    )
    failures: collections.deque[ProbeResult] = field(
        default_factory=lambda: collections.deque(maxlen=FAILURES_KEPT)
    )


class Journal:
    """Keeps each target's recent results and failures, and logs failures and state changes."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._records: dict[str, _Record] = {}
        self._buckets: dict[str, _Bucket] = {}

    def record(self, result: ProbeResult, before: TargetStatus, after: TargetStatus) -> None:
        """Keep ``result``; log it if it failed, and the state change if there was one."""
        record = self._records.setdefault(result.target, _Record())
        record.recent.append(result)
        if not result.ok:
            record.failures.append(result)
            self._log(logging.WARNING, result.target, "probe failed", _failure_fields(result))
        if (before.up, before.layer) != (after.up, after.layer) and after.up is not None:
            level = logging.INFO if after.up else logging.WARNING
            fields = {
                "state": _state(after.up),
                "previous_state": _state(before.up),
                "layer": after.layer or "none",
                "previous_layer": before.layer or "none",
                "probe": str(result.probe),
            }
            self._log(level, result.target, "target state changed", fields)

    def history(self, target: str) -> list[ProbeResult]:
        """Recent results of every probe of a target, newest first."""
        record = self._records.get(target)
        return list(reversed(record.recent)) if record else []

    def failures(self, target: str) -> list[ProbeResult]:
        """The last failures of a target, newest first, however many successes followed."""
        record = self._records.get(target)
        return list(reversed(record.failures)) if record else []

    def forget(self, target: str) -> None:
        """Drop everything kept of a removed target."""
        self._records.pop(target, None)
        self._buckets.pop(target, None)

    def _log(self, level: int, target: str, message: str, fields: dict[str, str]) -> None:
        if not log.isEnabledFor(level):
            return  # nothing is formatted for a line nobody will see
        now = self._clock()
        bucket = self._buckets.setdefault(target, _Bucket(LOG_BURST, now))
        bucket.tokens = min(LOG_BURST, bucket.tokens + (now - bucket.stamp) / LOG_REFILL_SECONDS)
        bucket.stamp = now
        if bucket.tokens < 1:
            bucket.suppressed += 1
            return
        bucket.tokens -= 1
        fields = {"target": target, **fields}
        if bucket.suppressed:
            fields["suppressed"] = str(bucket.suppressed)  # lines held back since the last one
            bucket.suppressed = 0
        log.log(level, message, extra={"fields": fields})


def _state(up: bool | None) -> str:
    return "unknown" if up is None else ("up" if up else "down")


def _failure_fields(result: ProbeResult) -> dict[str, str]:
    """The fields of a failed run's log line: where it failed, why, and which push."""
    fields = {
        "probe": str(result.probe),
        "layer": result.layer or "none",
        "reason": result.error or "none",
    }
    if isinstance(result, CanaryResult) and (push := result.failed_push) is not None:
        fields["reason"] = push.error or push.reason or fields["reason"]
        fields["push"] = push.kind
        if push.status is not None:
            fields["status"] = str(push.status)
        if push.apns_id:
            fields["apns_id"] = push.apns_id
        if push.unique_id:
            fields["apns_unique_id"] = push.unique_id
    if result.peer is not None:
        fields["peer"] = result.peer
    fields["detail"] = result.message
    return fields
