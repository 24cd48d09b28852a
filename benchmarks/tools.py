"""The outside yardsticks: prometheus-blackbox-exporter and h2load, pointed at the same mock.

Both get the same request the exporter's canary sends: ``POST /3/device/<token>`` with
``apns-topic``, ``apns-push-type: background``, ``apns-priority: 5``, a provider token and
the payload ``{"aps":{"content-available":1}}``. Neither can mint a JWT, so one is minted
here with PyJWT and reused as a fixed string (the mock, like APNs, accepts re-sending the
same token; it would answer TooManyProviderTokenUpdates only to a *different* one within
20 minutes on the same connection).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import jwt

from benchmarks.common import (
    BenchmarkError,
    Exporter,
    Proc,
    Workspace,
    free_port,
    request,
    samples,
    spawn,
    wait_until,
)

BLACKBOX = "prometheus-blackbox-exporter"
H2LOAD = "h2load"
PAYLOAD = '{"aps":{"content-available":1}}'


def mint_jwt(ws: Workspace) -> str:
    """One ES256 provider token for the mock's signing key, as Apple documents it."""
    key = ws.pki.signing_key.private_pem
    return jwt.encode(
        {"iss": ws.pki.team_id, "iat": int(time.time())},
        key,
        algorithm="ES256",
        headers={"kid": ws.pki.key_id, "typ": None},
    )


def push_headers(ws: Workspace, token: str) -> dict[str, str]:
    return {
        "apns-topic": ws.pki.topic,
        "apns-push-type": "background",
        "apns-priority": "5",
        "authorization": f"bearer {token}",
    }


def available(tool: str) -> bool:
    return shutil.which(tool) is not None


# -- blackbox_exporter ------------------------------------------------------------------------


@dataclass
class Blackbox:
    """A running blackbox_exporter with an ``apns`` module aimed at the mock."""

    proc: Proc
    url: str
    target: str

    def probe(self) -> dict[str, float]:
        """One probe via /probe; returns the probe_* samples we use."""
        resp = request(f"{self.url}/probe?module=apns&target={self.target}", timeout=30)
        if resp.status != 200:
            raise BenchmarkError(f"blackbox /probe: HTTP {resp.status}")
        parsed = samples(resp.body.decode())

        def get(name: str, **labels: str) -> float:
            return parsed.get((name, frozenset(labels.items())), float("nan"))

        return {
            "success": get("probe_success"),
            "duration": get("probe_duration_seconds"),
            "processing": get("probe_http_duration_seconds", phase="processing"),
            "connect": get("probe_http_duration_seconds", phase="connect"),
            "tls": get("probe_http_duration_seconds", phase="tls"),
            "status": get("probe_http_status_code"),
            "http_version": get("probe_http_version"),
        }


def start_blackbox(ws: Workspace, mock_port: int, token: str) -> Blackbox:
    """Write blackbox.yml for the mock and start blackbox_exporter on a free port."""
    headers = push_headers(ws, token)
    header_lines = "".join(f'        {k}: "{v}"\n' for k, v in headers.items())
    config = ws.dir / "blackbox.yml"
    config.write_text(
        "modules:\n"
        "  apns:\n"
        "    prober: http\n"
        "    timeout: 10s\n"
        "    http:\n"
        "      method: POST\n"
        '      valid_http_versions: ["HTTP/2.0"]\n'
        "      valid_status_codes: [200]\n"
        "      preferred_ip_protocol: ip4\n"
        "      headers:\n"
        f"{header_lines}"
        f"      body: '{PAYLOAD}'\n"
        "      tls_config:\n"
        f"        ca_file: {ws.ca_file}\n"
    )
    port = free_port()
    proc = spawn(
        "blackbox",
        [
            BLACKBOX,
            f"--config.file={config}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        ws.dir,
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if not proc.alive():
            raise BenchmarkError(f"blackbox_exporter exited:\n{proc.log_tail()}")
        return request(f"{url}/-/healthy", timeout=5).status == 200

    wait_until(ready, 30, "blackbox_exporter to listen")
    target = f"https://127.0.0.1:{mock_port}/3/device/{ws.device}"
    return Blackbox(proc, url, target)


def blackbox_version() -> str:
    from benchmarks.common import tool_version

    return tool_version([BLACKBOX, "--version"])


# -- h2load -----------------------------------------------------------------------------------


@dataclass
class H2LoadRun:
    """Per-request durations (seconds, in request order) and the CPU h2load used."""

    durations: list[float]
    statuses: list[int]
    cpu_seconds: float
    wall_seconds: float
    output: str


def run_h2load(
    ws: Workspace, mock_port: int, token: str, requests: int, *, rps: int | None = None
) -> H2LoadRun:
    """``h2load -c 1 -m 1``: sequential pushes on one connection, per-request log kept."""
    body = ws.dir / "payload.json"
    body.write_text(PAYLOAD)
    log_file = ws.dir / f"h2load-{time.monotonic_ns()}.log"
    argv = [H2LOAD, "-n", str(requests), "-c", "1", "-m", "1", "-d", str(body)]
    if rps is not None:
        argv += ["--rps", str(rps)]
    for name, value in push_headers(ws, token).items():
        argv += ["-H", f"{name}: {value}"]
    argv += [f"--log-file={log_file}", f"https://127.0.0.1:{mock_port}/3/device/{ws.device}"]
    started = time.monotonic()
    popen = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    assert popen.stdout is not None
    output = popen.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(popen.pid, 0)
    popen.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - started
    if popen.returncode != 0:
        raise BenchmarkError(f"h2load failed ({popen.returncode}):\n{output[-2000:]}")
    durations: list[float] = []
    statuses: list[int] = []
    # Each line: request start (µs since the epoch), HTTP status, duration (µs).
    for line in Path(log_file).read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3:
            statuses.append(int(parts[1]))
            durations.append(int(parts[2]) / 1e6)
    return H2LoadRun(durations, statuses, usage.ru_utime + usage.ru_stime, wall, output)


def h2load_version() -> str:
    from benchmarks.common import tool_version

    return tool_version([H2LOAD, "--version"])


__all__ = ["Blackbox", "Exporter", "H2LoadRun", "mint_jwt", "run_h2load", "start_blackbox"]
