"""A real Alertmanager on loopback with the shipped example config, and a webhook that counts.

The example (apns_exporter/assets/alertmanager.yml) is used as shipped: routes, grouping
and inhibit rules unchanged. Only the receivers' URLs point at :class:`Webhook`, and the
timers are shortened so a test sees the first notification of a group within seconds, an
update when an alert joins a group it has already notified, and no repeat while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from apns_exporter import assets

BINARY = "prometheus-alertmanager"  # Debian's name; upstream calls it alertmanager
GROUP_WAIT = "5s"  # longer than the gap between a symptom and the alert that inhibits it
GROUP_INTERVAL = "5s"  # a group notified once is updated when an alert joins it

# (receiver, alertname, severity, target) of one alert in a notification; "" for a
# missing label. A notification lists every alert of its group.
Notification = tuple[str, str, str, str]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Webhook:
    """Receives Alertmanager's webhook posts and keeps each firing notification."""

    # Every firing alert of every notification, in arrival order.
    received: list[Notification] = field(default_factory=list)
    # One entry per notification: (receiver, the firing alerts' labels and annotations).
    posts: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        """One notification: a group of alerts for one receiver."""
        body: dict[str, Any] = await request.json()
        if body["status"] == "firing":
            receiver = request.match_info["receiver"]
            alerts = [a for a in body["alerts"] if a["status"] == "firing"]
            self.posts.append((receiver, alerts))
            for alert in alerts:
                labels = alert["labels"]
                self.received.append(
                    (
                        receiver,
                        labels.get("alertname", ""),
                        labels.get("severity", ""),
                        labels.get("target", ""),
                    )
                )
            self.changed.set()
        return web.Response(text="ok")


def config(webhook_url: str) -> dict[str, Any]:
    """The shipped example with its receivers pointed at the webhook and short timers."""
    doc: dict[str, Any] = yaml.safe_load(assets.alertmanager_example())
    for receiver in doc["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = f"{webhook_url}/{receiver['name']}"
    doc["route"].update(group_wait=GROUP_WAIT, group_interval=GROUP_INTERVAL, repeat_interval="1h")
    for route in doc["route"]["routes"]:
        route.pop("repeat_interval", None)
    return doc


@contextlib.asynccontextmanager
async def running(tmp: Path) -> AsyncIterator[tuple[str, Webhook]]:
    """An Alertmanager with the shipped config and its webhook; yields (URL, webhook)."""
    binary = shutil.which(BINARY) or shutil.which("alertmanager")
    if binary is None:
        pytest.fail(
            "the Alertmanager binary is not installed: the notification test needs it "
            "(Debian/Ubuntu: apt-get install prometheus-alertmanager; scripts/setup does)"
        )
    hook = Webhook()
    app = web.Application()
    app.router.add_post("/{receiver}", hook.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hook_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    path = tmp / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config(f"http://127.0.0.1:{hook_port}"), sort_keys=False))
    port = free_port()
    log = tmp / "alertmanager.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            binary,
            f"--config.file={path}",
            f"--storage.path={tmp / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",  # no gossip port: a single instance
            "--log.level=warn",
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        await _wait_ready(url, process, log)
        yield url, hook
    finally:
        await stop(process)
        await runner.cleanup()


async def _wait_ready(url: str, process: asyncio.subprocess.Process, log: Path) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(150):
            assert process.returncode is None, f"alertmanager exited; see {log}"
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{url}/-/ready") as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.2)
    pytest.fail(f"alertmanager not ready in 30s; see {log}")


async def stop(process: asyncio.subprocess.Process) -> None:
    """Terminate a child process, killing it if it does not exit within 10 s."""
    if process.returncode is not None:
        return
    process.terminate()
    try:
        async with asyncio.timeout(10):
            await process.wait()
    except TimeoutError:
        process.kill()
        await process.wait()


async def active_groups(session: aiohttp.ClientSession, url: str) -> set[Notification]:
    """The notifications Alertmanager's active (not inhibited or silenced) alerts make."""
    async with session.get(f"{url}/api/v2/alerts", params={"active": "true"}) as resp:
        alerts = await resp.json()
    receivers = {"critical": "pager", "warning": "tickets"}
    out = set()
    for alert in alerts:
        if alert["status"]["state"] != "active":
            continue
        labels = alert["labels"]
        severity = labels.get("severity", "")
        if severity in receivers:
            out.add((receivers[severity], labels["alertname"], severity, labels.get("target", "")))
    return out
