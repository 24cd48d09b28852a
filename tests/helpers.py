"""Test helpers: a credentials workspace, a running exporter handle and sample lookup."""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from apns_exporter.probes import ProbeKind, ProbeResult, Run
from apns_exporter.service.exporter import Exporter
from apns_exporter.service.metrics import Metrics
from apns_exporter.service.state import TargetInfo, TargetStatus

KEY_ID = "ABC123DEFG"
TEAM_ID = "DEF123GHIJ"
TOPIC = "com.example.app"
WAIT_SECONDS = 15.0
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass
class Workspace:
    """A temp directory holding the CA file, a .p8 key and configs written by tests."""

    path: Path
    ca_file: Path
    key_file: Path

    def config(self, targets_yaml: str, *, extra: str = "") -> Path:
        """Write an exporter config with the given targets block and return its path.

        The process-wide environment check (on by default, to Apple's hosts) is switched
        off unless ``extra`` configures it: tests talk to loopback mocks only.
        """
        text = _without_environment_checks(
            textwrap.dedent(extra),
            "targets:\n" + textwrap.indent(textwrap.dedent(targets_yaml), "  "),
        )
        path = self.path / "apns-exporter.yml"
        path.write_text(text)
        return path

    def target(
        self,
        port: int,
        *,
        name: str = "t1",
        devices: tuple[str, ...] = (),
        auth_check: bool = False,
        key_file: Path | None = None,
        interval: str = "1s",
    ) -> str:
        """One target block pointing at a mock on ``port``."""
        tokens = ", ".join(f'"{d}"' for d in devices)
        return f"""\
- name: {name}
  environment: production
  endpoint: 127.0.0.1:{port}
  topic: {TOPIC}
  ca_file: {self.ca_file}
  auth:
    token:
      key_file: {key_file or self.key_file}
      key_id: {KEY_ID}
      team_id: {TEAM_ID}
  ping:
    interval: {interval}
  canary:
    interval: {interval}
    timeout: 1s
    device_tokens: [{tokens}]
    auth_check: {"true" if auth_check else "false"}
"""


_OFF = "environment_checks: {enabled: false}"


def _without_environment_checks(extra: str, targets: str) -> str:
    """``extra`` then ``targets``, environment_checks off unless ``extra`` sets them.

    Without a global block in ``extra`` one goes first (two lines), so ``targets`` stays
    last for tests that append to it.
    """
    if "environment_checks" in extra:
        return extra + targets
    if "global: {" in extra:
        return extra.replace("global: {", f"global: {{{_OFF}, ", 1) + targets
    if "global:\n" in extra:
        return extra.replace("global:\n", f"global:\n  {_OFF}\n", 1) + targets
    return f"global:\n  {_OFF}\n" + extra + targets


@dataclass
class Running:
    """An exporter serving HTTP on loopback, with helpers to wait for results and scrape."""

    exporter: Exporter
    url: str

    async def wait_for(
        self, predicate: Callable[[ProbeResult], bool], *, timeout: float = WAIT_SECONDS
    ) -> ProbeResult:
        """Wait for a probe result matching ``predicate`` (or fail after ``timeout``)."""
        found: asyncio.Future[ProbeResult] = asyncio.get_running_loop().create_future()

        def listener(result: ProbeResult) -> None:
            if predicate(result) and not found.done():
                found.set_result(result)

        self.exporter.listeners.append(listener)
        async with asyncio.timeout(timeout):
            return await found

    async def wait_canary(self, target: str = "t1", *, ok: bool | None = None) -> ProbeResult:
        """Wait for the next canary result of a target (optionally with a given outcome)."""
        return await self.wait_for(
            lambda r: (
                r.target == target and r.probe is ProbeKind.CANARY and (ok is None or r.ok is ok)
            )
        )

    async def scrape_text(self, path: str = "/metrics") -> str:
        """GET a page and return its body."""
        async with aiohttp.ClientSession() as session, session.get(self.url + path) as resp:
            assert resp.status == 200
            return await resp.text()

    async def scrape(self) -> Samples:
        """Scrape /metrics and index every sample by (name, labels)."""
        return parse_samples(await self.scrape_text())


def parse_samples(text: str) -> Samples:
    """Parse Prometheus text exposition with prometheus_client's parser."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    """Look up one sample by name and exact labels."""
    return samples.get((name, frozenset(labels.items())))


def load_script(name: str, path: Path) -> ModuleType:
    """Import a repository script that is not part of the package (generators, tools)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


async def start_cli(*args: str, ready: bytes, timeout: float = 30) -> asyncio.subprocess.Process:
    """Run ``python -m apns_exporter ARGS`` and wait until its log shows ``ready``."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "apns_exporter",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    try:
        async with asyncio.timeout(timeout):
            while ready not in (line := await proc.stderr.readline()):
                assert line, f"process exited before logging {ready!r}"
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    return proc


def add_target(metrics: Metrics, name: str, environment: str = "sandbox", **options: Any) -> None:
    """Give ``metrics`` a token-auth target with a canary and PING; ``options`` override."""
    settings: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 2197,
        "topic": "com.example.app",
        "auth_method": "token",
        "canary_interval": 300,
        "ping_interval": 60,
    }
    metrics.add_target(TargetInfo(name, environment, **(settings | options)))


def run_of(target: str = "t1", *, started_at: float = 1000.0, duration: float = 0.1) -> Run:
    """A probe run's record for results built by hand."""
    return Run(target, started_at, duration)


def record(metrics: Metrics, result: ProbeResult, status: TargetStatus | None = None) -> None:
    """Record ``result`` with the status a target would have after it alone."""
    if status is None:
        up = result.ok if result.probe in (ProbeKind.CANARY, ProbeKind.PING) else None
        status = TargetStatus(up=up, layer=result.layer if up is not None else None)
    metrics.record(result, status)


# The exporter's command line as a user runs it, in this interpreter.
CLI = [sys.executable, "-m", "apns_exporter"]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI to completion with no stdin, capturing its text output."""
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
