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
from collections.abc import Callable, Sequence
from pathlib import Path

from apns_exporter import assets
from apns_exporter.assets.params import TUNABLE, with_settings


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
            assets.Params(), selector=args.selector, runbook_url=args.runbook_url
        )
        params = with_settings(base, _pairs(args.settings, "--set"), _pairs(args.fors, "--for"))
    except ValueError as exc:
        out(f"error: {exc}")
        return 2
    stale = []
    for name, text in assets.render_all(params).items():
        path = args.out / name
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        out(f"wrote {path}")
    if stale:
        out(f"out of date in {args.out}: {', '.join(stale)}")
        return 1
    return 0
