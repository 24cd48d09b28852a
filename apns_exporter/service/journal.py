"""What the exporter remembers and says of probe runs: recent results, failures kept apart, log.

Each target keeps its recent results of every kind and, separately, its last failures, so
a burst of successes never pushes the evidence of a failure out of ``/probes``. Every
failure that starts or changes a streak, and every change of a target's state (up or
down, failing layer), is one structured log line; a failure that repeats the previous one
of its probe (same reason, same layer) adds nothing and is not logged again. On top, each
target has a token bucket, so even a flapping target cannot flood the log.

Both windows are bounded in count and in bytes: a result is weighed by the strings it
carries (messages, server reasons, log lines) plus a fixed cost per object, so a server
that answers with pages of text shortens the window instead of growing the heap.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from apns_exporter.probes import CanaryResult, ConnectionResult, ProbeKind, ProbeResult
from apns_exporter.service.state import TargetStatus

# Logged under its own name, so operators can route or silence probe outcomes on their own.
log = logging.getLogger("apns_exporter.prober")

HISTORY_LIMIT = 100  # recent results per target, every probe kind together
FAILURES_KEPT = 20  # failures per target, kept apart from the recent results
# Byte budgets of the two windows, per target (see _weight, close to the heap it costs).
# A healthy PING result weighs about 0.4 KiB, a canary 1 KiB: the count bounds alone let a
# target keep about 50 KiB of results, half the whole per-target memory goal (100 KiB at
# 10 000 targets). These keep about 28 recent results and 8 failures of ordinary size. The
# newest result is kept even when it alone is over budget, so /probes always shows it.
HISTORY_BYTES = 16 * 1024
FAILURE_BYTES = 8 * 1024
# Roughly what CPython spends on one small object (header, fields, a slot in its parent).
OBJECT_BYTES = 64
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
class _Window:
    """The newest results within a count and a byte budget, oldest first."""

    limit: int
    budget: int
    results: collections.deque[ProbeResult] = field(default_factory=collections.deque)
    # Each kept result's weight, beside it: weighing it again when it leaves costs more.
    weights: collections.deque[int] = field(default_factory=collections.deque)
    weight: int = 0  # of the results kept, by _weight

    def add(self, result: ProbeResult, weight: int) -> None:
        self.results.append(result)
        self.weights.append(weight)
        self.weight += weight
        while len(self.results) > self.limit or (
            self.weight > self.budget and len(self.results) > 1
        ):
            self.results.popleft()
            self.weight -= self.weights.popleft()


@dataclass
class _Record:
    recent: _Window = field(default_factory=lambda: _Window(HISTORY_LIMIT, HISTORY_BYTES))
    failures: _Window = field(default_factory=lambda: _Window(FAILURES_KEPT, FAILURE_BYTES))


class Journal:
    """Keeps each target's recent results and failures, and logs failures and state changes."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._records: dict[str, _Record] = {}
        self._buckets: dict[str, _Bucket] = {}
        # Per (target, probe): what the failure streak in progress looks like; absent when
        # the probe's last run succeeded.
        self._streaks: dict[tuple[str, ProbeKind], tuple[str, ...]] = {}

    def record(self, result: ProbeResult, before: TargetStatus, after: TargetStatus) -> None:
        """Keep ``result``; log it if it failed, and the state change if there was one."""
        record = self._records.setdefault(result.target, _Record())
        weight = _weight(result)
        record.recent.add(result, weight)
        key = (result.target, result.probe)
        if result.ok:
            self._streaks.pop(key, None)
        else:
            record.failures.add(result, weight)
            fields = _failure_fields(result)
            streak = (fields["layer"], fields["reason"])
            if self._streaks.get(key) != streak:
                self._streaks[key] = streak
                self._log(logging.WARNING, result.target, "probe failed", fields)
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
        return list(reversed(record.recent.results)) if record else []

    def failures(self, target: str) -> list[ProbeResult]:
        """The last failures of a target, newest first, however many successes followed."""
        record = self._records.get(target)
        return list(reversed(record.failures.results)) if record else []

    def kept_bytes(self, target: str) -> tuple[int, int]:
        """The weight of a target's recent results and of its kept failures, in bytes."""
        record = self._records.get(target)
        return (record.recent.weight, record.failures.weight) if record else (0, 0)

    def forget(self, target: str) -> None:
        """Drop everything kept of a removed target."""
        self._records.pop(target, None)
        self._buckets.pop(target, None)
        for kind in ProbeKind:
            self._streaks.pop((target, kind), None)

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


def _weight(result: ProbeResult) -> int:
    """About how many bytes ``result`` holds: the text it carries plus a cost per part."""
    # PINGs and canaries run every few seconds per target: their text is summed directly
    # (a few µs); the rarer kinds (TLS, credentials, reachability) are walked field by field.
    if not isinstance(result, ConnectionResult):
        return _walk(result)
    logs = result.run.logs
    size = (4 + len(logs)) * OBJECT_BYTES + len(result.message) + sum(map(len, logs))
    # Most results carry no dial and no event: skip building a generator for nothing.
    if result.dials:
        size += sum(4 * OBJECT_BYTES + len(d.message) for d in result.dials)
    if result.events:
        size += sum(2 * OBJECT_BYTES + len(getattr(e, "debug_data", b"")) for e in result.events)
    if isinstance(result, CanaryResult):
        size += sum(
            4 * OBJECT_BYTES + len(p.apns_id or "") + len(p.unique_id or "") + len(p.reason or "")
            for p in result.pushes
        )
    return size


def _walk(value: object) -> int:
    """About how many bytes ``value`` holds: its strings and bytes, plus OBJECT_BYTES per object."""
    if isinstance(value, str | bytes):
        return OBJECT_BYTES + len(value)
    if isinstance(value, tuple | list):
        return OBJECT_BYTES + sum(_walk(item) for item in value)
    if isinstance(value, dict):
        return OBJECT_BYTES + sum(_walk(k) + _walk(v) for k, v in value.items())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = dataclasses.fields(value)
        return OBJECT_BYTES + sum(_walk(getattr(value, f.name)) for f in fields)
    return OBJECT_BYTES if value is not None and not isinstance(value, bool) else 0


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
