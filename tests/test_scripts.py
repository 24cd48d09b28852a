"""scripts/test, the command CI runs: full suite by default, --quick for iteration, no empty pass.

The script runs in a copy of the repository layout whose setup, ruff, mypy and python are
stand-ins that record their arguments, so what is tested is the script's own logic.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    """A copy of scripts/test beside stand-in tools; python exits with $PYTEST_STATUS."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "test", tmp_path / "scripts" / "test")
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    stand_ins = {
        "scripts/setup": "exit 0",
        ".venv/bin/ruff": "exit 0",
        ".venv/bin/mypy": "exit 0",
        ".venv/bin/python": 'printf "%s\\n" "$@" > pytest-args; exit "${PYTEST_STATUS:-0}"',
    }
    for name, body in stand_ins.items():
        path = tmp_path / name
        path.write_text(f"#!/usr/bin/env bash\n{body}\n")
        path.chmod(0o755)
    return tmp_path


def run(layout: Path, *args: str, status: int = 0) -> tuple[int, list[str], str]:
    """Run the copied scripts/test; return its exit code, pytest's arguments and stderr."""
    proc = subprocess.run(
        [str(layout / "scripts" / "test"), *args],
        env={"PATH": "/usr/bin:/bin", "PYTEST_STATUS": str(status)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return proc.returncode, (layout / "pytest-args").read_text().splitlines(), proc.stderr


def test_default_run_is_the_full_suite(layout: Path) -> None:
    """Without --quick, pytest gets exactly the arguments given: nothing is deselected."""
    assert run(layout, "-q")[:2] == (0, ["-m", "pytest", "-q"])


def test_quick_deselects_the_slow_tests(layout: Path) -> None:
    """--quick passes -m 'not slow' to pytest, before any other arguments."""
    assert run(layout, "--quick", "-q")[:2] == (0, ["-m", "pytest", "-m", "not slow", "-q"])


def test_no_tests_collected_fails_the_run(layout: Path) -> None:
    """Pytest's exit code 5 (nothing collected) makes the run fail with a clear line."""
    code, _, stderr = run(layout, status=5)
    assert code == 1
    assert "error: pytest collected no tests" in stderr


def test_pytest_failure_is_passed_through(layout: Path) -> None:
    """A failing pytest run fails the script with pytest's own exit code."""
    assert run(layout, status=1)[0] == 1
