"""`apns-exporter mock-apns` as a user runs it: a real process, then the exporter against it."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import aiohttp

from apns_exporter import config
from apns_exporter.commands import probe
from tests.helpers import start_cli


async def test_mock_apns_flaky_scenario_runs_as_documented(
    tmp_path: Path, unused_tcp_port_factory
) -> None:
    """The documented command runs the flaky scenario with its admin API and stops on SIGTERM."""
    port, admin = unused_tcp_port_factory(), unused_tcp_port_factory()
    pki = tmp_path / "mock-pki"
    proc = await start_cli(
        "mock-apns",
        "--scenario",
        "flaky",
        "--listen",
        f"127.0.0.1:{port}",
        "--admin-listen",
        f"127.0.0.1:{admin}",
        "--generate-pki",
        str(pki),
        ready=b"(scenario flaky)",
    )
    try:
        url = f"http://127.0.0.1:{admin}/scenario"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            scenario = await response.json()
        assert scenario["name"] == "flaky"

        # The generated credentials are enough to point the exporter at the mock.
        material = json.loads((pki / "mock.json").read_text())
        key_file = next(pki.glob("AuthKey_*.p8"))
        cfg_file = tmp_path / "apns-exporter.yml"
        cfg_file.write_text(
            "global: {environment_checks: {enabled: false}}\n"
            "targets:\n  - name: mock\n    environment: production\n"
            f"    endpoint: 127.0.0.1:{port}\n    topic: {material['topic']}\n"
            f"    ca_file: {pki / 'ca.pem'}\n    tls_check: null\n"
            f"    auth:\n      token: {{key_file: {key_file}, key_id: {material['key_id']}, "
            f"team_id: {material['team_id']}}}\n"
            "    canary: {auth_check: true}\n"
        )
        lines: list[str] = []
        code = await probe.run(config.load(cfg_file), "mock", lines.append)
        output = "\n".join(lines)
        # Flaky means some pushes fail on purpose; the auth check must at least get an answer.
        assert "auth_check push:" in output, output
        assert code in (0, 1)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
