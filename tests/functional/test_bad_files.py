"""Bad files through the real process: FIFOs, /dev/zero and 2 GiB sparse files as config,
keys, certificates, passwords, receipt secrets and CA files, at check, start and reload."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization

from apns_exporter.mock.pki import CertificateAuthority
from apns_exporter.mock.server import MockAPNs
from tests.helpers import TOPIC, Samples, Workspace, parse_samples, sample

KINDS = ("fifo", "zero", "sparse")
TWO_GIB = 2 * 1024**3
RSS_LIMIT_KIB = 200 * 1024
# A whole CLI run, interpreter start included; a FIFO read would block far longer.
RUN_SECONDS = 20.0
T2 = {"target": "t2", "apns_environment": "production"}


def T2_INFO(port: int) -> dict[str, str]:
    """The apns_target_info labels of a token target t2 probing the mock on ``port``."""
    return {
        "host": "127.0.0.1",
        "port": str(port),
        "topic": "com.example.app",
        "auth_method": "token",
    }


WAIT = 20.0
LOCATED = re.compile(r":\d+:\d+: ")


def make_bad(path: Path, kind: str) -> Path:
    """Turn ``path`` into a FIFO, a symlink to /dev/zero, or a 2 GiB sparse file."""
    if path.is_symlink() or path.exists():
        path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "zero":
        path.symlink_to("/dev/zero")
    else:
        with path.open("wb") as handle:
            handle.truncate(TWO_GIB)
    return path


def refusal(kind: str) -> str:
    """What the one-line error says about each kind of bad file."""
    return {
        "fifo": "is a FIFO (named pipe), not a regular file (point at a regular file)",
        "zero": "is a character device, not a regular file (point at a regular file)",
        "sparse": "larger than",
    }[kind]


@dataclass
class Finished:
    """A CLI run that ended: exit code, its stderr, its peak RSS and how long it took."""

    code: int
    stderr: str
    max_rss_kib: int
    seconds: float


def run(*args: str) -> Finished:
    """Run the CLI; kill it and fail if it does not end within RUN_SECONDS."""
    started = time.monotonic()
    # stderr to a file: a pipe nobody reads while waiting could fill and stall the child.
    with tempfile.TemporaryFile("w+") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "apns_exporter", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        peak = 0
        while True:
            # The child's own high-water mark (VmHWM), read while it runs: wait4's ru_maxrss
            # would report the whole pytest process, whose memory the child had until exec.
            peak = max(peak, _high_water_kib(proc.pid))
            pid, status, _ = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - started > RUN_SECONDS:
                proc.kill()
                os.waitpid(proc.pid, 0)
                pytest.fail(f"apns-exporter {' '.join(args)} still running after {RUN_SECONDS}s")
            time.sleep(0.01)  # polling a child's exit and memory, not synchronising with it
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        stderr.seek(0)
        return Finished(code, stderr.read(), peak, time.monotonic() - started)


def _high_water_kib(pid: int) -> int:
    """A running process's peak resident set size in KiB; 0 once it has exited."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    found = re.search(r"VmHWM:\s+(\d+) kB", status)
    return int(found.group(1)) if found else 0


def cert_target(name: str, ws: Workspace, files: dict[str, Path], port: int = 1) -> str:
    """A certificate-auth target block using ``files`` (cert_file, key_file, password_file)."""
    lines = [f"      {key}: {path}" for key, path in files.items()]
    return (
        f"- name: {name}\n  environment: production\n  endpoint: 127.0.0.1:{port}\n"
        f"  ca_file: {ws.ca_file}\n  auth:\n    certificate:\n" + "\n".join(lines) + "\n"
    )


def delivery_target(ws: Workspace, secret: Path, device: str) -> str:
    """A token target whose canary measures delivery with the receipt secret ``secret``."""
    return (
        ws.target(1, name="r1", devices=(device,)) + f"    delivery:\n      secret_file: {secret}\n"
    )


@pytest.fixture
def provider_files(workspace: Workspace, ca: CertificateAuthority) -> tuple[Path, Path]:
    """A provider certificate and its key, in the workspace."""
    return ca.issue_provider(TOPIC).write(workspace.path, "push")


def every_role(
    ws: Workspace, kind: str, provider: tuple[Path, Path], device: str
) -> dict[str, tuple[str, Path]]:
    """A config with one target per file role, each role's file made bad; role -> (key, path)."""
    cert, key = provider
    bad = {
        role: make_bad(ws.path / f"bad-{role}", kind)
        for role in ("p8", "cert_file", "key_file", "password_file", "secret_file", "ca_file")
    }
    blocks = [
        ws.target(1, name="k1", key_file=bad["p8"], auth_check=True),
        cert_target("c1", ws, {"cert_file": bad["cert_file"], "key_file": key}),
        cert_target("c2", ws, {"cert_file": cert, "key_file": bad["key_file"]}),
        cert_target(
            "c3", ws, {"cert_file": cert, "key_file": key, "password_file": bad["password_file"]}
        ),
        delivery_target(ws, bad["secret_file"], device),
        ws.target(1, name="a1", auth_check=True).replace(
            f"ca_file: {ws.ca_file}", f"ca_file: {bad['ca_file']}"
        ),
    ]
    ws.config("".join(blocks))
    return {
        "p8": ("targets[0].auth.token.key_file", bad["p8"]),
        "cert_file": ("targets[1].auth.certificate.cert_file", bad["cert_file"]),
        "key_file": ("targets[2].auth.certificate.key_file", bad["key_file"]),
        "password_file": ("targets[3].auth.certificate.password_file", bad["password_file"]),
        "secret_file": ("targets[4].canary.delivery.secret_file", bad["secret_file"]),
        "ca_file": ("targets[5].ca_file", bad["ca_file"]),
    }


def assert_refused(
    done: Finished, cfg: Path, kind: str, roles: dict[str, tuple[str, Path]]
) -> None:
    """Exit 1, one located line per bad file saying what is wrong, no traceback, small RSS."""
    assert done.code == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.max_rss_kib < RSS_LIMIT_KIB
    lines = done.stderr.splitlines()
    for role, (key, path) in roles.items():
        found = [line for line in lines if f" {key}: " in line and str(path) in line]
        assert len(found) == 1, f"{role}: {done.stderr}"
        assert found[0].startswith(f"error: {cfg}:")
        assert LOCATED.search(found[0]), found[0]
        assert refusal(kind) in found[0]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", ["check", "start"])
def test_bad_files_of_every_role_are_refused_in_one_line(
    workspace: Workspace,
    provider_files: tuple[Path, Path],
    device: str,
    unused_tcp_port: int,
    kind: str,
    mode: str,
) -> None:
    """Each bad key, certificate, password, secret and CA file is a located line, check or start."""
    roles = every_role(workspace, kind, provider_files, device)
    cfg = workspace.path / "apns-exporter.yml"
    flags = (
        ["--config.check"]
        if mode == "check"
        else [f"--web.listen-address=127.0.0.1:{unused_tcp_port}"]
    )
    assert_refused(run(*flags, f"--config.file={cfg}"), cfg, kind, roles)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", ["check", "start"])
def test_bad_config_file_is_refused_in_one_line(
    tmp_path: Path, unused_tcp_port: int, kind: str, mode: str
) -> None:
    """A config file that is a FIFO, /dev/zero or 2 GiB sparse is one line naming it, at once."""
    cfg = make_bad(tmp_path / "apns.yml", kind)
    flags = (
        ["--config.check"]
        if mode == "check"
        else [f"--web.listen-address=127.0.0.1:{unused_tcp_port}"]
    )
    done = run(*flags, f"--config.file={cfg}")
    assert done.code == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.max_rss_kib < RSS_LIMIT_KIB
    assert f"error: {cfg}: cannot read config file: " in done.stderr
    assert refusal(kind) in done.stderr


@pytest.mark.parametrize("mode", ["check", "start"])
def test_ca_file_in_der_is_trusted_and_junk_is_one_located_line(
    workspace: Workspace, ca: CertificateAuthority, unused_tcp_port: int, mode: str
) -> None:
    """A DER ca_file (as Apple ships roots) passes --config.check; junk is a located line."""
    der = workspace.path / "AppleRootCA.cer"
    der.write_bytes(ca.certificate.public_bytes(serialization.Encoding.DER))
    block = workspace.target(1, auth_check=True).replace(str(workspace.ca_file), str(der))
    cfg = workspace.config(block)
    if mode == "check":
        done = run("--config.check", f"--config.file={cfg}")
        assert done.code == 0, done.stderr
    der.write_bytes(b"\x30\x82\x01\x00" + b"\x00" * 16)  # a damaged DER certificate
    flags = (
        ["--config.check"]
        if mode == "check"
        else [f"--web.listen-address=127.0.0.1:{unused_tcp_port}"]
    )
    done = run(*flags, f"--config.file={cfg}")
    assert done.code == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert re.search(
        rf"^error: {re.escape(str(cfg))}:\d+:\d+: targets\[0\]\.ca_file: no PEM or DER "
        r"certificate could be read from it \(check the file's content\)$",
        done.stderr,
        re.MULTILINE,
    ), done.stderr


# --- a running process: reload (SIGHUP and POST /-/reload) and credential rotation ----------


class Process:
    """A running exporter: its log read line by line, its HTTP endpoints."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc = proc
        self.url = f"http://127.0.0.1:{port}"

    async def log_until(self, text: str) -> list[str]:
        """The log lines up to and including the first one containing ``text``."""
        assert self.proc.stderr is not None
        lines: list[str] = []
        async with asyncio.timeout(WAIT):
            while True:
                line = (await self.proc.stderr.readline()).decode()
                assert line, f"the exporter exited; its last lines: {lines[-5:]}"
                lines.append(line)
                if text in line:
                    return lines

    async def request(self, method: str, path: str) -> tuple[int, str]:
        """One HTTP request, bounded: a hung event loop is a failure, not a hung test."""
        timeout = aiohttp.ClientTimeout(total=5)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.request(method, self.url + path) as response,
        ):
            return response.status, await response.text()

    async def samples(self) -> Samples:
        """The current /metrics, parsed."""
        status, text = await self.request("GET", "/metrics")
        assert status == 200
        return parse_samples(text)

    def peak_rss_kib(self) -> int:
        """The process's peak resident set size so far (VmHWM)."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))  # type: ignore[union-attr]


@pytest.fixture
async def exporter_process(
    unused_tcp_port: int,
) -> AsyncIterator[Callable[..., Coroutine[Any, Any, Process]]]:
    """Start ``apns-exporter`` on a config file; SIGTERM must stop it within seconds."""
    started: list[Process] = []

    async def start(cfg: Path, *flags: str) -> Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "apns_exporter",
            f"--config.file={cfg}",
            f"--web.listen-address=127.0.0.1:{unused_tcp_port}",
            *flags,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        process = Process(proc, unused_tcp_port)
        started.append(process)
        await process.log_until("listening on")
        return process

    yield start
    for process in started:
        if process.proc.returncode is None:
            process.proc.kill()
            await process.proc.wait()


async def poll(process: Process, name: str, value: float, **labels: str) -> None:
    """Wait, bounded, until a series of ``process`` has ``value``."""
    labels.setdefault("apns_environment", "production")
    for _ in range(int(WAIT / 0.2)):
        if sample(await process.samples(), name, **labels) == value:
            return
        await asyncio.sleep(
            0.2
        )  # between scrapes; the loop's bound fails a series that never moves
    pytest.fail(f"{name}{labels} never became {value}")


async def assert_old_config_serves(process: Process, *, absent: str = "t2") -> None:
    """The reload metric is 0, t1 still probes, the new target never appeared; healthy."""
    samples = await process.samples()
    assert sample(samples, "apns_exporter_config_last_reload_successful") == 0
    t1 = {"target": "t1", "apns_environment": "production"}
    assert sample(samples, "apns_up", **t1) == 1
    assert not [key for key in samples if ("target", absent) in key[1]]
    assert await process.request("GET", "/-/healthy") == (200, "Healthy\n")


async def test_failed_reloads_keep_the_old_config_and_sigterm_still_stops(
    mock: MockAPNs,
    workspace: Workspace,
    device: str,
    ca: CertificateAuthority,
    exporter_process: Callable[..., Coroutine[Any, Any, Process]],
) -> None:
    """Bad files named by a reload (SIGHUP and POST) are refused, each problem logged once."""
    t1 = workspace.target(mock.port, name="t1", devices=(device,))
    cfg = workspace.config(t1)
    process: Process = await exporter_process(cfg)
    await poll(process, "apns_up", 1, target="t1")
    _, key = ca.issue_provider("com.example.app").write(workspace.path, "push")
    junk_ca = workspace.path / "junk.der"
    junk_ca.write_bytes(b"\x30\x03junk")  # Apple's roots are DER: a damaged one must not crash
    not_a_key = workspace.path / "AuthKey_NOTAKEY123.p8"
    not_a_key.write_text("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    cases: list[tuple[str, str]] = []
    for kind in KINDS:
        bad = make_bad(workspace.path / f"key-{kind}.p8", kind)
        cases.append(
            (workspace.target(mock.port, name="t2", key_file=bad, auth_check=True), refusal(kind))
        )
        bad = make_bad(workspace.path / f"cert-{kind}.pem", kind)
        cases.append(
            (cert_target("t2", workspace, {"cert_file": bad, "key_file": key}), refusal(kind))
        )
    cases.append(
        (
            workspace.target(mock.port, name="t2", auth_check=True).replace(
                str(workspace.ca_file), str(junk_ca)
            ),
            "no PEM or DER certificate could be read from it",
        )
    )
    cases.append(
        (
            workspace.target(mock.port, name="t2", key_file=not_a_key, auth_check=True),
            "not a valid PEM PKCS#8 key",
        )
    )
    for block, problem in cases:
        workspace.config(t1 + block)
        process.proc.send_signal(signal.SIGHUP)
        lines = await process.log_until("config reload failed")
        assert len([line for line in lines if problem in line]) == 1, lines
        await assert_old_config_serves(process)
        status, text = await process.request("POST", "/-/reload")
        assert status == 500
        assert problem in text
        assert LOCATED.search(text)
        await process.log_until("config reload failed")
        await assert_old_config_serves(process)
    for kind in KINDS:
        cfg.unlink()
        make_bad(cfg, kind)
        process.proc.send_signal(signal.SIGHUP)
        lines = await process.log_until("config reload failed")
        assert any(refusal(kind) in line for line in lines), lines
        status, text = await process.request("POST", "/-/reload")
        assert status == 500
        assert refusal(kind) in text
        await process.log_until("config reload failed")
        await assert_old_config_serves(process)
    cfg.unlink()
    # DER is a CA file format too: the same CA as a .cer reloads fine.
    der_ca = workspace.path / "ca.cer"
    der_ca.write_bytes(ca.certificate.public_bytes(serialization.Encoding.DER))
    workspace.config(
        t1
        + workspace.target(mock.port, name="t2", auth_check=True).replace(
            str(workspace.ca_file), str(der_ca)
        )
    )
    process.proc.send_signal(signal.SIGHUP)
    await process.log_until("configuration reloaded")
    samples = await process.samples()
    assert sample(samples, "apns_exporter_config_last_reload_successful") == 1
    assert (
        sample(samples, "apns_connection_up", target="t2", apns_environment="production")
        is not None
    )
    assert process.peak_rss_kib() < RSS_LIMIT_KIB
    process.proc.terminate()
    async with asyncio.timeout(10):
        assert await process.proc.wait() == 0


async def test_credential_rotation_to_bad_files_never_stalls_the_loop(
    mock: MockAPNs, workspace: Workspace, device: str, signing_key, exporter_process
) -> None:
    """A key swapped for a FIFO, /dev/zero or a sparse file at run time is refused in one line."""
    real = workspace.key_file
    link = workspace.path / "current.p8"
    link.symlink_to(real)
    cfg = workspace.config(
        workspace.target(mock.port, name="t1", devices=(device,), key_file=link),
        extra="global:\n  credential_check_interval: 1s\n",
    )
    process: Process = await exporter_process(cfg)
    t1 = {"target": "t1", "apns_environment": "production"}
    for kind in KINDS:
        bad = make_bad(workspace.path / f"swap-{kind}", kind)
        staging = workspace.path / "staging.p8"
        staging.symlink_to(bad)
        os.replace(staging, link)  # what mv -T does: the link now points at the bad file
        waiting = asyncio.create_task(process.log_until("probe=credentials"))
        # The loop keeps answering while the exporter looks at the bad file.
        while not waiting.done():
            assert await process.request("GET", "/-/healthy") == (200, "Healthy\n")
            await asyncio.wait({waiting}, timeout=0.2)
        lines = waiting.result()
        assert refusal(kind) in lines[-1]
        assert str(link) in lines[-1]
        samples = await process.samples()
        assert sample(samples, "apns_credential_up", **t1) == 0
        staging.symlink_to(real)
        os.replace(staging, link)
        await poll(process, "apns_credential_up", 1, target="t1")
    assert process.peak_rss_kib() < RSS_LIMIT_KIB
    process.proc.terminate()
    async with asyncio.timeout(10):
        assert await process.proc.wait() == 0


async def test_auto_reload_of_a_bad_config_file_never_stalls_the_loop(
    mock: MockAPNs,
    workspace: Workspace,
    device: str,
    exporter_process: Callable[..., Coroutine[Any, Any, Process]],
) -> None:
    """With auto-reload on, a config file turned FIFO, /dev/zero or sparse is refused at once."""
    cfg = workspace.config(workspace.target(mock.port, name="t1", devices=(device,)))
    process = await exporter_process(cfg, "--config.auto-reload-interval=1s")
    await poll(process, "apns_up", 1, target="t1")
    for kind in KINDS:
        cfg.unlink()
        make_bad(cfg, kind)
        waiting = asyncio.create_task(process.log_until("config reload failed"))
        while not waiting.done():
            assert await process.request("GET", "/-/healthy") == (200, "Healthy\n")
            await asyncio.wait({waiting}, timeout=0.2)
        assert any(refusal(kind) in line for line in waiting.result())
        await assert_old_config_serves(process)
    assert process.peak_rss_kib() < RSS_LIMIT_KIB
    process.proc.terminate()
    async with asyncio.timeout(10):
        assert await process.proc.wait() == 0
