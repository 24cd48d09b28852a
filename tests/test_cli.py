"""The real command line, run as a subprocess: config check, version, help and shutdown."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from apns_exporter import __version__
from tests.helpers import Workspace

CLI = [sys.executable, "-m", "apns_exporter"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def test_version_prints_the_package_version() -> None:
    """--version prints the version and exits 0."""
    done = _cli("--version")
    assert (done.returncode, done.stdout.strip()) == (0, f"apns-exporter {__version__}")


def test_help_explains_flags_and_subcommands() -> None:
    """--help names the Prometheus-style flags and every subcommand."""
    done = _cli("--help")
    assert done.returncode == 0
    for word in (
        "--config.file",
        "--config.check",
        "--web.listen-address",
        "--web.telemetry-path",
        "--log.level",
        "--log.format",
        "demo",
        "mock-apns",
    ):
        assert word in done.stdout


def test_config_check_accepts_a_valid_file(workspace: Workspace) -> None:
    """--config.check on a valid file exits 0 and says so."""
    cfg = workspace.config(workspace.target(443, devices=("ab" * 32,)))
    done = _cli("--config.check", f"--config.file={cfg}")
    assert done.returncode == 0, done.stderr
    assert "configuration is valid (1 target(s))" in done.stdout


def test_config_check_rejects_a_bad_file_without_traceback(workspace: Workspace) -> None:
    """--config.check on a broken file exits 1 with located one-line errors, no traceback."""
    cfg = workspace.config(workspace.target(443, devices=("ab" * 32,)) + "  colour: blue\n")
    done = _cli("--config.check", f"--config.file={cfg}")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert f"{cfg}:" in done.stderr
    assert "colour" in done.stderr


def test_missing_config_file_is_one_clear_line(tmp_path: Path) -> None:
    """A config path that does not exist is reported by name, exit 1, no traceback."""
    missing = tmp_path / "nope.yml"
    done = _cli("--config.check", f"--config.file={missing}")
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
    done = _cli("--config.check", f"--config.file={cfg}")
    assert done.returncode == 1
    assert "target t1" in done.stderr
    assert str(workspace.key_file) in done.stderr
