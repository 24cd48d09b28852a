"""``apns-exporter probe``: run one target's probes right now and print them for a human."""

from __future__ import annotations

from collections.abc import Callable

from apns_exporter.config import Config
from apns_exporter.probes import (
    CanaryResult,
    ConnectionResult,
    PingResult,
    ProbeResult,
    ReachabilityResult,
)
from apns_exporter.service.exporter import Exporter
from apns_exporter.web.pages import log_lines, push_ids, rfc3339


async def run(config: Config, target: str, out: Callable[[str], None] = print) -> int:
    """Probe ``target`` once; print every phase and outcome; return 0 if all succeeded."""
    names = [t.name for t in config.targets]
    if target not in names:
        out(f"error: no target named {target!r} in the configuration (targets: {', '.join(names)})")
        return 2
    exporter = Exporter(config)
    results = await exporter.probe_once(target)
    for result in results:
        out(_describe(result))
    failed = [r for r in results if not r.ok]
    verdict = "FAILED" if failed else "OK"
    out(f"{target}: {verdict} ({len(results) - len(failed)}/{len(results)} probes succeeded)")
    return 1 if failed else 0


def _describe(result: ProbeResult) -> str:
    when = rfc3339(result.started_at)
    head = "ok" if result.ok else f"FAILED at layer {result.layer}"
    lines = [
        f"{result.probe:<13} {head}: {result.message} [{when}, {result.duration * 1000:.1f}ms]"
    ]
    if isinstance(result, ConnectionResult):
        for dial in result.dials:
            phases = ", ".join(f"{k} {v * 1000:.1f}ms" for k, v in dial.phases.items())
            lines.append(f"    connect: {dial.reason or 'ok'} {phases or dial.message}")
        if result.peer is not None:
            lines.append(f"    server address: {result.peer}")
    if isinstance(result, CanaryResult):
        for push in result.pushes:
            answer = (push.error and f"error {push.error}") or f"{push.status} {push.reason}"
            lines.append(
                f"    {push.kind} push: {answer} in {push.duration * 1000:.1f}ms{push_ids(push)}"
            )
    if isinstance(result, PingResult) and result.rtt is not None:
        lines.append(f"    PING round trip: {result.rtt * 1000:.2f}ms")
    if isinstance(result, ReachabilityResult):
        for reach in result.reaches:
            state = "reachable" if reach.reachable else f"unreachable ({reach.error})"
            lines.append(f"    {reach.host}:{reach.port} {reach.family}: {state}")
    lines += [f"    log: {line}" for line in log_lines(result)]
    return "\n".join(lines)
