"""Fleet inventory: 10 000 inventory targets from 1 000 target files, and from a directory.

Two exporters, one after the other, each the real CLI (``python -m apns_exporter``):

- **target files**: a main file with a few probed targets (PING every second against the
  mock) and ``target_files: [fleet.d/*.yaml]``, 1 000 files of 10 ``inventory_only`` token
  targets each (an owner label per file). Measured: ``ready_seconds`` (process start until
  /-/ready), RSS, series per inventory target (every sample carrying its name), then two
  ``POST /-/reload``: nothing changed, and 100 files changed (their label). Each reload's
  wall time is the request's; meanwhile the mock records the probed targets' PINGs, and
  ``ping_gap_ms`` is the longest gap between two PINGs of one connection that overlaps the
  reload (the interval is 1 000 ms, so anything above it is lag the reload caused).
- **discovery**: ``discover`` over a directory of 10 000 ``AuthKey_<KEYID>.p8`` files.
  Measured: ready time, time until ``apns_discovery_targets`` reads 10 000, RSS, series per
  discovered target.

Bounded: fixed counts, and every wait has a deadline.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    BenchmarkError,
    Exporter,
    Mock,
    Workspace,
    log,
    request,
    samples,
    wait_until,
)

# The environment check would dial Apple's hosts; benchmarks stay on loopback.
LOOPBACK_ONLY = "global: {environment_checks: {enabled: false}}\n"

NAME = "fleet"
FILES = 1000
PER_FILE = 10
PROBED = 5
PING_SECONDS = 1.0
CHANGED_FILES = 100
READY_TIMEOUT = 300.0
RELOAD_TIMEOUT = 300.0


def _inventory_block(name: str, key_file: Path, key_id: str, team_id: str) -> str:
    return (
        f"  - name: {name}\n"
        "    environment: production\n"
        "    inventory_only: true\n"
        f"    auth: {{token: {{key_file: {key_file}, key_id: {key_id}, team_id: {team_id}}}}}\n"
    )


def _write_files(ws: Workspace, directory: Path, owner: str) -> None:
    directory.mkdir(exist_ok=True)
    pki = ws.pki
    for f in range(FILES):
        blocks = [
            _inventory_block(f"inv-{f:04d}-{t}", pki.key_file, pki.key_id, pki.team_id)
            for t in range(PER_FILE)
        ]
        text = f"labels: {{team: {owner}-{f % 20}}}\ntargets:\n" + "".join(blocks)
        (directory / f"customer-{f:04d}.yaml").write_text(text)


def _series_per_target(exporter: Exporter, names: list[str]) -> dict[str, Any]:
    parsed = exporter.metrics()
    counts = {n: 0 for n in names}
    for (_, labels), _value in parsed.items():
        target = dict(labels).get("target")
        if target in counts:
            counts[target] += 1
    values = sorted(counts.values())
    return {"min": values[0], "max": values[-1], "sampled_targets": len(values)}


def _reload(exporter: Exporter, mock: Mock) -> dict[str, Any]:
    """One POST /-/reload: its wall time and the longest PING gap of probed targets around it."""
    mock.tap(True)
    # Let every probed connection PING at least twice before the reload starts.
    time.sleep(PING_SECONDS * 2.5)
    start = time.monotonic()
    resp = request(f"{exporter.url}/-/reload", "POST", timeout=RELOAD_TIMEOUT)
    end = time.monotonic()
    time.sleep(PING_SECONDS * 2.5)
    pings = mock.pings()
    mock.tap(False)
    if resp.status != 200:
        raise BenchmarkError(f"reload failed: HTTP {resp.status} {resp.body[:300]!r}")
    by_conn: dict[int, list[float]] = {}
    for conn, when in pings:
        by_conn.setdefault(conn, []).append(when)
    gaps = []
    for times in by_conn.values():
        times.sort()
        gaps += [b - a for a, b in itertools.pairwise(times) if b >= start and a <= end]
    return {
        "seconds": round(end - start, 3),
        "connections_seen": len(by_conn),
        "ping_interval_ms": PING_SECONDS * 1000,
        "ping_gap_ms_max": round(max(gaps) * 1000, 1) if gaps else None,
        "ping_gaps_during_reload": len(gaps),
    }


def _files_run(ws: Workspace, mock: Mock) -> dict[str, Any]:
    confd = ws.dir / "fleet.d"
    _write_files(ws, confd, "team")
    probed = "".join(
        ws.target_yaml(f"probed-{i}", mock.port, ping=f"{PING_SECONDS:g}s") for i in range(PROBED)
    )
    config = ws.dir / "fleet-files.yml"
    config.write_text(LOOPBACK_ONLY + "target_files: [fleet.d/*.yaml]\ntargets:\n" + probed)
    started = time.monotonic()
    exporter = ws.start_exporter("fleet-files", config, ready_timeout=READY_TIMEOUT)
    try:
        ready = time.monotonic() - started
        info = [k for (n, k), _ in exporter.metrics().items() if n == "apns_target_info"]
        if len(info) != FILES * PER_FILE + PROBED:
            raise BenchmarkError(f"expected {FILES * PER_FILE + PROBED} targets, saw {len(info)}")
        memory = exporter.proc.memory()
        series = _series_per_target(exporter, [f"inv-{f:04d}-0" for f in range(0, FILES, 50)])
        log(f"fleet files: ready in {ready:.1f}s, {memory['rss_mib']:.0f} MiB")
        unchanged = _reload(exporter, mock)
        log(f"fleet files: reload (no change) {unchanged['seconds']}s")
        for f in range(CHANGED_FILES):
            path = confd / f"customer-{f:04d}.yaml"
            text = path.read_text()
            path.write_text(text.replace("labels: {team: team-", "labels: {team: moved-"))
        changed = _reload(exporter, mock)
        log(f"fleet files: reload ({CHANGED_FILES} files changed) {changed['seconds']}s")
        moved = sum(
            1
            for (n, k), _ in exporter.metrics().items()
            if n == "apns_target_info" and dict(k).get("team", "").startswith("moved-")
        )
        return {
            "files": FILES,
            "targets_per_file": PER_FILE,
            "inventory_targets": FILES * PER_FILE,
            "probed_targets": PROBED,
            "ready_seconds": round(ready, 2),
            "rss_mib": round(memory["rss_mib"], 1),
            "peak_rss_mib": round(memory["peak_rss_mib"], 1),
            "series_per_inventory_target": series,
            "reload_unchanged": unchanged,
            "reload_changed": {**changed, "files_changed": CHANGED_FILES, "targets_moved": moved},
            "rss_after_reloads_mib": round(exporter.proc.memory()["rss_mib"], 1),
        }
    finally:
        exporter.proc.stop()


def _discovery_run(ws: Workspace) -> dict[str, Any]:
    keys = ws.dir / "keys"
    keys.mkdir(exist_ok=True)
    data = ws.pki.key_file.read_bytes()
    count = FILES * PER_FILE
    for i in range(count):
        (keys / f"AuthKey_K{i:09d}.p8").write_bytes(data)
    config = ws.dir / "fleet-discover.yml"
    config.write_text(
        LOOPBACK_ONLY + "discover:\n"
        "  - name: keys\n"
        "    paths: [keys/*.p8]\n"
        f"    team_id: {ws.pki.team_id}\n"
        "    labels: {team: discovered}\n"
        "    interval: 1h\n"
    )
    started = time.monotonic()
    exporter = ws.start_exporter("fleet-discover", config, ready_timeout=READY_TIMEOUT)
    try:
        ready = time.monotonic() - started

        def listed() -> bool:
            found = samples(exporter.scrape().body.decode())
            return found.get(("apns_discovery_targets", frozenset({("source", "keys")}))) == count

        wait_until(listed, READY_TIMEOUT, "every key to be discovered", interval=0.5)
        all_listed = time.monotonic() - started
        memory = exporter.proc.memory()
        names = [f"{ws.pki.team_id}-K{i:09d}" for i in range(0, count, 500)]
        series = _series_per_target(exporter, names)
        log(f"fleet discovery: {count} keys listed after {all_listed:.1f}s")
        return {
            "files": count,
            "ready_seconds": round(ready, 2),
            "all_listed_seconds": round(all_listed, 2),
            "rss_mib": round(memory["rss_mib"], 1),
            "peak_rss_mib": round(memory["peak_rss_mib"], 1),
            "series_per_inventory_target": series,
        }
    finally:
        exporter.proc.stop()


def run(ws: Workspace, mock: Mock) -> dict[str, Any]:
    """Both runs; see the module docstring."""
    return {"target_files": _files_run(ws, mock), "discovery": _discovery_run(ws)}
