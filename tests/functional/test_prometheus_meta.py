"""The shipped rules and Alertmanager example against restarts, shards and a whole fleet failing.

Each scenario starts its own exporters, a fresh Prometheus with the fast rules (``for:``
shortened, as in test_prometheus_live.py) and a real Alertmanager with the shipped
example, and asserts the exact set of notifications Alertmanager sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from apns_exporter import config
from apns_exporter.commands.serve import Listening, serve
from apns_exporter.mock.faults import ErrorFault, Scenario
from apns_exporter.mock.pki import CertificateAuthority, generate_signing_key
from apns_exporter.mock.server import MockAPNs
from apns_exporter.service.exporter import Exporter, shard_of
from tests.functional import alertmanager_support as am
from tests.helpers import KEY_ID, TEAM_ID, TOPIC, load_script, parse_samples, sample

ROOT = Path(__file__).resolve().parents[2]
JOB = "apns-exporter"
FOR = "3s"
DEADLINE_SECONDS = 90.0
# Rule evaluations (one a second) a quiet scenario waits through before it may pass:
# enough for an alert with for: 3s to fire and for Alertmanager's group_wait of 5s.
QUIET_EVALUATIONS = 20

fast_rules = load_script("apns_fast_rules_meta", ROOT / "alerts" / "fast_rules.py")


@dataclass
class Stack:
    """Prometheus and Alertmanager watching some exporters."""

    prometheus: str
    alertmanager: str
    webhook: am.Webhook
    session: aiohttp.ClientSession

    async def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector."""
        async with self.session.get(f"{self.prometheus}/api/v1/query", params={"query": expr}) as r:
            body = await r.json()
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    async def evaluations(self) -> float:
        """How many times the alerting group has been evaluated."""
        rows = await self.query(
            'min(prometheus_rule_group_iterations_total{rule_group=~".*;apns-exporter"})'
        )
        return float(rows[0]["value"][1]) if rows else 0.0


@contextlib.asynccontextmanager
async def exporter(config_file: Path, shard: tuple[int, int] | None = None) -> AsyncIterator[str]:
    """An exporter with its web server on loopback; yields host:port until the block ends."""
    running = Exporter(config.load(config_file), config_file=str(config_file), shard=shard)
    stop = asyncio.Event()
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        serve(running, Listening(("127.0.0.1", 0)), stop, on_listening=ready.set_result)
    )
    try:
        async with asyncio.timeout(15):
            await asyncio.wait({ready, task}, return_when=asyncio.FIRST_COMPLETED)
        assert ready.done(), f"exporter exited before listening: {task.result()}"
        yield ready.result().removeprefix("http://").rstrip("/")
    finally:
        stop.set()
        await task


@contextlib.asynccontextmanager
async def stack(tmp: Path, instances: list[str]) -> AsyncIterator[Stack]:
    """A fresh Prometheus (empty database) scraping ``instances``, and an Alertmanager."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("the prometheus binary is not installed (apt-get install prometheus)")
    rules = tmp / "fast.rules.yml"
    fast_rules.shorten_file(fast_rules.RULES_FILE, rules, for_=FOR)
    async with am.running(tmp) as (alertmanager, webhook):
        port = am.free_port()
        prometheus_yml = tmp / "prometheus.yml"
        prometheus_yml.write_text(
            yaml.safe_dump(
                {
                    "global": {
                        "scrape_interval": "1s",
                        "scrape_timeout": "1s",
                        "evaluation_interval": "1s",
                    },
                    "rule_files": [str(rules)],
                    "alerting": {
                        "alertmanagers": [
                            {
                                "static_configs": [
                                    {"targets": [alertmanager.removeprefix("http://")]}
                                ]
                            }
                        ]
                    },
                    "scrape_configs": [
                        {"job_name": JOB, "static_configs": [{"targets": instances}]},
                        {
                            "job_name": "prometheus",
                            "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
                        },
                    ],
                }
            )
        )
        log = tmp / "prometheus.log"
        with log.open("wb") as out:
            process = await asyncio.create_subprocess_exec(
                binary,
                f"--config.file={prometheus_yml}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
            )
        session = aiohttp.ClientSession()
        try:
            live = Stack(f"http://127.0.0.1:{port}", alertmanager, webhook, session)
            await _until(lambda: _scraped(live, len(instances)), f"Prometheus scraping; see {log}")
            yield live
        finally:
            await session.close()
            await am.stop(process)


async def _scraped(live: Stack, count: int) -> bool:
    with contextlib.suppress(aiohttp.ClientError):
        return len(await live.query(f'up{{job="{JOB}"}} == 1')) == count
    return False


async def _until(check: Any, what: str, deadline: float = DEADLINE_SECONDS) -> None:
    """Poll ``check`` (an async predicate) every 0.5 s until true, or fail after ``deadline``."""
    for _ in range(int(deadline / 0.5)):
        if await check():
            return
        await asyncio.sleep(0.5)
    pytest.fail(f"not within {deadline:g}s: {what}")


async def _quiet_for(live: Stack, evaluations: int) -> None:
    """Wait until the rules have been evaluated ``evaluations`` more times."""
    start = await live.evaluations()

    async def done() -> bool:
        return await live.evaluations() >= start + evaluations

    await _until(done, "rule evaluations")


def _target(name: str, mock: MockAPNs, tmp: Path, key_file: Path, **extra: Any) -> dict[str, Any]:
    device = secrets.token_hex(32)
    mock.devices.register(device, TOPIC)
    return {
        "name": name,
        "environment": "production",
        "endpoint": f"127.0.0.1:{mock.port}",
        "topic": TOPIC,
        "ca_file": str(tmp / "ca.pem"),
        "auth": {"token": {"key_file": str(key_file), "key_id": KEY_ID, "team_id": TEAM_ID}},
        "ping": {"interval": "1s"},
        "canary": {"interval": "1s", "timeout": "1s", "device_tokens": [device]},
        "tls_check": None,
        **extra,
    }


@contextlib.asynccontextmanager
async def _mock(ca: CertificateAuthority, tmp: Path) -> AsyncIterator[tuple[MockAPNs, Path]]:
    """One mock APNs accepting a fresh signing key; yields it and the key file."""
    key = generate_signing_key()
    key_file = tmp / f"AuthKey_{KEY_ID}.p8"
    key_file.write_bytes(key.private_pem)
    (tmp / "ca.pem").write_bytes(ca.cert_pem)
    mock = MockAPNs(ca.issue_server())
    mock.add_signing_key(KEY_ID, TEAM_ID, key.public_key, topics=[TOPIC])
    await mock.start("127.0.0.1", 0)
    try:
        yield mock, key_file
    finally:
        await mock.stop()


def _config(tmp: Path, targets: list[dict[str, Any]], name: str = "apns-exporter.yml") -> Path:
    path = tmp / name
    path.write_text(
        yaml.safe_dump({"global": {"scrape_timeout": "2s"}, "targets": targets}, sort_keys=False)
    )
    return path


async def test_a_fresh_prometheus_over_old_failures_notifies_nothing(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    """Failures counted before Prometheus started are history: no alert, no notification."""
    async with _mock(ca, tmp_path) as (mock, key_file):
        # The first canaries are rejected, then APNs accepts every one.
        mock.scenario = Scenario(
            name="old-failures", errors=(ErrorFault(reason="InvalidProviderToken", count=4),)
        )
        cfg = _config(tmp_path, [_target("old", mock, tmp_path, key_file)])
        async with exporter(cfg) as instance:
            async with aiohttp.ClientSession() as session:

                async def healed() -> bool:
                    async with session.get(f"http://{instance}/metrics") as r:
                        found = parse_samples(await r.text())
                    labels = {"target": "old", "apns_environment": "production"}
                    rejected = sample(
                        found,
                        "apns_canary_responses_total",
                        **labels,
                        status="403",
                        reason="InvalidProviderToken",
                    )
                    return rejected == 4 and sample(found, "apns_up", **labels) == 1

                await _until(healed, "four rejected canaries, then a healthy one")
            async with stack(tmp_path, [instance]) as live:
                # The old failures are in Prometheus, so the rules could see them.
                old = 'apns_canary_responses_total{reason="InvalidProviderToken"} == 4'
                assert await live.query(old)
                await _quiet_for(live, QUIET_EVALUATIONS)
                firing = await live.query('ALERTS{alertname=~"Apns.+"}')
                assert [a["metric"]["alertname"] for a in firing] == []
                assert live.webhook.posts == []


async def test_one_of_three_shards_stopped_is_one_warning_naming_the_shard(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    """Stopping shard 1 of 3 sends exactly one notification: ApnsExporterDown for shard 1."""
    async with _mock(ca, tmp_path) as (mock, key_file):
        names = [f"t{i}" for i in range(12)]
        assert {shard_of(n, 3) for n in names} == {0, 1, 2}
        cfg = _config(tmp_path, [_target(n, mock, tmp_path, key_file) for n in names])
        async with contextlib.AsyncExitStack() as exporters:
            instances = [await exporters.enter_async_context(exporter(cfg, (i, 3))) for i in (0, 2)]
            shard_1 = contextlib.AsyncExitStack()
            async with shard_1:
                stopped = await shard_1.enter_async_context(exporter(cfg, (1, 3)))
                async with stack(tmp_path, [*instances, stopped]) as live:
                    everything = 'sum(apns_exporter_targets_probed{job="apns-exporter"}) == 12'
                    await _until(lambda: _has(live, everything), "every shard probing")
                    await shard_1.aclose()
                    down = ("tickets", "ApnsExporterDown", "warning", "")
                    await _until(lambda: _notified(live, down), "the ExporterDown warning")
                    await _quiet_for(live, QUIET_EVALUATIONS)
                    ((receiver, alerts),) = live.webhook.posts
                    assert receiver == "tickets"
                    (alert,) = alerts
                    assert alert["labels"]["alertname"] == "ApnsExporterDown"
                    assert alert["labels"]["instance"] == stopped
                    assert "shard 1)" in alert["annotations"]["description"]


async def test_a_whole_fleet_failing_sends_at_most_two_notifications(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    """Fifty production targets failing at once: the fleet page, and at most one more."""
    async with _mock(ca, tmp_path) as (mock, key_file):
        mock.scenario = Scenario(name="outage", errors=(ErrorFault(reason="ServiceUnavailable"),))
        targets = [
            _target(f"f{i:02d}", mock, tmp_path, key_file, ping={"interval": "5s"})
            for i in range(50)
        ]
        for target in targets:
            target["canary"]["interval"] = "2s"
        cfg = _config(tmp_path, targets)
        async with exporter(cfg) as instance, stack(tmp_path, [instance]) as live:
            fleet = ("pager", "ApnsFleetFailing", "critical", "")
            await _until(lambda: _notified(live, fleet), "the fleet page")
            await _quiet_for(live, QUIET_EVALUATIONS)
            assert 1 <= len(live.webhook.posts) <= 2, live.webhook.posts
            sent = {
                (r, a["labels"]["alertname"]) for r, alerts in live.webhook.posts for a in alerts
            }
            assert ("pager", "ApnsFleetFailing") in sent
            assert sent <= {("pager", "ApnsFleetFailing"), ("pager", "ApnsCanaryFailing")}


async def _has(live: Stack, expr: str) -> bool:
    return bool(await live.query(expr))


async def _notified(live: Stack, notification: am.Notification) -> bool:
    return notification in live.webhook.received
