r"""``apns-exporter assets``: write the alert rules, dashboards and Alertmanager example.

A pip install has no repository clone; this writes what a monitoring setup needs into a
directory, with the user's job selector, runbook address, thresholds and ``for:``
durations (see :class:`apns_exporter.assets.Params`)::

    apns-exporter assets --out monitoring --selector 'job="apns"' \\
        --runbook-url https://wiki.example.org/apns/runbook.md --set cert_warning_days=21
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import stat
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from apns_exporter import assets
from apns_exporter.assets.params import TUNABLE, with_settings
from apns_exporter.errors import OutputPathError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The subcommand's flags."""
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output directory")
    parser.add_argument(
        "--selector",
        default=assets.DEFAULT_SELECTOR,
        metavar="MATCHERS",
        help="PromQL label matchers selecting the exporter's series (default: %(default)s; "
        "'' selects everything)",
    )
    parser.add_argument(
        "--runbook-url",
        default=assets.DEFAULT_RUNBOOK_URL,
        metavar="URL",
        help="where you publish docs/runbook.md; alerts link to URL#<alertname> "
        "(default: a placeholder on example.com)",
    )
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="change a threshold or window; repeatable. Names: " + ", ".join(sorted(TUNABLE)),
    )
    parser.add_argument(
        "--for",
        dest="fors",
        action="append",
        default=[],
        metavar="ALERT=DURATION",
        help="change an alert's for: duration (every band of it), e.g. ApnsCanaryFailing=15m",
    )
    parser.add_argument(
        "--label",
        dest="labels",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="add a label to every alert (e.g. team=push); repeatable",
    )
    parser.add_argument(
        "--grafana-url",
        default="",
        metavar="URL",
        help="where Grafana serves the shipped dashboards; alerts get a dashboard_url annotation",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if a file in DIR differs from what would be written",
    )


def _pairs(values: Sequence[str], what: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        name, sep, text = value.partition("=")
        if not sep or not name:
            raise ValueError(f"{what} {value!r}: expected NAME=VALUE")
        pairs[name] = text
    return pairs


def run(args: argparse.Namespace, out: Callable[[str], None] = print) -> int:
    """Write (or check) every asset; return the exit code."""
    try:
        base = dataclasses.replace(
            assets.Params(),
            selector=args.selector,
            runbook_url=args.runbook_url,
            grafana_url=args.grafana_url,
        )
        params = with_settings(
            base,
            _pairs(args.settings, "--set"),
            _pairs(args.fors, "--for"),
            _pairs(args.labels, "--label"),
            alerts=assets.alert_names(),
        )
    except ValueError as exc:
        out(f"error: {exc}")
        return 2
    files = assets.render_all(params)
    try:
        if args.check:
            stale = [name for name, text in files.items() if _read(args.out, name) != text]
            if stale:
                out(f"out of date in {args.out}: {', '.join(stale)}")
                return 1
            return 0
        # Every path is checked before the first is written: nothing or everything.
        for name in files:
            _read_path(args.out, name)
        for name, text in files.items():
            out(f"wrote {_write(args.out, name, text)}")
    except OutputPathError as exc:
        out(f"error: --out {args.out}: {exc}")
        return 2
    return 0


def _inside(root: Path, name: str, *, create: bool) -> Path:
    """``root/name`` with every directory on the way a real one (never a symlink out)."""
    parent = root
    for part in Path(name).parts[:-1]:
        parent = parent / part
        _directory(parent, create=create)
    return parent / Path(name).name


def _root(root: Path, *, create: bool) -> None:
    """DIR itself: the user named it, so a symlink to a directory is fine."""
    if root.is_dir():
        return
    if root.exists() or root.is_symlink():
        raise OutputPathError(f"{root} exists and is not a directory")
    if create:
        try:
            root.mkdir(parents=True)
        except OSError as exc:
            raise OutputPathError(f"cannot create {root}: {exc.strerror}") from None


def _directory(path: Path, *, create: bool) -> None:
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        if not create:
            return
        try:
            path.mkdir(parents=True)
        except OSError as exc:
            raise OutputPathError(f"cannot create {path}: {exc.strerror}") from None
        return
    except OSError as exc:
        raise OutputPathError(f"cannot use {path}: {exc.strerror}") from None
    if stat.S_ISLNK(mode):
        raise OutputPathError(f"{path} is a symbolic link; refusing to write through it")
    if not stat.S_ISDIR(mode):
        raise OutputPathError(f"{path} exists and is not a directory")


def _existing(path: Path) -> bool:
    """Whether ``path`` exists as a regular file (anything else but nothing is refused)."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise OutputPathError(f"cannot use {path}: {exc.strerror}") from None
    if not stat.S_ISREG(mode):
        raise OutputPathError(
            f"{path} exists and is not a regular file; remove it or pick another DIR"
        )
    return True


def _write(root: Path, name: str, text: str) -> Path:
    """Write one file atomically (a temporary file renamed over it): no symlink is followed."""
    _root(root, create=True)
    path = _inside(root, name, create=True)
    _existing(path)
    try:
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.chmod(temporary, 0o644)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise OutputPathError(f"cannot write {path}: {exc.strerror}") from None
    return path


def _read_path(root: Path, name: str) -> Path | None:
    """Where one output file is, if it exists; an unusable path raises :class:`OutputPathError`."""
    _root(root, create=False)
    path = _inside(root, name, create=False)
    return path if _existing(path) else None


def _read(root: Path, name: str) -> str | None:
    """The text of one output file, None if it is missing; never opens a FIFO or a device."""
    path = _read_path(root, name)
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise OutputPathError(f"cannot read {path}: {exc}") from None
