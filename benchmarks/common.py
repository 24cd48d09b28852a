"""Shared plumbing: credentials, subprocesses and their CPU/RSS, HTTP, statistics, results."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from prometheus_client.parser import text_string_to_metric_families

from apns_exporter.mock import material

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
START_TIMEOUT = 60.0


class BenchmarkError(RuntimeError):
    """A benchmark could not run as designed (a process died, a wait timed out)."""


# -- statistics -------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear interpolation between closest ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summary(values: Sequence[float], scale: float = 1.0) -> dict[str, float | int]:
    """n, mean, median, p90, p99, max (and min) of ``values`` multiplied by ``scale``."""
    if not values:
        return {"n": 0}
    v = [x * scale for x in values]
    return {
        "n": len(v),
        "min": min(v),
        "mean": statistics.fmean(v),
        "median": percentile(v, 50),
        "p90": percentile(v, 90),
        "p99": percentile(v, 99),
        "max": max(v),
    }


# -- processes --------------------------------------------------------------------------------


@dataclass
class Proc:
    """A child process we started, with its CPU time and memory read from /proc."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def cpu(self) -> float:
        """User + system CPU seconds of the process (all its threads) so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        # After the ")" field 3 is state; utime and stime are fields 14 and 15 overall.
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def memory(self) -> dict[str, float]:
        """Resident set size now and at its peak, in MiB."""
        out: dict[str, float] = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024.0
        return {"rss_mib": out.get("VmRSS", 0.0), "peak_rss_mib": out.get("VmHWM", 0.0)}

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, wait, then SIGKILL if it would not go."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        return self.popen.returncode

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


def spawn(name: str, argv: Sequence[str], workdir: Path, *, stdout_pipe: bool = False) -> Proc:
    """Start a child with stderr (and stdout unless piped) going to a log file in ``workdir``."""
    log_path = workdir / f"{name}.log"
    log = open(log_path, "ab")  # noqa: SIM115 - owned by the child for its whole life
    popen = subprocess.Popen(
        list(argv),
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE if stdout_pipe else log,
        stderr=log,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    log.close()
    return Proc(name, popen, log_path)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy, or raise after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError, http.client.HTTPException):
            value = predicate()
            if value:
                return value
        if time.monotonic() > deadline:
            raise BenchmarkError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


# -- HTTP -------------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    body: bytes
    seconds: float
    headers: dict[str, str]


def request(
    url: str,
    method: str = "GET",
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> Response:
    """One HTTP/1.1 request on a fresh loopback connection, timed from send to last byte."""
    parts = urlsplit(url)
    data = json.dumps(body).encode() if body is not None else None
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        started = time.perf_counter()
        conn.request(method, path, body=data, headers=headers or {})
        resp = conn.getresponse()
        payload = resp.read()
        seconds = time.perf_counter() - started
        return Response(resp.status, payload, seconds, {k.lower(): v for k, v in resp.getheaders()})
    finally:
        conn.close()


def get_json(url: str) -> Any:
    resp = request(url)
    if resp.status != 200:
        raise BenchmarkError(f"GET {url}: HTTP {resp.status}: {resp.body[:200]!r}")
    return json.loads(resp.body)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Prometheus text exposition indexed by (sample name, labels)."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(parsed: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str) -> float:
    """Sum of every sample called ``name``, whatever its labels."""
    return sum(v for (n, _), v in parsed.items() if n == name)


# -- the mock and the exporter ----------------------------------------------------------------


@dataclass
class Mock:
    """The mock APNs host process (benchmarks/mockhost.py) and how to reach it."""

    proc: Proc
    port: int
    admin: str

    def tap(self, on: bool) -> None:
        request(f"{self.admin}/bench/tap", "PUT", {"on": on})

    def timings(self) -> list[dict[str, Any]]:
        return list(get_json(f"{self.admin}/bench/timings")["records"])

    def pings(self) -> list[tuple[int, float]]:
        """Each client PING's arrival at the mock while the tap was on: (connection, when)."""
        return [(int(c), float(t)) for c, t in get_json(f"{self.admin}/bench/pings")["pings"]]

    def count(self) -> dict[str, int]:
        return dict(get_json(f"{self.admin}/bench/count"))

    def stats(self) -> dict[str, Any]:
        return dict(get_json(f"{self.admin}/stats"))

    def scenario(self, scenario: dict[str, Any]) -> None:
        resp = request(f"{self.admin}/scenario", "PUT", scenario)
        if resp.status != 200:
            raise BenchmarkError(f"mock refused scenario {scenario}: {resp.body[:300]!r}")


class Workspace:
    """A temporary directory with the mock's credentials and everything the runs write."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="apns-bench-"))
        self.pki = material.generate(self.dir / "pki")
        self.ca_file = self.dir / "pki" / "ca.pem"
        self.device = self.pki.device_tokens[0]
        self.python = sys.executable

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def start_mock(self, name: str = "mock") -> Mock:
        proc = spawn(
            name,
            [self.python, "-m", "benchmarks.mockhost", str(self.dir / "pki")],
            self.dir,
            stdout_pipe=True,
        )
        assert proc.popen.stdout is not None
        line = proc.popen.stdout.readline()
        if not line:
            proc.stop()
            raise BenchmarkError(f"mock did not start:\n{proc.log_tail()}")
        info = json.loads(line)
        return Mock(proc, int(info["port"]), f"http://127.0.0.1:{info['admin']}")

    def target_yaml(
        self,
        name: str,
        port: int,
        *,
        ping: str = "1h",
        canary: str | None = None,
        canary_timeout: str = "5s",
        auth_check: bool = False,
        inventory_only: bool = False,
    ) -> str:
        """One target block pointing at the mock (``inventory_only``: credential only)."""
        pki = self.pki
        lines = [
            f"  - name: {name}",
            "    environment: production",
            f"    endpoint: 127.0.0.1:{port}",
            f"    topic: {pki.topic}",
            f"    ca_file: {self.ca_file}",
            "    auth:",
            "      token:",
            f"        key_file: {pki.key_file}",
            f"        key_id: {pki.key_id}",
            f"        team_id: {pki.team_id}",
            "    ping:",
            f"      interval: {ping}",
        ]
        if inventory_only:
            lines.append("    inventory_only: true")
        if canary is not None:
            lines += [
                "    canary:",
                f"      interval: {canary}",
                f"      timeout: {canary_timeout}",
                f'      device_tokens: ["{self.device}"]'
                if not auth_check
                else "      device_tokens: []",
                f"      auth_check: {'true' if auth_check else 'false'}",
            ]
        return "\n".join(lines) + "\n"

    def write_config(self, name: str, targets: Sequence[str], scrape_timeout: str = "10s") -> Path:
        path = self.dir / f"{name}.yml"
        path.write_text(
            # Loopback only: the environment check would dial Apple's hosts.
            f"global:\n  scrape_timeout: {scrape_timeout}\n"
            "  environment_checks: {enabled: false}\ntargets:\n" + "".join(targets)
        )
        return path

    def start_exporter(
        self,
        name: str,
        config: Path,
        *,
        lag_file: Path | None = None,
        ready_timeout: float = 60.0,
        event_loop: str = "asyncio",
        http2: str = "h2",
    ) -> Exporter:
        """Start ``python -m apns_exporter`` (or the lag-measuring host) and wait until ready.

        ``event_loop`` is its --runtime.event-loop; ``http2`` "jh2" runs it with jh2 as h2.
        """
        port = free_port()
        flags = [
            f"--config.file={config}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--runtime.event-loop={event_loop}",
        ]
        if http2 == "jh2":
            argv = [self.python, "-m", "benchmarks.jh2host", *flags]
        elif lag_file is None:
            argv = [self.python, "-m", "apns_exporter", *flags]
        else:
            argv = [self.python, "-m", "benchmarks.exporterhost", str(lag_file), *flags]
        proc = spawn(name, argv, self.dir)
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            if not proc.alive():
                raise BenchmarkError(f"{name} exited:\n{proc.log_tail()}")
            return request(f"{url}/-/ready", timeout=5).status == 200

        wait_until(ready, ready_timeout, f"{name} to become ready")
        return Exporter(proc, url)


@dataclass
class Exporter:
    proc: Proc
    url: str

    def scrape(self, gzip: bool = False) -> Response:
        headers = {"Accept-Encoding": "gzip"} if gzip else {}
        resp = request(f"{self.url}/metrics", headers=headers)
        if resp.status != 200:
            raise BenchmarkError(f"scrape failed: HTTP {resp.status}")
        return resp

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        return samples(self.scrape().body.decode())


@contextlib.contextmanager
def running(*procs: Proc) -> Iterator[None]:
    """Stop the given processes on the way out, whatever happens."""
    try:
        yield
    finally:
        for proc in procs:
            proc.stop()


# -- results ----------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "machine": platform.machine(),
    }


def tool_version(argv: Sequence[str]) -> str:
    """First line of a tool's version output, or "" when it is missing."""
    try:
        out = subprocess.run(list(argv), capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else ""


def write_result(name: str, data: dict[str, Any]) -> Path:
    """benchmarks/results/<name>.json, with the machine and time of the run."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    data = {
        "benchmark": name,
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        **data,
    }
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    return path


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
