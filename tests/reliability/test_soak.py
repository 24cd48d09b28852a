"""Soak: 100 000 probes against the mock, with faults on the way, grow nothing that lives on.

The probes are driven directly (``ping.run`` / ``canary.run`` on each target's live
target snapshots, results applied through the exporter's one road), so the run takes seconds rather
than the days a real schedule would need; the scheduler itself is configured with hour-long
intervals and stays out of the way.
"""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

import pytest

from apns_exporter import config
from apns_exporter.mock.faults import ErrorFault, GoAwayFault, Scenario
from apns_exporter.mock.pki import CertificateAuthority, SigningKeyPair
from apns_exporter.mock.server import MockAPNs
from apns_exporter.probes import ProbeKind, canary, ping
from apns_exporter.service.exporter import Exporter
from apns_exporter.service.state import TargetState
from tests.reliability.support import Leaks, live_tasks, start_mock, target_yaml, write_config

PROBES = int(__import__("os").environ.get("SOAK_PROBES", "100000"))
TARGETS = 4
WARMUP = 5_000
RSS_GROWTH_BYTES = 20 * 1024 * 1024
OBJECT_GROWTH = 20_000
# Probe count (fraction of the run) at which each scenario starts.
PHASES = [
    (0.0, Scenario()),
    (0.2, Scenario(goaway=GoAwayFault(after_requests=50, reason="Shutdown"))),
    (0.35, Scenario(errors=(ErrorFault("ServiceUnavailable", probability=0.05),), seed=1)),
    (0.5, Scenario(goaway=GoAwayFault(after_requests=20, debug="empty", graceful=False))),
    (0.6, Scenario(stall=0.005, seed=2)),
    (0.7, Scenario(errors=(ErrorFault("InternalServerError", probability=0.02),), seed=3)),
    (0.8, Scenario()),
]


def rss_bytes() -> int:
    """Resident set size of this process."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def footprint(mock: MockAPNs, device: str) -> tuple[int, int, int]:
    """RSS, live objects and live tasks, after a full collection."""
    # The simulated device keeps every push it received (by design): that is the mock's
    # memory, not the exporter's, so it is emptied before counting.
    registered = mock.devices.get(device)
    assert registered is not None
    registered.notifications.clear()
    gc.collect()
    return rss_bytes(), len(gc.get_objects()), len(live_tasks())


@pytest.mark.slow  # about 390 s: still part of the CI suite, skipped by scripts/test --quick
async def test_soak_100k_probes_with_faults_stays_bounded(
    tmp_path: Path, ca: CertificateAuthority, signing_key: SigningKeyPair, device: str
) -> None:
    """Over 100k probes with faults, RSS grows < 20 MiB, objects < 20k, tasks stay at baseline.

    Bounds, measured between the end of a 5 000-probe warm-up and the end of the run (both
    with the same connections open): RSS + 20 MiB, live objects (gc.get_objects) + 20 000,
    live tasks equal; after stopping, tasks and file descriptors are back to where they
    were before anything started.
    """
    leaks = Leaks.snapshot()
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    key_file = tmp_path / "AuthKey.p8"
    key_file.write_bytes(signing_key.private_pem)
    mock = await start_mock(ca, signing_key, device)
    targets = [
        target_yaml(
            f"t{i}",
            mock.port,
            ca_file,
            key_file,
            device=device,
            interval="1h",
            # Stalled streams must time out quickly, or the stall phase would dominate the run.
            canary_timeout="1s",
            ping_timeout="1s",
        )
        for i in range(TARGETS)
    ]
    exporter = Exporter(config.load(write_config(tmp_path / "apns.yml", *targets)))
    registered = mock.devices.get(device)
    assert registered is not None
    inbox = registered.notifications
    done = 0
    phase = 0
    outcomes = {"ok": 0, "failed": 0}

    async def drive(state: TargetState, count: int) -> None:
        nonlocal done, phase
        for i in range(count):
            if i % 4 == 0:
                result = await canary.run(state.snapshot().start(ProbeKind.CANARY))
            else:
                result = await ping.run(state.snapshot().start(ProbeKind.PING))
            await exporter.apply(result)
            outcomes["ok" if result.ok else "failed"] += 1
            done += 1
            if done % 1000 == 0:
                inbox.clear()  # the mock's memory, not the exporter's: see footprint()
            while phase + 1 < len(PHASES) and done >= PHASES[phase + 1][0] * PROBES:
                phase += 1
                mock.scenario = PHASES[phase][1]

    async def run(count: int) -> None:
        per_target = count // TARGETS
        async with asyncio.TaskGroup() as group:
            for state in exporter.targets.values():
                group.create_task(drive(state, per_target))

    try:
        async with exporter.running():
            await run(WARMUP)
            rss0, objects0, tasks0 = footprint(mock, device)
            await run(PROBES - WARMUP)
            mock.scenario = Scenario()
            await run(4 * TARGETS)  # every target ends on a healthy run, on a live connection
            rss1, objects1, tasks1 = footprint(mock, device)
    finally:
        await mock.stop()
    leaks.check()
    print(
        f"soak: RSS {(rss1 - rss0) / 2**20:+.1f} MiB, objects {objects1 - objects0:+d}, "
        f"tasks {tasks1 - tasks0:+d}, outcomes {outcomes}"
    )
    assert done >= PROBES
    assert outcomes["failed"] > 0, "the faults never showed"
    assert outcomes["ok"] > PROBES * 0.9
    assert mock.stats.goaways > 0
    assert mock.stats.stalled_streams > 0
    assert rss1 - rss0 < RSS_GROWTH_BYTES, f"RSS grew by {(rss1 - rss0) / 2**20:.1f} MiB"
    assert objects1 - objects0 < OBJECT_GROWTH, f"{objects1 - objects0} more live objects"
    assert tasks1 <= tasks0, f"{tasks1 - tasks0} more live tasks"
