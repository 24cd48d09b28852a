"""The real command line, run as a subprocess: config check, version, help and shutdown."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from apns_exporter import __version__, config
from apns_exporter.commands import probe
from apns_exporter.mock.pki import CertificateAuthority, SigningKeyPair
from apns_exporter.mock.server import MockAPNs
from tests.helpers import CLI, KEY_ID, TEAM_ID, TOPIC, Workspace, run_cli, start_cli


def test_version_prints_the_package_version() -> None:
    """--version prints the version and exits 0."""
    done = run_cli("--version")
    assert (done.returncode, done.stdout.strip()) == (0, f"apns-exporter {__version__}")


def test_help_explains_flags_subcommands_and_exit_codes() -> None:
    """--help names the Prometheus-style flags, every subcommand and the exit codes."""
    done = run_cli("--help")
    assert done.returncode == 0
    for word in (
        "--config.file",
        "--config.check",
        "--web.listen-address",
        "--web.telemetry-path",
        "--log.level",
        "--log.format",
        "exit codes:",
    ):
        assert word in done.stdout
    listed = re.findall(r"^    ([a-z-]+)  ", done.stdout, flags=re.MULTILINE)
    assert listed == ["run", "probe", "demo", "mock-apns", "assets"]


@pytest.mark.parametrize(
    "args",
    [
        ("--config.file={cfg}", "run", "--config.check"),
        ("run", "--config.file={cfg}", "--config.check"),
        ("--config.check", "run", "--config.file={cfg}"),
        ("--config.file={cfg}", "--config.check"),
    ],
)
def test_run_flags_mean_the_same_before_and_after_run(
    workspace: Workspace, args: tuple[str, ...]
) -> None:
    """--config.file is honoured wherever it stands, before or after the word run."""
    cfg = workspace.config(workspace.target(443, devices=("ab" * 32,)))
    done = run_cli(*(a.format(cfg=cfg) for a in args))
    assert done.returncode == 0, done.stderr
    assert f"{cfg}: configuration is valid" in done.stdout


@pytest.mark.parametrize(
    ("args", "flag", "command"),
    [
        (("--config.check", "demo"), "--config.check", "demo"),
        (("--targets.shard=0/2", "probe", "--target=t1"), "--targets.shard", "probe"),
        (("--config.file=x.yml", "mock-apns"), "--config.file", "mock-apns"),
    ],
)
def test_a_flag_the_subcommand_does_not_take_is_refused(
    args: tuple[str, ...], flag: str, command: str
) -> None:
    """A run flag before a subcommand that lacks it exits 2 naming both, instead of vanishing."""
    done = run_cli(*args)
    assert done.returncode == 2
    assert f"{flag} does not apply to {command}" in done.stderr


def test_probe_of_an_unknown_target_is_a_usage_error(workspace: Workspace) -> None:
    """probe --target with a name not in the config exits 2 and lists the targets there are."""
    cfg = workspace.config(workspace.target(443, devices=("ab" * 32,)))
    done = run_cli("probe", f"--config.file={cfg}", "--target=nope")
    assert done.returncode == 2
    assert "no target named 'nope' in the configuration (targets: t1)" in done.stdout


def test_config_check_accepts_a_valid_file(workspace: Workspace) -> None:
    """--config.check on a valid file exits 0 and says so."""
    cfg = workspace.config(workspace.target(443, devices=("ab" * 32,)))
    done = run_cli("--config.check", f"--config.file={cfg}")
    assert done.returncode == 0, done.stderr
    assert "configuration is valid (1 target(s))" in done.stdout


def test_config_check_rejects_a_bad_file_without_traceback(workspace: Workspace) -> None:
    """--config.check on a broken file exits 1 with located one-line errors, no traceback."""
    cfg = workspace.config(workspace.target(443, devices=("ab" * 32,)) + "  colour: blue\n")
    done = run_cli("--config.check", f"--config.file={cfg}")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert f"{cfg}:" in done.stderr
    assert "colour" in done.stderr


def test_missing_config_file_is_one_clear_line(tmp_path: Path) -> None:
    """A config path that does not exist is reported by name, exit 1, no traceback."""
    missing = tmp_path / "nope.yml"
    done = run_cli("--config.check", f"--config.file={missing}")
    assert done.returncode == 1
    assert str(missing) in done.stderr
    assert "Traceback" not in done.stderr


def test_sigterm_stops_the_exporter_cleanly(workspace: Workspace, unused_tcp_port: int) -> None:
    """SIGTERM makes a running exporter exit 0 within 5 seconds, even with APNs unreachable."""
    cfg = workspace.config(workspace.target(unused_tcp_port, devices=("ab" * 32,)))
    proc = subprocess.Popen(
        [*CLI, f"--config.file={cfg}", "--web.listen-address=127.0.0.1:0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # bounded: the process logs "listening" right after start
            if "listening on" in line:
                break
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        proc.kill()
        proc.communicate()


def test_config_check_loads_the_signing_key(workspace: Workspace) -> None:
    """--config.check fails on a .p8 file that is not a key, naming the target and file."""
    workspace.key_file.write_text("not a key")
    cfg = workspace.config(workspace.target(443, devices=("ab" * 32,)))
    done = run_cli("--config.check", f"--config.file={cfg}")
    assert done.returncode == 1
    assert "target t1" in done.stderr
    assert str(workspace.key_file) in done.stderr


def test_config_check_locates_a_key_that_is_not_the_certificates(
    workspace: Workspace, ca: CertificateAuthority
) -> None:
    """A provider key that does not belong to its certificate is reported at key_file:line:col."""
    cert_file, _ = ca.issue_provider(TOPIC).write(workspace.path, "push")
    _, other_key = ca.issue_provider(TOPIC).write(workspace.path, "other")
    cfg = workspace.config(
        f"""\
        - name: shop-cert
          environment: production
          topic: {TOPIC}
          auth:
            certificate:
              cert_file: {cert_file}
              key_file: {other_key}
        """
    )
    done = run_cli("--config.check", f"--config.file={cfg}")
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert errors[0].startswith(
        f"error: {cfg}:10:9: targets[0].auth.certificate.key_file: target shop-cert: "
    )
    assert f"{cfg}: configuration is invalid (1 problem(s))" in done.stderr


async def test_probe_with_a_certificate_against_mock_apns(
    tmp_path: Path, unused_tcp_port: int
) -> None:
    """mock-apns --client-certificates=optional lets a certificate target's probe pass, exit 0."""
    pki = tmp_path / "pki"
    mock = await start_cli(
        "mock-apns",
        f"--listen=127.0.0.1:{unused_tcp_port}",
        f"--generate-pki={pki}",
        "--client-certificates=optional",
        ready=b"mock-apns production on",
    )
    try:
        cfg = tmp_path / "apns-exporter.yml"
        cfg.write_text(
            textwrap.dedent(
                f"""\
                targets:
                  - name: shop-cert
                    environment: production
                    endpoint: 127.0.0.1:{unused_tcp_port}
                    ca_file: {pki / "ca.pem"}
                    topic: com.example.apns-exporter
                    auth:
                      certificate:
                        cert_file: {pki / "provider.pem"}
                        key_file: {pki / "provider.key"}
                    canary: {{auth_check: true}}
                """
            )
        )
        probe = await asyncio.create_subprocess_exec(
            *CLI,
            "probe",
            f"--config.file={cfg}",
            "--target=shop-cert",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await probe.communicate()
    finally:
        mock.terminate()
        await mock.wait()
    text = out.decode()
    assert probe.returncode == 0, text
    assert "auth_check push: 400 BadDeviceToken" in text
    # Log lines carry RFC 3339 UTC times, not raw UNIX seconds.
    logs = [line for line in text.splitlines() if line.strip().startswith("log:")]
    assert logs
    assert all(re.match(r"\s+log: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ", x) for x in logs)


async def test_config_page_shows_durations_as_written(
    workspace: Workspace, unused_tcp_port_factory: Callable[[], int]
) -> None:
    """/config of a running exporter spells durations as in the file (50m), not in seconds."""
    apns, web = unused_tcp_port_factory(), unused_tcp_port_factory()
    cfg = workspace.config(
        workspace.target(apns, devices=("ab" * 32,), interval="90s"),
        extra="global: {scrape_timeout: 1500ms}\n",
    )
    proc = await start_cli(
        f"--config.file={cfg}", f"--web.listen-address=127.0.0.1:{web}", ready=b"listening on"
    )
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{web}/config") as resp,
        ):
            page = await resp.text()
    finally:
        proc.terminate()
        await proc.wait()
    assert "scrape_timeout: 1s500ms" in page
    assert "refresh_interval: 50m" in page
    assert "interval: 1m30s" in page
    assert "3000" not in page


async def _stderr_until(proc: asyncio.subprocess.Process, marker: bytes) -> list[str]:
    """The process's log lines up to and including the first that contains ``marker``."""
    assert proc.stderr is not None
    lines = []
    async with asyncio.timeout(30):
        while marker not in (line := await proc.stderr.readline()):
            assert line, f"process exited before logging {marker!r}"
            lines.append(line.decode())
    return [*lines, line.decode()]


async def test_failed_reloads_log_one_line_per_problem(
    workspace: Workspace, unused_tcp_port_factory: Callable[[], int]
) -> None:
    """SIGHUP and POST /-/reload failures both log each problem on its own located line."""
    apns, port = unused_tcp_port_factory(), unused_tcp_port_factory()
    cfg = workspace.config(workspace.target(apns, devices=("ab" * 32,)))
    proc = await start_cli(
        f"--config.file={cfg}", f"--web.listen-address=127.0.0.1:{port}", ready=b"listening on"
    )
    try:
        cfg.write_text(cfg.read_text() + "    colour: blue\n    flavour: mint\n")
        proc.send_signal(signal.SIGHUP)
        by_signal = await _stderr_until(proc, b"keeping the running config")
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"http://127.0.0.1:{port}/-/reload") as resp,
        ):
            status, body = resp.status, await resp.text()
        by_post = await _stderr_until(proc, b"keeping the running config")
    finally:
        proc.terminate()
        await proc.wait()
    assert status == 500
    assert f"{cfg}:" in body
    for lines in (by_signal, by_post):
        problems = [line for line in lines if f"{cfg}:" in line]
        assert len(problems) == 2, lines
        assert any("colour" in line for line in problems)
        assert any("flavour" in line for line in problems)
        assert not any("\\n" in line for line in lines)


async def test_reload_applies_a_new_credential_check_interval(
    workspace: Workspace, unused_tcp_port_factory: Callable[[], int]
) -> None:
    """After a reload from 1h to 1s, a broken key file is noticed without a restart."""
    apns, port = unused_tcp_port_factory(), unused_tcp_port_factory()
    target = workspace.target(apns, devices=("ab" * 32,), interval="1h")
    cfg = workspace.config(target, extra="global: {credential_check_interval: 1h}\n")
    proc = await start_cli(
        f"--config.file={cfg}", f"--web.listen-address=127.0.0.1:{port}", ready=b"listening on"
    )
    try:
        workspace.config(target, extra="global: {credential_check_interval: 1s}\n")
        proc.send_signal(signal.SIGHUP)
        await _stderr_until(proc, b"configuration reloaded")
        # A re-added target checks its files once at once; the second change needs the interval.
        workspace.key_file.write_text("not a key")
        noticed = await _stderr_until(proc, b"reason=bad_p8")
        assert 'msg="probe failed" target=t1 probe=credentials' in noticed[-1]
        workspace.key_file.unlink()  # a second, different change: only the interval finds it
        noticed = await _stderr_until(proc, b"reason=not_found")
        assert 'msg="probe failed" target=t1 probe=credentials' in noticed[-1]
    finally:
        proc.terminate()
        await proc.wait()


async def test_reload_says_which_settings_need_a_restart(
    workspace: Workspace, unused_tcp_port_factory: Callable[[], int]
) -> None:
    """A reload that moves the running receipt listener says, in response and log, to restart."""
    apns, port, receipts, moved = (unused_tcp_port_factory() for _ in range(4))
    secret = workspace.path / "receipt.key"
    secret.write_text("0123456789abcdef0123456789abcdef\n")
    target = workspace.target(apns, devices=("ab" * 32,), interval="1h")
    target += f"    delivery: {{secret_file: {secret}}}\n"
    workspace.config(target, extra=f"receipts: {{listen_address: '127.0.0.1:{receipts}'}}\n")
    cfg = workspace.path / "apns-exporter.yml"
    proc = await start_cli(
        f"--config.file={cfg}", f"--web.listen-address=127.0.0.1:{port}", ready=b"listening on"
    )
    try:
        workspace.config(target, extra=f"receipts: {{listen_address: '127.0.0.1:{moved}'}}\n")
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"http://127.0.0.1:{port}/-/reload") as resp,
        ):
            status, body = resp.status, await resp.text()
        logged = await _stderr_until(proc, b"needs a restart")
    finally:
        proc.terminate()
        await proc.wait()
    assert status == 200
    expected = f"receipts.listen_address is now 127.0.0.1:{moved}, but the receipt listener "
    assert f"Needs a restart: {expected}" in body
    assert expected in logged[-1]


async def test_sandbox_pushes_show_their_apns_unique_id(
    ca: CertificateAuthority, signing_key: SigningKeyPair, workspace: Workspace, run_exporter
) -> None:
    """Each sandbox push's apns-unique-id is on /probes and in the probe command's output."""
    sandbox = MockAPNs(keypair=ca.issue_server(), environment="sandbox")
    sandbox.add_signing_key(KEY_ID, TEAM_ID, signing_key.public_key, topics=[TOPIC])
    await sandbox.start("127.0.0.1", 0)
    try:
        target = workspace.target(sandbox.port, auth_check=True, interval="1h")
        cfg = workspace.config(target.replace("production", "sandbox"))
        async with run_exporter(cfg) as running:
            result = await running.wait_canary()
            page = await running.scrape_text("/probes?target=t1")
        printed: list[str] = []
        await probe.run(config.load(cfg), "t1", printed.append)
    finally:
        await sandbox.stop()
    (push,) = result.pushes
    assert push.unique_id
    assert f"apns-unique-id {push.unique_id}" in page  # the push's summary line
    assert f"apns-unique-id={push.unique_id}" in page  # and its log line
    output = "\n".join(printed)
    assert re.search(r"auth_check push: 400 BadDeviceToken .*apns-unique-id [0-9a-f-]{36}", output)
